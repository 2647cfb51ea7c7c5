/**
 * The resolver contract: what a resolver is ({@link Resolver}), what it reports to ({@link ResolverListener}), and
 * how a URL scheme creates one ({@link ResolverFactory}). Target parsing is in `target.ts`, the scheme registry in
 * `registry.ts`, the loop shared by the resolvers that watch a remote source in `watch-loop.ts`.
 *
 * A resolver turns a target (`static://10.0.0.1:80,10.0.0.2:80`, `dns:///users.internal:8080`, ...) into a live
 * endpoint set and keeps it fresh. It knows nothing of connections or balancing; the cluster owns those.
 *
 * @module
 */
import type { Endpoint } from '../common/endpoint.js';
import type { ServiceNotFoundError, SidecarlessError } from '../common/errors.js';
import type { Clock, RandomSource } from '../common/runtime.js';

/**
 * Receives what a resolver finds. Implemented by the cluster; a resolver only calls it.
 *
 * Timing: the resolver never calls the listener synchronously from inside {@link Resolver.start} or
 * {@link Resolver.refresh} (deliver from a later tick, e.g. `queueMicrotask`), and never after
 * {@link Resolver.close} has been called. Calls are not re-entrant: the listener does not call back into the
 * resolver from `onUpdate` or `onError` except through `refresh()`, which is safe at any time.
 *
 * @category Resolvers
 */
export interface ResolverListener {
  /**
   * A complete, authoritative endpoint set: it replaces the previous one (endpoints missing from it are removed).
   * An empty array is an authoritative "no endpoints" and is honoured. The array and its endpoints are handed over:
   * the resolver must not mutate them afterwards. Keys must be unique within the set; an entry that is invalid or
   * repeats a key is skipped by the cluster (counted and reported as a resolver error), the rest is used.
   *
   * A set that changes little (up to 2,000 entries new or changed) is in force when this returns. A larger one is
   * prepared over later turns of the event loop, a bounded slice per turn, and then switched in at once: until the
   * switch the previous set stays in force (picks, stats, `ready()`), a set handed over meanwhile waits for the switch
   * and is applied right after it (only the latest one waits), and rejected entries are reported at the switch. The cluster may read the entries after this returns.
   *
   * With an empty set, `notFound` may say why: the source answered that the service does not exist or has no
   * instance (DNS NXDOMAIN or NODATA, an empty Consul service or etcd prefix). Requests that then find no endpoint
   * fail with `SIDECARLESS_NO_ENDPOINTS` whose cause is that error (the cluster makes one when it is omitted, and
   * wraps anything but a sidecarless error in one that says what was passed, with an `Error` as its `cause`).
   */
  onUpdate(endpoints: readonly Endpoint[], notFound?: ServiceNotFoundError): void;
  /**
   * Resolution failed. The previous set stays in use (last known good); the resolver keeps retrying with backoff
   * on its own and calls `onUpdate` once it succeeds.
   */
  onError(error: SidecarlessError): void;
}

/**
 * A source of endpoint sets. Created by a {@link ResolverFactory} (or by the user), owned by exactly one cluster.
 * The library refuses a resolver object another cluster has already taken (started, or closed) with
 * `SIDECARLESS_INVALID_OPTION` naming the target option: make one per cluster, and a new one for a new client (a
 * factory too returns a new object each call). A cluster that was never started (its client's creation failed)
 * hands a resolver of the user's back untouched: neither started nor closed.
 *
 * Life cycle: `start` once, then any number of `refresh`, then `close` (idempotent). The cluster calls `close`
 * when it closes; a resolver that owns timers, sockets or watches must release them there and leave no handle
 * that keeps the process alive (timers unref'd).
 *
 * @category Resolvers
 */
export interface Resolver {
  /**
   * Starts resolving; results go to `listener`. Called once, before any other method. A synchronous throw fails the
   * client's creation (`SIDECARLESS_RESOLVER_FAILED`); an `async start()` may return its promise instead, and a
   * rejection of it is a resolution failure like any other (as if passed to `listener.onError`: the cluster keeps
   * its last known good set, or keeps waiting for a first one), never an unhandled rejection.
   */
  start(listener: ResolverListener): void | PromiseLike<void>;
  /**
   * A hint that the current set may be stale. The cluster calls it each time an endpoint enters
   * `transient-failure` (it refused or dropped a connection), so hints come in bursts while endpoints fail.
   *
   * The rule every built-in resolver follows, and custom resolvers should too:
   * - while the resolver is backing off after a failed resolution, the hint is ignored: a retry is already
   *   scheduled, and cutting the backoff short would hammer a discovery server that is failing;
   * - while a resolution is already starting or due within the rate limit, the hint adds nothing;
   * - otherwise it triggers one early re-resolution, at most once per the resolver's refresh interval
   *   (`dns:`/`srv:` `minTtlMs`, Consul and etcd `refreshIntervalMs`); further hints inside the interval are dropped.
   *
   * Safe to call at any time (before `start`, from the listener, after `close`); never throws, and never calls the
   * listener synchronously.
   */
  refresh?(): void;
  /** Stops resolving and releases every resource. Idempotent; no listener call happens after it. */
  close(): void | Promise<void>;
}

/**
 * A parsed target: `scheme:[//authority]/path[?query]`, following gRPC's naming (`dns:///host:port`,
 * `dns://8.8.8.8/host:port`). For `static://h1:p1,h2:p2` the list is the authority.
 *
 * @category Resolvers
 */
export interface Target {
  /** Lower-cased scheme without the colon. */
  readonly scheme: string;
  /** Authority after `//`, or `''` when there is none. */
  readonly authority: string;
  /** Path after the authority with its leading `/` removed, or the opaque part when there is no `//`. */
  readonly path: string;
  /** Query parameters (resolver-specific options). */
  readonly query: URLSearchParams;
  /** The target as given. */
  readonly raw: string;
}

/** What a {@link ResolverFactory} receives besides the target. @category Resolvers */
export interface ResolverContext {
  /** Clock for polling and backoff timers. */
  readonly clock: Clock;
  /** Random source for jitter. */
  readonly random: RandomSource;
  /** The logical name of the cluster the resolver serves, for logs. */
  readonly cluster: string;
}

/**
 * Creates a resolver for a parsed target. Validate the target synchronously and throw an `InvalidTargetError`
 * (`SIDECARLESS_INVALID_TARGET`) for a bad one, so users see the error at construction. Do not start I/O here:
 * resolution starts in {@link Resolver.start}. A sidecarless error the factory throws reaches the caller as it is;
 * anything else (a plain `Error`, a string) becomes a `ResolverError` (`SIDECARLESS_RESOLVER_FAILED`) whose `cause`
 * is what was thrown (an `Error` describing it when it is not one).
 *
 * @category Resolvers
 */
export type ResolverFactory = (target: Target, context: ResolverContext) => Resolver;
