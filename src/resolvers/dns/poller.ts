/**
 * What the `dns:` and `srv:` resolvers share: their common options (with query-string parsing) and the polling loop
 * (TTL-driven re-resolution, backoff after errors, rate-limited refresh, negative answers as empty sets).
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
import { type Clock, type RandomSource, systemClock, systemRandom } from '../../common/runtime.js';
import {
  Backoff,
  type BackoffOptions,
  type ResolvedBackoffOptions,
  resolveBackoffOptions,
} from '../../common/backoff.js';
import { DnsClient, type DnsClientOptions, type ResolvedDnsClientOptions, resolveDnsClientOptions } from './client.js';
import type { Resolver, ResolverListener, Target } from '../resolver.js';

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
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Validates the shared options. @internal */
export function resolveDnsPollingOptions(o: DnsPollingOptions): ResolvedDnsPollingOptions {
  const ms = (value: unknown, option: string, fallback: number) => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
      throw new InvalidOptionError(option, `expected an integer number of ms from 0 to ${MAX_TIMER_MS}`);
    }
    return value;
  };
  const minTtlMs = ms(o.minTtl, 'minTtl', 1000);
  const maxTtlMs = ms(o.maxTtl, 'maxTtl', 300_000);
  if (minTtlMs === 0) throw new InvalidOptionError('minTtl', 'must be at least 1 ms (TTL 0 polls at minTtl)');
  if (maxTtlMs < minTtlMs) throw new InvalidOptionError('maxTtl', `must not be below minTtl (${minTtlMs})`);
  const family = o.family ?? 'any';
  if (family !== 4 && family !== 6 && family !== 'any') {
    throw new InvalidOptionError('family', `expected 4, 6 or 'any', got ${String(family)}`);
  }
  const random = o.random ?? systemRandom;
  if (typeof random !== 'function') throw new InvalidOptionError('random', 'expected a function returning [0, 1)');
  const clock = o.clock ?? systemClock;
  return {
    client: resolveDnsClientOptions({ ...o, clock }),
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
 * `maxTtl`, `family`, `timeout`, `retries` and `udpPayloadSize`. Unknown or malformed parameters throw
 * {@link InvalidTargetError} (its `cause` an {@link InvalidOptionError} naming the parameter). @internal
 */
export function dnsOptionsFromTarget(target: Target): DnsPollingOptions {
  const out: { -readonly [K in keyof DnsPollingOptions]: DnsPollingOptions[K] } = {};
  if (target.authority.length > 0) out.nameservers = [target.authority];
  for (const [key, value] of target.query) {
    const int = () => {
      if (!/^\d{1,10}$/.test(value)) {
        const cause = new InvalidOptionError(key, `expected a non-negative integer, got ${JSON.stringify(value)}`);
        throw new InvalidTargetError(target.raw, cause.message, { cause });
      }
      return Number(value);
    };
    switch (key) {
      case 'minTtl':
      case 'maxTtl':
      case 'timeout':
      case 'retries':
      case 'udpPayloadSize':
        out[key] = int();
        break;
      case 'family':
        if (value !== '4' && value !== '6' && value !== 'any') {
          const cause = new InvalidOptionError(key, `expected 4, 6 or any, got ${JSON.stringify(value)}`);
          throw new InvalidTargetError(target.raw, cause.message, { cause });
        }
        out.family = value === 'any' ? 'any' : (Number(value) as 4 | 6);
        break;
      default: {
        const cause = new InvalidOptionError(
          key,
          'unknown query parameter (known: minTtl, maxTtl, family, timeout, retries, udpPayloadSize)',
        );
        throw new InvalidTargetError(target.raw, cause.message, { cause });
      }
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
 * The polling loop. Subclasses implement `lookup()`; this class schedules it:
 *
 * - first resolution on a microtask after `start`;
 * - after a success, again when the smallest TTL expires, clamped to [minTtl, maxTtl] (TTL 0 polls at minTtl);
 * - after a failure, `onError` and again after a {@link Backoff} delay; the set delivered last stays in use;
 * - NXDOMAIN / NODATA (authoritative "nothing here", RFC 2308) deliver an empty set, re-asked after the negative
 *   TTL from the SOA record (30 s when there is none), clamped the same way;
 * - `refresh()` resolves early, at most once per minTtl, and is ignored while backing off after a failure (the
 *   {@link Resolver.refresh} rule);
 * - a set equal to the one delivered last (same keys, weights, priorities, metadata) is not delivered again.
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
  readonly #backoff: Backoff;
  readonly #label: string;
  #listener: ResolverListener | undefined;
  #timer: unknown;
  #timerAt = Number.POSITIVE_INFINITY;
  #inFlight = false;
  #backingOff = false;
  #closed = false;
  #lastStart = Number.NEGATIVE_INFINITY;
  #lastSignature: string | undefined;

  /** @internal */
  protected constructor(options: ResolvedDnsPollingOptions, label: string) {
    this.options = options;
    this.client = new DnsClient(options.client);
    this.#backoff = new Backoff(options.backoff, options.random);
    this.#label = label;
  }

  /** Resolves once. Rejects with a {@link DnsError} (or any error, which is wrapped). @internal */
  protected abstract lookup(): Promise<DnsResolution>;

  start(listener: ResolverListener): void {
    if (this.#listener !== undefined || this.#closed) return;
    this.#listener = listener;
    queueMicrotask(() => void this.#run());
  }

  refresh(): void {
    if (this.#listener === undefined || this.#closed) return;
    if (this.#inFlight || this.#backingOff) return;
    const earliest = this.#lastStart + this.options.minTtlMs;
    this.#schedule(Math.max(0, earliest - this.options.clock.now()));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener = undefined;
    this.#cancelTimer();
    this.client.close();
  }

  /** Clamps a TTL in seconds to [minTtl, maxTtl] ms. @internal */
  protected clampTtl(ttlSeconds: number): number {
    return Math.min(this.options.maxTtlMs, Math.max(this.options.minTtlMs, ttlSeconds * 1000));
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /** Runs the next resolution in `delayMs`, unless one is already due sooner. */
  #schedule(delayMs: number): void {
    if (this.#closed) return;
    const at = this.options.clock.now() + delayMs;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = this.options.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      void this.#run();
    }, delayMs);
  }

  async #run(): Promise<void> {
    if (this.#closed || this.#inFlight) return;
    this.#inFlight = true;
    this.#lastStart = this.options.clock.now();
    let endpoints: Endpoint[] | undefined;
    let nextMs: number;
    let failure: unknown;
    try {
      const result = await this.lookup();
      endpoints = result.endpoints;
      nextMs = this.clampTtl(result.ttl ?? DEFAULT_NEGATIVE_TTL_S);
    } catch (err) {
      if (isNegativeAnswer(err)) {
        debug('%s: %s; delivering an empty set', this.#label, err.message);
        endpoints = [];
        nextMs = this.clampTtl(err.negativeTtl ?? DEFAULT_NEGATIVE_TTL_S);
      } else {
        failure = err;
        nextMs = this.#backoff.next();
      }
    } finally {
      this.#inFlight = false;
    }
    if (this.#closed) return;
    const listener = this.#listener;
    this.#backingOff = endpoints === undefined;
    if (endpoints !== undefined) {
      this.#backoff.reset();
      const signature = endpoints
        .map((e) => `${e.key}|${e.weight}|${e.priority}|${JSON.stringify(e.metadata)}`)
        .sort()
        .join('\n');
      if (signature !== this.#lastSignature) {
        this.#lastSignature = signature;
        debug('%s: %d endpoints, next resolution in %d ms', this.#label, endpoints.length, nextMs);
        listener?.onUpdate(endpoints);
      }
    } else {
      const error = isSidecarlessError(failure)
        ? failure
        : new ResolverError(`DNS resolution of ${this.#label} failed`, { cause: failure });
      debug('%s: %s; keeping the last set, retrying in %d ms', this.#label, error.message, Math.round(nextMs));
      listener?.onError(error);
    }
    if (!this.#closed) this.#schedule(nextMs);
  }
}
