/**
 * The system resolver's lookup order for the DNS resolvers: the hosts file first (as `hosts: files dns` in
 * nsswitch.conf), then DNS through the `resolv.conf` search list (glibc `res_nsearch`).
 *
 * Deliberate difference from glibc: only NXDOMAIN and NODATA move on to the next search candidate. glibc also
 * moves on after SERVFAIL; a resolver that keeps its last good set would then risk replacing it with another
 * name's records because one server hiccuped, so here a SERVFAIL (like a timeout) fails the resolution instead.
 *
 * @module
 */
import { isIP } from 'node:net';
import { DnsError, isSidecarlessError } from '../../common/errors.js';
import type { AddressRecord, QuerySettings } from './client.js';
import type { HostsTable } from './system-config.js';

/** TTL used for a negative answer without an SOA record to take it from, seconds (then clamped). @internal */
export const DEFAULT_NEGATIVE_TTL_S = 30;

/** How long an answer from the hosts file is used before the file is looked at again, seconds (then clamped). */
export const HOSTS_TTL_S = 5;

/** What one resolution uses from the system configuration. @internal */
export interface SearchView {
  readonly hosts: HostsTable;
  /** Names to ask for a name, in order (`searchCandidates` with the effective search list and ndots). */
  readonly candidates: (name: string) => string[];
  /** Per-query client settings taken from `resolv.conf`. */
  readonly query: QuerySettings;
}

/** How long a negative answer holds, seconds: its SOA's negative TTL (RFC 2308 §5), else the default. @internal */
export function negativeTtlSeconds(err: DnsError): number {
  return err.negativeTtl ?? DEFAULT_NEGATIVE_TTL_S;
}

/** True for the negative answers that the DNS resolvers deliver as an empty set. @internal */
export function isNegativeAnswer(err: unknown): err is DnsError {
  return isSidecarlessError(err) && (err.code === 'SIDECARLESS_DNS_NXDOMAIN' || err.code === 'SIDECARLESS_DNS_NODATA');
}

/** The hosts file's addresses of `name` (as given, trailing dot ignored) of the wanted family. @internal */
export function hostsAddresses(hosts: HostsTable, name: string, family: 4 | 6 | 'any'): AddressRecord[] {
  const owner = name.toLowerCase().replace(/\.$/, '');
  const out: AddressRecord[] = [];
  for (const address of hosts.get(owner) ?? []) {
    const f = isIP(address) as 4 | 6;
    if (family === 'any' || family === f) out.push({ name: owner, ttl: HOSTS_TTL_S, address, family: f });
  }
  return out;
}

/**
 * Asks `ask` for each candidate in turn until one answers. A negative answer (NXDOMAIN, NODATA) moves on to the next
 * candidate; any other failure is thrown as it is. When every candidate is negative, throws one {@link DnsError}
 * naming `name` and every name tried (`triedNames`): NODATA if any candidate had NODATA, else NXDOMAIN, with the
 * smallest negative TTL among them. With a single candidate its own error is thrown.
 *
 * The answer comes with `negativeTtl`, the smallest negative TTL of the candidates tried before it (seconds;
 * `undefined` when the first candidate answered): the answer holds only as long as they do not exist (RFC 2308 §5),
 * so a preferred name created meanwhile is found as soon as its NXDOMAIN expires, as glibc would. @internal
 */
export async function searchNames<T>(
  name: string,
  candidates: readonly string[],
  queryType: string,
  ask: (candidate: string) => Promise<T>,
): Promise<{ readonly name: string; readonly value: T; readonly negativeTtl: number | undefined }> {
  const negatives: DnsError[] = [];
  for (const candidate of candidates) {
    try {
      const value = await ask(candidate);
      const negativeTtl = negatives.length === 0 ? undefined : Math.min(...negatives.map(negativeTtlSeconds));
      return { name: candidate, value, negativeTtl };
    } catch (err) {
      if (!isNegativeAnswer(err)) throw err;
      negatives.push(err);
    }
  }
  if (negatives.length === 1) throw negatives[0];
  const nodata = negatives.some((e) => e.code === 'SIDECARLESS_DNS_NODATA');
  const ttls = negatives.map((e) => e.negativeTtl).filter((t): t is number => t !== undefined);
  const tried = negatives.map((e) => `${e.queryName} (${e.code === 'SIDECARLESS_DNS_NODATA' ? 'NODATA' : 'NXDOMAIN'})`);
  const last = negatives[negatives.length - 1];
  throw new DnsError(
    nodata ? 'SIDECARLESS_DNS_NODATA' : 'SIDECARLESS_DNS_NXDOMAIN',
    `${name} has no ${queryType} record under any search-list name; tried ${tried.join(', ')}` +
      (last?.nameserver === undefined ? '' : ` (asked ${last.nameserver})`),
    {
      queryName: name,
      queryType,
      rcode: nodata ? 'NOERROR' : 'NXDOMAIN',
      nameserver: last?.nameserver,
      negativeTtl: ttls.length === 0 ? undefined : Math.min(...ttls),
      triedNames: negatives.map((e) => e.queryName),
    },
  );
}
