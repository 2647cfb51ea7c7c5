/**
 * What an HTTP/2 subchannel sends (issue 18, see http2.ts): requests undici 7 cannot send over HTTP/2 refused first as
 * the caller's (`http2-refusal.ts`), and streamed bodies read into memory first, so that undici 7 multiplexes them.
 *
 * @module
 */
import type { Dispatcher, Pool } from 'undici';
import type { LegacyHandler } from '../common/handler.js';
import { markCallerError } from '../common/outcome.js';
import { asError } from '../common/thrown.js';
import { TrackedAttempt } from './http2.js';
import { http2Refusal, MAX_SEND_HEADER_BLOCK } from './http2-refusal.js';

/** Dispatch options for an HTTP/2 pool: non-idempotent methods marked so that undici 7 multiplexes them. */
export function http2DispatchOptions(options: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  if (options.idempotent !== undefined || options.method === 'GET' || options.method === 'HEAD') return options;
  return { ...options, idempotent: true };
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
