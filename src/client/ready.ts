/**
 * `Client.ready()`: waiting for every configured cluster's first resolution, bounded by a timeout, and failed at
 * once when the client closes.
 *
 * @module
 */
import type { Cluster } from '../cluster/cluster.js';
import { NoEndpointsError } from '../common/errors.js';
import { duration } from '../common/options.js';

/** The `ready()` calls of one client still waiting. */
export class ReadyWaits {
  /** Each waiting call, settled (and its timer cleared) by the function stored here. */
  readonly #waits = new Set<(error?: Error) => void>();

  /**
   * Resolves once every one of `clusters` has delivered its first endpoint set; rejects with
   * `SIDECARLESS_NO_ENDPOINTS` (naming the first cluster still waiting) after `timeoutMs`, and with
   * `SIDECARLESS_INVALID_OPTION` for a `timeoutMs` that is not a number of ms from 0 to the longest timer.
   */
  wait(clusters: readonly Cluster[], timeoutMs: number): Promise<void> {
    try {
      duration(timeoutMs, 'timeoutMs', 0, true);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (clusters.every((c) => c.resolved)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        this.#waits.delete(settle);
        if (error === undefined) resolve();
        else reject(error);
      };
      // Ref'd, like a request's wait for endpoints (see Clock.setTimeout): the caller awaits it, and an unref'd
      // timer would let a top-level `await client.ready()` end the process (exit code 13) instead of rejecting.
      // failAll() clears it when the client closes, so it never outlives the client.
      const timer = setTimeout(() => {
        const waiting = clusters.find((c) => !c.resolved);
        settle(new NoEndpointsError(waiting?.name ?? 'unknown', timeoutMs));
      }, timeoutMs);
      this.#waits.add(settle);
      void Promise.all(clusters.map((c) => c.whenResolved())).then(() => settle());
    });
  }

  /** Fails every waiting call with `error` (the client closed). */
  failAll(error: Error): void {
    for (const settle of [...this.#waits]) settle(error);
  }
}
