/**
 * What an HTTP/2 subchannel sends (issue 18, see http2.ts): requests undici 7 cannot send over HTTP/2 refused first as
 * the caller's (a connection-specific header, a header list too large, a body with a method undici 7 sends bodiless),
 * and streamed bodies read into memory first, so that undici 7 multiplexes them.
 *
 * @module
 */
import type { Dispatcher, Pool } from 'undici';
import { InvalidRequestError } from '../common/errors.js';
import type { LegacyHandler } from '../common/handler.js';
import { iteratesPairs } from '../common/headers.js';
import { markCallerError } from '../common/outcome.js';
import { asError } from '../common/thrown.js';
import { TrackedAttempt } from './http2.js';

/** Dispatch options for an HTTP/2 pool: non-idempotent methods marked so that undici 7 multiplexes them. */
export function http2DispatchOptions(options: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  if (options.idempotent !== undefined || options.method === 'GET' || options.method === 'HEAD') return options;
  return { ...options, idempotent: true };
}

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
    fieldSize(':path', options.path) +
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

/**
 * A body may carry this method (the request layer's recorded body does): it is then told the whole body once the
 * read-ahead has read it to its end, so that a replay can send what is held in memory anyway (whatever its own
 * recording limit); and its chunks are taken as its own, not copied again.
 */
export const HOLDS_READ_AHEAD = Symbol('sidecarless.holdsReadAhead');

/** A body that is told the whole of itself once read ahead (see {@link HOLDS_READ_AHEAD}). */
export interface ReadAheadHolder {
  [HOLDS_READ_AHEAD](whole: Buffer): void;
}

function holder(body: unknown): ReadAheadHolder | undefined {
  return typeof (body as Partial<ReadAheadHolder>)[HOLDS_READ_AHEAD] === 'function'
    ? (body as ReadAheadHolder)
    : undefined;
}

/** An attempt whose streamed body is being read, until it reaches the pool or fails. */
interface Reading {
  readonly tracked: TrackedAttempt;
  readonly body: unknown;
}

/**
 * Sends the attempts of one endpoint's HTTP/2 pool: refuses what undici 7 cannot send ({@link http2Refusal}, against
 * the lowest `SETTINGS_MAX_HEADER_LIST_SIZE` the endpoint's connections announced), and reads a streamed body first
 * (so that undici 7 multiplexes it, see http2.ts); a drain waits for those reads ({@link Http2Requests.settled}), so
 * that the attempts they hold are sent before the pool closes, and fails those still reading when it gives up
 * ({@link Http2Requests.abandon}).
 */
export class Http2Requests {
  #maxHeaderList = MAX_SEND_HEADER_BLOCK;
  readonly #reading = new Set<Reading>();
  #settled: Array<() => void> = [];
  readonly #key: string;
  readonly #authority: string;

  /** `origin`: the pool's. */
  constructor(key: string, origin: string) {
    this.#key = key;
    this.#authority = new URL(origin).host;
  }

  /** A connection's peer announced its SETTINGS (`maxHeaderListSize` as Node reports it). */
  peerSettings(settings: { readonly maxHeaderListSize?: number | undefined }): void {
    const limit = settings.maxHeaderListSize;
    if (typeof limit === 'number' && limit < this.#maxHeaderList) this.#maxHeaderList = limit;
  }

  /** Sends `attempt` on `pool`, or fails it as the caller's. Returns what `Pool.dispatch` returns. */
  dispatch(pool: Pool, options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    const streamed = isStreamedBody(options.body);
    const refused = streamed ? undefined : http2Refusal(options, this.#authority, this.#maxHeaderList);
    if (refused !== undefined) {
      attempt.onError?.(refused);
      return false;
    }
    const tracked = new TrackedAttempt(attempt, this.#key);
    if (!streamed) return pool.dispatch(http2DispatchOptions(options), tracked as never);
    const reading: Reading = { tracked, body: options.body };
    this.#reading.add(reading);
    const hold = holder(options.body);
    readStreamedBody(options.body as AsyncIterable<unknown>, hold !== undefined).then(
      (read) => {
        // Given up by a drain: the attempt has failed already.
        if (!this.#done(reading)) return;
        if (hold !== undefined && Buffer.isBuffer(read)) hold[HOLDS_READ_AHEAD](read);
        const sent = { ...options, body: read as Buffer };
        const late = http2Refusal(sent, this.#authority, this.#maxHeaderList);
        if (late === undefined) pool.dispatch(http2DispatchOptions(sent), tracked as never);
        else tracked.onError(late);
      },
      (err: unknown) => {
        if (!this.#done(reading)) return;
        // The caller's body failed (or yielded something that is not bytes) before anything was sent.
        const error = asError(err);
        markCallerError(error);
        tracked.onError(error);
      },
    );
    return true;
  }

  /** Resolves once no streamed body is being read (every attempt taken has reached the pool, or failed). */
  settled(): Promise<void> {
    if (this.#reading.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settled.push(resolve));
  }

  /**
   * Fails with `reason` every attempt whose body is still being read (a drain gave up waiting, or the pool is
   * destroyed): they never reached the pool, so destroying it would not end them. A stream body is destroyed, as
   * undici destroys the body of a request it fails.
   */
  abandon(reason: Error): void {
    for (const reading of [...this.#reading]) {
      this.#done(reading);
      const { body } = reading;
      if (typeof (body as { destroy?: unknown }).destroy === 'function') (body as { destroy(): void }).destroy();
      reading.tracked.onError(reason);
    }
  }

  /** Ends `reading`; false when it had ended already. */
  #done(reading: Reading): boolean {
    if (!this.#reading.delete(reading)) return false;
    if (this.#reading.size === 0) {
      const settled = this.#settled;
      this.#settled = [];
      for (const resolve of settled) resolve();
    }
    return true;
  }
}

/** A streamed request body up to this size is read into memory before an HTTP/2 attempt is sent, bytes. */
export const BUFFERED_BODY_BYTES = 1 << 20;

/** True for a body undici 7 would not multiplex over HTTP/2: a stream or an async iterable (not FormData or Blob). */
export function isStreamedBody(body: unknown): body is AsyncIterable<unknown> {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' &&
    typeof (body as { stream?: unknown }).stream !== 'function' && // Blob
    typeof (body as { getAll?: unknown }).getAll !== 'function' // FormData
  );
}

/** `chunk` as bytes; a copy unless `owned`: a caller may refill a yielded buffer once asked for the next chunk. */
function toBuffer(chunk: unknown, owned: boolean): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (ArrayBuffer.isView(chunk)) {
    if (owned) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return Buffer.copyBytesFrom(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  if (chunk instanceof ArrayBuffer) return Buffer.from(owned ? chunk : chunk.slice(0));
  throw new TypeError(`request body chunks must be strings or bytes, got ${typeof chunk}`);
}

/**
 * Reads `body` into one buffer; one longer than {@link BUFFERED_BODY_BYTES} comes back as an iterable of what was
 * read followed by the rest. Rejects with the body's own error (the request layer has marked it as the caller's).
 * `owned`: the chunks `body` yields are nobody else's (else each is copied as it is read).
 */
export async function readStreamedBody(
  body: AsyncIterable<unknown>,
  owned = false,
): Promise<Buffer | AsyncIterable<Buffer>> {
  const iterator = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const chunk = toBuffer(next.value, owned);
    chunks.push(chunk);
    size += chunk.length;
    if (size > BUFFERED_BODY_BYTES) {
      return (async function* () {
        yield* chunks;
        // Sent as it is read, as undici sends a stream: each chunk is done with before the next is asked for.
        for (let n = await iterator.next(); n.done !== true; n = await iterator.next()) yield toBuffer(n.value, true);
      })();
    }
  }
}
