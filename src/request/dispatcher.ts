/**
 * The balanced undici Dispatcher: everything undici can drive (`fetch`, `request`, `stream`, `pipeline`,
 * `setGlobalDispatcher`) balances through it.
 *
 * @module
 */
import { Dispatcher } from 'undici';
import { ClientClosedError } from '../errors.js';

/** What the dispatcher sends requests to: a cluster, or the client's router. */
export interface DispatchTarget {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(reason?: Error): Promise<void>;
}

/**
 * An undici `Dispatcher` over a client. Closing or destroying it closes or destroys the client.
 *
 * @example
 * ```ts
 * import { request, setGlobalDispatcher } from 'undici';
 * const { statusCode, body } = await request('http://users/list', { dispatcher: client.dispatcher });
 * setGlobalDispatcher(client.dispatcher); // now every undici call balances
 * ```
 */
export class BalancedDispatcher extends Dispatcher {
  readonly #target: DispatchTarget;
  #closed = false;

  /** @internal Created by the client. */
  constructor(target: DispatchTarget) {
    super();
    this.#target = target;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) {
      const err = new ClientClosedError();
      if (typeof handler.onError === 'function') handler.onError(err);
      else if (typeof handler.onResponseError === 'function') handler.onResponseError(undefined as never, err);
      else throw err;
      return false;
    }
    return this.#target.dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const done = this.#target.close();
    if (callback === undefined) return done;
    done.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const err = typeof errOrCallback === 'function' ? undefined : (errOrCallback ?? undefined);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = this.#target.destroy(err);
    if (cb === undefined) return done;
    done.then(cb, cb);
  }
}
