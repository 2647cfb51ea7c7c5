/**
 * What a cluster knows of its resolver beyond the endpoint set: whether a first set has arrived, the resolver's latest
 * state when it is not a healthy set (the cause of `SIDECARLESS_NO_ENDPOINTS`), and who waits for either.
 *
 * @module
 */
import { createDebug } from '../common/debug.js';
import type { SidecarlessError } from '../common/errors.js';
import type { Clock, TimerHandle } from '../common/runtime.js';
import type { Resolver } from '../resolvers/resolver.js';

const debug = createDebug('cluster');

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

/**
 * Passes on the cluster's refresh hint. A custom resolver whose `refresh()` throws breaks its contract ("never
 * throws"), but the hint comes from a connection's failure event: the error is logged, never thrown into it.
 */
export function hintRefresh(resolver: Resolver, cluster: string): void {
  try {
    resolver.refresh?.();
  } catch (err) {
    debug('%s: resolver refresh() threw: %s', cluster, err instanceof Error ? err.message : String(err));
  }
}

/**
 * Closes the cluster's resolver. An error it throws or rejects with is logged (the cluster closes the rest anyway),
 * and a `close()` that never settles is waited for at most `boundMs` (at least a second), so `client.close()` ends.
 */
export async function closeResolver(resolver: Resolver, clock: Clock, boundMs: number, cluster: string): Promise<void> {
  let timer: TimerHandle | undefined;
  try {
    const closed = Promise.resolve().then(() => resolver.close());
    const bound = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, Math.max(boundMs, 1000), false);
    });
    await Promise.race([closed, bound]);
  } catch (err) {
    debug('%s: resolver close() failed: %s', cluster, err instanceof Error ? err.message : String(err));
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
  }
}
