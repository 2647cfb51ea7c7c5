/**
 * A cluster: one logical service. One resolver, one subchannel pool, one picker policy; the request path from
 * pick to subchannel.
 *
 * @module
 */
import type { Dispatcher, Pool } from 'undici';
import { createEndpointSet, type Endpoint, type EndpointInit } from '../common/endpoint.js';
import {
  AllEjectedError,
  CircuitOpenError,
  ClientClosedError,
  EmptySubsetError,
  InvalidOptionError,
  isSidecarlessError,
  NoEndpointsError,
  OverloadedError,
  ProtocolMismatchError,
  ResolverError,
  type SidecarlessError,
} from '../common/errors.js';
import { type Disposable, EndpointHealth, type HealthEvent, type HealthOptions } from '../health/endpoint-health.js';
import { createDebug } from '../common/debug.js';
import { toLegacyHandler } from '../common/handler.js';
import {
  type AttemptEndMessage,
  channels,
  type PickMessage,
  type RequestEndMessage,
  type RequestStartMessage,
  type ResolveMessage,
} from '../metrics/events.js';
import { EndpointCounters } from '../metrics/endpoint-counters.js';
import { type HistogramSnapshot, LatencyHistogram } from '../metrics/histogram.js';
import { createPickerRegistry } from '../pickers/registry.js';
import type { ConfiguredPolicy, PickerOption, PickerRegistry } from '../pickers/picker.js';
import type { Attempt } from '../request/attempt.js';
import { BalancedRequest } from '../request/balanced-request.js';
import { Breaker, type BreakerState } from '../request/breaker.js';
import { withHostHeader } from '../request/headers.js';
import { parseOrigin } from '../request/origin.js';
import { type RequestPolicy, type RequestPolicyOptions, resolveRequestPolicy } from '../request/policy.js';
import { RetryBudget } from '../request/retry-budget.js';
import { createResolverRegistry } from '../resolvers/registry.js';
import type { Resolver, ResolverRegistry } from '../resolvers/resolver.js';
import { StaticResolver } from '../resolvers/static.js';
import type { RouteDecision, SubsetSelector } from '../routing/router.js';
import { buildSnapshot, EMPTY, pickFrom, type Snapshot, type ZoneAwareOptions } from '../balancer/snapshot.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../common/runtime.js';
import { type BackoffOptions, type ResolvedBackoffOptions, resolveBackoffOptions } from '../common/backoff.js';
import type { AttemptOutcome, ErrorKind } from '../common/outcome.js';
import type { Subchannel, SubchannelState } from '../subchannel/subchannel.js';
import { SubchannelPool } from '../subchannel/subchannel-pool.js';

const debug = createDebug('cluster');

/** Where a cluster's endpoints come from. */
export type TargetOption = string | Resolver | ReadonlyArray<string | EndpointInit | Endpoint>;

/**
 * TLS to the endpoints. Certificates are verified by default, against the logical service name (the request
 * URL's host, which is also sent as SNI), unless `servername` says otherwise.
 */
export interface TlsOptions {
  /** Trusted CA certificates (PEM); the system's when omitted. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Client certificate (PEM), for mutual TLS. */
  readonly cert?: string | Buffer;
  /** Client private key (PEM), for mutual TLS. */
  readonly key?: string | Buffer;
  /** Verify the endpoint's certificate. Turning this off is for tests only. @defaultValue true */
  readonly rejectUnauthorized?: boolean;
  /** SNI and certificate name to use instead of the request URL's host. */
  readonly servername?: string;
}

/** Options of one cluster (one logical service). */
export interface ClusterOptions extends RequestPolicyOptions, HealthOptions {
  /**
   * Where the endpoints come from: a target string parsed by the resolver registry (`static://h1:p1,h2:p2`), a
   * {@link Resolver} object (the cluster takes ownership and closes it), or a fixed list of `host:port` strings or
   * endpoint objects.
   */
  readonly target: TargetOption;
  /** The load-balancing policy: a registered name or `{ name, ...settings }`. @defaultValue 'round-robin' */
  readonly picker?: PickerOption | undefined;
  /**
   * The `Host` header sent to endpoints. By default the request URL's authority (the logical service name, e.g.
   * `users` for `http://users/list`); a string sends that value; `false` sends the endpoint's own `host:port`.
   * A Host header the caller set explicitly always wins.
   */
  readonly host?: string | false | undefined;
  /**
   * Names a response header that sidecarless adds to every response an endpoint produced, holding that endpoint's
   * key (`host:port`): which endpoint answered, for debugging, tests and affinity checks. With retries or hedging it
   * is the endpoint whose response the caller got. Responses sidecarless makes itself (a breaker fallback) do not
   * carry it. Off by default: it tells callers your topology. An RFC 9110 token, e.g. `x-sidecarless-endpoint`.
   * @defaultValue none
   */
  readonly endpointHeader?: string | undefined;
  /**
   * How long a request waits for an endpoint (before the first resolution, or while the set is empty) before it
   * fails with `SIDECARLESS_NO_ENDPOINTS`, ms. 0 fails at once.
   * @defaultValue 10000
   */
  readonly waitForReadyTimeout?: number | undefined;
  /**
   * How long a removed endpoint may take to finish its in-flight requests before its connections are destroyed, ms.
   * @defaultValue 30000
   */
  readonly drainTimeout?: number | undefined;
  /**
   * undici `Pool` options applied to every endpoint's pool (connections, pipelining, keep-alive, timeouts...).
   * `factory` is not allowed: the cluster owns pool creation.
   */
  readonly pool?: Omit<Pool.Options, 'factory'> | undefined;
  /**
   * Speak TLS to the endpoints (`https:` request URLs); `true` for the defaults. Plain HTTP when omitted, and then
   * `https:` URLs are refused with `SIDECARLESS_PROTOCOL_MISMATCH` rather than sent in clear text.
   */
  readonly tls?: TlsOptions | boolean | undefined;
  /**
   * Prefer endpoints in the local zone while it has enough healthy capacity for its callers, spilling the rest over
   * to other zones by their spare capacity (Envoy's zone aware routing, applied within each priority level; see
   * {@link ZoneAwareOptions}). Off within a level in panic. Off unless set.
   */
  readonly zoneAware?: ZoneAwareOptions | undefined;
  /** Backoff after an endpoint refuses connections. Defaults: 1 s, x1.6, jitter 0.2, max 120 s. */
  readonly connectBackoff?: BackoffOptions | undefined;
  /** Resolver registry for target strings. @defaultValue createResolverRegistry() */
  readonly resolvers?: ResolverRegistry | undefined;
  /** Picker registry for policy names. @defaultValue createPickerRegistry() */
  readonly pickers?: PickerRegistry | undefined;
  /** Clock for every timer and measurement (tests inject a fake). @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for every random choice (tests inject a seeded one, e.g. {@link seededRandom}). @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
}

/** Per-endpoint figures in a {@link ClusterStats} snapshot. */
export interface EndpointStats {
  /** The endpoint's stable key, `host:port` (`[v6]:port` for IPv6). */
  readonly key: string;
  /** Connectivity state of the endpoint's connection pool. */
  readonly state: SubchannelState;
  /** The endpoint's configured weight, before slow start (see `effectiveWeight`). */
  readonly weight: number;
  /** Attempts sent to this endpoint and not yet finished. */
  readonly inFlight: number;
  /** Attempts dispatched (first tries, retries and hedges) since the endpoint joined the set. */
  readonly attempts: number;
  /** Attempts that received response headers, whatever the status. */
  readonly responses: number;
  /** Responses by status class: `{ '2xx': n, ... }`. */
  readonly statusClasses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
  /** Attempts that ended in an error, before or after response headers (caller aborts included). */
  readonly errors: number;
  /** Attempt errors by kind. */
  readonly errorsByKind: Readonly<Record<ErrorKind, number>>;
  /** Failed connection attempts (one per failed connect, not per request). */
  readonly connectFailures: number;
  /** Of `attempts`, those that retried a failure (of this endpoint or another). */
  readonly retries: number;
  /** Of `attempts`, the hedged ones. */
  readonly hedges: number;
  /** Outlier ejections of this endpoint since it joined the set. */
  readonly timesEjected: number;
  /** Returns of this endpoint from ejection since it joined the set. */
  readonly returns: number;
  /** Ejected by outlier detection. */
  readonly ejected: boolean;
  /** Passing active health checks (always true without them). */
  readonly healthy: boolean;
  /** The weight pickers use: the endpoint's weight times its slow-start factor. */
  readonly effectiveWeight: number;
  /** Mean time to response headers, ms (0 before the first response). */
  readonly meanLatencyMs: number;
  /** Attempt latency (to headers, or to the error), ms. */
  readonly latency: HistogramSnapshot;
}

/** A point-in-time snapshot of a cluster. */
export interface ClusterStats {
  /** The cluster's name. */
  readonly name: string;
  /** The cluster's {@link Cluster.id}, as in diagnostics messages. */
  readonly id: number;
  /** Active endpoints, in resolver order. */
  readonly endpoints: readonly EndpointStats[];
  /** Removed endpoints still finishing in-flight requests. */
  readonly draining: number;
  /** Requests waiting for an endpoint. */
  readonly pending: number;
  /** Requests accepted and not yet ended. */
  readonly inFlight: number;
  /** Request-layer counters since the cluster started. */
  readonly requests: {
    /** Requests accepted; those refused at dispatch (closed client, wrong protocol, `maxInFlight`) are not counted. */
    readonly total: number;
    /** Attempts beyond the first (retries and hedges). */
    readonly extraAttempts: number;
    /** Attempts that retried a failure. */
    readonly retries: number;
    /** Hedged attempts. */
    readonly hedges: number;
    /** Requests refused by the `maxInFlight` or `maxPending` limit (`SIDECARLESS_OVERLOADED`). */
    readonly overloaded: number;
    /** Requests refused by the open circuit breaker, whether or not a fallback answered them. */
    readonly circuitOpen: number;
    /** Responses the callers received, by status class. */
    readonly statusClasses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
    /** Failed requests by error code (`ECONNREFUSED`, `SIDECARLESS_DEADLINE_EXCEEDED`, ...). */
    readonly errors: Readonly<Record<string, number>>;
    /** Time to response headers across all attempts, ms. */
    readonly latency: HistogramSnapshot;
  };
  /** Circuit breaker state, when a breaker is configured. */
  readonly breaker: BreakerState | undefined;
  /**
   * True while a priority level that receives traffic is in panic: too few of its endpoints are eligible (and the
   * levels together are under 100 % available), so its traffic goes to all of them (panic threshold).
   */
  readonly panic: boolean;
  /** Outlier ejections since the cluster started. */
  readonly ejections: number;
  /** Returns from ejection since the cluster started. */
  readonly returns: number;
  /** Resolver counters since the cluster started. */
  readonly resolver: {
    /** Endpoint sets accepted from the resolver. */
    readonly updates: number;
    /** Resolver errors, including endpoint sets rejected as invalid. */
    readonly errors: number;
    /** Message of the most recent resolver error, kept after later successful updates; `undefined` if none yet. */
    readonly lastError: string | undefined;
  };
}

const MAX_TIMER_MS = 2 ** 31 - 1;
// RFC 9110 token: a header field name.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function timeoutOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(name, `expected a number of ms from 0 to ${MAX_TIMER_MS}, got ${String(value)}`);
  }
  return value;
}

function resolveTls(tls: ClusterOptions['tls']): (TlsOptions & { rejectUnauthorized: boolean }) | undefined {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return { rejectUnauthorized: true };
  if (typeof tls !== 'object' || tls === null) throw new InvalidOptionError('tls', 'expected true, false or an object');
  for (const key of Object.keys(tls)) {
    if (!['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'].includes(key)) {
      throw new InvalidOptionError(
        `tls.${key}`,
        'unknown setting (allowed: ca, cert, key, rejectUnauthorized, servername)',
      );
    }
  }
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError('tls.rejectUnauthorized', 'expected true or false');
  }
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername.length === 0)) {
    throw new InvalidOptionError('tls.servername', 'expected a non-empty host name');
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InvalidOptionError(tls.cert === undefined ? 'tls.cert' : 'tls.key', 'cert and key go together');
  }
  return { ...tls, rejectUnauthorized: tls.rejectUnauthorized ?? true };
}

function classes(counts: readonly number[]): Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number> {
  return {
    '1xx': counts[1] ?? 0,
    '2xx': counts[2] ?? 0,
    '3xx': counts[3] ?? 0,
    '4xx': counts[4] ?? 0,
    '5xx': counts[5] ?? 0,
  };
}

/** A stable label for an error: its `code` when it has a string one, else its name. */
function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof cause === 'string' ? cause : error.name;
}

function resolveZoneAware(raw: unknown): ZoneAwareOptions | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null) throw new InvalidOptionError('zoneAware', 'expected { localZone }');
  const { localZone, minClusterSize, callers, ...rest } = raw as Record<string, unknown>;
  for (const key of Object.keys(rest)) {
    throw new InvalidOptionError(`zoneAware.${key}`, 'unknown setting (allowed: localZone, minClusterSize, callers)');
  }
  if (typeof localZone !== 'string' || localZone.length === 0) {
    throw new InvalidOptionError('zoneAware.localZone', 'expected a non-empty zone name');
  }
  if (
    minClusterSize !== undefined &&
    (typeof minClusterSize !== 'number' || !Number.isInteger(minClusterSize) || minClusterSize < 1)
  ) {
    throw new InvalidOptionError('zoneAware.minClusterSize', 'expected an integer >= 1');
  }
  if (callers === undefined) return { localZone, minClusterSize: (minClusterSize as number | undefined) ?? 6 };
  if (typeof callers !== 'object' || callers === null || Array.isArray(callers)) {
    throw new InvalidOptionError('zoneAware.callers', 'expected an object of zone names to caller counts');
  }
  for (const [zone, n] of Object.entries(callers)) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
      throw new InvalidOptionError(`zoneAware.callers.${zone}`, 'expected a finite number >= 0');
    }
  }
  const local = (callers as Record<string, unknown>)[localZone];
  if (typeof local !== 'number' || !(local > 0)) {
    throw new InvalidOptionError(`zoneAware.callers.${localZone}`, 'the local zone must have callers (a number > 0)');
  }
  return {
    localZone,
    minClusterSize: (minClusterSize as number | undefined) ?? 6,
    callers: Object.freeze({ ...(callers as Record<string, number>) }),
  };
}

const isUsable = (s: Subchannel): boolean => s.usable;
const always = (): boolean => true;

function isResolver(value: unknown): value is Resolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Resolver).start === 'function' &&
    typeof (value as Resolver).close === 'function'
  );
}

interface ResolvedClusterOptions {
  readonly name: string;
  readonly protocol: 'http:' | 'https:';
  readonly servername: string | undefined;
  readonly policy: ConfiguredPolicy;
  readonly host: string | false | undefined;
  readonly endpointHeader: Buffer | undefined;
  readonly waitForReadyTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly poolOptions: Pool.Options;
  readonly connectBackoff: ResolvedBackoffOptions;
  readonly zoneAware: ZoneAwareOptions | undefined;
  readonly clock: Clock;
  readonly random: RandomSource;
}

/**
 * One logical service. Built by the client; most users never touch it directly.
 *
 * Construction validates every option and creates the resolver (so a bad target throws here), but starts nothing;
 * {@link Cluster.start} starts resolution.
 */
export class Cluster {
  static #nextId = 1;
  /** The cluster's name (used in errors, stats and logs). */
  readonly name: string;
  /**
   * A number unique to this cluster in the process. Diagnostics messages carry it (`clusterId`), so subscribers
   * can tell apart clusters of different clients that share a name; {@link ClusterStats.id} reports it.
   */
  readonly id: number = Cluster.#nextId++;
  /** @internal The validated request policy. */
  readonly policy: RequestPolicy;
  /** @internal The retry budget, when on. */
  readonly budget: RetryBudget | undefined;
  readonly #breaker: Breaker | undefined;
  readonly #health: EndpointHealth<Subchannel>;
  #inFlight = 0;
  #total = 0;
  #hedges = 0;
  readonly #statusClasses: [number, number, number, number, number, number] = [0, 0, 0, 0, 0, 0];
  readonly #errorsByCode = new Map<string, number>();
  readonly #latency = new LatencyHistogram();
  #extraAttempts = 0;
  #overloaded = 0;
  #circuitOpen = 0;
  readonly #endpointCounts = new EndpointCounters<Subchannel>();

  readonly #options: ResolvedClusterOptions;
  readonly #resolver: Resolver;
  readonly #pool: SubchannelPool;
  #snapshot: Snapshot<Subchannel> = EMPTY;
  #population: readonly Subchannel[] = [];
  // Keyed by the route table's frozen selector objects, so a pick looks its subset up without building a key.
  #subsets = new WeakMap<SubsetSelector, Snapshot<Subchannel>>();
  readonly #eligible = (s: Subchannel): boolean => this.#health.isEligible(s);
  readonly #pending = new Set<BalancedRequest>();
  /** Requests accepted and not yet ended: close() and destroy() reach those between attempts. */
  readonly #requests = new Set<BalancedRequest>();
  /** The endpoints each picker of the current snapshots balances over (see #pick). */
  readonly #groups = new WeakMap<object, readonly Subchannel[]>();
  static readonly #noGroup: readonly Subchannel[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  #resolverUpdates = 0;
  #resolverErrors = 0;
  #lastResolverError: SidecarlessError | undefined;

  constructor(name: string, options: ClusterOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'expected an object');
    this.name = name;
    const clock = options.clock ?? systemClock;
    const random = options.random ?? systemRandom;
    if (typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function') {
      throw new InvalidOptionError('clock', 'expected { now, setTimeout, clearTimeout }');
    }
    if (typeof random !== 'function') throw new InvalidOptionError('random', 'expected a function returning [0, 1)');
    const pickers = options.pickers ?? createPickerRegistry();
    const host = options.host;
    if (host !== undefined && host !== false && (typeof host !== 'string' || host.length === 0 || /\s/.test(host))) {
      throw new InvalidOptionError('host', 'expected a non-empty header value without whitespace, or false');
    }
    const endpointHeader = options.endpointHeader;
    if (endpointHeader !== undefined && (typeof endpointHeader !== 'string' || !HEADER_NAME.test(endpointHeader))) {
      throw new InvalidOptionError(
        'endpointHeader',
        `expected a header name (an RFC 9110 token), got ${String(endpointHeader)}`,
      );
    }
    const pool = options.pool ?? {};
    if (typeof pool !== 'object' || pool === null) throw new InvalidOptionError('pool', 'expected undici Pool options');
    if ('factory' in pool) throw new InvalidOptionError('pool.factory', 'the cluster creates its own pools');
    const tls = resolveTls(options.tls);
    this.policy = resolveRequestPolicy(options);
    this.#options = {
      name,
      protocol: tls === undefined ? 'http:' : 'https:',
      servername: tls?.servername,
      policy: pickers.configure(options.picker ?? 'round-robin'),
      host,
      endpointHeader: endpointHeader === undefined ? undefined : Buffer.from(endpointHeader.toLowerCase(), 'latin1'),
      waitForReadyTimeoutMs: timeoutOption(options.waitForReadyTimeout, 'waitForReadyTimeout', 10_000),
      drainTimeoutMs: timeoutOption(options.drainTimeout, 'drainTimeout', 30_000),
      poolOptions: (tls === undefined
        ? pool
        : { ...pool, connect: { ...(pool.connect as object), ...tls } }) as Pool.Options,
      connectBackoff: resolveBackoffOptions(options.connectBackoff, 'connectBackoff'),
      zoneAware: resolveZoneAware(options.zoneAware),
      clock,
      random,
    };
    this.budget = this.policy.budget === undefined ? undefined : new RetryBudget(this.policy.budget, clock);
    this.#resolver = this.#createResolver(options);
    this.#health = new EndpointHealth<Subchannel>(options, {
      cluster: name,
      clusterId: this.id,
      clock,
      random,
      serviceName: typeof host === 'string' ? host : undefined,
      tls: tls === undefined ? undefined : { ...tls },
      onChange: () => this.#rebuildPicker(),
    });
    this.#breaker = this.policy.breaker === undefined ? undefined : new Breaker(this.policy.breaker, name, clock);
    this.#pool = new SubchannelPool({
      protocol: this.#options.protocol,
      poolOptions: this.#options.poolOptions,
      clock,
      random,
      connectBackoff: this.#options.connectBackoff,
      drainTimeoutMs: this.#options.drainTimeoutMs,
      observer: {
        onStateChange: (subchannel, previous) => this.#onStateChange(subchannel, previous),
        onOutcome: (subchannel, outcome) => this.#onOutcome(subchannel, outcome),
      },
      onMembershipChange: () => {
        this.#health.setHosts(this.#pool.subchannels);
        this.#rebuildPicker();
      },
    });
    this.#health.subscribe((event) => this.#countHealthEvent(event));
  }

  #onOutcome(subchannel: Subchannel, outcome: AttemptOutcome): void {
    this.#health.record(subchannel, outcome);
    if (channels.attemptEnd.hasSubscribers) {
      const message: AttemptEndMessage = {
        cluster: this.name,
        clusterId: this.id,
        endpoint: subchannel.key,
        statusCode: outcome.statusCode,
        errorKind: outcome.errorKind,
        durationMs: outcome.latencyMs,
      };
      channels.attemptEnd.publish(message);
    }
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

  #createResolver(options: ClusterOptions): Resolver {
    const { target } = options;
    if (typeof target === 'string') {
      const registry = options.resolvers ?? createResolverRegistry();
      return registry.create(target, { clock: this.#options.clock, random: this.#options.random, cluster: this.name });
    }
    if (isResolver(target)) return target;
    if (Array.isArray(target)) return new StaticResolver(target);
    throw new InvalidOptionError('target', 'expected a target string, a Resolver, or an array of endpoints');
  }

  /** Starts resolution. Called once by the client. */
  start(): void {
    this.#resolver.start({
      onUpdate: (endpoints) => this.#onResolverUpdate(endpoints),
      onError: (error) => this.#onResolverError(error),
    });
  }

  #onResolverUpdate(endpoints: readonly Endpoint[]): void {
    if (this.#closed) return;
    this.#markResolved();
    let set: Endpoint[];
    try {
      // Custom resolvers may hand over plain objects or duplicates; validate so one bad update cannot break the pool.
      set = createEndpointSet(endpoints);
    } catch (err) {
      this.#onResolverError(
        new ResolverError(`Resolver for cluster "${this.name}" delivered an invalid endpoint set`, { cause: err }),
      );
      return;
    }
    this.#resolverUpdates++;
    debug('%s: resolver delivered %d endpoints', this.name, set.length);
    this.#pool.update(set);
    if (channels.resolve.hasSubscribers) {
      channels.resolve.publish({
        cluster: this.name,
        clusterId: this.id,
        endpoints: set.length,
        error: undefined,
      } satisfies ResolveMessage);
    }
  }

  #onResolverError(error: SidecarlessError): void {
    if (this.#closed) return;
    this.#resolverErrors++;
    this.#lastResolverError = isSidecarlessError(error) ? error : new ResolverError(String(error), { cause: error });
    debug('%s: resolver error (%s); keeping %d endpoints', this.name, error.message, this.#pool.subchannels.length);
    if (channels.resolve.hasSubscribers) {
      const message: ResolveMessage = {
        cluster: this.name,
        clusterId: this.id,
        endpoints: this.#pool.subchannels.length,
        error,
      };
      channels.resolve.publish(message);
    }
  }

  #onStateChange(subchannel: Subchannel, previous: SubchannelState): void {
    const wasUsable = previous === 'idle' || previous === 'ready';
    if (wasUsable !== subchannel.usable && subchannel.state !== 'draining' && subchannel.state !== 'closed') {
      this.#rebuildPicker();
    }
    if (subchannel.state === 'transient-failure') this.#resolver.refresh?.();
  }

  #rebuildPicker(): void {
    if (this.#closed) return;
    this.#population = this.#pool.subchannels;
    this.#subsets = new WeakMap();
    this.#snapshot = this.#buildSnapshot(this.#population, true);
    this.#flushPending();
  }

  #buildSnapshot(population: readonly Subchannel[], main: boolean): Snapshot<Subchannel> {
    for (const subchannel of population) subchannel.weightFactor = this.#health.weightFactor(subchannel);
    const { policy, config } = this.#options.policy;
    const snapshot = buildSnapshot({
      population,
      // Every endpoint failing to connect: keep sending (and let callers see the real connection error) rather
      // than parking requests behind backoff timers. The one deliberate exception to "no policy picks a non-ready
      // endpoint": it also finds an endpoint that comes back before its backoff expires. Both the rule and this
      // exception are tested per policy in test/integration/picker-eligibility.test.ts.
      usable: population.some(isUsable) ? isUsable : always,
      eligible: this.#eligible,
      panicThreshold: this.#health.panicThreshold,
      zone: this.#options.zoneAware,
      build: (group) => {
        const picker = policy.build(group, config, this.#options);
        this.#groups.set(picker, group);
        return picker;
      },
      noneEligible: () => new AllEjectedError(this.name),
    });
    if (main) this.#health.notePanic(snapshot.kind === 'slots' && snapshot.panic);
    return snapshot;
  }

  /** The snapshot for a subset of endpoints (by metadata), built on first use after each rebuild. */
  #subsetSnapshot(selector: SubsetSelector): Snapshot<Subchannel> {
    let snapshot = this.#subsets.get(selector);
    if (snapshot === undefined) {
      const members = this.#population.filter((s) =>
        Object.entries(selector).every(([k, v]) => s.endpoint.metadata[k] === v),
      );
      snapshot = this.#buildSnapshot(members, false);
      this.#subsets.set(selector, snapshot);
    }
    return snapshot;
  }

  #snapshotFor(route: RouteDecision | undefined): Snapshot<Subchannel> | Error {
    const main = this.#snapshot;
    if (route?.subset === undefined || main.kind === 'empty') return main;
    const subset = this.#subsetSnapshot(route.subset);
    if (subset.kind !== 'empty') return subset;
    const fallback = route.subsetFallback;
    if (fallback === 'any') return main;
    if (fallback !== 'fail') {
      const second = this.#subsetSnapshot(fallback);
      if (second.kind !== 'empty') return second;
    }
    return new EmptySubsetError(this.name, route.subset);
  }

  #resolvedWaiters: (() => void)[] | undefined = [];

  #markResolved(): void {
    const waiters = this.#resolvedWaiters;
    this.#resolvedWaiters = undefined;
    for (const resolve of waiters ?? []) resolve();
  }

  /** True once the resolver has delivered its first endpoint set (an empty one counts). */
  get resolved(): boolean {
    return this.#resolvedWaiters === undefined;
  }

  /** Resolves when the resolver has delivered its first endpoint set; at once if it already has. */
  whenResolved(): Promise<void> {
    const waiters = this.#resolvedWaiters;
    if (waiters === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => waiters.push(resolve));
  }

  /** @internal The random source. */
  get random(): RandomSource {
    return this.#options.random;
  }

  /** @internal The clock. */
  get clock(): Clock {
    return this.#options.clock;
  }

  /** @internal The response header naming the answering endpoint (lower-case), if configured. */
  get endpointHeader(): Buffer | undefined {
    return this.#options.endpointHeader;
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
    if (this.#inFlight >= this.policy.maxInFlight) {
      this.#overloaded++;
      user.onError?.(new OverloadedError(this.name, 'maxInFlight', this.policy.maxInFlight));
      return false;
    }
    const request = new BalancedRequest(
      options,
      user,
      { method: options.method.toUpperCase(), path: options.path, authority, headers: options.headers },
      this,
      route,
    );
    // Counted before start(): a caller that aborts at once ends the request inside it, and that end is counted.
    this.#inFlight++;
    this.#total++;
    this.#requests.add(request);
    if (channels.requestStart.hasSubscribers) {
      const { context } = request;
      const message: RequestStartMessage = {
        cluster: this.name,
        clusterId: this.id,
        method: context.method,
        scheme: this.#options.protocol === 'https:' ? 'https' : 'http',
        authority: context.authority,
        path: context.path,
      };
      channels.requestStart.publish(message);
    }
    if (!request.start()) {
      if (!request.done) request.fail(request.abortReason ?? new Error('aborted'));
      return true;
    }
    const breaker = this.#breaker;
    if (breaker === undefined) {
      request.run();
    } else {
      breaker.run(request, () => this.#rejectedByBreaker(request));
    }
    return true;
  }

  #rejectedByBreaker(request: BalancedRequest): void {
    this.#circuitOpen++;
    const fallback = this.policy.breaker?.fallback;
    if (fallback === undefined) {
      request.fail(new CircuitOpenError(this.name));
      return;
    }
    Promise.resolve()
      .then(() => fallback(request.context))
      .then(
        (response) => request.respond(response),
        (err: unknown) => request.fail(new CircuitOpenError(this.name, { cause: err })),
      );
  }

  /** @internal Picks a subchannel, avoiding `exclude` when another is available; waits when none is usable. */
  acquire(
    request: BalancedRequest,
    exclude: ReadonlySet<Subchannel>,
    callback: (error: Error | undefined, subchannel: Subchannel | undefined) => void,
  ): void {
    if (this.#closed) {
      callback(new ClientClosedError(), undefined);
      return;
    }
    const picked = this.#pick(request, exclude);
    if (picked instanceof Error) {
      callback(picked, undefined);
    } else if (picked !== undefined) {
      callback(undefined, picked);
    } else {
      this.#enqueue(request, exclude, callback);
    }
  }

  #pick(request: BalancedRequest, exclude: ReadonlySet<Subchannel>): Subchannel | Error | undefined {
    const snapshot = this.#snapshotFor(request.route);
    if (snapshot instanceof Error) return snapshot;
    if (snapshot.kind === 'empty') return undefined;
    // A retry should land elsewhere: re-pick a few times to find an endpoint not tried yet, else choose one.
    const tries = exclude.size === 0 ? 1 : Math.min(exclude.size + 1, 8);
    let first: Subchannel | undefined;
    for (let i = 0; i < tries; i++) {
      const result = pickFrom(snapshot, request.context, this.#options.random);
      if (result === undefined || result.type === 'queue') return undefined;
      if (result.type !== 'complete') return result.error;
      if (!exclude.has(result.target)) return result.target;
      first ??= result.target;
    }
    return (snapshot.kind === 'slots' && this.#untried(snapshot.slots, exclude)) || first;
  }

  /**
   * A uniformly random endpoint of the snapshot's pickers not in `exclude`, if there is one. Re-picking cannot
   * find it when the policy is deterministic for the request (ring hash and Maglev return the same endpoint for a
   * key), so the retry would go back to the endpoint that just failed. Two passes, no allocation.
   */
  #untried(slots: readonly { readonly picker: object }[], exclude: ReadonlySet<Subchannel>): Subchannel | undefined {
    let count = 0;
    for (const slot of slots) {
      for (const s of this.#groups.get(slot.picker) ?? Cluster.#noGroup) if (!exclude.has(s)) count++;
    }
    if (count === 0) return undefined;
    let n = Math.floor(this.#options.random() * count);
    for (const slot of slots) {
      for (const s of this.#groups.get(slot.picker) ?? Cluster.#noGroup) if (!exclude.has(s) && n-- === 0) return s;
    }
    return undefined;
  }

  /** @internal Sends one attempt of `request` to `subchannel`. */
  send(request: BalancedRequest, subchannel: Subchannel, body: unknown, attempt: Attempt, hedge: boolean): void {
    if (request.attempts > 1) {
      this.#extraAttempts++;
      const counts = this.#endpointCounts.of(subchannel);
      if (hedge) {
        this.#hedges++;
        counts.hedges++;
      } else {
        counts.retries++;
      }
    }
    const { options } = request;
    const host = this.#options.host;
    const hostValue = host === undefined ? request.context.authority : host;
    // Object.assign, then plain stores: a spread of undici's options object gave nearly every request its own hidden
    // class (284 maps in 300 requests), which sent undici's Request constructor down its slowest path (~3 µs a
    // request); built this way they share one.
    const opts: Dispatcher.DispatchOptions = Object.assign({}, options);
    opts.origin = subchannel.origin;
    if (body !== options.body) opts.body = body as NonNullable<Dispatcher.DispatchOptions['body']>;
    if (hostValue !== false) opts.headers = withHostHeader(options.headers, hostValue);
    if (this.#options.servername !== undefined) {
      (opts as Dispatcher.DispatchOptions & { servername?: string }).servername = this.#options.servername;
    }
    if (channels.pick.hasSubscribers) {
      const message: PickMessage = {
        cluster: this.name,
        clusterId: this.id,
        endpoint: subchannel.key,
        attempt: request.attempts,
      };
      channels.pick.publish(message);
    }
    subchannel.dispatch(opts, attempt);
  }

  /** @internal A request ended. */
  finished(request: BalancedRequest, statusCode: number, error: Error | undefined): void {
    this.#inFlight--;
    this.#requests.delete(request);
    const end = request.headersAt ?? this.#options.clock.now();
    const durationMs = end - request.startedAt;
    if (statusCode > 0) {
      const cls = Math.floor(statusCode / 100);
      if (cls >= 1 && cls <= 5) this.#statusClasses[cls as 1 | 2 | 3 | 4 | 5]++;
      this.#latency.observe(durationMs);
    }
    if (error !== undefined) {
      const code = errorCode(error);
      this.#errorsByCode.set(code, (this.#errorsByCode.get(code) ?? 0) + 1);
    }
    if (channels.requestEnd.hasSubscribers) {
      const { context } = request;
      const message: RequestEndMessage = {
        cluster: this.name,
        clusterId: this.id,
        method: context.method,
        scheme: this.#options.protocol === 'https:' ? 'https' : 'http',
        authority: context.authority,
        path: context.path,
        statusCode,
        error,
        durationMs,
        attempts: request.attempts,
      };
      channels.requestEnd.publish(message);
    }
  }

  #flushPending(): void {
    if (this.#snapshot.kind === 'empty' || this.#pending.size === 0) return;
    const waiting = [...this.#pending];
    this.#pending.clear();
    for (const request of waiting) {
      const callback = request.waiter;
      const exclude = request.exclude ?? new Set<Subchannel>();
      request.waiter = undefined;
      request.exclude = undefined;
      if (callback === undefined || request.done) continue;
      const picked = this.#pick(request, exclude);
      if (picked === undefined) {
        this.#enqueue(request, exclude, callback);
      } else {
        this.#clearTimer(request);
        if (picked instanceof Error) callback(picked, undefined);
        else callback(undefined, picked);
      }
    }
  }

  #enqueue(
    request: BalancedRequest,
    exclude: ReadonlySet<Subchannel>,
    callback: (error: Error | undefined, subchannel: Subchannel | undefined) => void,
  ): void {
    const waitMs = this.#options.waitForReadyTimeoutMs;
    if (request.queueTimer === undefined) {
      if (waitMs === 0) {
        callback(new NoEndpointsError(this.name, 0, { cause: this.#lastResolverError }), undefined);
        return;
      }
      if (this.#pending.size >= this.policy.maxPending) {
        this.#overloaded++;
        callback(new OverloadedError(this.name, 'maxPending', this.policy.maxPending), undefined);
        return;
      }
      request.queueTimer = this.#options.clock.setTimeout(
        () => {
          request.queueTimer = undefined;
          const waiter = request.waiter;
          request.waiter = undefined;
          this.#pending.delete(request);
          waiter?.(new NoEndpointsError(this.name, waitMs, { cause: this.#lastResolverError }), undefined);
        },
        waitMs,
        true,
      );
    }
    request.waiter = callback;
    request.exclude = exclude;
    this.#pending.add(request);
  }

  #clearTimer(request: BalancedRequest): void {
    if (request.queueTimer !== undefined) {
      this.#options.clock.clearTimeout(request.queueTimer);
      request.queueTimer = undefined;
    }
  }

  /** @internal Removes a request from the wait queue. */
  dequeue(request: BalancedRequest): void {
    this.#clearTimer(request);
    request.waiter = undefined;
    this.#pending.delete(request);
  }

  /**
   * Subscribes to endpoint health events: ejections and returns (outlier detection), and health-check transitions.
   * Listeners run synchronously; one that throws is logged and skipped.
   */
  onHealthEvent(listener: (event: HealthEvent) => void): Disposable {
    return this.#health.subscribe(listener);
  }

  /** The current active endpoints, in resolver order. */
  get endpoints(): readonly Endpoint[] {
    return this.#pool.subchannels.map((s) => s.endpoint);
  }

  /** A point-in-time snapshot of endpoints, states and counters. */
  stats(): ClusterStats {
    return {
      name: this.name,
      id: this.id,
      endpoints: this.#pool.subchannels.map((s) => {
        const c = s.counters;
        const extra = this.#endpointCounts.read(s);
        return {
          key: s.key,
          state: s.state,
          weight: s.endpoint.weight,
          inFlight: s.inFlight,
          attempts: c.attempts,
          responses: c.responses,
          statusClasses: classes(c.statusClasses),
          errors: c.errors,
          errorsByKind: { ...c.errorsByKind },
          connectFailures: c.connectFailures,
          retries: extra.retries,
          hedges: extra.hedges,
          timesEjected: extra.timesEjected,
          returns: extra.returns,
          ejected: this.#health.isEjected(s),
          healthy: this.#health.isHealthy(s),
          effectiveWeight: s.weight,
          meanLatencyMs: c.responses === 0 ? 0 : c.latencySumMs / c.responses,
          latency: s.latency.snapshot(),
        };
      }),
      draining: this.#pool.draining.size,
      pending: this.#pending.size,
      inFlight: this.#inFlight,
      requests: {
        total: this.#total,
        extraAttempts: this.#extraAttempts,
        retries: this.#extraAttempts - this.#hedges,
        hedges: this.#hedges,
        overloaded: this.#overloaded,
        circuitOpen: this.#circuitOpen,
        statusClasses: classes(this.#statusClasses),
        errors: Object.fromEntries(this.#errorsByCode),
        latency: this.#latency.snapshot(),
      },
      breaker: this.#breaker?.state,
      panic: this.#health.panic,
      ejections: this.#health.ejections,
      returns: this.#health.returns,
      resolver: {
        updates: this.#resolverUpdates,
        errors: this.#resolverErrors,
        lastError: this.#lastResolverError?.message,
      },
    };
  }

  #failPending(error: Error): void {
    const waiting = [...this.#pending];
    this.#pending.clear();
    for (const request of waiting) {
      this.#clearTimer(request);
      const waiter = request.waiter;
      request.waiter = undefined;
      waiter?.(error, undefined);
    }
  }

  /**
   * Stops resolution, fails waiting requests with `SIDECARLESS_CLIENT_CLOSED`, lets in-flight requests finish
   * (bounded by `drainTimeout`) and closes every connection. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#snapshot = EMPTY;
      this.#closing = (async () => {
        this.#failPending(new ClientClosedError());
        // Those between attempts (a backoff, a Retry-After wait) fail now; those with an attempt in flight finish it.
        for (const request of [...this.#requests]) request.clientClosing();
        this.#breaker?.shutdown();
        await this.#resolver.close();
        await this.#health.close();
        await this.#pool.close();
      })();
    }
    return this.#closing;
  }

  /** Like {@link Cluster.close}, but fails in-flight requests at once (with `reason` when given). */
  async destroy(reason?: Error): Promise<void> {
    this.#closed = true;
    this.#snapshot = EMPTY;
    const error = reason ?? new ClientClosedError();
    this.#failPending(error);
    // Including those between attempts, whose backoff timers would otherwise hold the process.
    for (const request of [...this.#requests]) request.fail(error);
    this.#breaker?.shutdown();
    await this.#resolver.close();
    await this.#health.close();
    await this.#pool.destroy(reason);
  }
}
