/**
 * What the `dns:` and `srv:` resolvers share: their common options (with query-string parsing) and the polling
 * resolver, a {@link WatchLoop} in `poll` mode (TTL-driven re-resolution, backoff after errors, rate-limited
 * refresh, negative answers as empty sets).
 *
 * @module
 */
import type { Endpoint } from '../../common/endpoint.js';
import {
  type DnsError,
  InvalidOptionError,
  InvalidTargetError,
  ResolverError,
  ServiceNotFoundError,
  type SidecarlessError,
} from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import {
  array,
  describe,
  func,
  integer,
  joinPath,
  MAX_TIMER_MS,
  rejectUnknownKeys,
  readOptions,
} from '../../common/options.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../../common/runtime.js';
import {
  Backoff,
  type BackoffOptions,
  type ResolvedBackoffOptions,
  CONNECTION_BACKOFF,
  resolveBackoffOptions,
} from '../../common/backoff.js';
import {
  DNS_CLIENT_OPTION_KEYS,
  DnsClient,
  type DnsClientOptions,
  type Nameserver,
  parseNameserver,
  type ResolvedDnsClientOptions,
  resolveDnsClientOptions,
} from './client.js';
import { DEFAULT_NEGATIVE_TTL_S, isNegativeAnswer, type SearchView } from './search.js';
import { searchCandidates } from './system-config.js';
import { SystemFiles } from './system-files.js';
import type { Resolver, ResolverListener, Target } from '../resolver.js';
import { type WatchResult, WatchLoop, type WatchRun } from '../watch-loop.js';

const debug = createDebug('dns');

/** Which address families to look up: A (4), AAAA (6) or both. @category Resolvers */
export type DnsFamily = 4 | 6 | 'any';

/** Options the `dns:` and `srv:` resolvers share. @category Resolvers */
export interface DnsPollingOptions extends DnsClientOptions {
  /**
   * Lower bound on the re-resolution interval, ms: record TTLs below it (including TTL 0) are raised to it. Also the
   * minimum spacing of re-resolutions that {@link Resolver.refresh} may trigger.
   * @defaultValue 1000
   */
  readonly minTtlMs?: number | undefined;
  /** Upper bound on the re-resolution interval, ms: longer TTLs are cut to it. @defaultValue 300000 */
  readonly maxTtlMs?: number | undefined;
  /**
   * Address families to look up. `'any'` asks A and AAAA in parallel and uses both; when one fails and the other
   * answers with addresses, the answered ones are used with the failed family's from the previous resolution, and
   * the failure is reported (see `DnsResolver`).
   * @defaultValue 'any'
   */
  readonly family?: DnsFamily | undefined;
  /** Backoff between re-tries after a failed resolution. @defaultValue `{ initialMs: 1000, maxMs: 30000 }` */
  readonly backoff?: BackoffOptions | undefined;
  /** Clock for polling timers. @defaultValue the cluster's clock, else systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue the cluster's random source, else {@link systemRandom} */
  readonly random?: RandomSource | undefined;
  /**
   * The hosts file consulted before DNS (as `hosts: files dns` in nsswitch.conf): a name listed there is answered
   * from it. The file has no timer of its own: it is looked at (a `stat`, read again when it changed) at each
   * resolution. A name answered from it is resolved again after 5 s (clamped to [minTtlMs, maxTtlMs]); a line added
   * for a name that DNS answered is seen at that name's next re-resolution (its TTL, clamped, or `refresh()`).
   * `false` skips it. A missing `/etc/hosts` reads as empty; a file you name must be readable.
   * @defaultValue '/etc/hosts'
   */
  readonly hostsFile?: string | false | undefined;
  /**
   * The `resolv.conf` whose `search`/`domain` list, `options ndots:`, `timeout:`, `attempts:`, `rotate` and `use-vc`
   * apply (glibc semantics, `LOCALDOMAIN` and `RES_OPTIONS` included; `edns0` is the default here), re-read when it
   * changes. Its `nameserver` lines are used
   * when you name the file here; with the default, the nameservers are `dns.getServers()` (which Node read from the
   * same file at startup, or what `dns.setServers()` set). `false`: names are absolute, no file is read. A missing
   * `/etc/resolv.conf` reads as empty; a file you name must be readable.
   * @defaultValue '/etc/resolv.conf'
   */
  readonly resolvConf?: string | false | undefined;
  /**
   * Replaces the `resolv.conf` search list (`[]`: no search list), an array of domain names without holes.
   * @defaultValue the file's
   */
  readonly search?: readonly string[] | undefined;
  /**
   * Names with at least this many dots are tried as they are before the search list (glibc `ndots`, 0 to 15).
   * @defaultValue the file's `options ndots:`, else 1
   */
  readonly ndots?: number | undefined;
}

/** Validated {@link DnsPollingOptions}. @internal */
export interface ResolvedDnsPollingOptions {
  readonly client: ResolvedDnsClientOptions;
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
  readonly family: DnsFamily;
  readonly backoff: ResolvedBackoffOptions;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly hostsFile: string | undefined;
  readonly resolvConf: string | undefined;
  readonly hostsFileRequired: boolean;
  readonly resolvConfRequired: boolean;
  readonly search: readonly string[] | undefined;
  readonly ndots: number | undefined;
  /** Which client settings the user gave (those win over `resolv.conf`). */
  readonly explicit: { readonly nameservers: boolean; readonly timeoutMs: boolean; readonly retries: boolean };
}

/** The keys of {@link DnsPollingOptions}. @internal */
export const POLLING_OPTION_KEYS: readonly string[] = [
  ...DNS_CLIENT_OPTION_KEYS,
  ...['minTtlMs', 'maxTtlMs', 'family', 'backoff', 'random', 'hostsFile', 'resolvConf', 'search', 'ndots'],
];

/** The query parameters of a `dns:` or `srv:` target (each sets the option of the same name). */
const TARGET_PARAMS = ['minTtlMs', 'maxTtlMs', 'family', 'timeoutMs', 'retries', 'udpPayloadSize'];

/**
 * Validates the shared options; `ownKeys` are the keys the concrete resolver adds (validated by it), so that any
 * other key is refused. @internal
 */
export function resolveDnsPollingOptions(
  o: DnsPollingOptions,
  ownKeys: readonly string[] = [],
): ResolvedDnsPollingOptions {
  return readOptions('options', () => resolveDnsPollingOptionsUnguarded(o, ownKeys));
}

function resolveDnsPollingOptionsUnguarded(
  o: DnsPollingOptions,
  ownKeys: readonly string[] = [],
): ResolvedDnsPollingOptions {
  rejectUnknownKeys(o, '', [...ownKeys, ...POLLING_OPTION_KEYS]);
  const minTtlMs = integer(o.minTtlMs, 'minTtlMs', 1000, 0, MAX_TIMER_MS);
  const maxTtlMs = integer(o.maxTtlMs, 'maxTtlMs', 300_000, 0, MAX_TIMER_MS);
  if (minTtlMs === 0) throw new InvalidOptionError('minTtlMs', 'must be at least 1 ms (TTL 0 polls at minTtlMs)');
  if (maxTtlMs < minTtlMs) throw new InvalidOptionError('maxTtlMs', `must not be below minTtlMs (${minTtlMs})`);
  const family = o.family ?? 'any';
  if (family !== 4 && family !== 6 && family !== 'any') {
    throw new InvalidOptionError('family', `expected 4, 6 or 'any', got ${describe(family)}`);
  }
  const random = func<RandomSource>(o.random, 'random') ?? systemRandom;
  const clock = o.clock ?? systemClock;
  const client: Record<string, unknown> = { clock };
  for (const key of DNS_CLIENT_OPTION_KEYS) if (key !== 'clock' && o[key] !== undefined) client[key] = o[key];
  const file = (value: unknown, key: string, fallback: string) => {
    if (value === undefined) return fallback;
    if (value === false) return undefined;
    if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
      throw new InvalidOptionError(key, `expected a file path or false, got ${describe(value)}`);
    }
    return value;
  };
  let search: string[] | undefined;
  if (o.search !== undefined) {
    // Through the toolkit: an array with a hole (`[, 'a.example']`) is refused, not mapped around.
    search = array(o.search, 'search', 'an array of domain names').map((d, i) => {
      const domain = typeof d === 'string' ? d.toLowerCase().replace(/\.$/, '') : '';
      if (!isDnsName(domain)) {
        throw new InvalidOptionError(joinPath('search', i), `expected a domain name, got ${describe(d)}`);
      }
      return domain;
    });
  }
  return {
    client: resolveDnsClientOptions(client as DnsClientOptions),
    minTtlMs,
    maxTtlMs,
    family,
    // The resolver's own defaults for every field left out: a partial backoff keeps the 30 s cap (or initialMs).
    backoff: resolveBackoffOptions(o.backoff, 'backoff', { ...CONNECTION_BACKOFF, maxMs: (i) => Math.max(30_000, i) }),
    clock,
    random,
    hostsFile: file(o.hostsFile, 'hostsFile', '/etc/hosts'),
    resolvConf: file(o.resolvConf, 'resolvConf', '/etc/resolv.conf'),
    hostsFileRequired: typeof o.hostsFile === 'string',
    resolvConfRequired: typeof o.resolvConf === 'string',
    search,
    ndots: o.ndots === undefined ? undefined : integer(o.ndots, 'ndots', 1, 0, 15),
    explicit: {
      nameservers: o.nameservers !== undefined,
      timeoutMs: o.timeoutMs !== undefined,
      retries: o.retries !== undefined,
    },
  };
}

const DNS_NAME =
  /^(?=.{1,253}\.?$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$/i;

/** True when `name` is a syntactically valid DNS name (RFC 1035 §2.3.4 sizes; underscores allowed). @internal */
export function isDnsName(name: string): boolean {
  return typeof name === 'string' && DNS_NAME.test(name);
}

/**
 * Reads the shared options from a target: the authority is the nameserver, the query string holds `minTtlMs`,
 * `maxTtlMs`, `family`, `timeoutMs`, `retries` and `udpPayloadSize`. Unknown or malformed parameters throw
 * {@link InvalidTargetError} (its `cause` an {@link InvalidOptionError} naming the parameter). @internal
 */
export function dnsOptionsFromTarget(target: Target): DnsPollingOptions {
  const out: { -readonly [K in keyof DnsPollingOptions]: DnsPollingOptions[K] } = {};
  if (target.authority.length > 0) out.nameservers = [target.authority];
  try {
    rejectUnknownKeys(Object.fromEntries(target.query), '', TARGET_PARAMS);
  } catch (cause) {
    throw new InvalidTargetError(target.raw, (cause as Error).message, { cause });
  }
  for (const [key, value] of target.query) {
    const fail = (expected: string) => {
      const cause = new InvalidOptionError(key, `expected ${expected}, got ${JSON.stringify(value)}`);
      throw new InvalidTargetError(target.raw, cause.message, { cause });
    };
    switch (key) {
      case 'family':
        if (value !== '4' && value !== '6' && value !== 'any') fail('4, 6 or any');
        out.family = value === 'any' ? 'any' : (Number(value) as 4 | 6);
        break;
      default:
        if (!/^\d{1,10}$/.test(value)) fail('a non-negative integer');
        out[key as 'minTtlMs' | 'maxTtlMs' | 'timeoutMs' | 'retries' | 'udpPayloadSize'] = Number(value);
    }
  }
  return out;
}

/** One successful resolution: the whole set and how long it may be used, seconds. */
export interface DnsResolution {
  readonly endpoints: Endpoint[];
  /** Smallest TTL among the records used, seconds; `undefined` when there were none. */
  readonly ttl: number | undefined;
  /**
   * The first record skipped as no endpoint (an SRV port 0, an address no connection can be made to such as
   * `0.0.0.0`), reported to the listener; the rest is delivered.
   */
  readonly skipped?: SidecarlessError | undefined;
  /**
   * A failure the resolution went on without (one address family of `family: 'any'` failed while the other
   * answered), reported to the listener; the set is delivered.
   */
  readonly degraded?: SidecarlessError | undefined;
  /**
   * With no endpoints: the NXDOMAIN/NODATA that left the set empty (every SRV target gone), delivered as a thrown
   * negative answer is, but re-resolved after `ttl` rather than after its own negative TTL.
   */
  readonly notFound?: DnsError | undefined;
}

/**
 * The polling resolver. Subclasses implement `lookup()`; a {@link WatchLoop} in `poll` mode
 * schedules it:
 *
 * - first resolution on a microtask after `start`;
 * - after a success, again when the smallest TTL expires, clamped to [minTtlMs, maxTtlMs] (TTL 0 polls at minTtlMs);
 * - after a failure, `onError` and again after a {@link Backoff} delay; the set delivered last stays in use;
 * - NXDOMAIN / NODATA (authoritative "nothing here", RFC 2308) deliver an empty set, re-asked after the negative
 *   TTL from the SOA record (30 s when there is none), clamped the same way;
 * - `refresh()` resolves early, at most once per minTtlMs, and is ignored while backing off after a failure (the
 *   {@link Resolver.refresh} rule);
 * - a set equal to the one delivered last (same keys, weights, priorities, metadata; in any order) is not delivered
 *   again.
 *
 * Exported from `sidecarless` as a type only (the base of {@link DnsResolver} and {@link SrvResolver}); its protected
 * members are internal.
 *
 * @category Resolvers
 */
export abstract class DnsPollingResolver implements Resolver {
  /** The DNS client; closed with the resolver. @internal */
  protected readonly client: DnsClient;
  /** Validated options. @internal */
  protected readonly options: ResolvedDnsPollingOptions;
  readonly #loop: WatchLoop;
  readonly #files: SystemFiles;
  /** A `refresh()` hint came since the last resolution started. */
  #hinted = false;
  #refreshed = false;

  /** @internal */
  protected constructor(options: ResolvedDnsPollingOptions, label: string) {
    this.options = options;
    this.client = new DnsClient(options.client);
    this.#files = new SystemFiles(options);
    this.#loop = new WatchLoop(
      {
        label,
        clock: options.clock,
        backoff: new Backoff(options.backoff, options.random),
        minIntervalMs: 0,
        refresh: { mode: 'poll', intervalMs: options.minTtlMs },
        ordered: false,
        toError: (cause) => new ResolverError(`DNS resolution of ${label} failed`, { cause }),
        debug,
      },
      (run) => this.#poll(run, label),
    );
  }

  /** Resolves once. Rejects with a {@link DnsError} (or any error, which is wrapped). @internal */
  protected abstract lookup(): Promise<DnsResolution>;

  start(listener: ResolverListener): void {
    this.#loop.start({
      // An empty set is honoured. The negative answer that emptied it goes to onError (the DnsError naming every
      // name tried), then with the set as a ServiceNotFoundError whose cause is that DnsError: the latest state, and
      // so the cause users see in SIDECARLESS_NO_ENDPOINTS ("no such service", issue 15.7).
      onUpdate: (endpoints, notFound) => {
        if (endpoints.length === 0 && notFound?.cause !== undefined) listener.onError(notFound.cause as DnsError);
        listener.onUpdate(endpoints, notFound);
      },
      onError: (error) => listener.onError(error),
    });
  }

  /**
   * Reads the hosts file and resolv.conf (where they changed) and returns what this resolution uses: the hosts
   * table, the search candidates of a name, and the per-query settings. Precedence: options (and the target's
   * authority and query) over the file, the file over the defaults. @internal
   */
  protected async systemView(): Promise<SearchView> {
    const { hosts, resolvConf } = await this.#files.load();
    const o = this.options;
    const search = o.search ?? resolvConf.search;
    const ndots = o.ndots ?? resolvConf.ndots;
    let nameservers: Nameserver[] | undefined;
    if (!o.explicit.nameservers && o.resolvConfRequired && resolvConf.nameservers.length > 0) {
      nameservers = resolvConf.nameservers.map((s) => parseNameserver(s, 'resolvConf'));
    }
    const count = (nameservers ?? o.client.nameservers).length;
    return {
      hosts,
      candidates: (name) => searchCandidates(name, search, ndots),
      query: {
        nameservers,
        timeoutMs: o.explicit.timeoutMs ? undefined : resolvConf.timeoutMs,
        // glibc tries each nameserver `attempts` times in all.
        retries:
          o.explicit.retries || resolvConf.attempts === undefined
            ? undefined
            : Math.min(100, resolvConf.attempts * Math.max(1, count) - 1),
        rotate: resolvConf.rotate,
        tcp: resolvConf.useVc,
      },
    };
  }

  refresh(): void {
    // Noted for the next resolution even when the loop does not bring it forward (backing off, one in flight, rate
    // limit): an endpoint refused connections, so whichever resolution comes next should not trust cached addresses.
    this.#hinted = true;
    this.#loop.refresh();
  }

  /**
   * True during a resolution that follows a `refresh()` hint: the hint says an endpoint refuses connections, so
   * cached addresses (the SRV targets') are asked again. @internal
   */
  protected get refreshed(): boolean {
    return this.#refreshed;
  }

  close(): void {
    if (this.#loop.closed) return;
    this.#loop.close();
    this.client.close();
  }

  /** Clamps a TTL in seconds to [minTtlMs, maxTtlMs] ms. @internal */
  protected clampTtl(ttlSeconds: number): number {
    return Math.min(this.options.maxTtlMs, Math.max(this.options.minTtlMs, ttlSeconds * 1000));
  }

  async #poll(run: WatchRun, label: string): Promise<WatchResult> {
    run.started();
    this.#refreshed = this.#hinted;
    this.#hinted = false;
    try {
      const result = await this.lookup();
      if (result.skipped !== undefined) run.report(result.skipped);
      if (result.degraded !== undefined) run.report(result.degraded);
      const nextMs = this.clampTtl(result.ttl ?? DEFAULT_NEGATIVE_TTL_S);
      if (result.notFound !== undefined && result.endpoints.length === 0) {
        return this.#notFound(result.notFound, label, nextMs);
      }
      return { endpoints: result.endpoints, nextMs };
    } catch (err) {
      if (!isNegativeAnswer(err)) throw err;
      return this.#notFound(err, label, this.clampTtl(err.negativeTtl ?? DEFAULT_NEGATIVE_TTL_S));
    }
  }

  #notFound(err: DnsError, label: string, nextMs: number): WatchResult {
    debug('%s: %s; delivering an empty set', label, err.message);
    const notFound = new ServiceNotFoundError(err.queryName, `no such service: ${err.message}`, { cause: err });
    return { endpoints: [], notFound, nextMs };
  }
}
