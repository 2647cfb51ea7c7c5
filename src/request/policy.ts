/**
 * The request policy of a cluster: retries, retry budget, hedging, deadline, concurrency limits and circuit breaker
 * settings, validated once at construction.
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';

/** Retry settings. Retries always go to a different endpoint when one is available. @category Options */
export interface RetryOptions {
  /** Attempts per request including the first, 1 to 5 (1 disables retries). @defaultValue 3 */
  readonly maxAttempts?: number;
  /** Response statuses that are retried (idempotent requests only). @defaultValue [502, 503, 504] */
  readonly retryOn?: readonly number[];
  /**
   * Time an attempt may take to produce response headers before it is abandoned (and retried if the request may
   * be), ms. 0 disables. @defaultValue 0
   */
  readonly perTryTimeout?: number;
  /** First backoff between attempts, ms (Envoy's default). @defaultValue 25 */
  readonly backoffInitial?: number;
  /** Backoff cap, ms. @defaultValue 250 */
  readonly backoffMax?: number;
  /**
   * Also retry non-idempotent methods (POST, PATCH, ...) after failures where the request may have reached the
   * server. Off by default: such a request is retried only when it certainly was not sent (connection refused).
   * @defaultValue false
   */
  readonly retryNonIdempotent?: boolean;
  /**
   * Honour `Retry-After` (seconds or HTTP date) on retried statuses: wait that long before the next attempt. A
   * `Retry-After` above `maxRetryAfter` is not waited for: the response goes to the caller.
   * @defaultValue true
   */
  readonly honorRetryAfter?: boolean;
  /** Longest `Retry-After` honoured, ms. @defaultValue 10000 */
  readonly maxRetryAfter?: number;
  /**
   * Request bodies that arrive as a stream (through `fetch` every body does, strings and bytes included) are
   * recorded as the first attempt reads them, up to this many bytes, so that a retry can send them again: the
   * recorded bytes, then the rest of the stream (Envoy buffers request bodies for retries the same way). A body
   * larger than this is sent once: a failure after it was read goes to the caller. 0 turns recording off, and then
   * a streamed body is replayed only if no attempt started reading it. Integer bytes, 0 to 1 GiB.
   * @defaultValue 65536
   */
  readonly bufferBody?: number;
}

/**
 * Retry budget (Finagle's RetryBudget): retries in the last `windowMs` may not exceed `percent` % of requests
 * plus `minRetriesPerSecond` per second, so a failing service is not hit by a retry storm.
 *
 * @category Options
 */
export interface RetryBudgetOptions {
  /** Share of requests that may be retried, percent. @defaultValue 20 */
  readonly percent?: number;
  /** Retries always allowed per second, whatever the request rate. @defaultValue 10 */
  readonly minRetriesPerSecond?: number;
  /** Accounting window, ms. @defaultValue 10000 */
  readonly windowMs?: number;
}

/** Hedging: a second attempt on another endpoint when the first is slow; the first answer wins. @category Options */
export interface HedgeOptions {
  /** How long to wait for response headers before sending a hedge, ms. */
  readonly delay: number;
  /** Hedges per attempt, 1 to 3. @defaultValue 1 */
  readonly maxHedges?: number;
}

/** Concurrency limits per cluster (Envoy's circuit-breaker thresholds). @category Options */
export interface LimitsOptions {
  /** Requests in flight at once; more fail fast with `SIDECARLESS_OVERLOADED`. @defaultValue 1024 */
  readonly maxInFlight?: number;
  /** Requests waiting for an endpoint at once; more fail fast with `SIDECARLESS_OVERLOADED`. @defaultValue 1024 */
  readonly maxPending?: number;
}

/** A response a circuit-breaker fallback produces instead of failing. @category Options */
export interface FallbackResponse {
  /** HTTP status code the caller receives. */
  readonly status: number;
  /** Response headers; `content-length` is added when there is a body. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Response body (a string is sent as UTF-8); empty when omitted. */
  readonly body?: string | Uint8Array;
}

/** Circuit breaker settings (opossum). @category Options */
export interface BreakerOptions {
  /** Failure percentage in the rolling window that opens the circuit. @defaultValue 50 */
  readonly errorThresholdPercentage?: number;
  /** Requests in the window before the circuit may open. @defaultValue 20 */
  readonly volumeThreshold?: number;
  /** Time the circuit stays open before a half-open probe, ms. @defaultValue 30000 */
  readonly resetTimeout?: number;
  /** Rolling statistics window, ms. @defaultValue 10000 */
  readonly rollingCountTimeout?: number;
  /**
   * Answer requests with this response while the circuit is open, instead of failing them with
   * `SIDECARLESS_CIRCUIT_OPEN`.
   */
  readonly fallback?: (request: {
    readonly method: string;
    readonly path: string;
    readonly authority: string;
  }) => FallbackResponse | Promise<FallbackResponse>;
}

/** Validated request policy (internal: not exported from an entry point). */
export interface RequestPolicy {
  readonly maxAttempts: number;
  readonly retryOn: ReadonlySet<number>;
  readonly perTryTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly retryNonIdempotent: boolean;
  readonly honorRetryAfter: boolean;
  readonly maxRetryAfterMs: number;
  readonly bufferBodyBytes: number;
  readonly budget: Required<RetryBudgetOptions> | undefined;
  readonly hedge: Required<HedgeOptions> | undefined;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly maxPending: number;
  readonly breaker:
    | (Required<Omit<BreakerOptions, 'fallback'>> & { readonly fallback: BreakerOptions['fallback'] | undefined })
    | undefined;
}

const MAX_MS = 2 ** 31 - 1;

function objectOption(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(name, 'expected an object');
  }
  return value as Record<string, unknown>;
}

function onlyKeys(value: Record<string, unknown>, name: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(`${name}.${key}`, `unknown setting (allowed: ${allowed.join(', ')})`);
    }
  }
}

function num(
  value: unknown,
  name: string,
  fallback: number,
  { min, max, integer = false }: { min: number; max: number; integer?: boolean },
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
    throw new InvalidOptionError(name, `expected a number from ${min} to ${max}, got ${String(value)}`);
  }
  if (integer && !Number.isInteger(value)) throw new InvalidOptionError(name, `expected an integer, got ${value}`);
  return value;
}

function bool(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'expected true or false');
  return value;
}

/** The request-policy part of the cluster options. @category Options */
export interface RequestPolicyOptions {
  /** Retries; on by default with the {@link RetryOptions} defaults. `false` turns them off (one attempt). */
  readonly retry?: RetryOptions | false | undefined;
  /** Retry budget; on by default with the {@link RetryBudgetOptions} defaults. `false` turns it off. */
  readonly retryBudget?: RetryBudgetOptions | false | undefined;
  /** Hedging; off unless set (then `delay` is required). */
  readonly hedge?: HedgeOptions | undefined;
  /**
   * Deadline of a request from dispatch until its response headers arrive, across all attempts, backoffs and
   * `Retry-After` waits, ms; past it the request fails with `SIDECARLESS_DEADLINE_EXCEEDED` (the last attempt's
   * error as `cause`). The response body is not covered: once the headers are in, the deadline is off, and reading
   * the body is bounded by the caller's `AbortSignal` or `pool.bodyTimeout`. 0 means no deadline.
   * @defaultValue 0
   */
  readonly timeout?: number | undefined;
  /** Concurrency limits; the {@link LimitsOptions} defaults when omitted. */
  readonly limits?: LimitsOptions | undefined;
  /** Circuit breaker; off unless set. `true` turns it on with the {@link BreakerOptions} defaults. */
  readonly breaker?: BreakerOptions | boolean | undefined;
}

/** @internal Validates the request policy, naming the bad option. */
export function resolveRequestPolicy(options: RequestPolicyOptions): RequestPolicy {
  const retry = options.retry === false ? { maxAttempts: 1 } : objectOption(options.retry ?? {}, 'retry');
  onlyKeys(retry, 'retry', [
    'maxAttempts',
    'retryOn',
    'perTryTimeout',
    'backoffInitial',
    'backoffMax',
    'retryNonIdempotent',
    'honorRetryAfter',
    'maxRetryAfter',
    'bufferBody',
  ]);
  const retryOnRaw = retry.retryOn ?? [502, 503, 504];
  if (
    !Array.isArray(retryOnRaw) ||
    !retryOnRaw.every((s) => typeof s === 'number' && Number.isInteger(s) && s >= 100 && s <= 599)
  ) {
    throw new InvalidOptionError('retry.retryOn', 'expected an array of HTTP status codes (100-599)');
  }
  const backoffInitialMs = num(retry.backoffInitial, 'retry.backoffInitial', 25, { min: 1, max: MAX_MS });
  const backoffMaxMs = num(retry.backoffMax, 'retry.backoffMax', Math.max(250, backoffInitialMs), {
    min: 1,
    max: MAX_MS,
  });
  if (backoffMaxMs < backoffInitialMs) {
    throw new InvalidOptionError('retry.backoffMax', 'must not be below retry.backoffInitial');
  }

  let budget: RequestPolicy['budget'];
  if (options.retryBudget !== false) {
    const b = objectOption(options.retryBudget ?? {}, 'retryBudget');
    onlyKeys(b, 'retryBudget', ['percent', 'minRetriesPerSecond', 'windowMs']);
    budget = {
      percent: num(b.percent, 'retryBudget.percent', 20, { min: 0, max: 100 }),
      minRetriesPerSecond: num(b.minRetriesPerSecond, 'retryBudget.minRetriesPerSecond', 10, { min: 0, max: 1e6 }),
      windowMs: num(b.windowMs, 'retryBudget.windowMs', 10_000, { min: 100, max: 3_600_000 }),
    };
  }

  let hedge: RequestPolicy['hedge'];
  if (options.hedge !== undefined) {
    const h = objectOption(options.hedge, 'hedge');
    onlyKeys(h, 'hedge', ['delay', 'maxHedges']);
    if (h.delay === undefined) throw new InvalidOptionError('hedge.delay', 'is required when hedging is on');
    hedge = {
      delay: num(h.delay, 'hedge.delay', 0, { min: 1, max: MAX_MS }),
      maxHedges: num(h.maxHedges, 'hedge.maxHedges', 1, { min: 1, max: 3, integer: true }),
    };
  }

  const limits = objectOption(options.limits ?? {}, 'limits');
  onlyKeys(limits, 'limits', ['maxInFlight', 'maxPending']);

  let breaker: RequestPolicy['breaker'];
  if (options.breaker !== undefined && options.breaker !== false) {
    const br = options.breaker === true ? {} : objectOption(options.breaker, 'breaker');
    onlyKeys(br, 'breaker', [
      'errorThresholdPercentage',
      'volumeThreshold',
      'resetTimeout',
      'rollingCountTimeout',
      'fallback',
    ]);
    if (br.fallback !== undefined && typeof br.fallback !== 'function') {
      throw new InvalidOptionError('breaker.fallback', 'expected a function');
    }
    breaker = {
      errorThresholdPercentage: num(br.errorThresholdPercentage, 'breaker.errorThresholdPercentage', 50, {
        min: 1,
        max: 100,
      }),
      volumeThreshold: num(br.volumeThreshold, 'breaker.volumeThreshold', 20, { min: 0, max: 1e9, integer: true }),
      resetTimeout: num(br.resetTimeout, 'breaker.resetTimeout', 30_000, { min: 1, max: MAX_MS }),
      rollingCountTimeout: num(br.rollingCountTimeout, 'breaker.rollingCountTimeout', 10_000, {
        min: 10,
        max: MAX_MS,
      }),
      fallback: br.fallback as BreakerOptions['fallback'],
    };
  }

  return {
    maxAttempts: num(retry.maxAttempts, 'retry.maxAttempts', 3, { min: 1, max: 5, integer: true }),
    retryOn: new Set(retryOnRaw as number[]),
    perTryTimeoutMs: num(retry.perTryTimeout, 'retry.perTryTimeout', 0, { min: 0, max: MAX_MS }),
    backoffInitialMs,
    backoffMaxMs,
    retryNonIdempotent: bool(retry.retryNonIdempotent, 'retry.retryNonIdempotent', false),
    honorRetryAfter: bool(retry.honorRetryAfter, 'retry.honorRetryAfter', true),
    maxRetryAfterMs: num(retry.maxRetryAfter, 'retry.maxRetryAfter', 10_000, { min: 0, max: MAX_MS }),
    bufferBodyBytes: num(retry.bufferBody, 'retry.bufferBody', 64 * 1024, { min: 0, max: 2 ** 30, integer: true }),
    budget,
    hedge,
    timeoutMs: num(options.timeout, 'timeout', 0, { min: 0, max: MAX_MS }),
    maxInFlight: num(limits.maxInFlight, 'limits.maxInFlight', 1024, { min: 1, max: 1e9, integer: true }),
    maxPending: num(limits.maxPending, 'limits.maxPending', 1024, { min: 0, max: 1e9, integer: true }),
    breaker,
  };
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 §9.2.2 idempotent methods. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method.toUpperCase());
}

/**
 * How a request body can be sent again:
 * - `none`: no body;
 * - `buffered`: held in memory (string, bytes, FormData, Blob), can be sent any number of times;
 * - `once`: a stream or iterator, can be sent again only if no attempt has started reading it.
 */
export type BodyReplay = 'none' | 'buffered' | 'once';

/** Classifies a dispatch body. */
export function bodyReplay(body: unknown): BodyReplay {
  if (body === null || body === undefined) return 'none';
  if (typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer) return 'buffered';
  if (typeof Blob !== 'undefined' && body instanceof Blob) return 'buffered';
  if (typeof FormData !== 'undefined' && body instanceof FormData) return 'buffered';
  const tag = Object.prototype.toString.call(body);
  if (tag === '[object FormData]' || tag === '[object Blob]' || tag === '[object File]') return 'buffered';
  return 'once';
}

/**
 * The wait before retry number `retry` (1 for the first): exponential backoff with jitter, as p-retry draws it
 * (`backoffInitial` x 2^(retry-1) x a factor in [1, 2), capped at `backoffMax`), or the `Retry-After` the failed
 * attempt asked for when that is longer. The larger of the two, not their sum: the server said when to come back,
 * and the backoff only spreads retries that were told nothing.
 */
export function retryWait(
  policy: Pick<RequestPolicy, 'backoffInitialMs' | 'backoffMaxMs'>,
  retry: number,
  random: () => number,
  retryAfterMs: number,
): number {
  const backoff = Math.min(policy.backoffInitialMs * 2 ** (retry - 1) * (1 + random()), policy.backoffMaxMs);
  return Math.max(backoff, retryAfterMs);
}

/** Parses `Retry-After` (delay-seconds or HTTP-date, RFC 9110 §10.2.3) into ms from `nowMs` (wall clock). */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
