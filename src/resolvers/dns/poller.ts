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
  isSidecarlessError,
  ResolverError,
} from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { describe, func, integer, MAX_TIMER_MS, rejectUnknownKeys } from '../../common/options.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../../common/runtime.js';
import {
  Backoff,
  type BackoffOptions,
  type ResolvedBackoffOptions,
  resolveBackoffOptions,
} from '../../common/backoff.js';
import {
  DNS_CLIENT_OPTION_KEYS,
  DnsClient,
  type DnsClientOptions,
  type ResolvedDnsClientOptions,
  resolveDnsClientOptions,
} from './client.js';
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
  readonly minTtl?: number | undefined;
  /** Upper bound on the re-resolution interval, ms: longer TTLs are cut to it. @defaultValue 300000 */
  readonly maxTtl?: number | undefined;
  /** Address families to look up. `'any'` asks A and AAAA in parallel and uses both. @defaultValue 'any' */
  readonly family?: DnsFamily | undefined;
  /** Backoff between re-tries after a failed resolution. @defaultValue `{ initialMs: 1000, maxMs: 30000 }` */
  readonly backoff?: BackoffOptions | undefined;
  /** Clock for polling timers. @defaultValue the cluster's clock, else systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue the cluster's random source, else {@link systemRandom} */
  readonly random?: RandomSource | undefined;
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
}

/** TTL used for a negative answer without an SOA record to take it from, seconds (then clamped). */
const DEFAULT_NEGATIVE_TTL_S = 30;

/** The keys of {@link DnsPollingOptions}. */
const POLLING_OPTION_KEYS = [...DNS_CLIENT_OPTION_KEYS, 'minTtl', 'maxTtl', 'family', 'backoff', 'random'];

/** The query parameters of a `dns:` or `srv:` target (each sets the option of the same name). */
const TARGET_PARAMS = ['minTtl', 'maxTtl', 'family', 'timeoutMs', 'retries', 'udpPayloadSize'];

/**
 * Validates the shared options; `ownKeys` are the keys the concrete resolver adds (validated by it), so that any
 * other key is refused. @internal
 */
export function resolveDnsPollingOptions(
  o: DnsPollingOptions,
  ownKeys: readonly string[] = [],
): ResolvedDnsPollingOptions {
  rejectUnknownKeys(o, '', [...ownKeys, ...POLLING_OPTION_KEYS]);
  const minTtlMs = integer(o.minTtl, 'minTtl', 1000, 0, MAX_TIMER_MS);
  const maxTtlMs = integer(o.maxTtl, 'maxTtl', 300_000, 0, MAX_TIMER_MS);
  if (minTtlMs === 0) throw new InvalidOptionError('minTtl', 'must be at least 1 ms (TTL 0 polls at minTtl)');
  if (maxTtlMs < minTtlMs) throw new InvalidOptionError('maxTtl', `must not be below minTtl (${minTtlMs})`);
  const family = o.family ?? 'any';
  if (family !== 4 && family !== 6 && family !== 'any') {
    throw new InvalidOptionError('family', `expected 4, 6 or 'any', got ${describe(family)}`);
  }
  const random = func<RandomSource>(o.random, 'random') ?? systemRandom;
  const clock = o.clock ?? systemClock;
  const client: Record<string, unknown> = { clock };
  for (const key of DNS_CLIENT_OPTION_KEYS) if (key !== 'clock' && o[key] !== undefined) client[key] = o[key];
  return {
    client: resolveDnsClientOptions(client as DnsClientOptions),
    minTtlMs,
    maxTtlMs,
    family,
    backoff: resolveBackoffOptions(o.backoff ?? { initialMs: 1000, maxMs: 30_000 }, 'backoff'),
    clock,
    random,
  };
}

/**
 * Reads the shared options from a target: the authority is the nameserver, the query string holds `minTtl`,
 * `maxTtl`, `family`, `timeoutMs`, `retries` and `udpPayloadSize`. Unknown or malformed parameters throw
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
        out[key as 'minTtl' | 'maxTtl' | 'timeoutMs' | 'retries' | 'udpPayloadSize'] = Number(value);
    }
  }
  return out;
}
/** Runs `build` and turns an option error into an {@link InvalidTargetError} for `target`. @internal */
export function asTargetError<T>(target: Target, build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (isSidecarlessError(err) && err.code !== 'SIDECARLESS_INVALID_TARGET') {
      throw new InvalidTargetError(target.raw, err.message, { cause: err });
    }
    throw err;
  }
}

/** One successful resolution: the whole set and how long it may be used, seconds. */
export interface DnsResolution {
  readonly endpoints: Endpoint[];
  /** Smallest TTL among the records used, seconds; `undefined` when there were none. */
  readonly ttl: number | undefined;
}

/** True for the negative answers that the DNS resolvers deliver as an empty set. @internal */
export function isNegativeAnswer(err: unknown): err is DnsError {
  return isSidecarlessError(err) && (err.code === 'SIDECARLESS_DNS_NXDOMAIN' || err.code === 'SIDECARLESS_DNS_NODATA');
}

/**
 * The polling resolver. Subclasses implement `lookup()`; a {@link WatchLoop} in `poll` mode
 * schedules it:
 *
 * - first resolution on a microtask after `start`;
 * - after a success, again when the smallest TTL expires, clamped to [minTtl, maxTtl] (TTL 0 polls at minTtl);
 * - after a failure, `onError` and again after a {@link Backoff} delay; the set delivered last stays in use;
 * - NXDOMAIN / NODATA (authoritative "nothing here", RFC 2308) deliver an empty set, re-asked after the negative
 *   TTL from the SOA record (30 s when there is none), clamped the same way;
 * - `refresh()` resolves early, at most once per minTtl, and is ignored while backing off after a failure (the
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

  /** @internal */
  protected constructor(options: ResolvedDnsPollingOptions, label: string) {
    this.options = options;
    this.client = new DnsClient(options.client);
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
    this.#loop.start(listener);
  }

  refresh(): void {
    this.#loop.refresh();
  }

  close(): void {
    if (this.#loop.closed) return;
    this.#loop.close();
    this.client.close();
  }

  /** Clamps a TTL in seconds to [minTtl, maxTtl] ms. @internal */
  protected clampTtl(ttlSeconds: number): number {
    return Math.min(this.options.maxTtlMs, Math.max(this.options.minTtlMs, ttlSeconds * 1000));
  }

  async #poll(run: WatchRun, label: string): Promise<WatchResult> {
    run.started();
    try {
      const result = await this.lookup();
      return { endpoints: result.endpoints, nextMs: this.clampTtl(result.ttl ?? DEFAULT_NEGATIVE_TTL_S) };
    } catch (err) {
      if (!isNegativeAnswer(err)) throw err;
      debug('%s: %s; delivering an empty set', label, err.message);
      return { endpoints: [], nextMs: this.clampTtl(err.negativeTtl ?? DEFAULT_NEGATIVE_TTL_S) };
    }
  }
}
