/**
 * The error codes failed requests are counted under (`stats().requests.errors`, Prometheus `error_code`, OpenTelemetry
 * `error.type`), kept to a bounded set: a code is a label value, and each distinct one is a series for as long as the
 * process runs. A caller's abort reason or request body error may carry any `code` it likes (one per request, say),
 * so only codes sidecarless, undici and Node give their own errors are kept as they are.
 *
 * @module
 */
import { isCallerError, isLocalRefusal } from '../common/outcome.js';

/** The code of a failure on the caller's side whose own code is not one sidecarless, undici or Node gives it. */
export const CALLER_ERROR_CODE = '_CALLER';
/** The code of any other failure whose code is not from sidecarless, undici or Node, or past the bound. */
export const OTHER_ERROR_CODE = '_OTHER';
/** Distinct codes one counter keeps (its two fixed values included); the rest count as {@link OTHER_ERROR_CODE}. */
export const MAX_ERROR_CODES = 64;

// sidecarless (SIDECARLESS_*), undici (UND_ERR_*), Node's own (ERR_*) and system errors (errno names, EAI_* from
// getaddrinfo): all `E` or one of the two prefixes, in capitals.
const KNOWN_CODE = /^(?:SIDECARLESS_|UND_ERR_|E)[A-Z0-9_]{1,60}$/;
// The name, for an error with no code: the language's and the platform's (DOMException's AbortError, TimeoutError).
const KNOWN_NAMES = new Set([
  'Error',
  'TypeError',
  'RangeError',
  'SyntaxError',
  'ReferenceError',
  'AggregateError',
  'AbortError',
  'TimeoutError',
]);
// What the caller's own failures are counted under when sidecarless, undici or the platform made them: an abort
// (undici's, `AbortController.abort()`'s and `AbortSignal.timeout()`'s), a body that stalled past the deadline, a
// request undici or sidecarless refused (isLocalRefusal).
const CALLER_CODES = new Set([
  'ABORT_ERR',
  'UND_ERR_ABORTED',
  'AbortError',
  'TimeoutError',
  'SIDECARLESS_DEADLINE_EXCEEDED',
  'SIDECARLESS_CLIENT_CLOSED',
]);

/** A stable label for an error: its `code` when it has a string one, else its cause's, else its name. */
export function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof cause === 'string' ? cause : String(error.name);
}

/**
 * The code `error` is counted under, before the bound on distinct codes: {@link errorCode} when it is one sidecarless,
 * undici or Node gives; {@link CALLER_ERROR_CODE} for another code of a failure on the caller's side (`callerFault`,
 * or an error marked as the caller's), {@link OTHER_ERROR_CODE} for any other.
 */
export function knownErrorCode(error: Error, callerFault = false): string {
  const code = errorCode(error);
  if (callerFault || isCallerError(error)) {
    return CALLER_CODES.has(code) || isLocalRefusal(error) ? code : CALLER_ERROR_CODE;
  }
  return KNOWN_CODE.test(code) || KNOWN_NAMES.has(code) ? code : OTHER_ERROR_CODE;
}

/**
 * The codes one counter has seen, at most {@link MAX_ERROR_CODES}: past that, a new code is counted as
 * {@link OTHER_ERROR_CODE} (the codes already seen still count as themselves).
 */
export class ErrorCodes {
  readonly #seen = new Set<string>([CALLER_ERROR_CODE, OTHER_ERROR_CODE]);

  /** The code `error` is counted under (see {@link knownErrorCode}), within the bound. */
  of(error: Error, callerFault = false): string {
    const code = knownErrorCode(error, callerFault);
    if (this.#seen.has(code)) return code;
    if (this.#seen.size >= MAX_ERROR_CODES) return OTHER_ERROR_CODE;
    this.#seen.add(code);
    return code;
  }
}
