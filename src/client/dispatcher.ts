/**
 * The balanced undici Dispatcher: everything undici can drive (`fetch`, `request`, `stream`, `pipeline`,
 * `setGlobalDispatcher`) balances through it.
 *
 * @module
 */
import { Dispatcher } from 'undici';
import { ClientClosedError } from '../common/errors.js';

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

  /** @internal The client was closed or destroyed directly: new requests fail at once here too. */
  markClosed(): void {
    this.#closed = true;
  }

  /** Closes the client gracefully (see `Client.close`); resolves when it is closed. New requests fail at once. */
  override close(): Promise<void>;
  /** As {@link BalancedDispatcher.close}, calling `callback` when done (also if closing failed; no error is passed). */
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const done = this.#target.close();
    if (callback === undefined) return done;
    done.then(callback, callback);
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
    const err = typeof errOrCallback === 'function' ? undefined : (errOrCallback ?? undefined);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = this.#target.destroy(err);
    if (cb === undefined) return done;
    done.then(cb, cb);
  }
}
