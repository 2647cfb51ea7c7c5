/**
 * Per-endpoint counters a subchannel cannot keep itself: it sees attempts, not why they were sent (a retry or a
 * hedge), and ejections happen in the health layer. The cluster records them here as it sends attempts and as
 * health events arrive.
 *
 * @module
 */

/** The counters of one endpoint (not exported from the package). */
export interface EndpointCounts {
  /** Attempts sent to the endpoint to retry a failure (elsewhere or here). */
  retries: number;
  /** Hedged attempts sent to the endpoint. */
  hedges: number;
  /** Outlier ejections of the endpoint. */
  timesEjected: number;
  /** Returns of the endpoint from ejection. */
  returns: number;
}

const ZERO: Readonly<EndpointCounts> = Object.freeze({ retries: 0, hedges: 0, timesEjected: 0, returns: 0 });

/**
 * @internal Counters keyed by the endpoint's subchannel, so an endpoint that leaves the set and comes back starts
 * from zero, as its subchannel's own counters do; a removed subchannel's entry goes with it.
 */
export class EndpointCounters<K extends object> {
  readonly #counts = new WeakMap<K, EndpointCounts>();

  /** The live counters of `key`, created on first use. */
  of(key: K): EndpointCounts {
    let counts = this.#counts.get(key);
    if (counts === undefined) {
      counts = { retries: 0, hedges: 0, timesEjected: 0, returns: 0 };
      this.#counts.set(key, counts);
    }
    return counts;
  }

  /** The counters of `key`, all zero if nothing was recorded; allocates nothing. */
  read(key: K): Readonly<EndpointCounts> {
    return this.#counts.get(key) ?? ZERO;
  }
}
