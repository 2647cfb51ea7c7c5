/**
 * What undici 7 cannot send over HTTP/2 (issue 18, see http2.ts), refused before it reaches the pool as the caller's
 * failure: a connection-specific header, a header list too large, a body with a method undici 7 sends bodiless.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { InvalidRequestError } from '../common/errors.js';
import { iteratesPairs } from '../common/headers.js';
import { requestPath } from '../common/request-path.js';

/**
 * Connection-specific headers (RFC 9113 §8.2.2), which Node's HTTP/2 session refuses to send (`te` unless it is
 * exactly `trailers`). `connection` is not among them: undici consumes it and never sends it.
 */
const CONNECTION_SPECIFIC = new Set([
  'te',
  'proxy-connection',
  'http2-settings',
  'keep-alive',
  'upgrade',
  'transfer-encoding',
]);

/**
 * Calls `each` with every header of `headers` (name and value as given) in any form undici accepts: an object, a flat
 * `[k, v, ...]` array, or an iterable of pairs (an entry that is not a pair is undici's to refuse); stops when `each`
 * returns true.
 */
function eachHeader(
  headers: Dispatcher.DispatchOptions['headers'],
  each: (name: unknown, value: unknown) => boolean,
): void {
  if (headers == null) return;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const [name, value] of headers as unknown as Array<[unknown, unknown]>) if (each(name, value)) return;
      return;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) if (each(headers[i], headers[i + 1])) return;
    return;
  }
  if (iteratesPairs(headers)) {
    for (const pair of headers as Iterable<unknown>) if (Array.isArray(pair) && each(pair[0], pair[1])) return;
    return;
  }
  for (const name in headers) if (each(name, (headers as Record<string, unknown>)[name])) return;
}

/** The values undici sends for `value`, as strings (an array's elements, `null` as empty). */
function valuesOf(value: unknown): string[] {
  return Array.isArray(value) ? value.map((v) => (v === null ? '' : String(v))) : [String(value ?? '')];
}

/**
 * `sent` with `value` added as undici's HTTP/2 writer adds a repeated name's values to one field: joined with
 * `, ` (an empty value so far is replaced). Node judges a header by that joined value.
 */
function joinValue(sent: string | undefined, value: unknown): string {
  let joined = sent ?? '';
  for (const v of valuesOf(value)) joined = joined === '' ? v : `${joined}, ${v}`;
  return joined;
}

/**
 * The name (lower-case) of the first header of `headers` that HTTP/2 cannot carry, if any (see
 * {@link CONNECTION_SPECIFIC}). `headers` in any form undici accepts: an object, a flat `[k, v, ...]` array, or an
 * iterable of pairs. `te` is judged by the value sent, all its values joined whatever their names' case (`te:
 * trailers` twice is sent as `trailers, trailers`, which Node refuses).
 */
export function forbiddenHttp2Header(headers: Dispatcher.DispatchOptions['headers']): string | undefined {
  let found: string | undefined;
  let te: string | undefined;
  eachHeader(headers, (name, value) => {
    if (typeof name !== 'string' || value === undefined) return false;
    const lower = name.toLowerCase();
    if (!CONNECTION_SPECIFIC.has(lower)) return false;
    if (lower === 'te') {
      te = joinValue(te, value);
      return false;
    }
    found = lower;
    return true;
  });
  return found ?? (te !== undefined && te !== 'trailers' ? 'te' : undefined);
}

/**
 * The most a header block sent over HTTP/2 may hold, octets: Node's `maxSendHeaderBlockLength` (nghttp2's default,
 * which undici 7 does not change). Node fails a larger block only after the session tried to send it, and the peer
 * then ends the whole connection.
 */
export const MAX_SEND_HEADER_BLOCK = 65536;

/** RFC 7541 §4.1: a field counts its name's and its value's lengths plus 32. */
function fieldSize(name: string, value: string): number {
  return name.length + value.length + 32;
}

/**
 * The size of the header list undici 7 sends for `options` over HTTP/2 (RFC 7541 §4.1, each value a field of its
 * own, an upper bound), pseudo-headers and `content-length` included; `authority` is the pool's `host:port`. A
 * `host` header is no field of its own: undici sends it as `:authority`.
 */
export function headerListSize(options: Dispatcher.DispatchOptions, authority: string): number {
  let sentAuthority = authority;
  let size =
    fieldSize(':method', options.method) +
    fieldSize(':path', requestPath(options)) +
    fieldSize(':scheme', 'https') +
    (sendsBody(options.method) ? fieldSize('content-length', '0000000000000000') : 0);
  eachHeader(options.headers, (name, value) => {
    if (typeof name !== 'string' || value === undefined) return false;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      sentAuthority = valuesOf(value)[0] ?? authority;
      return false;
    }
    for (const v of valuesOf(value)) size += fieldSize(name, v);
    return false;
  });
  return size + fieldSize(':authority', sentAuthority);
}

/** The caller's error for a request carrying `header`, which HTTP/2 cannot carry. */
export function forbiddenHeaderError(header: string): InvalidRequestError {
  const what = header === 'te' ? 'a "te" header other than "trailers"' : `a "${header}" header`;
  return new InvalidRequestError(
    `the request has ${what}, which HTTP/2 does not allow (a connection-specific header, RFC 9113 section 8.2.2)`,
    header,
  );
}

// The methods undici 7's HTTP/2 client sends a body with (`expectsPayload` in client-h2.js), compared as they are:
// undici's core does not normalize a method's case (only its fetch does), so a "post" is bodiless there too.
const PAYLOAD_METHODS = new Set(['PUT', 'POST', 'PATCH']);

function sendsBody(method: string): boolean {
  return PAYLOAD_METHODS.has(method);
}

function isEmptyBody(body: unknown): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === 'string') return body.length === 0;
  if (ArrayBuffer.isView(body)) return body.byteLength === 0;
  if (body instanceof ArrayBuffer) return body.byteLength === 0;
  return typeof (body as { size?: unknown }).size === 'number' && (body as { size: number }).size === 0; // a Blob
}

/**
 * Why undici 7 cannot send `options` over HTTP/2, as the caller's error, or `undefined`: a header HTTP/2 does not
 * allow ({@link forbiddenHttp2Header}); a header list larger than `maxHeaderList` octets ({@link headerListSize}),
 * which Node would fail only after trying to send it, the connection lost with it; or a body with a method other than
 * PUT, POST or PATCH (a DELETE with a body, which HTTP allows): undici 7 drops its length, then fails an assertion
 * writing it, and the connection's Client is left broken, every later request to the endpoint waiting for good (and a
 * GOAWAY then throws undici's assertion out of the process). undici 8.14 sends such a body; sidecarless's pools are
 * undici 7's.
 */
export function http2Refusal(
  options: Dispatcher.DispatchOptions,
  authority: string,
  maxHeaderList: number = MAX_SEND_HEADER_BLOCK,
): InvalidRequestError | undefined {
  const header = forbiddenHttp2Header(options.headers);
  if (header !== undefined) return forbiddenHeaderError(header);
  const size = headerListSize(options, authority);
  if (size > maxHeaderList) {
    return new InvalidRequestError(
      `the request headers are too large to send over HTTP/2 (${size} octets as RFC 7541 counts them, at most ` +
        `${maxHeaderList})`,
    );
  }
  if (sendsBody(options.method) || isEmptyBody(options.body)) return undefined;
  return new InvalidRequestError(
    `a ${options.method} request with a body cannot be sent over HTTP/2 by undici 7 (it sends a body with PUT, POST ` +
      'and PATCH only, upper case): send it without a body, or to an HTTP/1.1 cluster',
  );
}
