/**
 * The request policy of a cluster: retries, retry budget, hedging, deadline, concurrency limits and circuit breaker
 * settings, validated once at construction.
 *
 * @module
 */
import {
  type Backoff,
  type BackoffDefaults,
  type BackoffOptions,
  type ResolvedBackoffOptions,
  resolveBackoffOptions,
} from '../common/backoff.js';
import { InvalidOptionError } from '../common/errors.js';
import {
  array,
  boolean,
  checkObject,
  describe,
  duration,
  func,
  integer,
  joinPath,
  MAX_TIMER_MS,
  number,
  percent,
} from '../common/options.js';

/** Retry settings. Retries always go to a different endpoint when one is available. @category Options */
export interface RetryOptions {
  /** Attempts per request including the first, 1 to 5 (1 disables retries). @defaultValue 3 */
  readonly maxAttempts?: number;
  /** Response statuses that are retried (idempotent requests only). @defaultValue [502, 503, 504] */
  readonly retryOn?: readonly number[];
  /**
   * Time an attempt may take to produce response headers before it is abandoned (and retried if the request may
   * be), ms. 0 disables: as Envoy's `per_try_timeout`, an attempt is then bounded by the request's deadline
   * (`timeoutMs`) alone. @defaultValue 0
   */
  readonly perTryTimeoutMs?: number;
  /**
   * Backoff between attempts: retry n waits `initialMs × multiplier^(n-1)` (at most `maxMs`) ± `jitter` × that,
   * drawn from the client's `random` and timed on its `clock`.
   * @defaultValue `{ initialMs: 25, maxMs: max(250, initialMs), multiplier: 2, jitter: 0.2 }` (Envoy's 25 ms base,
   * 10 × for the cap)
   */
  readonly backoff?: BackoffOptions;
  /**
   * Also retry non-idempotent methods (POST, PATCH, ...) after failures where the request may have reached the
   * server. Off by default: such a request is retried only when it certainly was not sent (connection refused). A
   * request marked with undici's `idempotent: false` is never sent twice either way (nor hedged), whatever its method.
   * @defaultValue false
   */
  readonly retryNonIdempotent?: boolean;
  /**
   * Honour `Retry-After` (seconds or HTTP date) on retried statuses: wait that long before the next attempt (or
   * the backoff, when longer). A `Retry-After` above `maxRetryAfterMs` is not waited for: the response goes to the
   * caller.
   * @defaultValue true
   */
  readonly honorRetryAfter?: boolean;
  /** Longest `Retry-After` honoured, ms. @defaultValue 10000 */
  readonly maxRetryAfterMs?: number;
  /**
   * Request bodies that arrive as a stream (through `fetch` every body does, strings and bytes included), an async
   * iterable or a sync one other than an Array (a generator, which can be read once) are recorded as the first
   * attempt reads them, up to this many bytes, so that a retry can send them again: the
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

/**
 * Hedging: another attempt when the first is slow; the first answer wins. A hedge goes to an endpoint the request has
 * not tried yet when one may take it; with a single endpoint (or when every other one is tried already, ejected or
 * unusable) it goes to an endpoint already tried, the same one again: a hedge adds load even then.
 *
 * @category Options
 */
export interface HedgeOptions {
  /** How long to wait for response headers before sending a hedge (to an untried endpoint if any), ms. */
  readonly delayMs: number;
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
  /** Response headers (string values, no CR, LF or NUL); `content-length` is set from the body, a given one ignored. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Response body (a string is sent as UTF-8); empty when omitted. */
  readonly body?: string | Uint8Array;
}

/** Circuit breaker settings (Hystrix's rule, as opossum applies it: a rolling window of ten buckets). @category Options */
export interface BreakerOptions {
  /**
   * Failure percentage in the rolling window above which the circuit opens: from 1 to below 100 (100 could never be
   * exceeded). @defaultValue 50
   */
  readonly errorThresholdPercentage?: number;
  /** Requests in the window before the circuit may open. @defaultValue 20 */
  readonly volumeThreshold?: number;
  /** Time the circuit stays open before a half-open probe, ms. @defaultValue 30000 */
  readonly resetTimeoutMs?: number;
  /** Rolling statistics window, ms. @defaultValue 10000 */
  readonly rollingCountTimeoutMs?: number;
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

/** Validated breaker settings (internal: not exported from an entry point). */
export interface ResolvedBreakerOptions {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeoutMs: number;
  readonly rollingCountTimeoutMs: number;
  readonly fallback: BreakerOptions['fallback'] | undefined;
}

/** Validated request policy (internal: not exported from an entry point). */
export interface RequestPolicy {
  readonly maxAttempts: number;
  readonly retryOn: ReadonlySet<number>;
  /**
   * `retryOn` as a table by status (1: retried; 1000 entries, as undici hands over three-digit statuses only): read
   * on every response, where a set lookup is a hash (issue 14).
   */
  readonly retryStatus: Uint8Array;
  readonly perTryTimeoutMs: number;
  readonly backoff: ResolvedBackoffOptions;
  readonly retryNonIdempotent: boolean;
  readonly honorRetryAfter: boolean;
  readonly maxRetryAfterMs: number;
  readonly bufferBodyBytes: number;
  readonly budget: Required<RetryBudgetOptions> | undefined;
  readonly hedge: Required<HedgeOptions> | undefined;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly maxPending: number;
  readonly breaker: ResolvedBreakerOptions | undefined;
}

/** The request-policy part of the cluster options. @category Options */
export interface RequestPolicyOptions {
  /** Retries; on by default with the {@link RetryOptions} defaults. `false` turns them off (one attempt). */
  readonly retry?: RetryOptions | false | undefined;
  /** Retry budget; on by default with the {@link RetryBudgetOptions} defaults. `false` turns it off. */
  readonly retryBudget?: RetryBudgetOptions | false | undefined;
  /** Hedging; off unless set (then `delayMs` is required). */
  readonly hedge?: HedgeOptions | undefined;
  /**
   * Deadline of a request from dispatch until its response headers arrive, across all attempts, backoffs and
   * `Retry-After` waits, ms; past it the request fails with `SIDECARLESS_DEADLINE_EXCEEDED` (the last attempt's
   * error as `cause`). The response body is not covered: once the headers are in, the deadline is off, and reading
   * the body is bounded by the caller's `AbortSignal` or `pool.bodyTimeout`. The deadline covers sending the
   * request body too: raise it (or set 0, no deadline) for long uploads, long polls or slow reports. 15 s, Envoy's
   * route timeout, by default, so a backend that trickles its headers cannot hold a request for undici's 300 s.
   * @defaultValue 15000
   */
  readonly timeoutMs?: number | undefined;
  /** Concurrency limits; the {@link LimitsOptions} defaults when omitted. */
  readonly limits?: LimitsOptions | undefined;
  /** Circuit breaker; off unless set. `true` turns it on with the {@link BreakerOptions} defaults. */
  readonly breaker?: BreakerOptions | boolean | undefined;
}

/** Envoy's retry backoff base (25 ms) and cap (10 × the base), doubling; ±20 % jitter as every backoff here. */
const RETRY_BACKOFF: BackoffDefaults = {
  initialMs: 25,
  multiplier: 2,
  jitter: 0.2,
  maxMs: (initialMs) => Math.max(250, initialMs),
};

const RETRY_KEYS = [
  'maxAttempts',
  'retryOn',
  'perTryTimeoutMs',
  'backoff',
  'retryNonIdempotent',
  'honorRetryAfter',
  'maxRetryAfterMs',
  'bufferBody',
] as const;

function retryOn(value: unknown, path: string): ReadonlySet<number> {
  if (value === undefined) return new Set([502, 503, 504]);
  const what = 'an array of HTTP status codes (100-599)';
  const codes = array(value, path, what);
  if (!codes.every((s) => Number.isInteger(s) && (s as number) >= 100 && (s as number) <= 599)) {
    throw new InvalidOptionError(path, `expected ${what}, got ${describe(value)}`);
  }
  return new Set(codes as number[]);
}

/**
 * `breaker.errorThresholdPercentage`: from 1 to below 100. The circuit opens when the failure rate is _above_ it
 * (Hystrix's rule), so 100 could never be passed: a breaker that never opens, silently.
 */
function threshold(value: unknown, path: string): number {
  if (value === undefined) return 50;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value >= 100) {
    throw new InvalidOptionError(
      path,
      `expected a number >= 1 and below 100 (the circuit opens when the failure rate is above it, which 100 never is), got ${describe(value)}`,
    );
  }
  return value;
}

function resolveBreaker(raw: unknown, path: string): ResolvedBreakerOptions | undefined {
  if (raw === undefined || raw === false) return undefined;
  const br = checkObject(
    raw === true ? {} : raw,
    ['errorThresholdPercentage', 'volumeThreshold', 'resetTimeoutMs', 'rollingCountTimeoutMs', 'fallback'],
    path,
  );
  const rollingPath = joinPath(path, 'rollingCountTimeoutMs');
  // At least 10 ms: the window has ten buckets.
  const rollingCountTimeoutMs = number(br.rollingCountTimeoutMs, rollingPath, 10_000, 10, false, MAX_TIMER_MS);
  return {
    errorThresholdPercentage: threshold(br.errorThresholdPercentage, joinPath(path, 'errorThresholdPercentage')),
    volumeThreshold: integer(br.volumeThreshold, joinPath(path, 'volumeThreshold'), 20, 0, 1e9),
    resetTimeoutMs: duration(br.resetTimeoutMs, joinPath(path, 'resetTimeoutMs'), 30_000),
    rollingCountTimeoutMs,
    fallback: func<NonNullable<BreakerOptions['fallback']>>(br.fallback, joinPath(path, 'fallback')),
  };
}

/**
 * @internal Validates the request policy, naming a bad option by its full path (`path` is where the cluster's
 * options sit: '' for a single-service client, `clusters.<name>` otherwise). Unknown keys at the cluster's own level
 * are the cluster's to refuse.
 */
export function resolveRequestPolicy(options: RequestPolicyOptions, path = ''): RequestPolicy {
  const retryPath = joinPath(path, 'retry');
  const retry = options.retry === false ? { maxAttempts: 1 } : checkObject(options.retry ?? {}, RETRY_KEYS, retryPath);

  let budget: RequestPolicy['budget'];
  if (options.retryBudget !== false) {
    const at = joinPath(path, 'retryBudget');
    const b = checkObject(options.retryBudget ?? {}, ['percent', 'minRetriesPerSecond', 'windowMs'], at);
    budget = {
      percent: percent(b.percent, joinPath(at, 'percent'), 20),
      minRetriesPerSecond: number(b.minRetriesPerSecond, joinPath(at, 'minRetriesPerSecond'), 10, 0, false, 1e6),
      windowMs: number(b.windowMs, joinPath(at, 'windowMs'), 10_000, 100, false, 3_600_000),
    };
  }

  let hedge: RequestPolicy['hedge'];
  if (options.hedge !== undefined) {
    const at = joinPath(path, 'hedge');
    const h = checkObject(options.hedge, ['delayMs', 'maxHedges'], at);
    if (h.delayMs === undefined) {
      throw new InvalidOptionError(joinPath(at, 'delayMs'), 'is required when hedging is on');
    }
    hedge = {
      delayMs: duration(h.delayMs, joinPath(at, 'delayMs'), 0),
      maxHedges: integer(h.maxHedges, joinPath(at, 'maxHedges'), 1, 1, 3),
    };
  }

  const limitsPath = joinPath(path, 'limits');
  const limits = checkObject(options.limits ?? {}, ['maxInFlight', 'maxPending'], limitsPath);

  const retried = retryOn(retry.retryOn, joinPath(retryPath, 'retryOn'));
  const retryStatus = new Uint8Array(1000);
  for (const status of retried) retryStatus[status] = 1;
  return {
    maxAttempts: integer(retry.maxAttempts, joinPath(retryPath, 'maxAttempts'), 3, 1, 5),
    retryOn: retried,
    retryStatus,
    perTryTimeoutMs: duration(retry.perTryTimeoutMs, joinPath(retryPath, 'perTryTimeoutMs'), 0, true),
    backoff: resolveBackoffOptions(
      retry.backoff as BackoffOptions | undefined,
      joinPath(retryPath, 'backoff'),
      RETRY_BACKOFF,
    ),
    retryNonIdempotent: boolean(retry.retryNonIdempotent, joinPath(retryPath, 'retryNonIdempotent'), false),
    honorRetryAfter: boolean(retry.honorRetryAfter, joinPath(retryPath, 'honorRetryAfter'), true),
    maxRetryAfterMs: duration(retry.maxRetryAfterMs, joinPath(retryPath, 'maxRetryAfterMs'), 10_000, true),
    bufferBodyBytes: integer(retry.bufferBody, joinPath(retryPath, 'bufferBody'), 64 * 1024, 0, 2 ** 30),
    budget,
    hedge,
    timeoutMs: duration(options.timeoutMs, joinPath(path, 'timeoutMs'), 15_000, true),
    maxInFlight: integer(limits.maxInFlight, joinPath(limitsPath, 'maxInFlight'), 1024, 1, 1e9),
    maxPending: integer(limits.maxPending, joinPath(limitsPath, 'maxPending'), 1024, 0, 1e9),
    breaker: resolveBreaker(options.breaker, joinPath(path, 'breaker')),
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
 * - `buffered`: held in memory (string, bytes, FormData, Blob, an Array of chunks), can be sent any number of times;
 * - `once`: a stream or another iterable (async, or sync: a generator), can be sent again only if no attempt has
 *   started reading it, or as recorded (`retry.bufferBody`).
 */
export type BodyReplay = 'none' | 'buffered' | 'once';

/** Classifies a dispatch body. */
export function bodyReplay(body: unknown): BodyReplay {
  if (body === null || body === undefined) return 'none';
  // Any view (DataView, Int8Array, Float64Array, ...): undici sends its bytes, as many times as asked.
  if (typeof body === 'string' || ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return 'buffered';
  // An Array of chunks: undici iterates it anew for each attempt. One with a chunk undici cannot send (a hole, a
  // number) is sent as an iterable whose reader fails it as the caller's at that chunk (`once`), never retried.
  // Any other iterable may be single-use (a generator).
  if (Array.isArray(body)) return allChunks(body) ? 'buffered' : 'once';
  if (typeof Blob !== 'undefined' && body instanceof Blob) return 'buffered';
  if (typeof FormData !== 'undefined' && body instanceof FormData) return 'buffered';
  const tag = Object.prototype.toString.call(body);
  if (tag === '[object FormData]' || tag === '[object Blob]' || tag === '[object File]') return 'buffered';
  return 'once';
}

/** True when every element of `body` is a chunk undici sends (a string or bytes). */
function allChunks(body: readonly unknown[]): boolean {
  for (let i = 0; i < body.length; i++) {
    const chunk = body[i];
    if (typeof chunk !== 'string' && !ArrayBuffer.isView(chunk) && !(chunk instanceof ArrayBuffer)) return false;
  }
  return true;
}

/**
 * The wait before the next retry: the next delay of the request's backoff, or the `Retry-After` the failed attempt
 * asked for when that is longer. The larger of the two, not their sum: the server said when to come back, and the
 * backoff only spreads retries that were told nothing. Each call advances `backoff`, whichever wins.
 */
export function retryWait(backoff: Backoff, retryAfterMs: number): number {
  return Math.max(backoff.next(), retryAfterMs);
}

const MONTHS = 'JanFebMarAprMayJunJulAugSepOctNovDec';
// RFC 9110 §5.6.7: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), and the obsolete forms a recipient must also
// accept: rfc850-date (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime-date (`Sun Nov  6 08:49:37 1994`).
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850_DATE =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * An HTTP-date (RFC 9110 §5.6.7) as ms since the epoch, or `undefined` for anything else. Strict, unlike
 * `Date.parse`, which reads `2099-01-01` or `x 2099` as dates: a malformed `Retry-After` is ignored, as the RFC asks,
 * rather than read as a wait.
 */
export function parseHttpDate(text: string, nowMs: number): number | undefined {
  // Each form's fields as [day, month, year, hours, minutes, seconds].
  let fields: readonly string[];
  let match = IMF_FIXDATE.exec(text);
  if (match !== null) fields = match.slice(1);
  else if ((match = RFC850_DATE.exec(text)) !== null) fields = match.slice(1);
  else if ((match = ASCTIME_DATE.exec(text)) !== null) {
    fields = [match[2]!, match[1]!, match[6]!, match[3]!, match[4]!, match[5]!];
  } else return undefined;
  const [day, hours, minutes, seconds] = [fields[0], fields[3], fields[4], fields[5]].map(Number) as [
    number,
    number,
    number,
    number,
  ];
  let year = Number(fields[2]);
  if (year < 100) {
    // rfc850-date's two-digit year (RFC 9110): one more than 50 years ahead is in the previous century.
    const now = new Date(nowMs).getUTCFullYear();
    year += Math.floor(now / 100) * 100;
    if (year > now + 50) year -= 100;
  }
  const month = MONTHS.indexOf(fields[1]!) / 3;
  if (!Number.isInteger(month) || minutes > 59 || seconds > 60) return undefined;
  const ms = Date.UTC(year, month, day, hours, minutes, seconds);
  const check = new Date(ms);
  // 31 Feb, 25:00 and the like are not dates.
  return check.getUTCDate() === day && check.getUTCHours() === hours ? ms : undefined;
}

/** Parses `Retry-After` (delay-seconds or HTTP-date, RFC 9110 §10.2.3) into ms from `nowMs` (wall clock). */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = parseHttpDate(text, nowMs);
  if (date === undefined) return undefined;
  return Math.max(0, date - nowMs);
}
