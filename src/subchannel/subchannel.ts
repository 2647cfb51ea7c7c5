/**
 * A subchannel: one endpoint, one undici `Pool`, its connectivity state and its live load.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { errors, Pool } from 'undici';
import type { Endpoint } from '../common/endpoint.js';
import { createDebug } from '../common/debug.js';
import { NotProcessedError } from '../common/errors.js';
import { asError } from '../common/thrown.js';
import type { LegacyHandler } from '../common/handler.js';
import { LatencyHistogram } from '../metrics/histogram.js';
import type { Pickable } from '../pickers/picker.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import { Backoff, type ResolvedBackoffOptions } from '../common/backoff.js';
import { type InFlightCounts, inFlightSlot, inFlightTable, PeakEwma } from '../pickers/load.js';
import { type AttemptOutcome, classifyError, type ErrorKind, setAside } from '../common/outcome.js';
import { http2PoolOptions, isGoawayError, type ResolvedHttp2Options } from './http2.js';
import { Http2Requests } from './http2-request.js';
import { poolMaySendHost, withHostFactory } from './host-header.js';
import { AttemptHandler } from './attempt-handler.js';
import { freshCounters, HELD_GRACE_MS, MAX_HELD_UNSTARTED, NO_COUNTERS, type SubchannelCounters } from './counters.js';
import { PoolClients, refusedAtDispatch } from './pool-clients.js';
import { ConnectingSockets, isCancelledConnect, poolConnector } from './connecting.js';

export type { SubchannelCounters } from './counters.js';
export type { SubchannelState } from './state.js';
import type { SubchannelState } from './state.js';

const debug = createDebug('subchannel');
/** `debug.enabled`, read once (Node's `debuglog` decides it once): its getter was most of a state change's cost. */
let logging: boolean | undefined;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Receives every state change and outcome of the subchannels of one pool. Called synchronously. */
export interface SubchannelObserver {
  /** `previous` is the state before the change. */
  onStateChange(subchannel: Subchannel, previous: SubchannelState): void;
  /**
   * Exactly once per attempt dispatched through {@link Subchannel.dispatch}. `outcome` is valid during the call
   * only (the subchannel reuses it for the next attempt): read it, do not keep it.
   */
  onOutcome(subchannel: Subchannel, outcome: AttemptOutcome): void;
}

/**
 * What every subchannel of one pool shares, held by reference (one object per pool, not per endpoint); built by the
 * subchannel pool (internal: not exported from an entry point).
 */
export interface SubchannelSettings {
  readonly protocol: 'http:' | 'https:';
  readonly poolOptions: Pool.Options;
  /** HTTP/2 to the endpoints (ALPN over TLS, prior knowledge in clear text), when on. */
  readonly http2?: ResolvedHttp2Options | undefined;
  readonly clock: Clock;
  /** The connection backoff, made for a subchannel the first time one of its connections fails. */
  readonly connectBackoff: ResolvedBackoffOptions;
  readonly random: RandomSource;
  readonly observer: SubchannelObserver;
  /** @internal The pool's table of in-flight counts, one record a subchannel. */
  readonly inFlight: InFlightCounts;
}

/**
 * What each HTTP/2 subchannel sends (`http2-request.ts`), made on its first attempt; kept aside so that an HTTP/1.1
 * subchannel (most of a 10,000-endpoint set) carries no field for it.
 */
const sent = new WeakMap<Subchannel, Http2Requests>();
const CLOSED: Promise<void> = Promise.resolve(); // `drain()` of a subchannel that never made a pool: shared

/** The histogram of a subchannel with no attempt yet: empty, shared, never observed into. */
const NO_LATENCY = new LatencyHistogram();

/**
 * One endpoint's connection pool and state. Created and owned by a {@link SubchannelPool}; pickers see it through
 * the {@link Pickable} view.
 *
 * An endpoint that is never picked costs no connection pool: the undici `Pool` (about 19 KiB, most of it its
 * request queue) is created on the first dispatch, and the counters, the latency histogram and the connection
 * backoff on their first use. Until then a subchannel is a few hundred bytes (bench/scale.ts measures it), so a
 * cluster of 50,000 endpoints of which a few hundred take traffic holds a few hundred pools.
 */
export class Subchannel implements Pickable {
  /** Stable endpoint key. */
  readonly key: string;
  /**
   * Its record in its pool's table of in-flight counts (`InFlightCounts` in `pickers/load.ts`): the load-aware
   * pickers read the count from there, one dense array, rather than from this object (a cache miss a candidate at
   * N = 10,000). Given back once closed with nothing in flight; 0 (the table's sink) after that. Its `load`, once
   * made, is never replaced, as the table's contract asks.
   */
  #slot: number;
  /** @internal Slow-start factor in (0, 1], set by the cluster before each picker build. */
  weightFactor = 1;
  /** @internal The subchannel pool's update that last saw this endpoint in the set. */
  generation = 0;
  /** @internal Its position in the subchannel pool's latest set. */
  index = 0;
  /** @internal The subchannel pool's validation that last met this endpoint's key. */
  validation = 0;
  /** @internal The resolver's frozen object this endpoint was validated from, if it was frozen. */
  source: object | undefined = undefined;
  /** Made on first read (by the `peak-ewma` picker's build, or the first observed latency): none per idle endpoint. */
  #load: PeakEwma | undefined = undefined;

  #endpoint: Endpoint;
  #state: SubchannelState = 'idle';
  readonly #settings: SubchannelSettings;
  #origin: string | undefined;
  /** Created on the first dispatch. */
  #pool: Pool | undefined;
  /** Attempts given up before undici started them that undici still holds (see `MAX_HELD_UNSTARTED`). */
  #held = 0;
  /** The HTTP/2 pool left behind when the endpoint turned out to speak HTTP/1.1 only, finishing what it runs. */
  #retired: Pool | undefined;
  /** Created on the first failed connection. */
  #backoff: Backoff | undefined;
  #counters: SubchannelCounters | undefined;
  #latency: LatencyHistogram | undefined;
  #retryTimer: TimerHandle | undefined;
  #closing: Promise<void> | undefined;
  /** The outcome handed to the observer, reused: one object a subchannel, not one an attempt. */
  #outcome: Mutable<AttemptOutcome> | undefined;
  /** True while the observer runs: an outcome reported meanwhile (re-entrantly) gets an object of its own. */
  #reporting = false;
  /**
   * HTTP/2 subchannels: `h2` while the pool is the HTTP/2 one; `fallback` once a connection negotiated HTTP/1.1 (the
   * next dispatch moves to a pool with the cluster's HTTP/1.1 options); `h1` after that, and for HTTP/1.1 clusters.
   */
  #protocol: 'h2' | 'fallback' | 'h1';
  /** The Host its pool's clients send for a request without one (`host-header.ts`); `''`: the pool's own. */
  #poolHost: string | undefined;
  /**
   * The current pool's clients (`pool-clients.ts`: a request undici refuses must not wedge the pool); made with the
   * first pool, so an endpoint never picked carries none.
   */
  #clients: PoolClients | undefined;
  /** Its pools' connections still being made, ended when it closes (`connecting.ts`); made with the first pool. */
  #connecting: ConnectingSockets | undefined;

  constructor(endpoint: Endpoint, settings: SubchannelSettings) {
    this.#endpoint = endpoint;
    this.key = endpoint.key;
    this.#settings = settings;
    this.#protocol = settings.http2 === undefined ? 'h1' : 'h2';
    this.#slot = settings.inFlight.take();
  }

  /** Requests dispatched and not yet finished. */
  get inFlight(): number {
    return this.#settings.inFlight.array[this.#slot] as number;
  }

  /** @internal The table its in-flight count lives in (see `CountedTarget`). */
  get [inFlightTable](): InFlightCounts {
    return this.#settings.inFlight;
  }

  /** @internal Its record in that table. */
  get [inFlightSlot](): number {
    return this.#slot;
  }

  /** Peak-EWMA of response latency, read by the `peak-ewma` picker. */
  get load(): PeakEwma {
    return (this.#load ??= new PeakEwma({ clock: this.#settings.clock }));
  }

  /** `protocol//host:port` of the endpoint, used as the dispatch origin. */
  get origin(): string {
    return (this.#origin ??= `${this.#settings.protocol}//${this.key}`);
  }

  /** Live counters (a shared all-zero object until the first dispatch: read, never write, through this). */
  get counters(): Readonly<SubchannelCounters> {
    return this.#counters ?? NO_COUNTERS;
  }

  /** Attempt latency to response headers (or to the error), for every attempt but caller aborts. */
  get latency(): LatencyHistogram {
    return this.#latency ?? NO_LATENCY;
  }

  /** @internal True once the subchannel has made its connection pool (on its first dispatch). */
  get hasPool(): boolean {
    return this.#pool !== undefined;
  }

  #liveCounters(): SubchannelCounters {
    return (this.#counters ??= freshCounters());
  }

  #createPool(): Pool {
    const settings = this.#settings;
    const http2 = this.#protocol === 'h2' ? settings.http2 : undefined;
    const options =
      http2 === undefined
        ? settings.poolOptions
        : http2PoolOptions(settings.poolOptions, http2, settings.protocol, {
            onFallback: () => {
              if (this.#protocol === 'h2') this.#protocol = 'fallback';
              sent.get(this)?.negotiated();
            },
            onHttp2: () => sent.get(this)?.negotiated(),
            onPeerSettings: (peer) => sent.get(this)?.peerSettings(peer),
          });
    this.#poolHost ??= '';
    const connect = (this.#connecting ??= new ConnectingSockets()).wrap(poolConnector(options));
    const pool = new Pool(
      this.origin,
      (this.#clients ??= new PoolClients()).track(
        http2 === undefined ? withHostFactory({ ...options, connect }, this.#poolHost) : { ...options, connect },
      ),
    );
    this.#pool = pool;
    pool.on('connect', () => {
      this.#backoff?.reset();
      if (this.#state === 'idle' || this.#state === 'transient-failure') this.#setState('ready');
    });
    pool.on('disconnect', () => {
      if (this.#state === 'ready' && pool === this.#pool && pool.stats.connected === 0) this.#setState('idle');
    });
    pool.on('connectionError', (_origin: unknown, _targets: unknown, err: Error) => {
      // undici 7 reports an HTTP/2 GOAWAY as a connection error: a drain, not a refusal, so no backoff.
      // Nor is a connect ended because the subchannel closed.
      if (pool !== this.#pool || isGoawayError(err) || isCancelledConnect(err)) return;
      this.#liveCounters().connectFailures++;
      if (this.#state === 'draining' || this.#state === 'closed') return;
      if (pool.stats.connected > 0) return; // other connections still work
      // One backoff step per connection-attempt cycle (gRPC connection backoff): attempts that fail while the
      // subchannel already waits out a backoff (parallel connects, or picks made in panic) must not stretch it.
      if (this.#state === 'transient-failure') return;
      const settings = this.#settings;
      this.#backoff ??= new Backoff(settings.connectBackoff, settings.random);
      const delay = this.#backoff.next();
      debug('%s connection failed (%s); backing off %d ms', this.key, err.message, Math.round(delay));
      this.#setState('transient-failure');
      if (this.#retryTimer !== undefined) settings.clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = settings.clock.setTimeout(() => {
        this.#retryTimer = undefined;
        if (this.#state === 'transient-failure') this.#setState('idle');
      }, delay);
    });
    return pool;
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
    return this.dispatchAttempt(options, new AttemptHandler(this, handler, this.#settings.clock.now()));
  }

  /**
   * True when the pool's connections send `host: <authority>` for a request without a Host header (plain HTTP/1.1,
   * `host-header.ts`), so an attempt needs none of its own. The first call before the pool exists decides it.
   */
  sendsHost(authority: string): boolean {
    const current = this.#poolHost;
    if (current !== undefined) return current === authority;
    if (this.#pool !== undefined || this.#closing !== undefined || !poolMaySendHost(this.#settings)) return false;
    this.#poolHost = authority;
    return true;
  }

  /**
   * Sends one attempt whose handler reports its outcome itself, through {@link Subchannel.finishAttempt}, exactly
   * once (the request layer's `Attempt` does): the same as {@link Subchannel.dispatch} without a wrapper per attempt.
   */
  dispatchAttempt(options: Dispatcher.DispatchOptions, attempt: LegacyHandler): boolean {
    (this.#settings.inFlight.array[this.#slot] as number)++;
    this.#liveCounters().attempts++;
    if (this.#held >= MAX_HELD_UNSTARTED && this.clock.now() - this.counters.answeredAtMs > HELD_GRACE_MS) {
      attempt.onError?.(new NotProcessedError(this.key, `${this.#held} requests given up still wait for a connection`));
      return false;
    }
    let pool = this.#pool;
    if (pool === undefined) {
      if (this.#closing !== undefined) {
        // Closed before it ever had a pool: fail as undici fails a dispatch to a closed pool.
        attempt.onError?.(new errors.ClientClosedError());
        return false;
      }
      try {
        pool = this.#createPool();
      } catch (err) {
        // undici refused the pool's options: this attempt fails (and reports, releasing its in-flight count).
        attempt.onError?.(asError(err));
        return false;
      }
    }
    if (this.#protocol === 'h1') return pool.dispatch(options, attempt as never);
    if (this.#protocol === 'fallback') return this.#http1Pool().dispatch(options, attempt as never);
    // What undici 7 cannot send over HTTP/2 is refused, as the caller's; a streamed body is read first, and over TLS
    // attempts wait for the first connection to say which protocol the endpoint speaks (`http2-request.ts`).
    let requests = sent.get(this);
    if (requests === undefined) {
      requests = new Http2Requests(this.key, this.origin, {
        http2Pool: () => (this.#protocol === 'h2' ? this.#pool : undefined),
        http1: (opts, held) => this.#http1Pool().dispatch(opts, held as never),
      });
      sent.set(this, requests);
    }
    return requests.dispatch(options, attempt);
  }

  /**
   * The pool of an HTTP/2 subchannel whose endpoint picked HTTP/1.1: made on first use with the cluster's HTTP/1.1
   * options, and the HTTP/2 one closes when what it runs has finished.
   */
  #http1Pool(): Pool {
    const pool = this.#pool as Pool;
    if (this.#protocol !== 'fallback') return pool;
    this.#protocol = 'h1';
    debug('%s does not offer HTTP/2; HTTP/1.1 from now on', this.key);
    this.#retired = pool;
    pool.close().catch(() => {});
    return this.#createPool();
  }

  /**
   * @internal An attempt was given up (`reason`) before undici started it, and undici still holds it
   * (`MAX_HELD_UNSTARTED`). One an HTTP/2 subchannel has not handed to undici yet (its body read ahead, or waiting
   * for the protocol) is let go at once.
   */
  holdUnstarted(attempt: LegacyHandler, reason: Error): void {
    this.#held++;
    sent.get(this)?.giveUp(attempt, reason);
    // Draining, with only given-up attempts left: nothing waits for the pool's close, so it is destroyed (drain()).
    if (this.#state === 'draining') queueMicrotask(() => this.#dropIdle());
  }

  /** @internal undici let go of an attempt counted by {@link Subchannel.holdUnstarted}. */
  releaseUnstarted(): void {
    this.#held--;
  }

  /** @internal Called once per attempt by its handler (headers at `respondedAt`, or none: now; no boxed latency). */
  finishAttempt(statusCode: number, error: Error | undefined, startedAt: number, respondedAt?: number): void {
    const at = respondedAt ?? this.clock.now(); // also the latency estimate's stamp: it reads no clock of its own
    const latencyMs = at - startedAt;
    // A closed subchannel gives its record back once nothing is in flight (attempts on a retired HTTP/2 pool can
    // outlive the close).
    if (--(this.#settings.inFlight.array[this.#slot] as number) === 0 && this.#state === 'closed') this.#releaseSlot();
    const c = this.#liveCounters();
    if (statusCode > 0) {
      c.responses++;
      const cls = Math.floor(statusCode / 100);
      if (cls >= 1 && cls <= 5) c.statusClasses[cls as 1 | 2 | 3 | 4 | 5]++;
      c.latencySumMs += latencyMs;
      this.load.observe(latencyMs, at);
      c.answeredAtMs = at;
    }
    let errorKind: ErrorKind | undefined;
    if (error !== undefined) {
      c.errors++;
      errorKind = classifyError(error);
      c.errorsByKind[errorKind]++;
      if (refusedAtDispatch(error)) queueMicrotask(() => this.#clients?.release(this.origin));
    }
    // An attempt stopped or failed on the caller's side says nothing of the endpoint's latency (issue 15.6), nor
    // does one an HTTP/2 endpoint cut by draining its connection (GOAWAY) or turned away unprocessed.
    const aside = setAside(errorKind);
    if (statusCode === 0 && !aside) this.load.observeFailure(latencyMs, at);
    if (statusCode > 0 || (errorKind !== undefined && !aside)) {
      (this.#latency ??= new LatencyHistogram()).observe(latencyMs);
    }
    const observer = this.#settings.observer;
    if (this.#reporting) {
      observer.onOutcome(this, { statusCode, error, errorKind, latencyMs });
      return;
    }
    // One outcome object per endpoint, made on its first report (an idle endpoint carries none), reused after.
    const outcome = (this.#outcome ??= { statusCode: 0, errorKind: undefined, error: undefined, latencyMs: 0 });
    outcome.statusCode = statusCode;
    outcome.error = error;
    outcome.errorKind = errorKind;
    outcome.latencyMs = latencyMs;
    this.#reporting = true;
    try {
      observer.onOutcome(this, outcome);
    } finally {
      this.#reporting = false;
      outcome.error = undefined; // holds no error alive
    }
  }

  /** @internal The clock, for attempt timing. */
  get clock(): Clock {
    return this.#settings.clock;
  }

  /**
   * Stops taking requests and closes the pool once in-flight requests finish; after `timeoutMs` the pool is
   * destroyed, failing whatever is still running. Idempotent. One that never made its pool has nothing in flight
   * and nothing to close: it goes to `closed` at once (removing 10,000 never picked queues no promise callbacks).
   */
  drain(timeoutMs: number): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const clock = this.#settings.clock;
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer);
    const pool = this.#pool;
    if (pool === undefined) {
      this.#closing = CLOSED;
      this.#setState('closed');
      return CLOSED;
    }
    this.#setState('draining');
    this.#closing = new Promise<void>((resolve) => {
      const timer = clock.setTimeout(() => {
        debug('%s drain timed out after %d ms; destroying', this.key, timeoutMs);
        // Attempts whose HTTP/2 bodies are still being read have not reached the pool: failed as it fails its own.
        sent.get(this)?.abandon(new errors.ClientDestroyedError());
        (this.#pool ?? pool)
          .destroy()
          .then(() => this.#connecting?.destroy())
          .then(resolve, resolve);
      }, timeoutMs);
      const closed = (): void => {
        clock.clearTimeout(timer);
        // A connect the pool no longer waits for would otherwise run to undici's connect timeout.
        void Promise.resolve(this.#connecting?.destroy()).then(resolve, resolve);
      };
      // Nothing of the cluster's runs on it, only attempts given up that undici still holds (waiting for their
      // connections, up to undici's connect timeout): nobody waits for those.
      // HTTP/2 attempts whose bodies are still being read, or that wait for the protocol, are in flight too: sent
      // before the pool closes (the HTTP/1.1 one, when the endpoint picked HTTP/1.1 meanwhile).
      void (sent.get(this)?.settled() ?? Promise.resolve()).then(() => {
        const current = this.#pool ?? pool;
        (this.#idle() ? current.destroy() : current.close()).then(closed, closed);
      });
    }).then(() => this.#setState('closed'));
    return this.#closing;
  }

  /** Nothing of the cluster's runs here, only attempts given up that undici still holds. */
  #idle(): boolean {
    return this.inFlight === 0 && this.#held > 0;
  }

  #dropIdle(): void {
    if (this.#state === 'draining' && this.#idle()) this.#pool?.destroy().catch(() => {});
  }

  /** Destroys the pool now, failing in-flight requests with `reason`. */
  destroy(reason?: Error): Promise<void> {
    if (this.#retryTimer !== undefined) this.#settings.clock.clearTimeout(this.#retryTimer);
    if (this.#state !== 'closed' && this.#state !== 'draining') this.#setState('draining');
    this.#retired?.destroy(reason ?? null).catch(() => {});
    sent.get(this)?.abandon(reason ?? new errors.ClientDestroyedError());
    const pool = this.#pool;
    const destroyed = pool === undefined ? Promise.resolve() : pool.destroy(reason ?? null);
    // After the pool's destroy has marked its clients destroyed: they take the failed connects as nothing.
    const done = Promise.all([destroyed, this.#connecting?.destroy()]).then(() => this.#setState('closed'));
    this.#closing ??= done;
    return done;
  }

  #releaseSlot(): void {
    this.#settings.inFlight.release(this.#slot);
    this.#slot = 0;
  }

  #setState(next: SubchannelState): void {
    const previous = this.#state;
    if (previous === next || previous === 'closed') return;
    this.#state = next;
    if (next === 'closed' && this.inFlight === 0) this.#releaseSlot();
    if ((logging ??= debug.enabled)) debug('%s %s -> %s', this.key, previous, next);
    this.#settings.observer.onStateChange(this, previous);
  }
}
