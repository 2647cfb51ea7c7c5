/**
 * What a cluster knows of its resolver beyond the endpoint set: whether a first set has arrived, the resolver's latest
 * state when it is not a healthy set (the cause of `SIDECARLESS_NO_ENDPOINTS`), and who waits for either.
 *
 * @module
 */
import type { SidecarlessError } from '../common/errors.js';

interface EndpointWaiter {
  readonly min: number;
  readonly resolve: () => void;
}

/** The resolution side of one cluster: first-set and minimum-size waiters, and the latest resolver state. */
export class Resolution {
  /** Callers of whenResolved() until the first endpoint set arrives; `undefined` after it. */
  #resolvedWaiters: (() => void)[] | undefined = [];
  /** Callers of whenEndpoints(), each with the set size it waits for. */
  readonly #endpointWaiters = new Set<EndpointWaiter>();
  /**
   * The resolver's latest state when it is not a healthy set: its last error (until the next set), or why the set
   * is empty.
   */
  state: SidecarlessError | undefined;

  /** True once the resolver has delivered its first endpoint set (an empty one counts). */
  get resolved(): boolean {
    return this.#resolvedWaiters === undefined;
  }

  /** A set arrived: releases the first-set waiters. */
  markResolved(): void {
    const waiters = this.#resolvedWaiters;
    this.#resolvedWaiters = undefined;
    for (const resolve of waiters ?? []) resolve();
  }

  /** The active set now has `count` endpoints: releases the waiters it satisfies. */
  setCount(count: number): void {
    for (const waiter of [...this.#endpointWaiters]) {
      if (count >= waiter.min) waiter.resolve();
    }
  }

  /**
   * Resolves once a set of at least `min` endpoints is in service (at once when `current`, the active set's size,
   * already is, after a first set). The returned `cancel` forgets the wait (the promise then never settles).
   */
  whenEndpoints(min: number, current: number): { promise: Promise<void>; cancel: () => void } {
    if (this.resolved && current >= min) return { promise: Promise.resolve(), cancel: () => {} };
    let waiter!: EndpointWaiter;
    const promise = new Promise<void>((resolve) => {
      waiter = {
        min,
        resolve: () => {
          this.#endpointWaiters.delete(waiter);
          resolve();
        },
      };
    });
    this.#endpointWaiters.add(waiter);
    return { promise, cancel: () => this.#endpointWaiters.delete(waiter) };
  }

  /** Resolves when the resolver has delivered its first endpoint set; at once if it already has. */
  whenResolved(): Promise<void> {
    const waiters = this.#resolvedWaiters;
    if (waiters === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => waiters.push(resolve));
  }
}
