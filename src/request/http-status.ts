/**
 * The HTTP status a service should answer its own caller with when a call it made through sidecarless failed: the
 * table every service otherwise writes for itself.
 *
 * @module
 */
import { type ErrorCode, findSidecarlessError } from '../common/errors.js';
import { classifyError, isLocalRefusal } from '../common/outcome.js';

// Exhaustive: a new error code does not compile until it has a status here.
const BY_CODE: Readonly<Record<ErrorCode, number>> = {
  // Configuration or programming errors: the service itself is at fault.
  SIDECARLESS_INVALID_OPTION: 500,
  SIDECARLESS_INVALID_TARGET: 500,
  SIDECARLESS_UNKNOWN_SCHEME: 500,
  SIDECARLESS_INVALID_ENDPOINT: 500,
  SIDECARLESS_DUPLICATE_ENDPOINT: 500,
  SIDECARLESS_PROTOCOL_MISMATCH: 500,
  SIDECARLESS_INVALID_REQUEST: 500,
  SIDECARLESS_PICKER_FAILED: 500,
  // Nothing could take the request: unavailable, worth retrying later.
  SIDECARLESS_NO_ENDPOINTS: 503,
  SIDECARLESS_ALL_EJECTED: 503,
  SIDECARLESS_EMPTY_SUBSET: 503,
  SIDECARLESS_CIRCUIT_OPEN: 503,
  SIDECARLESS_OVERLOADED: 503,
  SIDECARLESS_RETRY_BUDGET_EXHAUSTED: 503,
  SIDECARLESS_CLIENT_CLOSED: 503,
  SIDECARLESS_RESOLVER_FAILED: 503,
  SIDECARLESS_NOT_PROCESSED: 503,
  SIDECARLESS_DNS_NXDOMAIN: 503,
  SIDECARLESS_DNS_NODATA: 503,
  SIDECARLESS_DNS_SERVFAIL: 503,
  SIDECARLESS_DNS_REFUSED: 503,
  SIDECARLESS_DNS_TIMEOUT: 503,
  SIDECARLESS_DNS_MALFORMED: 503,
  SIDECARLESS_DNS_NETWORK: 503,
  // Out of time.
  SIDECARLESS_DEADLINE_EXCEEDED: 504,
  SIDECARLESS_PER_TRY_TIMEOUT: 504,
  // No route for the request: like Envoy's 404 "NR".
  SIDECARLESS_NO_ROUTE: 404,
  // The service pointed the request at another origin, which the client refuses to follow.
  SIDECARLESS_REDIRECT_REFUSED: 502,
  // The endpoint's own 5xx, set aside for a retry that could not be made: a bad gateway answer, as the 5xx was.
  SIDECARLESS_RESPONSE_DISCARDED: 502,
};

/**
 * The status to answer with when a request through sidecarless failed with `error` (what `client.fetch` rejected
 * with, or a dispatcher handler's error; wrappers such as fetch's `TypeError('fetch failed')` are looked through):
 *
 * - 503 when no endpoint could take the request (none resolved, all ejected, breaker open, overloaded, retry budget
 *   spent, client closed), none accepted a connection, or the endpoint was going away (HTTP/2 `GOAWAY`, a refused
 *   stream);
 * - 504 when the deadline, the per-try timeout or an undici timeout on a connected request (headers, body) ran out;
 *   a connect timeout is a connection not accepted (503);
 * - 502 when an endpoint broke the exchange (connection reset or closed mid-request);
 * - 404 when no route matched (`SIDECARLESS_NO_ROUTE`);
 * - 499 when the caller aborted (nginx's "client closed request"; usually nobody is left to read it);
 * - 500 for bad options or targets, and for errors sidecarless does not recognise.
 *
 * Responses the balancer delivered are not errors: a backend's 503 reaches the caller as a response.
 *
 * @example
 * ```ts
 * try {
 *   const upstream = await users.fetch('http://users/me');
 *   // ...
 * } catch (err) {
 *   res.writeHead(statusForError(err)).end();
 * }
 * ```
 *
 * @category Errors
 */
export function statusForError(error: unknown): number {
  const own = findSidecarlessError(error);
  if (own !== undefined) return BY_CODE[own.code] ?? 500;
  // The service's own request was invalid (undici refused it before sending): the service is at fault.
  if (isLocalRefusal(error)) return 500;
  switch (classifyError(error)) {
    case 'connect':
    case 'goaway':
      return 503;
    case 'reset':
      return 502;
    case 'timeout':
      return 504;
    case 'aborted':
      return 499;
    default:
      return 500;
  }
}
