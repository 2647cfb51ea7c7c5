/**
 * The system resolver's configuration, as glibc reads it: `resolv.conf` (`man 5 resolv.conf`: `nameserver`,
 * `search`/`domain`, `options ndots: timeout: attempts: rotate use-vc edns0`, the `LOCALDOMAIN` and `RES_OPTIONS`
 * environment variables) and the hosts file (`man 5 hosts`), and the search-list expansion of a name (glibc
 * `res_nsearch`).
 * Pure functions that never throw on bad text; reading the files is `dns/system-files.ts`.
 *
 * @module
 */
import { isIP } from 'node:net';

/** What a `resolv.conf` says, after glibc's defaults and limits. @internal */
export interface ResolvConf {
  /** `nameserver` lines, in order, at most 3 (glibc's MAXNS); IP literals only (an IPv6 zone is dropped). */
  readonly nameservers: readonly string[];
  /** The search list (lower-cased, no trailing dot; `''` stands for the root). */
  readonly search: readonly string[];
  /** `options ndots:n`, 0 to 15. @defaultValue 1 */
  readonly ndots: number;
  /** `options timeout:n` in ms (1 to 30 s, as glibc clamps it); `undefined` when the file does not set it. */
  readonly timeoutMs: number | undefined;
  /** `options attempts:n` (1 to 5); `undefined` when the file does not set it. */
  readonly attempts: number | undefined;
  /** `options rotate`: each query starts at the next nameserver (glibc RES_ROTATE). @defaultValue false */
  readonly rotate: boolean;
  /** `options use-vc`: queries go over TCP (glibc RES_USEVC). @defaultValue false */
  readonly useVc: boolean;
  /**
   * `options edns0` (glibc RES_USE_EDNS0: an OPT record advertising 1200 bytes). Nothing to do with it: the DNS
   * client sends EDNS(0) whatever the file says (`udpPayloadSize`, 1232 by default). @defaultValue false
   */
  readonly edns0: boolean;
}

/** glibc's limits (resolv/resolv.h): MAXNS, RES_MAXNDOTS, RES_MAXRETRANS, RES_MAXRETRY. */
const MAX_NAMESERVERS = 3;
const MAX_NDOTS = 15;
const MAX_TIMEOUT_S = 30;
const MAX_ATTEMPTS = 5;
/** Not a glibc limit (glibc 2.26 dropped its 6-domain limit); a bound on the queries one name can cost. */
const MAX_SEARCH = 32;

/** A search-list domain, normalized; `undefined` when it is not a usable name. */
function searchDomain(token: string): string | undefined {
  const d = token.toLowerCase().replace(/\.$/, '');
  if (d.length > 253 || d.startsWith('.') || d.endsWith('.') || d.includes('..')) return undefined;
  return /^[a-z0-9_.-]*$/.test(d) ? d : undefined;
}

function domainsOf(tokens: readonly string[]): string[] {
  const out: string[] = [];
  for (const t of tokens) {
    const d = searchDomain(t);
    if (d !== undefined && !out.includes(d) && out.length < MAX_SEARCH) out.push(d);
  }
  return out;
}

interface MutableOptions {
  ndots: number;
  timeoutMs: number | undefined;
  attempts: number | undefined;
  rotate: boolean;
  useVc: boolean;
  edns0: boolean;
}

/**
 * Applies `options` tokens (`ndots:2 timeout:1 attempts:3 rotate use-vc edns0`), clamped as glibc does; others are
 * ignored (glibc has no `tcp` option: `use-vc` is its name for TCP).
 */
function applyOptions(tokens: readonly string[], into: MutableOptions): void {
  for (const token of tokens) {
    if (token === 'rotate') into.rotate = true;
    else if (token === 'use-vc') into.useVc = true;
    else if (token === 'edns0') into.edns0 = true;
    const m = /^(ndots|timeout|attempts):(\d{1,9})$/.exec(token);
    if (m === null) continue;
    const n = Number(m[2]);
    if (m[1] === 'ndots') into.ndots = Math.min(n, MAX_NDOTS);
    // glibc waits at least a second (send_dg: `if (seconds <= 0) seconds = 1`).
    else if (m[1] === 'timeout') into.timeoutMs = Math.max(1, Math.min(n, MAX_TIMEOUT_S)) * 1000;
    else into.attempts = Math.max(1, Math.min(n, MAX_ATTEMPTS));
  }
}

/** The environment variables glibc reads on top of the file. @internal */
export interface ResolverEnvironment {
  /** `LOCALDOMAIN`: replaces the search list (space-separated domains). */
  readonly LOCALDOMAIN?: string | undefined;
  /** `RES_OPTIONS`: further `options` tokens, applied after the file's. */
  readonly RES_OPTIONS?: string | undefined;
}

/**
 * Parses `resolv.conf` text as glibc does: a keyword at the start of a line followed by a space or tab; lines
 * starting with `#` or `;` are comments; `search` and `domain` replace each other (the last one wins); `domain` is
 * a one-entry search list; with neither, the search list is the domain part of `hostname` (nothing when it has no
 * dot). `env` (LOCALDOMAIN, RES_OPTIONS) applies on top, as glibc does. Never throws. @internal
 */
export function parseResolvConf(text: string, hostname = '', env: ResolverEnvironment = {}): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] | undefined;
  const options: MutableOptions = {
    ndots: 1,
    timeoutMs: undefined,
    attempts: undefined,
    rotate: false,
    useVc: false,
    edns0: false,
  };
  for (const line of String(text).split(/\r?\n/)) {
    const m = /^(nameserver|search|domain|options)[ \t]+(.*)$/.exec(line);
    if (m === null) continue;
    const tokens = (m[2] as string).split(/[ \t]+/).filter((t) => t.length > 0);
    switch (m[1]) {
      case 'nameserver': {
        const first = tokens[0] ?? '';
        const address = first.replace(/%.*$/, '');
        if (nameservers.length < MAX_NAMESERVERS && isIP(address) !== 0) nameservers.push(address);
        break;
      }
      case 'domain':
        search = domainsOf(tokens.slice(0, 1));
        break;
      case 'search':
        search = domainsOf(tokens);
        break;
      default:
        applyOptions(tokens, options);
    }
  }
  if (search === undefined) {
    const dot = hostname.indexOf('.');
    search = dot > 0 ? domainsOf([hostname.slice(dot + 1)]) : [];
  }
  if (typeof env.LOCALDOMAIN === 'string') search = domainsOf(env.LOCALDOMAIN.split(/[ \t]+/).filter(Boolean));
  if (typeof env.RES_OPTIONS === 'string') applyOptions(env.RES_OPTIONS.split(/[ \t]+/), options);
  return { nameservers, search, ...options };
}

/** A hosts file: addresses by name (lower-cased, no trailing dot), in file order, without duplicates. @internal */
export type HostsTable = ReadonlyMap<string, readonly string[]>;

/**
 * Parses a hosts file (`man 5 hosts`): `address canonical-name [aliases...]`, `#` starts a comment anywhere on a
 * line. Every line naming a host adds its address (getaddrinfo collects them all). Lines with an address that is
 * not an IP literal, or names that are not host names, are skipped. Never throws. @internal
 */
export function parseHosts(text: string): HostsTable {
  const table = new Map<string, string[]>();
  for (const raw of String(text).split(/\r?\n/)) {
    const tokens = raw
      .replace(/#.*$/, '')
      .split(/[ \t]+/)
      .filter((t) => t.length > 0);
    if (tokens.length < 2) continue;
    const address = (tokens[0] as string).toLowerCase();
    // A link-local address with a zone (macOS ships `fe80::1%lo0 localhost`) cannot be put in an HTTP URL: an
    // endpoint could never be made of it, and it would fail the whole name. Skipped, as a non-IP is.
    if (isIP(address) === 0 || address.includes('%')) continue;
    for (const token of tokens.slice(1)) {
      const name = token.toLowerCase().replace(/\.$/, '');
      if (name.length === 0 || name.length > 253 || !/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(name)) continue;
      const list = table.get(name);
      if (list === undefined) table.set(name, [address]);
      else if (!list.includes(address)) list.push(address);
    }
  }
  return table;
}

/**
 * The names to ask for `name`, in order, as glibc's `res_nsearch` tries them:
 *
 * - a name with a trailing dot is absolute: only itself;
 * - a name with at least `ndots` dots is tried as it is first, then with each search domain appended;
 * - a name with fewer dots is tried with each search domain appended first, then as it is.
 *
 * Names are lower-cased and returned without trailing dot; a candidate longer than 253 characters is skipped and
 * duplicates are dropped. @internal
 */
export function searchCandidates(name: string, search: readonly string[], ndots: number): string[] {
  const lower = String(name).toLowerCase();
  if (lower.endsWith('.')) return [lower.slice(0, -1)];
  const dots = lower.split('.').length - 1;
  const expanded = search.map((d) => (d.length === 0 ? lower : `${lower}.${d}`));
  const ordered = dots >= ndots ? [lower, ...expanded] : [...expanded, lower];
  return [...new Set(ordered.filter((n) => n.length <= 253))];
}
