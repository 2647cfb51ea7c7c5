/**
 * What an HTTP/2 subchannel sends (issue 18, see http2.ts): requests undici 7 cannot send over HTTP/2 refused first as
 * the caller's (`http2-refusal.ts`), streamed bodies read into memory first, so that undici 7 multiplexes them, and
 * over TLS the attempts that follow the first held until a connection has said which protocol the endpoint speaks.
 *
 * @module
 */
import type { Dispatcher, Pool } from 'undici';
import type { LegacyHandler } from '../common/handler.js';
import { classifyError, markCallerError } from '../common/outcome.js';
import { asError } from '../common/thrown.js';
import { TrackedAttempt } from './http2.js';
import { http2Refusal, MAX_SEND_HEADER_BLOCK } from './http2-refusal.js';
import { refusedAtDispatch } from './pool-clients.js';

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
  readonly body: unknown;
  readonly iterator: AsyncIterator<unknown>;
}

/** Where an HTTP/2 subchannel's attempts go once {@link Http2Requests} lets them go. */
export interface Http2Target {
  /** The HTTP/2 pool, or `undefined` once the endpoint picked HTTP/1.1. */
  http2Pool(): Pool | undefined;
  /** Sends an attempt over HTTP/1.1 (the endpoint picked it): what `Pool.dispatch` returns. */
  http1(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean;
}

// Whether the endpoint's protocol is known. Over TLS it is not until a connection's ALPN answer: the first attempt
// goes to the HTTP/2 pool to learn it, and those that follow wait here. An endpoint that picks HTTP/1.1 would run
// them all one at a time on that one connection, and undici cannot hand back a request it queued (an abort on the
// HTTP/1.1 connection destroys the socket and the body), so none is queued there until the answer is in.
const KNOWN = 0;
const UNKNOWN = 1;
const PROBING = 2;

/** Stops a body nobody will send: a stream destroyed, as undici destroys the body of a request it fails. */
function stopBody(body: unknown, iterator?: AsyncIterator<unknown>): void {
  if (typeof (body as { destroy?: unknown } | null)?.destroy === 'function') (body as { destroy(): void }).destroy();
  // Takes effect once a pending read returns, if ever: nothing waits for it.
  else if (iterator?.return !== undefined) void Promise.resolve(iterator.return()).catch(() => {});
}

/**
 * Sends the attempts of one endpoint's HTTP/2 pool: refuses what undici 7 cannot send ({@link http2Refusal}, against
 * the lowest `SETTINGS_MAX_HEADER_LIST_SIZE` the endpoint's connections announced), reads a streamed body first
 * (so that undici 7 multiplexes it, see http2.ts), and over TLS holds the attempts that follow the first until a
 * connection has said which protocol the endpoint speaks. A drain waits for those reads and held attempts
 * ({@link Http2Requests.settled}), so that they are sent before the pool closes, and fails those still waiting when
 * it gives up ({@link Http2Requests.abandon}); an attempt given up by its request is dropped at once
 * ({@link Http2Requests.giveUp}).
 */
export class Http2Requests {
  #maxHeaderList = MAX_SEND_HEADER_BLOCK;
  readonly #reading = new Map<LegacyHandler, Reading>();
  /** Attempts waiting for the protocol, in order. */
  readonly #held = new Map<LegacyHandler, Dispatcher.DispatchOptions>();
  #settled: Array<() => void> = [];
  #protocol: typeof KNOWN | typeof UNKNOWN | typeof PROBING;
  readonly #key: string;
  readonly #authority: string;
  readonly #target: Http2Target;

  /** `origin`: the pool's (over `https:`, the protocol is learnt from the first connection). */
  constructor(key: string, origin: string, target: Http2Target) {
    this.#key = key;
    const url = new URL(origin);
    this.#authority = url.host;
    this.#protocol = url.protocol === 'https:' ? UNKNOWN : KNOWN;
    this.#target = target;
  }

  /** A connection's peer announced its SETTINGS (`maxHeaderListSize` as Node reports it). */
  peerSettings(settings: { readonly maxHeaderListSize?: number | undefined }): void {
    const limit = settings.maxHeaderListSize;
    if (typeof limit === 'number' && limit < this.#maxHeaderList) this.#maxHeaderList = limit;
  }

  /**
   * A connection negotiated its protocol (the subchannel knows which): the attempts held for it go, to the HTTP/1.1
   * pool when the endpoint picked it. Called from the connector, before undici has the socket: they go after it.
   */
  negotiated(): void {
    if (this.#protocol === KNOWN) return;
    this.#protocol = KNOWN;
    queueMicrotask(() => {
      for (const [attempt, options] of [...this.#held]) {
        if (this.#held.delete(attempt)) this.#send(options, attempt);
      }
      this.#settle();
    });
  }

  /** Sends `attempt` on the endpoint's pool, or fails it as the caller's. Returns what `Pool.dispatch` returns. */
  dispatch(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    const body: unknown = options.body;
    if (!isStreamedBody(body)) {
      const refused = http2Refusal(options, this.#authority, this.#maxHeaderList);
      if (refused === undefined) return this.#forward(options, attempt);
      attempt.onError?.(refused);
      return false;
    }
    const iterator = body[Symbol.asyncIterator]();
    const reading: Reading = { body, iterator };
    this.#reading.set(attempt, reading);
    const hold = holder(body);
    readIterator(iterator, hold !== undefined).then(
      (read) => {
        // Given up (by its request, or a drain): the attempt has ended already.
        if (!this.#done(attempt, reading)) return;
        if (hold !== undefined && Buffer.isBuffer(read)) hold[HOLDS_READ_AHEAD](read);
        const sent = { ...options, body: read as Buffer };
        const late = http2Refusal(sent, this.#authority, this.#maxHeaderList);
        if (late === undefined) this.#forward(sent, attempt);
        else attempt.onError?.(late);
        this.#settle();
      },
      (err: unknown) => {
        if (!this.#done(attempt, reading)) return;
        // The caller's body failed (or yielded something that is not bytes) before anything was sent.
        const error = asError(err);
        markCallerError(error);
        attempt.onError?.(error);
        this.#settle();
      },
    );
    return true;
  }

  /** Sends an attempt ready to go, or holds it while the first connection learns the protocol. */
  #forward(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    if (this.#protocol === KNOWN) return this.#send(options, attempt);
    if (this.#protocol === PROBING) {
      this.#held.set(attempt, options);
      return true;
    }
    this.#protocol = PROBING;
    return this.#probe(options, attempt);
  }

  /** Sends the attempt that makes the pool's first connection: what becomes of it tells whether the answer came. */
  #probe(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    const pool = this.#target.http2Pool();
    if (pool === undefined) return this.#send(options, attempt);
    return pool.dispatch(
      http2DispatchOptions(options),
      new ProbeAttempt(attempt, this.#key, (err) => this.#probeFailed(err)) as never,
    );
  }

  /**
   * The first attempt failed before any connection answered: one that could not connect fails those held with it (as
   * undici fails the requests it queued for that connection); otherwise (undici refused the attempt itself) the next
   * held one makes the connection instead.
   */
  #probeFailed(err: Error): void {
    if (this.#protocol !== PROBING) return;
    this.#protocol = UNKNOWN;
    // Not the connection's failure: undici refused the attempt itself, or its request gave it up (abort, deadline)
    // while the connection may still be coming. Anything else before the protocol was known (refused, reset, a TLS
    // handshake or certificate failure) is the connection's, and fails those held with it.
    const kind = classifyError(err);
    const connection = !refusedAtDispatch(err) && kind !== 'aborted' && kind !== 'timeout';
    // Out of undici's stack: this runs inside its error handling, where sending again on the pool breaks its
    // accounting (an assertion that kills the process).
    queueMicrotask(() => {
      if (connection) {
        for (const attempt of [...this.#held.keys()]) {
          if (this.#held.delete(attempt)) attempt.onError?.(err);
        }
      } else if (this.#protocol !== KNOWN) {
        const next = this.#held.entries().next();
        if (next.done !== true) {
          const [attempt, options] = next.value;
          this.#held.delete(attempt);
          this.#forward(options, attempt);
        }
      }
      this.#settle();
    });
  }

  /** Sends an attempt ready to go on the pool the endpoint's protocol calls for. */
  #send(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    const pool = this.#target.http2Pool();
    if (pool === undefined) return this.#target.http1(options, attempt);
    return pool.dispatch(http2DispatchOptions(options), new TrackedAttempt(attempt, this.#key) as never);
  }

  /** Resolves once no attempt taken waits here (each has reached the pool, or failed). */
  settled(): Promise<void> {
    if (this.#reading.size === 0 && this.#held.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settled.push(resolve));
  }

  /**
   * `attempt` was given up by its request before undici started it (`reason`: why). One still reading its body or
   * held for the protocol is let go at once, as undici lets go of one it holds (its `onError`), and its body is
   * stopped: nothing is left to send or answer, so neither a drain nor `close()` waits for it.
   */
  giveUp(attempt: LegacyHandler, reason: Error): void {
    const reading = this.#reading.get(attempt);
    if (reading !== undefined) {
      this.#done(attempt, reading);
      stopBody(reading.body, reading.iterator);
    } else {
      const options = this.#held.get(attempt);
      if (options === undefined || !this.#held.delete(attempt)) return;
      stopBody(options.body);
    }
    attempt.onError?.(reason);
    this.#settle();
  }

  /**
   * Fails with `reason` every attempt still reading its body or held (a drain gave up waiting, or the pool is
   * destroyed): they never reached the pool, so destroying it would not end them. A stream body is destroyed, as
   * undici destroys the body of a request it fails.
   */
  abandon(reason: Error): void {
    for (const [attempt, reading] of [...this.#reading]) {
      this.#done(attempt, reading);
      stopBody(reading.body, reading.iterator);
      attempt.onError?.(reason);
    }
    for (const [attempt, options] of [...this.#held]) {
      this.#held.delete(attempt);
      stopBody(options.body);
      attempt.onError?.(reason);
    }
    this.#settle();
  }

  /** Ends `attempt`'s `reading`; false when it had ended already. */
  #done(attempt: LegacyHandler, reading: Reading): boolean {
    if (this.#reading.get(attempt) !== reading) return false;
    this.#reading.delete(attempt);
    return true;
  }

  /** Resolves the waiters of {@link Http2Requests.settled} once nothing waits here. */
  #settle(): void {
    if (this.#reading.size !== 0 || this.#held.size !== 0 || this.#settled.length === 0) return;
    const settled = this.#settled;
    this.#settled = [];
    for (const resolve of settled) resolve();
  }
}

/** The first attempt of a pool whose protocol is not known yet: tells when it fails before a connection answered. */
class ProbeAttempt extends TrackedAttempt {
  readonly #failed: (err: Error) => void;

  constructor(inner: LegacyHandler, key: string, failed: (err: Error) => void) {
    super(inner, key);
    this.#failed = failed;
  }

  override onError(err: Error): void {
    super.onError(err);
    this.#failed(err);
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
export function readStreamedBody(body: AsyncIterable<unknown>, owned = false): Promise<Buffer | AsyncIterable<Buffer>> {
  return readIterator(body[Symbol.asyncIterator](), owned);
}

/** {@link readStreamedBody} of a body's iterator (kept by the caller, to stop it). */
async function readIterator(iterator: AsyncIterator<unknown>, owned: boolean): Promise<Buffer | AsyncIterable<Buffer>> {
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
