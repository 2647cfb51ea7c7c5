/**
 * A cluster: one logical service. One resolver, one subchannel pool, one health layer, one balancer; this file wires
 * them together and holds the request path from admission to the subchannel. The parts live apart:
 * - `options.ts`: the options, their defaults and validation;
 * - `admission.ts`: the `maxInFlight` limit and the circuit breaker with its fallback;
 * - `queue.ts`: requests waiting for an endpoint;
 * - `stats.ts` and `diagnostics.ts`: what the cluster reports;
 * - `balancer/balancer.ts`: the pick snapshot, subsets and the pick with exclusion;
 * - `request/balanced-request.ts`: one request's attempts, which reach the cluster through a private `RequestHost`.
 * A request's path from `fetch()` to the socket is in docs/ARCHITECTURE.md.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { Balancer } from '../balancer/balancer.js';
import { createDebug } from '../common/debug.js';
import { joinPath } from '../common/options.js';
import type { Endpoint } from '../common/endpoint.js';
import { ClientClosedError, ProtocolMismatchError, ServiceNotFoundError } from '../common/errors.js';
import type { SidecarlessError } from '../common/errors.js';
import { toLegacyHandler } from '../common/handler.js';
import type { AttemptOutcome } from '../common/outcome.js';
import { EndpointHealth, type HealthEvent, type Subscription } from '../health/endpoint-health.js';
import { EndpointCounters } from '../metrics/endpoint-counters.js';
import type { AttemptBase } from '../request/attempt.js';
import { BalancedRequest, type RequestHost } from '../request/balanced-request.js';
import { DeadlineList } from '../request/deadlines.js';
import { sendableFormData } from '../request/form-data.js';
import { HostHeaders } from '../request/headers.js';
import { hostTlsName, parseOrigin, tlsServerName } from '../request/origin.js';
import type { RequestPolicy } from '../request/policy.js';
import { RetryBudget } from '../request/retry-budget.js';
import type { RouteDecision } from '../routing/router.js';
import type { Subchannel, SubchannelState } from '../subchannel/subchannel.js';
import { SubchannelPool } from '../subchannel/subchannel-pool.js';
import {
  type ClusterLabel,
  publishAttemptEnd,
  publishPick,
  publishRequestEnd,
  publishRequestStart,
  publishResolve,
} from './diagnostics.js';
import { ClusterResolver, rejectedError, Resolution, type UpdateOutcome, UpdateSlicer } from './resolution.js';
import {
  type ClusterOptions,
  isResolvedClusterOptions,
  type ResolvedClusterOptions,
  resolveClusterOptions,
} from './options.js';
import { nextClusterId } from './cluster-id.js';
import { Admission } from './admission.js';
import { type AcquireCallback, WaitQueue } from './queue.js';
import { type ClusterStats, endpointFigures, RequestCounters, ResolverCounters, type StatsOptions } from './stats.js';

const debug = createDebug('cluster');

interface ClusterSettings extends ResolvedClusterOptions {
  readonly name: string;
}

export type { ClusterOptions, Http2Options, TargetOption, TlsOptions } from './options.js';
export type { ClusterStats, EndpointStats, StatsOptions } from './stats.js';

/**
 * The wait queue's callback for `request`. A function of its own: a closure made inside `#acquire` would make V8
 * allocate its captured variables' context on every pick, also for the common one that never waits (issue 14).
 */
function queueCallback(request: BalancedRequest, hedge: boolean): AcquireCallback {
  return (error, subchannel) => request.acquired(error, subchannel, hedge, true);
}

/**
 * One logical service. Built by the client; most users never touch it directly.
 *
 * Construction validates every option and creates the resolver (so a bad target throws here), but starts nothing;
 * {@link Cluster.start} starts resolution.
 */
export class Cluster {
  /** The cluster's name (used in errors, stats and logs). */
  readonly name: string;
  /**
   * A number unique to this cluster in the process. Diagnostics messages carry it (`clusterId`), so subscribers
   * can tell apart clusters of different clients that share a name; {@link ClusterStats.id} reports it.
   */
  readonly id: number = nextClusterId();

  readonly #options: ClusterSettings;
  readonly #policy: RequestPolicy;
  readonly #label: ClusterLabel;
  readonly #resolver: ClusterResolver;
  readonly #health: EndpointHealth<Subchannel>;
  readonly #admission: Admission;
  readonly #pool: SubchannelPool;
  readonly #balancer: Balancer<Subchannel>;
  readonly #queue: WaitQueue;
  /** What each request sees of its cluster (private: the request's callbacks are not the cluster's API). */
  readonly #host: RequestHost;
  readonly #counters = new RequestCounters();
  readonly #resolverCounters = new ResolverCounters();
  readonly #endpointCounts = new EndpointCounters<Subchannel>();
  /**
   * Requests accepted that have not committed or ended, with their deadlines (one timer for all, deadlines.ts):
   * close() and destroy() reach those between attempts. Linked through the requests: no set to grow and rehash.
   */
  readonly #running: DeadlineList;
  readonly #pickFor = (request: BalancedRequest, exclude: ReadonlySet<Subchannel>): Subchannel | Error | undefined =>
    this.#balancer.pick(request.context, request.route, exclude);
  readonly #resolution = new Resolution();
  readonly #updates: UpdateSlicer;
  readonly #hostHeaders = new HostHeaders();
  /** The TLS name of the latest https attempt, handed to the health checks when it changes. */
  #sni: string | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Called each time the last request in flight ends: a discovered cluster's idle time counts from then. */
  onIdle: (() => void) | undefined;

  /**
   * `options` as the user wrote them (validated here, errors named under `optionPath`), or as
   * {@link resolveClusterOptions} already validated them (a discovery template with its target: nothing is read
   * again). A resolver object another cluster has taken is refused, naming `<optionPath>.target`.
   */
  constructor(name: string, options: ClusterOptions | ResolvedClusterOptions, optionPath = '') {
    this.name = name;
    const resolved = isResolvedClusterOptions(options) ? options : resolveClusterOptions(options, optionPath);
    const { clock, random, tls, host } = resolved;
    this.#options = { ...resolved, name };
    this.#policy = resolved.request;
    this.#running = new DeadlineList(clock, this.#policy.timeoutMs);
    this.#label = { cluster: name, clusterId: this.id, scheme: resolved.protocol === 'https:' ? 'https' : 'http' };
    // Before anything that arms a timer (the outlier detector): a refused target leaves nothing behind. What follows
    // is built from validated options and does not throw, so the resolver is not left claimed by a cluster never made.
    this.#resolver = new ClusterResolver(resolved, name, joinPath(optionPath, 'target'));
    const health = new EndpointHealth<Subchannel>(resolved.health, {
      cluster: name,
      clusterId: this.id,
      clock,
      random,
      serviceName: typeof host === 'string' ? host : undefined,
      tls: tls === undefined ? undefined : { ...tls },
      tlsName: resolved.servername ?? hostTlsName(resolved.health.healthCheck?.host ?? host),
      endpoints: resolved,
      onChange: () => this.#rebuild(),
    });
    this.#health = health;
    this.#admission = new Admission(name, this.#policy, this.#counters, clock);
    this.#pool = new SubchannelPool({
      protocol: resolved.protocol,
      poolOptions: resolved.poolOptions,
      http2: resolved.http2,
      clock,
      random,
      connectBackoff: resolved.connectBackoff,
      drainTimeoutMs: resolved.drainTimeoutMs,
      observer: {
        onStateChange: (subchannel, previous) => this.#onStateChange(subchannel, previous),
        onOutcome: (subchannel, outcome) => this.#onOutcome(subchannel, outcome),
      },
      onMembershipChange: ({ added, removed }) => {
        health.updateHosts(this.#pool.subchannels, added, removed);
        this.#rebuild();
      },
    });
    this.#updates = new UpdateSlicer(this.#pool, name);
    health.subscribe((event) => this.#countHealthEvent(event));
    this.#balancer = new Balancer<Subchannel>({
      cluster: name,
      policy: resolved.policy,
      environment: this.#options,
      random,
      zone: resolved.zoneAware,
      panicThreshold: health.panicThreshold,
      eligible: (s) => health.isEligible(s),
      allEligible: () => health.allEligible,
      weightFactor: health.slowStart ? (s) => health.weightFactor(s) : undefined,
      onPanic: (panic) => health.notePanic(panic),
    });
    this.#queue = new WaitQueue({
      cluster: name,
      clock,
      waitMs: resolved.waitForReadyTimeoutMs,
      maxPending: this.#policy.maxPending,
      lastError: () => this.#resolution.state,
      onOverloaded: () => this.#counters.overloaded++,
    });
    this.#host = {
      name,
      policy: this.#policy,
      clock,
      random,
      budget: this.#policy.budget === undefined ? undefined : new RetryBudget(this.#policy.budget, clock),
      endpointHeader: resolved.endpointHeader,
      deadlines: this.#running,
      acquire: (request, exclude, hedge) => this.#acquire(request, exclude, hedge),
      dequeue: (request) => this.#queue.remove(request),
      send: (request, subchannel, body, attempt, hedge) => this.#send(request, subchannel, body, attempt, hedge),
      finished: (request, statusCode, error) => this.#finished(request, statusCode, error),
    };
  }

  /** Starts resolution. Called once by the client. */
  start(): void {
    this.#resolver.start({
      onUpdate: (endpoints, notFound) => this.#onResolverUpdate(endpoints, notFound),
      onError: (error) => this.#onResolverError(error),
    });
  }

  #onResolverUpdate(endpoints: readonly Endpoint[], notFound?: ServiceNotFoundError): void {
    if (this.#closed) return;
    // A large set comes into force later (resolution.ts): a resolver error reported meanwhile stays the latest state.
    const errors = this.#resolverCounters.errors;
    this.#updates.push(endpoints, (outcome) => this.#applyUpdate(outcome, notFound, errors));
  }

  /** A set is ready to come into force (at once for a small one, after its preparation for a large one). */
  #applyUpdate(outcome: UpdateOutcome, notFound: ServiceNotFoundError | undefined, errors: number): void {
    this.#resolution.markResolved();
    if (!('set' in outcome)) return this.#onResolverError(outcome.error);
    // Custom resolvers and registries may hand over anything: an entry no connection could be made to (or a repeated
    // key) is skipped, counted and reported, and the rest of the set is used. One bad registry entry must not keep
    // the good ones out of service, nor break the pool.
    const late = this.#resolverCounters.errors !== errors;
    const { set } = outcome;
    const { rejected } = set;
    if (rejected.length > 0) {
      this.#resolverCounters.skipped += rejected.length;
      this.#onResolverError(rejectedError(this.name, rejected));
      // Nothing usable: keep the last known good set (and the error as the latest state).
      if (set.endpoints.length === 0) return;
    }
    this.#resolverCounters.updates++;
    const count = set.endpoints.length;
    debug('%s: resolver delivered %d endpoints', this.name, count);
    if (!late) this.#resolution.noteSet(count, this.name, notFound);
    outcome.commit();
    publishResolve(this.#label, count, undefined);
    this.#resolution.setCount(count);
  }

  #onResolverError(error: SidecarlessError): void {
    if (this.#closed) return;
    this.#resolverCounters.errors++;
    this.#resolverCounters.lastError = error;
    this.#resolution.state = error;
    debug('%s: resolver error (%s); keeping %d endpoints', this.name, error.message, this.#pool.subchannels.length);
    publishResolve(this.#label, this.#pool.subchannels.length, error);
  }

  /** True while requests are in flight or waiting for an endpoint (accepted and not yet ended). */
  get busy(): boolean {
    return this.#counters.inFlight > 0;
  }

  /** True once the resolver has delivered its first endpoint set (an empty one counts). */
  get resolved(): boolean {
    return this.#resolution.resolved;
  }

  /** The resolver's latest state when it is not a healthy set (see `SIDECARLESS_NO_ENDPOINTS`). */
  get resolverState(): SidecarlessError | undefined {
    return this.#resolution.state;
  }

  /**
   * Resolves once the resolver's latest set has at least `min` endpoints (at once if it has). The returned `cancel`
   * forgets the wait (the promise then never settles).
   */
  whenEndpoints(min: number): { promise: Promise<void>; cancel: () => void } {
    return this.#resolution.whenEndpoints(min, this.#pool.subchannels.length);
  }

  /** Resolves when the resolver has delivered its first set (at once if it has); `cancel` forgets the wait. */
  whenResolved(): { promise: Promise<void>; cancel: () => void } {
    return this.#resolution.whenResolved();
  }

  #onStateChange(subchannel: Subchannel, previous: SubchannelState): void {
    const wasUsable = previous === 'idle' || previous === 'ready';
    if (wasUsable !== subchannel.usable && subchannel.state !== 'draining' && subchannel.state !== 'closed') {
      this.#rebuild();
    }
    if (subchannel.state === 'transient-failure') this.#resolver.refresh();
  }

  #onOutcome(subchannel: Subchannel, outcome: AttemptOutcome): void {
    this.#health.record(subchannel, outcome);
    publishAttemptEnd(this.#label, subchannel.key, outcome);
  }

  // Health events name the endpoint, not the subchannel: ejections are rare, so a scan of the set is fine.
  #countHealthEvent(event: HealthEvent): void {
    if (event.type !== 'eject' && event.type !== 'return') return;
    const subchannel = this.#pool.subchannels.find((s) => s.key === event.endpoint.key);
    if (subchannel === undefined) return;
    const counts = this.#endpointCounts.of(subchannel);
    if (event.type === 'eject') counts.timesEjected++;
    else counts.returns++;
  }

  /** Membership, usability, eligibility or weights changed: a new snapshot, then the waiting requests pick again. */
  #rebuild(): void {
    if (this.#closed) return;
    this.#balancer.rebuild(this.#pool.subchannels);
    if (!this.#balancer.empty) this.#queue.flush(this.#pickFor);
  }

  /**
   * Dispatches one request (undici `Dispatcher.dispatch` semantics). Errors reach the handler's `onError`, never
   * throw. Returns true when accepted.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, route?: RouteDecision): boolean {
    const user = toLegacyHandler(handler);
    if (this.#closed) {
      user.onError?.(new ClientClosedError());
      return false;
    }
    let authority: string;
    try {
      const origin = parseOrigin(options.origin);
      if (origin.protocol !== this.#options.protocol) {
        throw new ProtocolMismatchError(
          this.#options.protocol === 'http:'
            ? `Cluster "${this.name}" speaks plain HTTP; a ${origin.protocol} request is refused rather than sent unencrypted`
            : `Cluster "${this.name}" speaks TLS; use an https: URL (got ${origin.protocol})`,
        );
      }
      authority = origin.authority;
    } catch (err) {
      user.onError?.(err as Error);
      return false;
    }
    const sent = sendableFormData(options);
    const refused = sent instanceof Error ? sent : this.#admission.refuse(this.#queue.size);
    if (refused !== undefined) {
      user.onError?.(refused);
      return false;
    }
    const request = new BalancedRequest(sent as Dispatcher.DispatchOptions, user, authority, this.#host, route);
    // Counted before start(): a caller that aborts at once ends the request inside it, and that end is counted.
    this.#counters.inFlight++;
    this.#counters.total++;
    // On the cluster's list of running requests, whose one timer is every request's deadline (from now, before the
    // breaker, so a fallback is bounded by it too).
    this.#running.add(request);
    publishRequestStart(this.#label, request.context);
    if (!request.start()) {
      if (!request.done) request.fail(request.abortReason ?? new Error('aborted'));
      return true;
    }
    this.#admission.run(request);
    return true;
  }

  /**
   * Picks a subchannel, avoiding `exclude` when another is available; waits when none is usable. Answers through
   * `request.acquired`; only a request that waits gets a callback (a closure) for the queue.
   */
  #acquire(request: BalancedRequest, exclude: ReadonlySet<Subchannel>, hedge: boolean): void {
    if (this.#closed) {
      request.acquired(new ClientClosedError(), undefined, hedge);
      return;
    }
    const picked = this.#balancer.pick(request.context, request.route, exclude);
    if (picked instanceof Error) {
      request.acquired(picked, undefined, hedge);
    } else if (picked !== undefined) {
      request.acquired(undefined, picked, hedge);
    } else {
      this.#queue.enqueue(request, exclude, queueCallback(request, hedge), hedge);
    }
  }

  /** Sends one attempt of `request` to `subchannel`. */
  #send(request: BalancedRequest, subchannel: Subchannel, body: unknown, attempt: AttemptBase, hedge: boolean): void {
    if (request.attempts > 1) {
      this.#counters.extraAttempts++;
      const counts = this.#endpointCounts.of(subchannel);
      if (hedge) {
        this.#counters.hedges++;
        counts.hedges++;
      } else {
        counts.retries++;
      }
    }
    const { options } = request;
    const host = this.#options.host;
    const hostValue = host === undefined ? request.authority : host;
    publishPick(this.#label, subchannel.key, request.attempts);
    // The Host is the endpoint's own address for a request without one (undici's default, what `host: false` asks
    // for), or set by the subchannel's clients (subchannel/host-header.ts) when it says so for `hostValue`: then the
    // options need no Host header of their own. A caller's Host header wins either way; never the TLS name, though.
    const pooledHost = hostValue === false || subchannel.sendsHost(hostValue);
    const { protocol, servername: configured } = this.#options;
    const servername = protocol === 'https:' ? tlsServerName(configured, options, request.authority) : undefined;
    if (servername !== undefined && servername !== this.#sni) this.#health.noteTlsName((this.#sni = servername));
    // The common case takes the caller's options as they are (issue 14; undici reads the pool's origin, not the
    // request's). A copy for a body replaced for a retry, a Host or TLS name to set, and undici's top-level
    // `request(url, { dispatcher })`: its options (a spread of the caller's) get a hidden class of their own on nearly
    // every request, which costs undici's Request more than the copy into one shape below.
    const { dispatcher } = options as { dispatcher?: unknown };
    if (pooledHost && servername === undefined && body === options.body && dispatcher === undefined) {
      subchannel.dispatchAttempt(options, attempt);
      return;
    }
    // Object.assign, then plain stores: a spread would give nearly every request its own hidden class again.
    const opts: Dispatcher.DispatchOptions & { servername?: string } = Object.assign({}, options);
    opts.origin = subchannel.origin;
    if (body !== options.body) opts.body = body as NonNullable<Dispatcher.DispatchOptions['body']>;
    if (!pooledHost) opts.headers = this.#hostHeaders.add(options.headers, hostValue);
    if (servername !== undefined) opts.servername = servername;
    subchannel.dispatchAttempt(opts, attempt);
  }

  /** A request ended (the caller has seen its end). */
  #finished(request: BalancedRequest, statusCode: number, error: Error | undefined): void {
    const durationMs = (request.headersAt ?? this.#options.clock.now()) - request.startedAt;
    this.#counters.ended(statusCode, error, durationMs, request.callerFault);
    publishRequestEnd(this.#label, request.context, statusCode, error, durationMs, request.attempts);
    if (this.#counters.inFlight === 0) this.onIdle?.();
  }

  /**
   * Subscribes to endpoint health events: ejections and returns (outlier detection), and health-check transitions.
   * Listeners run synchronously; one that throws is logged and skipped.
   */
  onHealthEvent(listener: (event: HealthEvent) => void): Subscription {
    return this.#health.subscribe(listener);
  }

  /** The current active endpoints, in resolver order. */
  get endpoints(): readonly Endpoint[] {
    return this.#pool.subchannels.map((s) => s.endpoint);
  }

  /**
   * A point-in-time snapshot of endpoints, states and counters; without the endpoints' figures (O(1) in their
   * number) when `options.endpoints` is false. Throws `SIDECARLESS_INVALID_OPTION` for bad options.
   */
  stats(options?: StatsOptions): ClusterStats {
    const health = this.#health;
    return {
      name: this.name,
      id: this.id,
      ...endpointFigures(this.#pool.subchannels, this.#endpointCounts, health, options),
      draining: this.#pool.draining.size,
      pending: this.#queue.size,
      inFlight: this.#counters.inFlight,
      requests: this.#counters.snapshot(),
      breaker: this.#admission.breakerState,
      panic: health.panic,
      ejections: health.ejections,
      returns: health.returns,
      resolver: this.#resolverCounters.snapshot(),
    };
  }

  /**
   * Stops resolution, fails waiting requests with `SIDECARLESS_CLIENT_CLOSED`, lets in-flight requests finish
   * (bounded by `drainTimeoutMs`) and closes every connection. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#updates.cancel();
      this.#balancer.clear();
      this.#closing = (async () => {
        this.#queue.failAll(new ClientClosedError());
        // Those between attempts (a backoff, a Retry-After wait) fail now; those with an attempt in flight finish it.
        for (const request of this.#running.entries()) (request as BalancedRequest).clientClosing();
        this.#running.close();
        this.#admission.shutdown();
        await this.#resolver.close(this.#options.clock, this.#options.drainTimeoutMs);
        await this.#health.close();
        await this.#pool.close();
      })();
    }
    return this.#closing;
  }

  /** Like {@link Cluster.close}, but fails in-flight requests at once (with `reason` when given). */
  async destroy(reason?: Error): Promise<void> {
    this.#closed = true;
    this.#updates.cancel();
    this.#balancer.clear();
    const error = reason ?? new ClientClosedError();
    this.#queue.failAll(error);
    // Including those between attempts, whose backoff timers would otherwise hold the process.
    for (const request of this.#running.entries()) (request as BalancedRequest).fail(error);
    this.#running.close();
    this.#admission.shutdown();
    await this.#resolver.close(this.#options.clock, this.#options.drainTimeoutMs);
    await this.#health.close();
    await this.#pool.destroy(reason);
  }
}
