/**
 * The dispatcher of health checks: one undici `Pool` per checked origin, made at its first check and destroyed when
 * its endpoint leaves the set ({@link CheckPools.release}).
 *
 * undici's `Agent` would do but for that last part: it has no way to drop one origin's pool, and an HTTP/2 session has
 * no idle timeout in undici 7, so each departed endpoint's check connection stayed open (on both sides) until the
 * cluster closed, growing with every endpoint that came and went.
 *
 * @module
 */
import { Dispatcher, Pool } from 'undici';
import { destroyArguments, whenSettled } from '../common/callback-style.js';
import { ConnectingSockets, poolConnector } from '../subchannel/connecting.js';

/** An origin's pool and its connections still being made, ended with the pool (as a subchannel's are). */
interface OriginPool {
  readonly pool: Pool;
  readonly connecting: ConnectingSockets;
}

/** @internal Health checks' per-origin pools; see the module comment. */
export class CheckPools extends Dispatcher {
  readonly #options: Pool.Options;
  readonly #pools = new Map<string, OriginPool>();

  /** `options` for every origin's pool (the cluster's TLS settings, HTTP/2, connect timeout). */
  constructor(options: Pool.Options) {
    super();
    this.#options = options;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // undici's `request(url, { dispatcher })` always sets the origin (a string: `url.origin`).
    const origin = String(options.origin);
    let entry = this.#pools.get(origin);
    if (entry === undefined) {
      const connecting = new ConnectingSockets();
      const pool = new Pool(origin, { ...this.#options, connect: connecting.wrap(poolConnector(this.#options)) });
      entry = { pool, connecting };
      this.#pools.set(origin, entry);
    }
    return entry.pool.dispatch(options, handler);
  }

  /** Destroys the pool of `origin` (its endpoint left): a check still running on it fails, as it was aborted. */
  release(origin: string): void {
    const entry = this.#pools.get(origin);
    if (entry === undefined) return;
    this.#pools.delete(origin);
    settle(entry, entry.pool.destroy()).catch(() => {});
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = Promise.all([...this.#pools.values()].map((e) => settle(e, e.pool.close()))).then(() => {});
    this.#pools.clear();
    return whenSettled(done, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const args = destroyArguments(errOrCallback, callback);
    const done = Promise.all([...this.#pools.values()].map((e) => settle(e, e.pool.destroy(args.err ?? null)))).then(
      () => {},
    );
    this.#pools.clear();
    return whenSettled(done, args.callback);
  }
}

/** `closed` (the pool's close or destroy), then the end of the connects it no longer waits for. */
function settle(entry: OriginPool, closed: Promise<void>): Promise<void> {
  return closed.then(() => entry.connecting.destroy());
}
