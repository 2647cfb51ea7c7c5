/**
 * The balanced undici Dispatcher: everything undici can drive (`fetch`, `request`, `stream`, `pipeline`) balances
 * through it; and its public type, structural so that any undici major's `Dispatcher` type accepts it.
 *
 * @module
 */
import type { EventEmitter } from 'node:events';
import { Dispatcher, errors } from 'undici';
import { ClientClosedError } from '../common/errors.js';
import { destroyArguments, whenSettled } from '../common/callback-style.js';

/**
 * The request options every undici major (6, 7, 8) passes to `dispatch`, as far as sidecarless reads them.
 *
 * @category Client
 */
export interface DispatchOptionsLike {
  /** The request's origin (`http://users`): the logical service name is its host. */
  readonly origin?: string | URL | undefined;
  /** Path and query. */
  readonly path: string;
  /** The HTTP method. */
  readonly method: string;
}

/**
 * An undici `Dispatcher`, typed structurally so that the `Dispatcher` type of any undici major accepts it: pass it as
 * `dispatcher` to `request`, `fetch`, `stream` and `pipeline` of undici 7 or 8, to Node's global `fetch` (Node 20 to
 * 24). Not to `setGlobalDispatcher`: `client.dispatcher` balances every host it is given; the global slot takes
 * `client.globalDispatcher()`, which leaves other hosts alone.
 *
 * sidecarless runs on its own undici 7 (a dependency) and accepts both handler styles undici has used: the callback
 * style (`onConnect`, `onHeaders`, ...: undici 6 and 7, Node 20 to 24's fetch) and the controller style
 * (`onRequestStart`, `onResponseStart`, ...: undici 7 and 8). The handler is therefore typed as `object`, and the
 * convenience methods (`request`, `stream`, ...) loosely: call undici's top-level functions with `dispatcher` to get
 * your undici's own types.
 *
 * @category Client
 */
export interface UndiciDispatcher extends EventEmitter {
  /** Starts one request (undici's `Dispatcher.dispatch`); failures reach the handler, never a throw. */
  dispatch(options: DispatchOptionsLike, handler: object): boolean;
  /* eslint-disable @typescript-eslint/no-explicit-any -- each undici major types these differently; `any` is what
     lets every major's Dispatcher type accept this one. */
  /** undici's `Dispatcher.request` (prefer `request(url, { dispatcher })` from your undici). */
  request(...args: any[]): any;
  /** undici's `Dispatcher.stream` (prefer `stream(url, { dispatcher }, factory)` from your undici). */
  stream(...args: any[]): any;
  /** undici's `Dispatcher.pipeline` (prefer `pipeline(url, { dispatcher }, handler)` from your undici). */
  pipeline(...args: any[]): any;
  /** undici's `Dispatcher.connect`. */
  connect(...args: any[]): any;
  /** undici's `Dispatcher.upgrade`. */
  upgrade(...args: any[]): any;
  /** undici's `Dispatcher.compose`. */
  compose(...args: any[]): any;
  // Each major overloads the EventEmitter methods with its own `Dispatcher` in the listener types.
  /**
   * EventEmitter's `on`. The balanced dispatcher emits none of undici's connection events (`connect`, `disconnect`,
   * `connectionError`, `drain`): it holds a pool per endpoint, whose connections the client's stats and
   * `sidecarless:*` diagnostics channels report.
   */
  on(...args: any[]): any;
  /** EventEmitter's `once`. */
  once(...args: any[]): any;
  /** EventEmitter's `off`. */
  off(...args: any[]): any;
  /** EventEmitter's `addListener`. */
  addListener(...args: any[]): any;
  /** EventEmitter's `removeListener`. */
  removeListener(...args: any[]): any;
  /** EventEmitter's `prependListener`. */
  prependListener(...args: any[]): any;
  /** EventEmitter's `prependOnceListener`. */
  prependOnceListener(...args: any[]): any;
  /** EventEmitter's `listeners`. */
  listeners(...args: any[]): any;
  /** EventEmitter's `rawListeners`. */
  rawListeners(...args: any[]): any;
  /** EventEmitter's `emit`. */
  emit(...args: any[]): any;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  /** Closes gracefully; resolves when done. */
  close(): Promise<void>;
  /** Closes gracefully, calling `callback` when done. */
  close(callback: () => void): void;
  /** Destroys at once: in-flight requests fail. */
  destroy(): Promise<void>;
  /** Destroys at once, failing in-flight requests with `err`. */
  destroy(err: Error | null): Promise<void>;
  /** Destroys at once, calling `callback` when done. */
  destroy(callback: () => void): void;
  /** Destroys at once with `err`, calling `callback` when done. */
  destroy(err: Error | null, callback: () => void): void;
}

/** What the dispatcher sends requests to: a cluster, or the client's router. */
export interface DispatchTarget {
  /**
   * Starts one request (undici `Dispatcher.dispatch` semantics): failures reach `handler.onError` rather than
   * throwing. Returns false when the request was refused at once.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  /** Closes gracefully: in-flight requests finish, then connections close. Idempotent. */
  close(): Promise<void>;
  /** Closes at once, failing in-flight requests (with `reason` when given). */
  destroy(reason?: Error): Promise<void>;
}

/**
 * An undici `Dispatcher` over a client. Closing or destroying it closes or destroys the client.
 *
 * @example
 * ```ts
 * import { request } from 'undici';
 * const { statusCode, body } = await request('http://users/list', { dispatcher: client.dispatcher });
 * // For setGlobalDispatcher use client.globalDispatcher(): this one would take every host in the process.
 * ```
 */
export class BalancedDispatcher extends Dispatcher {
  readonly #target: DispatchTarget;
  #closed = false;

  /** @internal Created by the client. */
  constructor(target: DispatchTarget) {
    super();
    this.#target = target;
    bindThroughCompose(this, BalancedDispatcher.prototype, ['close', 'destroy']);
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // As undici's own dispatchers: a handler that is not an object throws, options that are not one fail the request.
    if (typeof handler !== 'object' || handler === null)
      throw new errors.InvalidArgumentError('handler must be an object');
    if (typeof options !== 'object' || options === null) {
      return failDispatch(handler, new errors.InvalidArgumentError('opts must be an object.'));
    }
    if (this.#closed) return failDispatch(handler, new ClientClosedError());
    // undici refuses an upgrade (and a CONNECT, which is one) whose handler cannot take the socket; here it would hang
    // and leak the socket.
    const { upgrade, method } = options as { upgrade?: unknown; method?: unknown };
    if (((upgrade !== undefined && upgrade !== null) || method === 'CONNECT') && !takesUpgrade(handler)) {
      return failDispatch(handler, new errors.InvalidArgumentError('invalid onUpgrade method'));
    }
    return this.#target.dispatch(options, handler);
  }

  /** @internal The client was closed or destroyed directly: new requests fail at once here too. */
  markClosed(): void {
    this.#closed = true;
  }

  /** @internal True once the client is closing or closed: every request is refused with `SIDECARLESS_CLIENT_CLOSED`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the client gracefully (see `Client.close`); resolves when it is closed. New requests fail at once. */
  override close(): Promise<void>;
  /** As {@link BalancedDispatcher.close}, calling `callback` when done (also if closing failed; no error is passed). */
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    return whenSettled(this.#target.close(), callback);
  }

  /** Destroys the client (see `Client.destroy`): in-flight requests fail now. New requests fail at once. */
  override destroy(): Promise<void>;
  /** Destroys the client, failing in-flight requests with `err` (`null` is the same as no argument). */
  override destroy(err: Error | null): Promise<void>;
  /** As `destroy()`, calling `callback` when done (also if destroying failed; no error is passed). */
  override destroy(callback: () => void): void;
  /** As `destroy(err)`, calling `callback` when done (also if destroying failed; no error is passed). */
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const args = destroyArguments(errOrCallback, callback);
    return whenSettled(this.#target.destroy(args.err), args.callback);
  }
}

/**
 * undici's `compose()` (7 and 8 alike) returns a Proxy of the dispatcher that hands out its methods unbound, so
 * `close` and `destroy` run with the Proxy as `this`, through which no `#` field is reachable (a raw TypeError, and
 * nothing closed). The methods that read one are made own properties bound to the dispatcher itself; `dispatch` needs
 * none (compose binds it), the rest (undici's `request`, `stream`, ..., EventEmitter's) touch no `#` field.
 */
export function bindThroughCompose<T extends object>(dispatcher: T, prototype: T, methods: readonly (keyof T)[]): void {
  for (const key of methods) {
    const method = prototype[key] as (...args: unknown[]) => unknown;
    Object.defineProperty(dispatcher, key, { value: method.bind(dispatcher), writable: true, configurable: true });
  }
}

/** Fails a request before it starts, through whichever error callback the handler has (undici 6 or 7 style). */
function failDispatch(handler: Dispatcher.DispatchHandler, err: Error): false {
  if (typeof handler.onError === 'function') handler.onError(err);
  else if (typeof handler.onResponseError === 'function') handler.onResponseError(undefined as never, err);
  else throw err;
  return false;
}

function takesUpgrade(handler: object): boolean {
  const h = handler as { onUpgrade?: unknown; onRequestUpgrade?: unknown };
  return typeof h.onUpgrade === 'function' || typeof h.onRequestUpgrade === 'function';
}

/**
 * undici's own error for a request whose `method` or `path` is not a string, or `undefined`: what a single-service
 * client reports (undici checks them as it takes the request), for the route table, which reads both before undici
 * sees them. The same input then fails the same way, through `onError`, whatever the client's shape.
 */
export function unroutable(options: object): Error | undefined {
  const { method, path } = options as { method?: unknown; path?: unknown };
  if (typeof method !== 'string') return new errors.InvalidArgumentError('method must be a string');
  if (typeof path !== 'string') return new errors.InvalidArgumentError('path must be a string');
  return undefined;
}
