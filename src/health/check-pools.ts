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

/** @internal Health checks' per-origin pools; see the module comment. */
export class CheckPools extends Dispatcher {
  readonly #options: Pool.Options;
  readonly #pools = new Map<string, Pool>();

  /** `options` for every origin's pool (the cluster's TLS settings, HTTP/2, connect timeout). */
  constructor(options: Pool.Options) {
    super();
    this.#options = options;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // undici's `request(url, { dispatcher })` always sets the origin (a string: `url.origin`).
    const origin = String(options.origin);
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, this.#options);
      this.#pools.set(origin, pool);
    }
    return pool.dispatch(options, handler);
  }

  /** Destroys the pool of `origin` (its endpoint left): a check still running on it fails, as it was aborted. */
  release(origin: string): void {
    const pool = this.#pools.get(origin);
    if (pool === undefined) return;
    this.#pools.delete(origin);
    pool.destroy().catch(() => {});
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = Promise.all([...this.#pools.values()].map((p) => p.close())).then(() => {});
    this.#pools.clear();
    return whenSettled(done, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const args = destroyArguments(errOrCallback, callback);
    const done = Promise.all([...this.#pools.values()].map((p) => p.destroy(args.err ?? null))).then(() => {});
    this.#pools.clear();
    return whenSettled(done, args.callback);
  }
}
