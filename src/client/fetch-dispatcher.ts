/**
 * The dispatcher one `fetch` call of a client runs on.
 *
 * fetch runs every request of a call (the caller's, then each redirect hop) on the dispatcher it was given, one after
 * another, and dispatches the next one only once it has given up on the previous response: it follows a redirect
 * without reading or cancelling the 3xx body. undici buffers a small body and the hop ends, but a body larger than
 * its buffer is paused for good, and that hop would keep its `maxInFlight` slot and its endpoint's load for the
 * client's life (and hold `close()` to its drain timeout). So each hop the client balances is watched: when the call
 * dispatches its next request, an earlier hop still running is aborted, and fetch, which has dropped it, hears
 * nothing of it (its `onError` would terminate the whole call, the response it now follows included).
 *
 * A single-service client balances every request it is given, whatever its host: the URL's authority is just the
 * logical name of the one service. A redirect that fetch follows to another origin, though, leaves the service
 * (`Location: https://login.example/`), and balancing it over the service's endpoints would send it back to the
 * service under a foreign `Host`. So on such a client the origin of the call's first request is the service's, and a
 * hop to any other origin goes out through a plain undici dispatcher, as plain fetch would send it. fetch itself
 * still applies every redirect rule (303 and 301/302 after POST become GET, at most 20 hops, `redirect: 'manual'`
 * and `'error'`, credentials dropped on a cross-origin hop).
 */
import type { Dispatcher } from 'undici';
import { RedirectRefusedError } from '../common/request-errors.js';
import { type LegacyHandler, toLegacyHandler } from '../common/handler.js';

function originOf(origin: unknown): string | undefined {
  if (typeof origin === 'string') return origin;
  return origin instanceof URL ? origin.origin : undefined;
}

/** The part of a Dispatcher fetch calls. */
export interface FetchDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

/**
 * One balanced request of a fetch call, between fetch's handler and the client: it can be dropped once fetch has
 * moved on (see the module comment).
 */
class Hop implements LegacyHandler {
  readonly #handler: LegacyHandler;
  #abort: ((reason?: Error) => void) | undefined;
  #ended = false;
  #dropped = false;

  constructor(handler: LegacyHandler) {
    this.#handler = handler;
  }

  /**
   * fetch has dispatched the call's next request: this one's response is no longer read. Aborted when still
   * running (the abort is the caller's, as fetch's own abort would be), and silent from now on.
   */
  drop(): void {
    if (this.#ended || this.#dropped) return;
    this.#dropped = true;
    this.#abort?.();
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#abort = abort;
    this.#handler.onConnect?.(abort, context);
  }
  onResponseStarted(): void {
    if (!this.#dropped) this.#handler.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#dropped) return true;
    return this.#handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    if (this.#dropped) return true;
    return this.#handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.#ended = true;
    if (!this.#dropped) this.#handler.onComplete?.(trailers);
  }
  onError(err: Error): void {
    this.#ended = true;
    if (!this.#dropped) this.#handler.onError?.(err);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    if (!this.#dropped) this.#handler.onBodySent?.(chunkSize, totalBytesSent);
  }
  onRequestSent(): void {
    if (!this.#dropped) this.#handler.onRequestSent?.();
  }
}

export class ServiceFetchDispatcher implements FetchDispatcher {
  readonly #service: FetchDispatcher;
  readonly #elsewhere: (() => FetchDispatcher) | undefined;
  #origin: string | undefined;
  /** The call's latest balanced request, dropped when the call dispatches another. */
  #hop: Hop | undefined;

  /**
   * @param service - the client's balanced dispatcher.
   * @param elsewhere - on a single-service client, the dispatcher for other origins, asked for on each such request
   * (it may be made lazily); without it every request of the call goes to `service`.
   */
  constructor(service: FetchDispatcher, elsewhere?: () => FetchDispatcher) {
    this.#service = service;
    this.#elsewhere = elsewhere;
  }

  /**
   * Itself: a call made without a `RequestInit` passes this object as fetch's `init` (`{ dispatcher }` with no other
   * member), so the call allocates one object rather than two.
   */
  get dispatcher(): this {
    return this;
  }

  /**
   * The call failed: its latest hop is dropped if still running. fetch gives up on a redirect without reading its
   * body, and without a next request, when it may not follow it (`redirect: 'error'`, the 20-hop limit, a `Location`
   * it cannot use, a streamed body it cannot send again).
   */
  abandon(): void {
    this.#hop?.drop();
    this.#hop = undefined;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Before the next request is sent: the slot the dropped one holds is free for it (`maxInFlight: 1` follows too).
    this.#hop?.drop();
    this.#hop = undefined;
    const origin = originOf(options.origin);
    // fetch sends its requests one after another, the caller's URL first: that one names the service.
    this.#origin ??= origin;
    if (this.#elsewhere !== undefined && origin !== this.#origin) return this.#elsewhere().dispatch(options, handler);
    // An upgrade (a WebSocket over fetch) hands its socket over and has no body to drop; the handler goes as it is,
    // with the upgrade callbacks the dispatcher checks for.
    if (options.upgrade != null || options.method === 'CONNECT') return this.#service.dispatch(options, handler);
    const hop = new Hop(toLegacyHandler(handler));
    this.#hop = hop;
    return this.#service.dispatch(options, hop as Dispatcher.DispatchHandler);
  }
}

/**
 * The "elsewhere" of a client with `redirect: { crossOrigin: 'refuse' }`: a hop to another origin fails with
 * `SIDECARLESS_REDIRECT_REFUSED` before anything (the body, the headers) is sent there.
 */
export const refuseRedirects = (): FetchDispatcher => REFUSE;

const REFUSE: FetchDispatcher = {
  dispatch(options, handler) {
    toLegacyHandler(handler).onError?.(new RedirectRefusedError(originOf(options.origin) ?? String(options.origin)));
    return false;
  },
};
