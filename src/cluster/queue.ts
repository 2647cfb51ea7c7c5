/**
 * The wait queue: requests waiting for an endpoint because the cluster has none yet (or none left). Each waits at
 * most `waitForReadyTimeoutMs` from when it first queued (then fails with `SIDECARLESS_NO_ENDPOINTS`, the last
 * resolver error as its cause); at most `maxPending` wait at once. A new pick snapshot flushes the queue.
 *
 * The queue keeps its own state (callback, endpoints to avoid, timer) per request; the request knows nothing of it.
 *
 * A waiting request goes on in its caller's async context: a flush runs in the context of whatever delivered the new
 * endpoints (a resolver's response, another caller's `update()`), so each entry keeps the context it was queued in
 * (an `AsyncResource`, made only for requests that wait) and is answered in it. Tracing (OpenTelemetry's context,
 * any `AsyncLocalStorage`) then sees the attempt as the caller's, not as the resolver's.
 *
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import { NoEndpointsError } from '../common/errors.js';
import { OverloadedError } from '../common/request-errors.js';
import type { Clock, TimerHandle } from '../common/runtime.js';
import type { BalancedRequest } from '../request/balanced-request.js';
import type { Subchannel } from '../subchannel/subchannel.js';

/** Called exactly once with the subchannel found for a request, or the error it failed with. */
export type AcquireCallback = (error: Error | undefined, subchannel: Subchannel | undefined) => void;

/** What the queue needs from its cluster. */
export interface WaitQueueSettings {
  /** The cluster's name, for errors. */
  readonly cluster: string;
  readonly clock: Clock;
  /** How long a request may wait, ms; 0 fails it at once. */
  readonly waitMs: number;
  /** How many requests may wait at once. */
  readonly maxPending: number;
  /** The most recent resolver error: the cause of `SIDECARLESS_NO_ENDPOINTS`. */
  readonly lastError: () => Error | undefined;
  /** A request was refused by `maxPending` (not told of a hedge refused: its request goes on). */
  readonly onOverloaded: () => void;
}

/** The result of a pick: a subchannel, an error to fail with, or `undefined` to keep waiting. */
export type PickFor = (request: BalancedRequest, exclude: ReadonlySet<Subchannel>) => Subchannel | Error | undefined;

interface Waiting {
  callback: AcquireCallback | undefined;
  exclude: ReadonlySet<Subchannel>;
  /** Armed when the request first queued; kept when a flush finds nothing and queues it again. */
  readonly timer: TimerHandle;
  /** The async context the request first queued in: its answer is delivered in it. */
  readonly scope: AsyncResource;
}

/** Calls `callback` with the answer, in the context the request queued in. */
function answer(waiting: Waiting, callback: AcquireCallback, error: Error | undefined, subchannel?: Subchannel): void {
  waiting.scope.runInAsyncScope(callback, undefined, error, subchannel);
}

export class WaitQueue {
  readonly #settings: WaitQueueSettings;
  /** Every request queued and not yet answered, with its state. */
  readonly #waiting = new Map<BalancedRequest, Waiting>();
  /** Those of #waiting with a callback: the ones a flush looks at and `maxPending` counts. */
  readonly #pending = new Set<BalancedRequest>();

  constructor(settings: WaitQueueSettings) {
    this.#settings = settings;
  }

  /** Requests waiting for an endpoint. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Queues `request` until a flush finds it a subchannel or its wait times out. A request already waiting (a hedge
   * launched while the first attempt waits) takes the new callback and keeps its deadline. A `hedge` the full queue
   * refuses is not counted as overloaded: no request is refused, the one it belongs to goes on with its attempts.
   */
  enqueue(request: BalancedRequest, exclude: ReadonlySet<Subchannel>, callback: AcquireCallback, hedge = false): void {
    const waiting = this.#waiting.get(request);
    if (waiting !== undefined) {
      waiting.callback = callback;
      waiting.exclude = exclude;
      this.#pending.add(request);
      return;
    }
    const { cluster, waitMs, maxPending, clock } = this.#settings;
    if (waitMs === 0) {
      callback(new NoEndpointsError(cluster, 0, { cause: this.#settings.lastError() }), undefined);
      return;
    }
    if (this.#pending.size >= maxPending) {
      if (!hedge) this.#settings.onOverloaded();
      callback(new OverloadedError(cluster, 'maxPending', maxPending), undefined);
      return;
    }
    const timer = clock.setTimeout(() => this.#timedOut(request), waitMs, true);
    const scope = new AsyncResource('sidecarless.WaitForEndpoint');
    this.#waiting.set(request, { callback, exclude, timer, scope });
    this.#pending.add(request);
  }

  #timedOut(request: BalancedRequest): void {
    const waiting = this.#waiting.get(request);
    if (waiting === undefined) return;
    this.#waiting.delete(request);
    this.#pending.delete(request);
    const { cluster, waitMs } = this.#settings;
    const { callback } = waiting;
    if (callback !== undefined) {
      // An injected clock's timer may run in any context: answered in the request's own.
      answer(waiting, callback, new NoEndpointsError(cluster, waitMs, { cause: this.#settings.lastError() }));
    }
  }

  /**
   * Picks again for every waiting request (a new snapshot arrived): those `pick` answers are called back, the others
   * wait on (with their deadline unchanged).
   */
  flush(pick: PickFor): void {
    if (this.#pending.size === 0) return;
    const requests = [...this.#pending];
    this.#pending.clear();
    for (const request of requests) {
      const waiting = this.#waiting.get(request);
      if (waiting === undefined) continue;
      const { callback, exclude } = waiting;
      waiting.callback = undefined;
      if (callback === undefined || request.done) {
        this.remove(request);
        continue;
      }
      const picked = pick(request, exclude);
      if (picked === undefined) {
        waiting.callback = callback;
        this.#pending.add(request);
        continue;
      }
      this.remove(request);
      if (picked instanceof Error) answer(waiting, callback, picked);
      else answer(waiting, callback, undefined, picked);
    }
  }

  /** Takes `request` out of the queue (it ended); its callback is never called. */
  remove(request: BalancedRequest): void {
    const waiting = this.#waiting.get(request);
    if (waiting === undefined) return;
    this.#settings.clock.clearTimeout(waiting.timer);
    this.#waiting.delete(request);
    this.#pending.delete(request);
  }

  /** Fails every waiting request with `error` (the cluster is closing). */
  failAll(error: Error): void {
    const entries = [...this.#waiting];
    this.#waiting.clear();
    this.#pending.clear();
    for (const [, waiting] of entries) {
      this.#settings.clock.clearTimeout(waiting.timer);
      if (waiting.callback !== undefined) answer(waiting, waiting.callback, error);
    }
  }
}
