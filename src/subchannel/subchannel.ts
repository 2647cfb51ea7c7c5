/**
 * A subchannel: one endpoint, one undici `Pool`, its connectivity state and its live load.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import type { Endpoint } from '../common/endpoint.js';
import { createDebug } from '../common/debug.js';
import type { LegacyHandler } from '../common/handler.js';
import { LatencyHistogram } from '../metrics/histogram.js';
import type { Pickable } from '../pickers/picker.js';
import type { Clock, TimerHandle } from '../common/runtime.js';
import type { Backoff } from '../common/backoff.js';
import { PeakEwma } from '../pickers/load.js';
import { type AttemptOutcome, classifyError, type ErrorKind } from '../common/outcome.js';

const debug = createDebug('subchannel');

/**
 * Connectivity state (after gRPC's, with draining added).
 * - `idle`: no open connection; the next request connects.
 * - `ready`: at least one connection is open.
 * - `transient-failure`: the last connection attempt failed; not picked until its backoff expires.
 * - `draining`: removed from the endpoint set; in-flight requests finish, no new ones.
 * - `closed`: the pool is closed.
 *
 * @category Stats
 */
export type SubchannelState = 'idle' | 'ready' | 'transient-failure' | 'draining' | 'closed';

/** Receives every state change and outcome of the subchannels of one pool. Called synchronously. */
export interface SubchannelObserver {
  /** `previous` is the state before the change. */
  onStateChange(subchannel: Subchannel, previous: SubchannelState): void;
  /** Exactly once per attempt dispatched through {@link Subchannel.dispatch}. */
  onOutcome(subchannel: Subchannel, outcome: AttemptOutcome): void;
}

/** Counters of one subchannel, since it was created. */
export interface SubchannelCounters {
  /** Attempts dispatched. */
  attempts: number;
  /** Attempts that received response headers. */
  responses: number;
  /** Responses by status class: index 1 for 1xx ... 5 for 5xx. */
  readonly statusClasses: [number, number, number, number, number, number];
  /** Attempts that ended in an error (before or after headers). */
  errors: number;
  /** Sum of attempt latencies (to headers), ms. */
  latencySumMs: number;
  /** Failed connection attempts. */
  connectFailures: number;
  /** Attempt errors by kind. */
  readonly errorsByKind: Record<ErrorKind, number>;
}

/** Construction parameters; built by the subchannel pool (internal: not exported from an entry point). */
export interface SubchannelInit {
  readonly endpoint: Endpoint;
  readonly protocol: 'http:' | 'https:';
  readonly poolOptions: Pool.Options;
  readonly clock: Clock;
  readonly backoff: Backoff;
  readonly observer: SubchannelObserver;
}

/**
 * One endpoint's connection pool and state. Created and owned by a {@link SubchannelPool}; pickers see it through
 * the {@link Pickable} view.
 */
export class Subchannel implements Pickable {
  /** Stable endpoint key. */
  readonly key: string;
  /** `protocol//host:port` of the endpoint, used as the dispatch origin. */
  readonly origin: string;
  /** Requests dispatched and not yet finished. */
  inFlight = 0;
  /** @internal Slow-start factor in (0, 1], set by the cluster before each picker build. */
  weightFactor = 1;
  /** Peak-EWMA of response latency, read by the `peak-ewma` picker. */
  readonly load: PeakEwma;
  /** Live counters. */
  readonly counters: SubchannelCounters = {
    attempts: 0,
    responses: 0,
    statusClasses: [0, 0, 0, 0, 0, 0],
    errors: 0,
    latencySumMs: 0,
    connectFailures: 0,
    errorsByKind: { connect: 0, reset: 0, timeout: 0, aborted: 0, other: 0 },
  };
  /** Attempt latency to response headers (or to the error), for every attempt but caller aborts. */
  readonly latency = new LatencyHistogram();

  #endpoint: Endpoint;
  #state: SubchannelState = 'idle';
  readonly #pool: Pool;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #observer: SubchannelObserver;
  #retryTimer: TimerHandle | undefined;
  #closing: Promise<void> | undefined;

  constructor(init: SubchannelInit) {
    this.#endpoint = init.endpoint;
    this.key = init.endpoint.key;
    this.origin = `${init.protocol}//${init.endpoint.key}`;
    this.#clock = init.clock;
    this.#backoff = init.backoff;
    this.#observer = init.observer;
    this.load = new PeakEwma({ clock: init.clock });
    this.#pool = new Pool(this.origin, init.poolOptions);
    this.#pool.on('connect', () => {
      this.#backoff.reset();
      if (this.#state === 'idle' || this.#state === 'transient-failure') this.#setState('ready');
    });
    this.#pool.on('disconnect', () => {
      if (this.#state === 'ready' && this.#pool.stats.connected === 0) this.#setState('idle');
    });
    this.#pool.on('connectionError', (_origin: unknown, _targets: unknown, err: Error) => {
      this.counters.connectFailures++;
      if (this.#state === 'draining' || this.#state === 'closed') return;
      if (this.#pool.stats.connected > 0) return; // other connections still work
      // One backoff step per connection-attempt cycle (gRPC connection backoff): attempts that fail while the
      // subchannel already waits out a backoff (parallel connects, or picks made in panic) must not stretch it.
      if (this.#state === 'transient-failure') return;
      const delay = this.#backoff.next();
      debug('%s connection failed (%s); backing off %d ms', this.key, err.message, Math.round(delay));
      this.#setState('transient-failure');
      if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = this.#clock.setTimeout(() => {
        this.#retryTimer = undefined;
        if (this.#state === 'transient-failure') this.#setState('idle');
      }, delay);
    });
  }

  /** The current endpoint (its weight or metadata may change over the subchannel's life; its key never does). */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  /** The weight pickers use: the endpoint's weight times the slow-start factor. */
  get weight(): number {
    return this.#endpoint.weight * this.weightFactor;
  }

  /** Connectivity state. */
  get state(): SubchannelState {
    return this.#state;
  }

  /** True when new requests may be sent here (`idle` or `ready`). */
  get usable(): boolean {
    return this.#state === 'idle' || this.#state === 'ready';
  }

  /** @internal Replaces the endpoint attributes; the key must be the same. */
  updateEndpoint(endpoint: Endpoint): void {
    this.#endpoint = endpoint;
  }

  /**
   * Sends one attempt. `handler` gets the response as undici delivers it; the outcome is reported to the observer
   * once, when the attempt completes or fails. Returns what `Pool.dispatch` returns.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: LegacyHandler): boolean {
    this.inFlight++;
    this.counters.attempts++;
    return this.#pool.dispatch(options, new AttemptHandler(this, handler, this.#clock.now()) as never);
  }

  /** @internal Called once per attempt by its handler. */
  finishAttempt(statusCode: number, error: Error | undefined, latencyMs: number): void {
    this.inFlight--;
    const c = this.counters;
    if (statusCode > 0) {
      c.responses++;
      const cls = Math.floor(statusCode / 100);
      if (cls >= 1 && cls <= 5) c.statusClasses[cls as 1 | 2 | 3 | 4 | 5]++;
      c.latencySumMs += latencyMs;
      this.load.observe(latencyMs);
    }
    let errorKind: ErrorKind | undefined;
    if (error !== undefined) {
      c.errors++;
      errorKind = classifyError(error);
      c.errorsByKind[errorKind]++;
    }
    // An attempt stopped or failed on the caller's side says nothing of the endpoint's latency (issue 15.6).
    if (statusCode === 0 && errorKind !== 'aborted') this.load.observeFailure(latencyMs);
    if (statusCode > 0 || (errorKind !== undefined && errorKind !== 'aborted')) this.latency.observe(latencyMs);
    this.#observer.onOutcome(this, { statusCode, error, errorKind, latencyMs });
  }

  /** @internal The clock, for attempt timing. */
  get clock(): Clock {
    return this.#clock;
  }

  /**
   * Stops taking requests and closes the pool once in-flight requests finish; after `timeoutMs` the pool is
   * destroyed, failing whatever is still running. Idempotent.
   */
  drain(timeoutMs: number): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    this.#setState('draining');
    this.#closing = new Promise<void>((resolve) => {
      const timer = this.#clock.setTimeout(() => {
        debug('%s drain timed out after %d ms; destroying', this.key, timeoutMs);
        this.#pool.destroy().then(resolve, resolve);
      }, timeoutMs);
      this.#pool.close().then(
        () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
        () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
      );
    }).then(() => this.#setState('closed'));
    return this.#closing;
  }

  /** Destroys the pool now, failing in-flight requests with `reason`. */
  destroy(reason?: Error): Promise<void> {
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    if (this.#state !== 'closed' && this.#state !== 'draining') this.#setState('draining');
    const done = this.#pool.destroy(reason ?? null).then(() => this.#setState('closed'));
    this.#closing ??= done;
    return done;
  }

  #setState(next: SubchannelState): void {
    const previous = this.#state;
    if (previous === next || previous === 'closed') return;
    this.#state = next;
    debug('%s %s -> %s', this.key, previous, next);
    this.#observer.onStateChange(this, previous);
  }
}

/** Wraps the caller's handler to time the attempt and report its outcome exactly once. */
class AttemptHandler implements LegacyHandler {
  readonly #subchannel: Subchannel;
  readonly #handler: LegacyHandler;
  readonly #start: number;
  #statusCode = 0;
  #latencyMs = -1;
  #done = false;

  constructor(subchannel: Subchannel, handler: LegacyHandler, start: number) {
    this.#subchannel = subchannel;
    this.#handler = handler;
    this.#start = start;
  }

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    const latency = this.#latencyMs >= 0 ? this.#latencyMs : this.#subchannel.clock.now() - this.#start;
    this.#subchannel.finishAttempt(this.#statusCode, error, latency);
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#handler.onConnect?.(abort, context);
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses are followed by the real one; time and count the final response.
    if (statusCode >= 200 || this.#statusCode === 0) {
      this.#statusCode = statusCode;
      this.#latencyMs = this.#subchannel.clock.now() - this.#start;
    }
    return this.#handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.#handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.#finish(undefined);
    this.#handler.onComplete?.(trailers);
  }
  onError(err: Error): void {
    this.#finish(err);
    this.#handler.onError?.(err);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: import('node:stream').Duplex): void {
    this.#statusCode = statusCode;
    this.#finish(undefined);
    this.#handler.onUpgrade?.(statusCode, headers, socket);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#handler.onBodySent?.(chunkSize, totalBytesSent);
  }
  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
}
