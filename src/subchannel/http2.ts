/**
 * HTTP/2 to endpoints (issue 18): the undici `Pool` an HTTP/2 subchannel uses, its connector, and the `GOAWAY` and
 * `REFUSED_STREAM` accounting undici 7 does not do.
 *
 * What undici 7 (7.16-7.30, the range sidecarless depends on) does, and what this module adds
 * (docs/ARCHITECTURE.md, "HTTP/2"):
 * - **ALPN**: `allowH2` offers `h2` and `http/1.1` over TLS; the connection speaks what the endpoint picks.
 * - **h2c with prior knowledge**: undici decides HTTP/2 by `socket.alpnProtocol === 'h2'`; its `H2CClient` (7.7+) and
 *   connector option `useH2c` (7.17+) set that on a plain TCP socket, but `Pool` does not pass `useH2c` to its
 *   connector before undici 8.2 (nodejs/undici#5031). The connector here sets it the same way, on every 7.x.
 * - **Streams per connection**: a Client runs at most `pipelining` requests at once, HTTP/2 included (default 1), so
 *   the pipelining of an HTTP/2 connection is set to `maxConcurrentStreams` once the peer's SETTINGS have arrived,
 *   and to 1 before (and for a connection that fell back to HTTP/1.1, which never pipelines). Node's HTTP/2 session
 *   queues streams beyond the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` once it has the peer's SETTINGS; a burst sent
 *   before would have its excess refused (`REFUSED_STREAM`) and replayed, a backoff later, where waiting for the
 *   SETTINGS costs the burst at most the time they take to arrive (sent by the server as the connection opens). A
 *   stream the peer refuses all the same is classified here as not processed.
 * - **Non-idempotent requests and streamed bodies**: undici 7 sends a POST, or any request whose body is a stream or
 *   an async iterable (every `fetch` body is one), on an HTTP/2 connection only when nothing else runs there, and
 *   everything queued behind it waits too (HTTP/1.1 pipelining rules; undici 8 dropped them for HTTP/2). Attempts on
 *   an HTTP/2 pool are dispatched as `idempotent`, and a streamed body is read into memory first (up to
 *   `BUFFERED_BODY_BYTES`, http2-request.ts; a longer one is sent as a stream, with undici 7's rule), so they multiplex. Replay
 *   safety is decided by the request layer, never by undici.
 * - **GOAWAY**: undici 7 destroys the connection when a `GOAWAY` arrives and fails every stream on it with one
 *   `SocketError`, those the endpoint processed and those above the frame's last-stream-id alike. The session is
 *   watched here (a `goaway` listener ahead of undici's, and the stream each attempt opened), so an attempt whose
 *   stream was above the last-stream-id, or never left, fails with a {@link NotProcessedError} (replayed whatever
 *   its method), and one at or below it with undici's error marked as a graceful `GOAWAY`'s (kind `goaway`: counts
 *   against no endpoint, replayed only when idempotent). Each attempt is judged by its own stream, never by the
 *   error undici hands it: undici fails every request its Client still holds with the first stream error it sees
 *   after the GOAWAY, which is a refused stream's (the session refuses those above the last-stream-id), so streams
 *   the endpoint processed arrive with a `REFUSED_STREAM` error too. undici 8.10 replays the unprocessed ones itself;
 *   sidecarless uses its own undici 7, so this holds whatever undici the application has.
 * - **Headers HTTP/2 cannot carry**: a connection-specific header (RFC 9113 §8.2.2) makes Node's `session.request`
 *   throw inside undici's writer, which crashed the process (on a new connection) or wedged the Client; such a request
 *   is refused before it reaches the pool (http2-refusal.ts: `te` judged by its values joined, as Node sees it), as
 *   is one whose header list is too large to send (Node fails it only after trying, and the peer then ends the
 *   connection). Whatever else `session.request` throws fails that attempt (see `failedStream`), as the caller's when
 *   Node refused a header, never the process or the connection; a header block Node could not send fails as the
 *   caller's (an {@link InvalidRequestError}), not the endpoint's.
 * - **Streams given up**: undici 7 closes the stream of an aborted request with `NO_ERROR`, which resets nothing, so the
 *   server keeps it open (and counted against its stream limit) until the connection closes. An attempt that fails
 *   while its stream is open resets it with `CANCEL` here first (see `cancel`), as undici 8 does.
 * - **GOAWAY and responses under way**: undici 7 destroys the session on a `GOAWAY` at once, so a response at or below
 *   the last-stream-id still arriving is cut (a known limitation, README "HTTP/2"; RFC 9113 §6.8 lets it complete).
 * - **Streams cut with their session**: Node destroys the streams still open or pending on a session it destroys
 *   without clearing the timeout undici armed on each (300 s by default), which then keeps the stream and its whole
 *   request alive that long; undici 7 destroys a session on every `GOAWAY`, on a lost socket and on close. Their
 *   timeouts are cleared just before (see `disarm`).
 *
 * Reaching the session needs undici internals: the `http2Session` property undici 7 puts on the socket. When it is
 * not found (another undici), attempts are classified from their errors alone: `REFUSED_STREAM` is still not
 * processed, and a graceful `GOAWAY`'s error still counts against no endpoint, but nothing is known to be above the
 * last-stream-id, so only idempotent requests are replayed.
 *
 * @module
 */
import { constants as h2constants } from 'node:http2';
import { Duplex } from 'node:stream';
import { buildConnector, Client, type Pool } from 'undici';
import { InvalidRequestError, NotProcessedError } from '../common/errors.js';
import type { LegacyHandler } from '../common/handler.js';
import { markCallerError, markGoaway } from '../common/outcome.js';
import { keepShape } from '../common/shapes.js';
import { asError } from '../common/thrown.js';
import type { Connector } from './connecting.js';

/** HTTP/2 settings of a cluster, validated. */
export interface ResolvedHttp2Options {
  /** Connections per endpoint. */
  readonly connections: number;
  /** Streams at once per connection (the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` when lower). */
  readonly maxConcurrentStreams: number;
}

/** What a subchannel hears from its HTTP/2 pool. */
export interface Http2PoolEvents {
  /** A connection negotiated HTTP/1.1 (the endpoint does not offer `h2`). */
  onFallback(): void;
  /** A connection negotiated HTTP/2 (by ALPN, or by prior knowledge in clear text). */
  onHttp2?(): void;
  /** A connection's peer announced its SETTINGS (as Node reports them: the limits it did not announce included). */
  onPeerSettings?(settings: { readonly maxHeaderListSize?: number | undefined }): void;
}

/** The GOAWAY a session received, if any. */
interface SessionState {
  goaway: boolean;
  code: number;
  lastStreamId: number;
}

/** The parts of Node's `ClientHttp2Session` used here. */
interface SessionLike {
  request(...args: unknown[]): StreamLike;
  destroy(...args: unknown[]): unknown;
  prependListener(event: 'goaway', listener: (code: number, lastStreamId: number) => void): unknown;
  once(event: 'remoteSettings', listener: (settings: { maxHeaderListSize?: number }) => void): unknown;
}

interface StreamLike {
  readonly id?: number | undefined;
  readonly rstCode?: number | undefined;
  readonly closed?: boolean | undefined;
  readonly destroyed?: boolean | undefined;
  close?(code?: number): unknown;
  setTimeout?(msecs: number): unknown;
  once?(event: 'close', listener: () => void): unknown;
}

/**
 * The attempt whose `onConnect` ran last: undici's HTTP/2 writer calls it, then opens the request's stream in the
 * same synchronous run (`writeH2`), so the session's `request` takes its owner from here.
 */
let connecting: TrackedAttempt | undefined;
function opening(attempt: TrackedAttempt): void {
  connecting = attempt;
}
/** The symbol under which undici 7 keeps a socket's HTTP/2 session (found on the first HTTP/2 socket). */
let sessionKey: symbol | null | undefined;

function sessionOf(socket: object): SessionLike | undefined {
  if (sessionKey === undefined) {
    sessionKey = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'http2Session') ?? null;
  }
  if (sessionKey === null) return undefined;
  const session = (socket as Record<symbol, unknown>)[sessionKey] as Partial<SessionLike> | null | undefined;
  if (
    typeof session?.request !== 'function' ||
    typeof session.destroy !== 'function' ||
    typeof session.prependListener !== 'function' ||
    typeof session.once !== 'function'
  ) {
    return undefined;
  }
  return session as SessionLike;
}

/**
 * Watches `session`: the GOAWAY it receives, and the stream each attempt opens on it; `onSettings` runs when the
 * peer's first SETTINGS arrive.
 */
function watchSession(session: SessionLike, onSettings: (settings: { maxHeaderListSize?: number }) => void): void {
  session.once('remoteSettings', onSettings);
  const state: SessionState = { goaway: false, code: 0, lastStreamId: 0 };
  // Ahead of undici's listener, which fails the first stream synchronously.
  session.prependListener('goaway', (code, lastStreamId) => {
    state.goaway = true;
    state.code = code;
    state.lastStreamId = lastStreamId;
  });
  const open = new Set<StreamLike>();
  const destroy = session.destroy;
  session.destroy = function (this: unknown, ...args: unknown[]): unknown {
    disarm(open);
    return destroy.apply(this, args);
  };
  const request = session.request;
  session.request = function (this: unknown, ...args: unknown[]): StreamLike {
    const owner = connecting;
    connecting = undefined;
    let stream: StreamLike;
    try {
      stream = request.apply(this, args);
    } catch (err) {
      // Thrown out of undici's writer, it would be an uncaught exception (a new connection) or wedge the Client: the
      // attempt fails instead, through the stream undici is handed (see failedStream).
      const error = asError(err);
      if (owner !== undefined) owner.thrown = error;
      return failedStream(error);
    }
    if (owner !== undefined) {
      owner.stream = stream;
      owner.session = state;
    }
    if (typeof stream.setTimeout === 'function' && typeof stream.once === 'function') {
      open.add(stream);
      stream.once('close', () => open.delete(stream));
    }
    return stream;
  };
}

/**
 * Clears the timeout of every stream of a session about to be destroyed. Node destroys a session's open and pending
 * streams without clearing their timeouts (`setTimeout(0)` does nothing on a stream already destroyed), and undici
 * arms one on every stream (`headersTimeout`, `bodyTimeout`: 300 s by default): each stream's timer then keeps the
 * stream, undici's request, the attempt and the caller's objects (a `fetch` `Request` and its listener on the
 * caller's `AbortSignal`) alive that long. undici 7 destroys the session on every `GOAWAY`, cutting the streams still
 * open on it, so an endpoint that drains its connections would leak every attempt caught by a drain. The session is
 * destroyed at once after this, so no stream is left without a timeout that could still fire.
 */
function disarm(open: Set<StreamLike>): void {
  for (const stream of open) {
    if (stream.destroyed === true) continue;
    try {
      stream.setTimeout?.(0);
    } catch {
      // Nothing armed to clear.
    }
  }
  open.clear();
}

/**
 * A stream that fails with `error` as soon as undici has listened to it, for a `session.request` that threw: undici
 * then ends the request as it ends one whose stream failed (the attempt fails, the connection goes on). It takes
 * what undici's writer does with a stream (write a body, set a timeout, close it) and ignores it.
 */
function failedStream(error: Error): StreamLike {
  const stream = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() });
  Object.assign(stream, { setTimeout: () => stream, close: () => stream.destroy() });
  stream.destroy(error); // 'error', then 'close', on the next tick
  return stream as StreamLike;
}

/**
 * Node's errors for headers it refuses to send (thrown by `session.request`): the caller's, whatever the endpoint.
 */
const HEADER_REFUSED =
  /^ERR_(?:HTTP2_(?:INVALID_CONNECTION_HEADERS|HEADER_SINGLE_VALUE|INVALID_HEADER_VALUE|INVALID_PSEUDOHEADER|PSEUDOHEADER_NOT_ALLOWED)|INVALID_HTTP_TOKEN|INVALID_CHAR)$/;

const GOAWAY_MESSAGE = /^HTTP\/2: "GOAWAY" frame received with code (\d+)/;

/** True for undici's error of a connection closed by a `GOAWAY` (any code). */
export function isGoawayError(error: unknown): boolean {
  return error instanceof Error && GOAWAY_MESSAGE.test(error.message);
}

/** True for undici's error of a connection closed by a graceful `GOAWAY` (`NO_ERROR`), a drain. */
export function isGracefulGoawayError(error: unknown): boolean {
  return error instanceof Error && GOAWAY_MESSAGE.exec(error.message)?.[1] === '0';
}

/**
 * True when the attempt's stream was refused. An attempt that opened a stream is judged by that stream's own reset
 * code alone: after a GOAWAY undici fails every request its Client holds with the first refused stream's error, those
 * the endpoint processed included. Only an attempt without a stream (never opened one, or a session not watched) is
 * judged by its error.
 */
function isRefusedStream(error: Error, stream: StreamLike | undefined): boolean {
  if (stream !== undefined) return stream.rstCode === h2constants.NGHTTP2_REFUSED_STREAM;
  return (error as { code?: unknown }).code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(error.message);
}

/**
 * undici's error for a stream whose HEADERS frame (type 1) Node could not send because of the header block itself:
 * `FRAME_SIZE_ERROR` (6, over the session's `maxSendHeaderBlockLength`) or `COMPRESSION_ERROR` (9). Nothing left.
 */
const HEADERS_NOT_SENT = /^HTTP\/2: "frameError" received - type 1, code (?:6|9)$/;

/**
 * The error an HTTP/2 attempt fails with, as the request layer must see it: a {@link NotProcessedError} when the
 * endpoint certainly did not process it, `error` marked as a graceful GOAWAY's when it may have, else `error`.
 */
function classify(error: Error, key: string, attempt: TrackedAttempt): Error {
  const { stream, session: state, thrown } = attempt;
  if (thrown !== undefined) {
    // Node refused to open the stream: nothing was sent.
    if (HEADER_REFUSED.test(String((thrown as { code?: unknown }).code))) {
      const refused = new InvalidRequestError(`HTTP/2 cannot send the request headers: ${thrown.message}`, undefined, {
        cause: thrown,
      });
      markCallerError(refused);
      return refused;
    }
    return new NotProcessedError(key, `HTTP/2 stream not opened: ${thrown.message}`, { cause: thrown });
  }
  if (HEADERS_NOT_SENT.test(error.message)) {
    // The caller's headers, not the endpoint: sending them again would fail alike (README, "What counts against an
    // endpoint").
    const refused = new InvalidRequestError('the request headers are too large to send over HTTP/2', undefined, {
      cause: error,
    });
    markCallerError(refused);
    return refused;
  }
  if (isRefusedStream(error, stream)) {
    return new NotProcessedError(key, 'HTTP/2 stream refused', { cause: error });
  }
  if (state?.goaway === true) {
    const id = stream?.id;
    if (id === undefined || id > state.lastStreamId) {
      return new NotProcessedError(key, `HTTP/2 GOAWAY, last stream ${state.lastStreamId}`, { cause: error });
    }
    if (state.code === h2constants.NGHTTP2_NO_ERROR) markGoaway(error);
    return error;
  }
  // Not watched (another undici): a graceful GOAWAY still counts against no endpoint.
  const match = GOAWAY_MESSAGE.exec(error.message);
  if (match !== null && match[1] === '0') markGoaway(error);
  return error;
}

/**
 * The handler of one attempt on an HTTP/2 pool: remembers the stream the attempt opened, and corrects its error
 * (see {@link classify}) before the attempt sees it. Everything else passes through.
 */
export class TrackedAttempt implements LegacyHandler {
  stream: StreamLike | undefined = undefined;
  session: SessionState | undefined = undefined;
  /** What Node's `session.request` threw for this attempt, if it did. */
  thrown: Error | undefined = undefined;
  readonly #inner: LegacyHandler;
  readonly #key: string;

  constructor(inner: LegacyHandler, key: string) {
    this.#inner = inner;
    this.#key = key;
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    opening(this);
    this.#inner.onConnect?.(abort, context);
  }
  onError(err: Error): void {
    if (connecting === this) connecting = undefined;
    const error = classify(err, this.#key, this);
    cancel(this.stream);
    this.#inner.onError?.(error);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.#inner.onUpgrade?.(statusCode, headers, socket);
  }
  onResponseStarted(): void {
    this.#inner.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#inner.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.#inner.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    if (connecting === this) connecting = undefined;
    this.#inner.onComplete?.(trailers);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#inner.onBodySent?.(chunkSize, totalBytesSent);
  }
  onRequestSent(): void {
    this.#inner.onRequestSent?.();
  }
}

/**
 * Resets a stream the attempt gave up on with `CANCEL` (RFC 9113 §8.7). An attempt fails while its stream is open
 * only when this side ends it (an abort, a cancelled body, a timeout): undici 7 then closes the stream with `NO_ERROR`,
 * which Node's server takes as no reset at all, so the stream stays open there, holding one of the peer's
 * `SETTINGS_MAX_CONCURRENT_STREAMS` until the connection closes; once they are all held, the peer refuses every new
 * stream (`ENHANCE_YOUR_CALM`) and the endpoint is ejected. Closed first, undici's own close is a no-op.
 */
function cancel(stream: StreamLike | undefined): void {
  if (stream === undefined || stream.closed !== false || typeof stream.close !== 'function') return;
  try {
    stream.close(h2constants.NGHTTP2_CANCEL);
  } catch {
    // A stream Node no longer tracks (its session gone) has nothing left to reset.
  }
}

// Made for every HTTP/2 attempt: its hidden class outlives quiet moments (common/shapes.ts).
keepShape(new TrackedAttempt({}, 'shape.invalid'));

/**
 * The options of one endpoint's HTTP/2 pool: `connections` connections, each built by a connector that offers
 * `h2` by ALPN (TLS) or assumes it (clear text), set to run `maxConcurrentStreams` streams over HTTP/2 and one
 * request over HTTP/1.1, and whose HTTP/2 session is watched for GOAWAY.
 */
export function http2PoolOptions(
  base: Pool.Options,
  http2: ResolvedHttp2Options,
  protocol: 'http:' | 'https:',
  events: Http2PoolEvents,
): Pool.Options {
  const { connect: connectOptions, ...rest } = base as Pool.Options & { connect?: object };
  const tls = protocol === 'https:';
  // What undici's Pool gives its own connector, from the pool options (a connector function is refused with http2).
  const build = buildConnector({
    ...(connectOptions as buildConnector.BuildOptions),
    ...(rest.connectTimeout === undefined ? undefined : { timeout: rest.connectTimeout }),
    ...(rest.maxCachedSessions === undefined ? undefined : { maxCachedSessions: rest.maxCachedSessions }),
    ...(typeof rest.autoSelectFamily === 'boolean'
      ? { autoSelectFamily: rest.autoSelectFamily, autoSelectFamilyAttemptTimeout: rest.autoSelectFamilyAttemptTimeout }
      : undefined),
    allowH2: tls,
  } as buildConnector.BuildOptions) as Connector;
  const streams = http2.maxConcurrentStreams;
  return {
    ...rest,
    // Handed to the factory as it is (a function): whoever builds the pool may wrap it (`connecting.ts`).
    connect: build as NonNullable<Pool.Options['connect']>,
    allowH2: tls,
    connections: http2.connections,
    maxConcurrentStreams: streams,
    pipelining: streams,
    factory: (origin, options) => {
      let socket: object | undefined;
      const connect = (options as { connect: Connector }).connect;
      const client: Client = new Client(origin, {
        ...(options as Client.Options),
        connect: (opts, callback) =>
          connect(opts, (err, sock) => {
            if (err === null && sock !== null) {
              // Prior knowledge in clear text, as undici's own `useH2c` does.
              if (!tls) (sock as { alpnProtocol?: string }).alpnProtocol = 'h2';
              const h2 = (sock as { alpnProtocol?: string | false }).alpnProtocol === 'h2';
              // One stream until the peer's SETTINGS say how many it takes (see the module comment).
              client.pipelining = 1;
              socket = h2 ? sock : undefined;
              if (h2) events.onHttp2?.();
              else events.onFallback();
            }
            callback(err, sock as never);
          }),
      });
      // undici 7's Pool drops a Client that reports a GOAWAY as a connection error without closing it, and the
      // Client reconnects for what it still queues: close it, so what it queues is sent and its connection does not
      // outlive the pool.
      client.on('connectionError', (_origin: unknown, _targets: unknown, err: Error) => {
        if (isGoawayError(err)) client.close().catch(() => {});
      });
      // After undici made the session, before it writes the first request.
      client.on('connect', () => {
        if (socket === undefined) return;
        const session = sessionOf(socket);
        socket = undefined;
        // Not watched (another undici): all streams at once, as before SETTINGS were waited for.
        if (session === undefined) client.pipelining = streams;
        else
          watchSession(session, (settings) => {
            client.pipelining = streams;
            events.onPeerSettings?.(settings);
          });
      });
      return client;
    },
  };
}
