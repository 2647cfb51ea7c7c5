/**
 * The dispatcher one `fetch` call of a single-service client runs on.
 *
 * A single-service client balances every request it is given, whatever its host: the URL's authority is just the
 * logical name of the one service. A redirect that fetch follows to another origin, though, leaves the service
 * (`Location: https://login.example/`), and balancing it over the service's endpoints would send it back to the
 * service under a foreign `Host`. fetch runs its redirect hops on the dispatcher it was given, so the call gets
 * this one: the origin of its first request is the service's, and a hop to any other origin goes out through a
 * plain undici dispatcher, as plain fetch would send it. fetch itself still applies every redirect rule (303 and
 * 301/302 after POST become GET, at most 20 hops, `redirect: 'manual'` and `'error'`, credentials dropped on a
 * cross-origin hop).
 */
import type { Dispatcher } from 'undici';
import { RedirectRefusedError } from '../common/errors.js';
import { toLegacyHandler } from '../common/handler.js';

function originOf(origin: unknown): string | undefined {
  if (typeof origin === 'string') return origin;
  return origin instanceof URL ? origin.origin : undefined;
}

/** The part of a Dispatcher fetch calls. */
export interface FetchDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

export class ServiceFetchDispatcher implements FetchDispatcher {
  readonly #service: FetchDispatcher;
  readonly #elsewhere: () => FetchDispatcher;
  #origin: string | undefined;

  /**
   * @param service - the client's balanced dispatcher.
   * @param elsewhere - the dispatcher for other origins, asked for on each such request (it may be made lazily).
   */
  constructor(service: FetchDispatcher, elsewhere: () => FetchDispatcher) {
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

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = originOf(options.origin);
    // fetch sends its hops one after another, the caller's URL first: that one names the service.
    this.#origin ??= origin;
    if (origin === this.#origin) return this.#service.dispatch(options, handler);
    return this.#elsewhere().dispatch(options, handler);
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
