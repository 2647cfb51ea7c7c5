/**
 * `Client.ready()`: waiting for every configured cluster's first resolution (or for a number of endpoints), bounded
 * by a timeout, and failed at once when the client closes.
 *
 * @module
 */
import type { Cluster } from '../cluster/cluster.js';
import { NoEndpointsError } from '../common/errors.js';
import { checkObject, duration, integer, readOptions } from '../common/options.js';

/**
 * What {@link Client.ready} waits for besides the first resolution.
 *
 * @category Client
 */
export interface ReadyOptions {
  /**
   * Wait until every configured cluster's latest endpoint set holds at least this many endpoints (0: the first
   * answer is enough, even an empty one). An endpoint counts once the resolver listed it, before any connection.
   * @defaultValue 0
   */
  readonly minEndpoints?: number | undefined;
}

/** The `ready()` calls of one client still waiting. */
export class ReadyWaits {
  /** Each waiting call, settled (and its timer cleared) by the function stored here. */
  readonly #waits = new Set<(error?: Error) => void>();

  /**
   * Resolves once every one of `clusters` has delivered its first endpoint set (with at least
   * `options.minEndpoints` endpoints); rejects with `SIDECARLESS_NO_ENDPOINTS` (naming the first cluster still
   * waiting, with its resolver's latest state as `cause`) after `timeoutMs`, and with `SIDECARLESS_INVALID_OPTION`
   * for a `timeoutMs` that is not a number of ms from 0 to the longest timer or bad options.
   */
  wait(clusters: readonly Cluster[], timeoutMs: number, options?: ReadyOptions): Promise<void> {
    let min: number;
    try {
      duration(timeoutMs, 'timeoutMs', 0, true);
      // Read once, from the snapshot; a getter or Proxy trap that throws is an invalid option, not a raw error.
      min = readOptions('options', () => {
        const o = checkObject(options === undefined ? {} : options, ['minEndpoints'], 'options');
        return integer(o.minEndpoints, 'minEndpoints', 0, 0, 1_000_000);
      });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const done = (c: Cluster) => c.resolved && (min === 0 || c.endpoints.length >= min);
    if (clusters.every(done)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waits = clusters.map((c) => (min === 0 ? c.whenResolved() : c.whenEndpoints(min)));
      const settle = (error?: Error) => {
        clearTimeout(timer);
        this.#waits.delete(settle);
        for (const w of waits) w.cancel();
        if (error === undefined) resolve();
        else reject(error);
      };
      // Ref'd, like a request's wait for endpoints (see Clock.setTimeout): the caller awaits it, and an unref'd
      // timer would let a top-level `await client.ready()` end the process (exit code 13) instead of rejecting.
      // failAll() clears it when the client closes, so it never outlives the client.
      const timer = setTimeout(() => {
        const waiting = clusters.find((c) => !done(c));
        settle(new NoEndpointsError(waiting?.name ?? 'unknown', timeoutMs, { cause: waiting?.resolverState }));
      }, timeoutMs);
      this.#waits.add(settle);
      void Promise.all(waits.map((w) => w.promise)).then(() => settle());
    });
  }

  /** Fails every waiting call with `error` (the client closed). */
  failAll(error: Error): void {
    for (const settle of [...this.#waits]) settle(error);
  }
}
