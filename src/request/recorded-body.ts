/**
 * A streamed request body recorded as it is read, so a retry can send it again (`retry.bufferBody`).
 *
 * The first attempt reads the source through {@link RecordedBody.reader}; every chunk is kept while the total stays
 * within the limit. A later attempt's reader yields the kept chunks, then goes on reading the source where the
 * earlier attempts left it. Past the limit the kept chunks are dropped and only the attempt reading at that moment
 * can finish the body: the request is then no longer replayable, and its next failure goes to the caller.
 *
 * Only the newest reader may read. An older one (an attempt given up for a retry, whose connection undici may
 * still be writing to) fails its next read instead of ending early: an iterable that ends makes undici finish the
 * request as if the body were complete, which would send a truncated body as a whole one.
 */
import { InvalidRequestError } from '../common/errors.js';
import { markCallerError } from '../common/outcome.js';
import { HOLDS_READ_AHEAD, type ReadAheadHolder } from '../subchannel/http2-request.js';

/** A body undici reads by iterating it: a stream, an async iterable, or a sync one (a generator). */
export type IterableBody = AsyncIterable<unknown> | Iterable<unknown>;

/** The iterator of an iterable body: its async iterator, or else its sync one (awaited alike by its reader). */
export function bodyIterator(body: IterableBody): AsyncIterator<unknown> | Iterator<unknown> {
  return Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]();
}

/** The source body: anything undici iterates (a stream, an async iterable, a sync one such as a generator). */
type Source = IterableBody;

/**
 * `chunk`'s bytes, copied: a producer may refill the buffer it yielded once asked for the next chunk (undici is done
 * with it by then), and a replay must send the bytes as they were when yielded.
 */
function toBuffer(chunk: unknown): Buffer {
  // Any view (a Uint16Array, a DataView): its bytes, as the socket writes them.
  if (ArrayBuffer.isView(chunk)) {
    return Buffer.copyBytesFrom(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  if (typeof chunk === 'string') return Buffer.from(chunk);
  const kind =
    chunk === null ? 'null' : typeof chunk === 'object' ? Object.prototype.toString.call(chunk) : typeof chunk;
  throw new InvalidRequestError(`Request body chunks must be strings or bytes, got ${kind}`);
}

function superseded(): Error {
  // Classified as an abort: the attempt it belongs to has already ended, and this says nothing of its endpoint.
  const err = new Error('the request body is being sent by a newer attempt');
  err.name = 'AbortError';
  return err;
}

export class RecordedBody {
  readonly #source: AsyncIterator<unknown> | Iterator<unknown>;
  readonly #limit: number;
  /** Recorded chunks; `#chunks[i]` is chunk number `#base + i` of the body. */
  #chunks: Buffer[] = [];
  #base = 0;
  #size = 0;
  /** The number of the next chunk the newest reader yields. */
  #readerAt = 0;
  /** Past the limit, or sealed: chunks are kept only until the newest reader has yielded them. */
  #dropping = false;
  /**
   * The recording is an HTTP/2 read-ahead's whole body over the limit: kept for a replay of an attempt the endpoint
   * did not process, but not for any other retry (the limit still bounds what an ordinary retry may re-send).
   */
  #heldOverLimit = false;
  #sealed = false;
  #ended = false;
  #closed = false;
  #failure: unknown;
  /** The source read in progress, shared: a new reader waits for the read an abandoned one started. */
  #pull: Promise<void> | undefined;
  #generation = 0;

  constructor(source: Source, limit: number) {
    this.#source = bodyIterator(source);
    this.#limit = limit;
  }

  /**
   * True while another attempt can send the whole body: everything read so far is still recorded (none of it
   * trimmed), the source has not failed, and no attempt has committed; and the recording is not a read-ahead body
   * over the limit (see {@link RecordedBody.replayableUnprocessed}).
   */
  get replayable(): boolean {
    return !this.#heldOverLimit && this.replayableUnprocessed;
  }

  /**
   * True while an attempt the endpoint did not process (an HTTP/2 refused stream, one above a GOAWAY's last stream)
   * can be sent again: as {@link RecordedBody.replayable}, but a read-ahead body held whole over the limit counts,
   * the memory being spent already and the endpoint having done nothing with it.
   */
  get replayableUnprocessed(): boolean {
    return !this.#sealed && this.#base === 0 && this.#failure === undefined && !this.#closed;
  }

  /**
   * The attempt reading the body has ended (it failed; a retry may follow). Its reader reads no more, so nothing
   * it would still have read is trimmed: a read of the source it had pending when it failed may take the body past
   * the limit, and the chunks must stay for the next attempt's reader all the same (which trims them as it sends
   * them). Without this, the retry found its first chunks gone and failed the request instead of sending it.
   */
  detach(): void {
    this.#generation++;
    this.#readerAt = 0;
  }

  /** What the caller's source failed with (marked the caller's), if it did. */
  get failure(): unknown {
    return this.#failure;
  }

  /** True while a read of the source is pending: the newest reader waits for the caller's next chunk. */
  get awaitingSource(): boolean {
    return this.#pull !== undefined;
  }

  /**
   * A body for one attempt, replacing any earlier reader. An HTTP/2 subchannel reading it ahead into memory tells it
   * the whole body once read to its end ({@link HOLDS_READ_AHEAD}).
   */
  reader(): AsyncIterable<Buffer> & ReadAheadHolder {
    const generation = ++this.#generation;
    this.#readerAt = 0;
    return {
      [Symbol.asyncIterator]: () => this.#read(generation),
      [HOLDS_READ_AHEAD]: (whole: Buffer) => this.#hold(generation, whole),
    };
  }

  /**
   * The newest reader's attempt holds the whole body, read to its end, in `whole`: kept as the recording, so that
   * a request whose attempt was not processed (an HTTP/2 refused stream) is sent again whatever the limit, the
   * memory being spent already. A body read only in part, or by an attempt given up, is never taken as whole.
   */
  #hold(generation: number, whole: Buffer): void {
    if (generation !== this.#generation || !this.#ended || this.#sealed || this.#closed) return;
    if (this.#failure !== undefined || whole.length !== this.#size) return;
    // Held past the limit: the endpoint may have processed this attempt, so only a not-processed replay may use it.
    if (this.#size > this.#limit) this.#heldOverLimit = true;
    this.#chunks = [whole];
    this.#base = 0;
    this.#readerAt = 1;
    this.#dropping = false;
  }

  /** No attempt will follow (one committed): stop recording, keep reading for the current reader. */
  seal(): void {
    this.#sealed = true;
    this.#dropping = true;
    // What was sent already is not kept while the response streams (up to 1 MiB held from an HTTP/2 read-ahead).
    this.#trim();
  }

  /** The request ended before a response: stop the source, and fail any reader still going. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    if (!this.#ended) void Promise.resolve(this.#source.return?.()).catch(() => {});
  }

  async *#read(generation: number): AsyncGenerator<Buffer, void, undefined> {
    let next = 0;
    let finished = false;
    try {
      for (;;) {
        if (generation !== this.#generation || this.#closed || next < this.#base) throw superseded();
        const i = next - this.#base;
        if (i < this.#chunks.length) {
          const chunk = this.#chunks[i] as Buffer;
          next++;
          this.#readerAt = next;
          if (this.#dropping) this.#trim();
          yield chunk;
          continue;
        }
        if (this.#failure !== undefined) throw this.#failure;
        if (this.#ended) {
          finished = true;
          return;
        }
        this.#pull ??= this.#pullOnce();
        await this.#pull;
      }
    } finally {
      // The committed attempt stopped before the end (its request failed): nobody will read the rest.
      if (!finished && this.#sealed && generation === this.#generation) this.close();
    }
  }

  async #pullOnce(): Promise<void> {
    try {
      const result = await this.#source.next();
      if (result.done === true) {
        this.#ended = true;
        return;
      }
      const chunk = toBuffer(result.value);
      this.#size += chunk.length;
      if (!this.#dropping && this.#size > this.#limit) this.#dropping = true;
      this.#chunks.push(chunk);
      if (this.#dropping) this.#trim();
    } catch (err) {
      // The caller's stream failed: the caller's doing, not the endpoint's (issue 15.6).
      markCallerError(err);
      this.#failure = err;
    } finally {
      this.#pull = undefined;
    }
  }

  /** Drops the chunks the newest reader has yielded (once they can no longer be replayed). */
  #trim(): void {
    const n = this.#readerAt - this.#base;
    if (n <= 0) return;
    this.#chunks.splice(0, n);
    this.#base = this.#readerAt;
  }
}
