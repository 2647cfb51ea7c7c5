/**
 * The outcome of one attempt on one subchannel: the only input to load and health accounting.
 *
 * @module
 */

/**
 * Why an attempt failed without a complete response.
 * - `connect`: no connection could be made (refused, connect timeout, unreachable). The request was not sent.
 * - `reset`: the connection broke during the exchange (reset, socket closed). The request may have been processed.
 * - `timeout`: headers or body did not arrive in time.
 * - `aborted`: the attempt was stopped or failed on the caller's side, not the endpoint's: the caller aborted (its
 *   `AbortSignal`, `AbortSignal.timeout()` included), its request body failed or stalled, its handler threw, undici
 *   refused the request before sending it (an invalid header value, a header name that is not a string), or the
 *   client stopped it (a lost hedge, `close()`). Counts against no endpoint.
 * - `goaway`: over HTTP/2, the endpoint closed the connection gracefully (`GOAWAY` with no error) under the attempt,
 *   or refused its stream (`REFUSED_STREAM`): it is draining or at its stream limit, not failing. Counts against no
 *   endpoint. The request is replayed whatever its method when the endpoint did not process it (a
 *   `SIDECARLESS_NOT_PROCESSED` error: a refused stream, or one above `GOAWAY`'s last-stream-id), and otherwise only
 *   as a `reset` would be (idempotent methods).
 * - `other`: anything else (invalid response).
 *
 * @category Stats
 */
export type ErrorKind = 'connect' | 'reset' | 'timeout' | 'aborted' | 'goaway' | 'other';

/**
 * True for a failed attempt that says nothing of its endpoint's latency: stopped on the caller's side (`aborted`)
 * or turned away unprocessed by a draining HTTP/2 endpoint (`goaway`). The endpoint's histogram in `stats()` and
 * the exporters' endpoint histograms leave such attempts out alike.
 */
export function setAside(kind: ErrorKind | undefined): boolean {
  return kind === 'aborted' || kind === 'goaway';
}

/** One attempt's result, reported exactly once per attempt. */
export interface AttemptOutcome {
  /** Response status, or 0 when no response headers arrived. */
  readonly statusCode: number;
  /** Set when the attempt ended in an error (also after headers, e.g. a reset mid-body). */
  readonly errorKind: ErrorKind | undefined;
  /** The error, when there was one. */
  readonly error: Error | undefined;
  /** From dispatch to response headers (or to the error when none arrived), ms. */
  readonly latencyMs: number;
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CONNECT',
]);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'SIDECARLESS_PER_TRY_TIMEOUT',
  'SIDECARLESS_DEADLINE_EXCEEDED',
]);
// Attempts the client itself stopped (caller abort, lost hedge, client closed) say nothing about the endpoint.
const ABORT_CODES = new Set(['UND_ERR_ABORTED', 'ABORT_ERR', 'SIDECARLESS_CLIENT_CLOSED', 'SIDECARLESS_HEDGE_LOST']);

// undici (or sidecarless, for what HTTP/2 cannot carry) refused the request before sending it: the caller's options
// or body, not the endpoint (issue 15.6).
const CALLER_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'SIDECARLESS_INVALID_REQUEST',
]);
/** Errors known to come from the caller's side (its request body failing or stalling), marked where they arise. */
const callerSide = new WeakSet<object>();
/** Errors of attempts an HTTP/2 endpoint cut by a graceful `GOAWAY` (it may have processed them), marked by the subchannel. */
const goaway = new WeakSet<object>();

/**
 * Marks `error` as a graceful HTTP/2 `GOAWAY`'s (the endpoint is draining): kind `goaway`, against no endpoint. The
 * request may have been processed, so it is replayed only when idempotent.
 */
export function markGoaway(error: unknown): void {
  if (typeof error === 'object' && error !== null) goaway.add(error);
}

/**
 * True when the endpoint certainly did not process the request (a `SIDECARLESS_NOT_PROCESSED` error): it may be sent
 * again whatever its method (docs/ARCHITECTURE.md, invariant 6).
 */
export function isNotProcessed(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'SIDECARLESS_NOT_PROCESSED'
  );
}

/** Marks `error` as the caller's doing (its request body failed or stalled): it then counts against no endpoint. */
export function markCallerError(error: unknown): void {
  if (typeof error === 'object' && error !== null) callerSide.add(error);
}

/**
 * True when the request was refused before it was sent: by undici (an invalid header value, a body of the wrong
 * length), or by sidecarless (`SIDECARLESS_INVALID_REQUEST`: a header HTTP/2 cannot carry).
 */
export function isLocalRefusal(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && CALLER_CODES.has(code);
}

/**
 * True when `error` is how undici refuses a request's options as it takes the request, before anything is sent (its
 * `Request` constructor throws, and undici hands the error to `onError`): an `InvalidArgumentError`
 * (`UND_ERR_INVALID_ARG`, `UND_ERR_NOT_SUPPORTED`), or a `TypeError` of a value of the wrong type (a header name that
 * is not a string). Meaningful only for an attempt undici has not started (no `onConnect`): the request layer marks
 * such an error as the caller's ({@link markCallerError}).
 */
export function refusedOptions(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code } = error as { code?: unknown };
  return code === undefined
    ? error instanceof TypeError
    : code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
}

/**
 * True when `error` came from the caller's side rather than the endpoint: marked by {@link markCallerError}, or a
 * request undici refused before sending it.
 */
export function isCallerError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  return callerSide.has(error) || isLocalRefusal(error);
}

/** Classifies an error from undici or the socket layer. */
export function classifyError(error: unknown): ErrorKind {
  if (isCallerError(error)) return 'aborted';
  if (isNotProcessed(error) || goaway.has(error as object)) return 'goaway';
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const { code, name } = current as { code?: unknown; name?: unknown };
    if (typeof code === 'string') {
      if (CONNECT_CODES.has(code)) return 'connect';
      if (RESET_CODES.has(code)) return 'reset';
      if (TIMEOUT_CODES.has(code)) return 'timeout';
      if (ABORT_CODES.has(code)) return 'aborted';
    }
    if (name === 'AbortError' || name === 'TimeoutError') return name === 'AbortError' ? 'aborted' : 'timeout';
    current = (current as { cause?: unknown }).cause;
  }
  return 'other';
}
