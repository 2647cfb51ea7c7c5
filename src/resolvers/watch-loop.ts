/**
 * The loop every resolver that watches a remote source runs (DNS polling, Consul blocking queries, etcd watches):
 * when to run the next resolution, what a failure does, what `refresh()` may do, and how `close()` stops it all.
 * The resolver supplies one {@link WatchTask} (a DNS lookup, one blocking query, one list-and-watch cycle); the
 * loop supplies the rest, so the {@link Resolver} contract's timing rules hold for all of them alike.
 *
 * The rules (docs/ARCHITECTURE.md, "Resolvers" and the last-known-good invariant):
 * - the first run starts on a microtask after {@link WatchLoop.start}, never synchronously;
 * - runs never overlap, and start at least `minIntervalMs` apart (the hot-loop guard against a source that answers
 *   at once);
 * - after a run ends normally, the next starts after the delay it returned (or at once), but not before the guard;
 * - after a failure, the error goes to `onError` (the set delivered last stays in use: last known good) and the next
 *   run comes after the next {@link Backoff} delay (and not before the guard); the backoff is reset when the task
 *   reports the source healthy ({@link WatchRun.healthy});
 * - a set equal to the one delivered last is not delivered again, unless a failure was reported in between (the
 *   listener's latest state is then that failure) or, for an empty set, its "not found" reason changed (present or
 *   absent, another message or cause: "has no usable instance" becoming "does not exist");
 * - the run's signal takes any number of listeners (a run may bound many concurrent requests on it, each adding one
 *   until it settles) without Node's `MaxListenersExceededWarning`;
 * - `refresh()` follows the rule of {@link Resolver.refresh}: ignored while backing off, and at most once per
 *   `refresh.intervalMs`. What it does depends on the source: for a `poll` source (runs are short, waits are
 *   timers) it brings the next run forward to `intervalMs` after the last start; for a `watch` source (a run is a
 *   long-lived blocking query or stream) it aborts the run in flight, and the next run starts within the guard;
 * - `close()` aborts the run in flight, cancels the timer, and no listener call happens after it.
 *
 * Timers are the injected clock's, jitter the injected random source's (through the {@link Backoff}).
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { createEndpoint, type Endpoint, type EndpointInit, parseHostPort } from '../common/endpoint.js';
import {
  isSidecarlessError,
  ResolverError,
  type ServiceNotFoundError,
  type SidecarlessError,
} from '../common/errors.js';
import type { Backoff } from '../common/backoff.js';
import type { Clock, TimerHandle } from '../common/runtime.js';
import type { Resolver, ResolverListener } from './resolver.js';

/** What one run of a {@link WatchTask} may do besides resolving. */
export interface WatchRun {
  /** Aborted when `refresh()` restarts a `watch` run or when the loop closes; pass it to every request. */
  readonly signal: AbortSignal;
  /**
   * Marks the start of the rate-limited work (a listing, a query), from which `minIntervalMs` and a `poll` source's
   * `refresh()` spacing count. Call it once per run, before that work starts; a run that never calls it (it failed
   * before reaching the work, e.g. in authentication) leaves the previous mark in place.
   */
  started(): void;
  /** The source answered well: stop backing off and reset the backoff (a poll's success, a watch's creation). */
  healthy(): void;
  /**
   * Hands a complete set to the listener, unless it equals the set delivered last (and no failure came between, and
   * the "not found" reason of an empty set is the same). `notFound` goes with an empty set that the source gave as
   * "no such service". No-op after close.
   */
  deliver(endpoints: Endpoint[], notFound?: ServiceNotFoundError): void;
  /**
   * Reports a problem that does not fail the run (entries of the answer skipped as unusable) to the listener's
   * `onError`; the set read is still delivered. No-op after close.
   */
  report(error: SidecarlessError): void;
}

/** How a run that did not fail ended. */
export interface WatchResult {
  /**
   * A complete set read by the run (a poll's answer, one query's answer): the source is marked healthy, then the
   * set is delivered (unless it equals the set delivered last) once the run is over.
   */
  readonly endpoints?: Endpoint[] | undefined;
  /** With an empty `endpoints`: the source's "no such service" answer, handed to the listener with it. */
  readonly notFound?: ServiceNotFoundError | undefined;
  /** Delay before the next run, ms. @defaultValue 0: as soon as `minIntervalMs` allows */
  readonly nextMs?: number | undefined;
}

/**
 * One resolution. Resolves with a {@link WatchResult} (or nothing: run again as soon as the guard allows), or
 * rejects with the failure (an error that is not a {@link SidecarlessError} is wrapped by `toError`). A rejection
 * after the run's signal was aborted (by `refresh()` or `close()`) is not a failure.
 */
export type WatchTask = (run: WatchRun) => Promise<WatchResult | undefined>;

/** Settings of a {@link WatchLoop}. */
export interface WatchLoopOptions {
  /** Names the source in debug lines and wrapped errors (`consul:web`, `dns:users.internal:80`). */
  readonly label: string;
  /** Clock for every timer. */
  readonly clock: Clock;
  /** Backoff between failed runs (built with the injected random source). */
  readonly backoff: Backoff;
  /** Minimum time between the starts of two runs, ms (0: no guard). */
  readonly minIntervalMs: number;
  /** What `refresh()` does (see the module documentation) and how often at most, ms. */
  readonly refresh: {
    /** `poll`: a refresh brings the next run forward; `watch`: it restarts the run in flight. */
    readonly mode: 'poll' | 'watch';
    /** At most one refresh takes effect per this many ms. */
    readonly intervalMs: number;
  };
  /**
   * Whether the order of a set matters when comparing it with the set delivered last (`false` for sources whose
   * answers come in no particular order, such as DNS).
   * @defaultValue true
   */
  readonly ordered?: boolean | undefined;
  /** Turns a failure that is not a {@link SidecarlessError} into one. @defaultValue a {@link ResolverError} */
  readonly toError?: ((error: unknown) => SidecarlessError) | undefined;
  /** Debug logger of the resolver's namespace. */
  readonly debug: (format: string, ...args: unknown[]) => void;
}

/**
 * The fingerprint two sets are compared by: keys, weights, priorities, zones and metadata, of each entry as the
 * cluster will read it. A task written in JavaScript (or decoding a registry's JSON) may hand over plain
 * `{ host, port }` objects or `host:port` strings: read as they are, they have no key, and every set of the same
 * length would look alike. `undefined` when an entry cannot be read (a bad port, metadata that is not strings, a
 * getter that throws): the set is then always delivered, and the cluster skips and reports that entry.
 */
function fingerprint(endpoints: readonly unknown[], ordered: boolean): string | undefined {
  const entries: string[] = [];
  try {
    for (const entry of endpoints) {
      const e =
        typeof entry === 'string' ? createEndpoint(parseHostPort(entry)) : createEndpoint(entry as EndpointInit);
      entries.push(JSON.stringify([e.key, e.weight, e.priority, e.zone ?? null, e.metadata]));
    }
  } catch {
    return undefined;
  }
  if (!ordered) entries.sort();
  return entries.join('\n');
}

/**
 * What tells two "not found" reasons apart (empty when there is none): its class, service and message, and its
 * cause's code when it has one (a DNS NXDOMAIN or NODATA: not its message, which names the nameserver that answered),
 * else the cause's message.
 */
function notFoundPrint(notFound: ServiceNotFoundError | undefined): string {
  if (notFound === undefined) return '';
  const cause = notFound.cause as { code?: unknown; message?: unknown } | undefined;
  if (typeof cause?.code === 'string') return JSON.stringify([notFound.code, notFound.service, cause.code]);
  return JSON.stringify([notFound.code, notFound.service, notFound.message, String(cause?.message ?? cause ?? '')]);
}

/**
 * Runs a {@link WatchTask} under the rules of the module documentation. A resolver holds one and forwards
 * {@link Resolver.start}, {@link Resolver.refresh} and {@link Resolver.close} to it.
 *
 * @example
 * ```ts
 * const loop = new WatchLoop(
 *   { label: 'fleet', clock, backoff: new Backoff(resolveBackoffOptions(undefined, 'backoff'), random),
 *     minIntervalMs: 1000, refresh: { mode: 'poll', intervalMs: 1000 }, debug },
 *   async (run) => {
 *     run.started();
 *     return { endpoints: await fetchFleet(run.signal), nextMs: 30_000 }; // poll again in 30 s
 *   },
 * );
 * ```
 */
export class WatchLoop implements Resolver {
  readonly #options: WatchLoopOptions;
  readonly #task: WatchTask;
  #listener: ResolverListener | undefined;
  #started = false;
  #closed = false;
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #run: { controller: AbortController; cause: 'refresh' | 'close' | undefined } | undefined;
  #backingOff = false;
  #lastStart = Number.NEGATIVE_INFINITY;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #lastDelivered: string | undefined;

  constructor(options: WatchLoopOptions, task: WatchTask) {
    this.#options = options;
    this.#task = task;
  }

  /** True once {@link WatchLoop.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Starts the loop; results go to `listener`. Later calls, and calls after close, do nothing. */
  start(listener: ResolverListener): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#listener = listener;
    queueMicrotask(() => void this.#execute());
  }

  /** The refresh hint (see the module documentation). Safe at any time; never throws. */
  refresh(): void {
    if (!this.#started || this.#closed || this.#backingOff) return;
    const { clock, refresh } = this.#options;
    if (refresh.mode === 'poll') {
      if (this.#run !== undefined) return;
      this.#schedule(this.#lastStart + refresh.intervalMs - clock.now());
      return;
    }
    const run = this.#run;
    if (run === undefined || run.cause !== undefined) return;
    const now = clock.now();
    if (now - this.#lastRefresh < refresh.intervalMs) return;
    this.#lastRefresh = now;
    this.#options.debug('%s: refresh hint, restarting the watch', this.#options.label);
    run.cause = 'refresh';
    run.controller.abort();
  }

  /**
   * The source says it can be reached again (a ZooKeeper session reconnected): while backing off after a failure,
   * the next run starts now (within `minIntervalMs`) instead of after the backoff delay. Does nothing otherwise.
   */
  wake(): void {
    if (!this.#started || this.#closed || !this.#backingOff || this.#run !== undefined) return;
    this.#options.debug('%s: the source is back; not waiting for the backoff', this.#options.label);
    this.#schedule(this.#guardDelay());
  }

  /** Stops the loop: cancels the timer and aborts the run in flight. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener = undefined;
    this.#cancelTimer();
    const run = this.#run;
    if (run !== undefined && run.cause === undefined) {
      run.cause = 'close';
      run.controller.abort();
    }
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /** Runs the next resolution in `delayMs` (at least 0), unless one is already due sooner. */
  #schedule(delayMs: number): void {
    if (this.#closed) return;
    const { clock } = this.#options;
    const delay = Math.max(0, delayMs);
    const at = clock.now() + delay;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      void this.#execute();
    }, delay);
  }

  /** Delay that keeps run starts at least `minIntervalMs` apart. */
  #guardDelay(): number {
    return this.#lastStart + this.#options.minIntervalMs - this.#options.clock.now();
  }

  async #execute(): Promise<void> {
    if (this.#closed || this.#run !== undefined) return;
    const { clock, debug, label } = this.#options;
    const current = { controller: new AbortController(), cause: undefined as 'refresh' | 'close' | undefined };
    // Every request of the run links its own signal to this one until it settles: a listing reading many nodes at
    // once must not trip the warning meant for leaks (the links are removed as the requests settle).
    setMaxListeners(0, current.controller.signal);
    this.#run = current;
    const run: WatchRun = {
      signal: current.controller.signal,
      started: () => {
        this.#lastStart = clock.now();
      },
      healthy: () => {
        this.#backingOff = false;
        this.#options.backoff.reset();
      },
      deliver: (endpoints, notFound) => this.#deliver(endpoints, notFound),
      report: (error) => {
        if (!this.#closed) this.#listener?.onError(error);
      },
    };
    let result: WatchResult | undefined;
    let failure: unknown;
    let failed = false;
    try {
      result = await this.#task(run);
    } catch (err) {
      if (current.cause === undefined) {
        failed = true;
        failure = err;
      }
    } finally {
      if (this.#run === current) this.#run = undefined;
    }
    if (this.#closed) return;
    let nextMs: number | undefined;
    if (!failed) {
      // A result that cannot be read or delivered (endpoints that are not an array, a getter that throws) fails the
      // run: thrown here, it would be an unhandled rejection (the loop runs unawaited) and no run would follow.
      try {
        if (current.cause === 'refresh') debug('%s: restarted by a refresh hint', label);
        const endpoints = result?.endpoints;
        nextMs = result?.nextMs;
        if (endpoints !== undefined) {
          run.healthy();
          this.#deliver(endpoints, result?.notFound);
        }
      } catch (err) {
        failed = true;
        failure = err;
      }
    }
    if (this.#closed) return;
    if (!failed) {
      this.#schedule(Math.max(nextMs ?? 0, this.#guardDelay()));
      return;
    }
    const error = isSidecarlessError(failure)
      ? failure
      : (this.#options.toError?.(failure) ?? new ResolverError(`Resolution of ${label} failed`, { cause: failure }));
    this.#backingOff = true;
    const delay = Math.max(this.#options.backoff.next(), this.#guardDelay());
    debug('%s: %s; keeping the last set, retrying in %d ms', label, error.message, Math.round(delay));
    // The listener's latest state is now this failure: the next answer is delivered even if it equals the last set.
    this.#lastDelivered = undefined;
    this.#listener?.onError(error);
    this.#schedule(delay);
  }

  #deliver(endpoints: Endpoint[], notFound?: ServiceNotFoundError): void {
    if (this.#closed) return;
    if (!Array.isArray(endpoints)) {
      throw new ResolverError(
        `Resolution of ${this.#options.label} gave endpoints that are not an array (${typeof endpoints})`,
      );
    }
    // The "not found" reason goes with an empty set only; a new one is news even when the set is still empty.
    const reason = endpoints.length === 0 ? notFoundPrint(notFound) : '';
    const entries = fingerprint(endpoints, this.#options.ordered ?? true);
    const print = entries === undefined ? undefined : `${entries}\n${reason}`;
    if (print !== undefined && print === this.#lastDelivered) return;
    this.#lastDelivered = print;
    this.#options.debug('%s: delivering %d endpoints', this.#options.label, endpoints.length);
    this.#listener?.onUpdate(endpoints, endpoints.length === 0 ? notFound : undefined);
  }
}

/**
 * `listener`, with `onError` called first on each error: a resolver that counts and publishes its errors hands this
 * to {@link WatchLoop.start}. @internal
 */
export function tapErrors(listener: ResolverListener, onError: (error: SidecarlessError) => void): ResolverListener {
  return {
    onUpdate: (endpoints, notFound) => listener.onUpdate(endpoints, notFound),
    onError: (error) => {
      onError(error);
      listener.onError(error);
    },
  };
}
