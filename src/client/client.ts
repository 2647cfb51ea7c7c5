/**
 * The client: what users create. Owns the clusters and the route table, and exposes a balanced `fetch`, an undici
 * `dispatcher`, stats, health events and `close()`.
 *
 * Both option shapes build the same client (client/options.ts normalizes them): a single-service client is a client
 * of one cluster that takes every request unrouted (its catch-all); a multi-service client routes each request to a
 * cluster by its route table, the cluster named by its host, discovery, or the passthrough.
 *
 * @module
 */
import { Agent, type Dispatcher, getGlobalDispatcher } from 'undici';
import { Cluster, type ClusterStats } from '../cluster/cluster.js';
import { ClientClosedError, InvalidOptionError, isSidecarlessError, ResolverError } from '../common/errors.js';
import { NoRouteError } from '../common/request-errors.js';
import { thrownMessage } from '../common/thrown.js';
import { readOptions } from '../common/options.js';
import { toDualHandler, toLegacyHandler } from '../common/handler.js';
import type { RandomSource } from '../common/runtime.js';
import type { HealthEvent, Subscription } from '../health/endpoint-health.js';
import { ClientListeners } from './listeners.js';
import { requestPath } from '../common/request-path.js';
import { parseOrigin, type ParsedOrigin } from '../request/origin.js';
import { compileRoutes, type RouteConfig, type RouteTable } from '../routing/router.js';
import { Discovery } from './discovery.js';
import { BalancedDispatcher, type UndiciDispatcher, unroutable } from './dispatcher.js';
import {
  GlobalDispatcher,
  type GlobalDispatcherOptions,
  HostSet,
  isHostName,
  normalizeGlobalDispatcherOptions,
} from './global-dispatcher.js';
import { refuseRedirects, ServiceFetchDispatcher } from './fetch-dispatcher.js';
import { Mirror } from './mirror.js';
import { type ClientOptions, normalizeClientOptions } from './options.js';
import { type ReadyOptions, ReadyWaits } from './ready.js';
import { platformFetch, readRequestInit } from './request-init.js';
import { type ClientStats, statsOfClusters, type StatsOptions } from './stats.js';

export type {
  ClientOptions,
  DiscoveryOptions,
  MultiServiceOptions,
  RedirectOptions,
  SingleServiceOptions,
} from './options.js';
export type { DispatchOptionsLike, UndiciDispatcher } from './dispatcher.js';
export type { GlobalDispatcherOptions } from './global-dispatcher.js';
export type { ReadyOptions } from './ready.js';
export type { ClientStats, StatsOptions } from './stats.js';

/**
 * A client-side load balancer for one service, or for several behind a route table.
 *
 * @example
 * ```ts
 * import { createClient } from 'sidecarless';
 *
 * const users = createClient({ target: 'static://127.0.0.1:8081,127.0.0.1:8082' });
 * const res = await users.fetch('http://users/profile/42'); // `Host: users` goes to one of the endpoints
 * console.log(res.status, await res.json());
 * await users.close();
 * ```
 *
 * @example
 * ```ts
 * // A canary: 10 % of checkout traffic to v2, sticky per user; everything else by host name.
 * const client = createClient({
 *   clusters: { checkout: { target: 'srv:///_http._tcp.checkout' }, 'checkout-v2': { target: 'srv:///_http._tcp.checkout-v2' } },
 *   routes: [{ match: { host: 'checkout' }, split: [{ cluster: 'checkout', weight: 90 }, { cluster: 'checkout-v2', weight: 10 }], sticky: { header: 'x-user-id' } }],
 * });
 * ```
 *
 * @category Client
 */
export class Client {
  /**
   * An undici `Dispatcher` that balances every request it is given: pass it as `dispatcher` to `request`, `fetch`,
   * `stream` or `pipeline` of undici 7 or 8, or to Node's global `fetch`. For `setGlobalDispatcher` use
   * {@link Client.globalDispatcher} instead: this one would send every host in the process to your services.
   */
  readonly dispatcher: UndiciDispatcher;
  readonly #dispatcher: BalancedDispatcher;

  /** The configured clusters, by name. */
  readonly #clusters = new Map<string, Cluster>();
  /**
   * The cluster that takes every request, unrouted (a single-service client: the URL's authority only names the
   * service); such a client has no route table, discovery or passthrough.
   */
  readonly #catchAll: Cluster | undefined;
  #routes: RouteTable;
  readonly #discovery: Discovery | undefined;
  readonly #passthrough: Dispatcher | undefined;
  readonly #ownsPassthrough: boolean;
  readonly #random: RandomSource;
  readonly #mirror = new Mirror();
  readonly #readyWaits = new ReadyWaits();
  readonly #listeners = new ClientListeners();
  #passthroughCount = 0;
  /**
   * A plain undici Agent, made on first use: where a single-service client's `fetch` follows redirects to other
   * origins, and where global dispatchers without `others` send other hosts (one for all of them, however many).
   */
  #plainAgent: Agent | undefined;
  readonly #plain = (): Agent => (this.#plainAgent ??= new Agent());
  /** `redirect.crossOrigin: 'refuse'`: where `fetch` sends a hop to another origin (nowhere). */
  readonly #refuseRedirects: boolean;
  #closing: Promise<void> | undefined;
  /** Hosts named by the route table's rules (what a global dispatcher balances, with cluster names). */
  #routeHosts: HostSet;
  readonly #discoverySuffix: string | undefined;
  /** The global dispatchers handed out, held weakly: one dropped is collected (a test suite may ask for many). */
  readonly #globals = new WeakSet<GlobalDispatcher>();

  /** Validates every option (throwing `SIDECARLESS_*` errors that name the option) and starts resolution. */
  constructor(options: ClientOptions) {
    const normalized = normalizeClientOptions(options);
    this.#random = normalized.random;
    this.#refuseRedirects = normalized.refuseCrossOriginRedirects;
    const emit = (event: HealthEvent) => this.#listeners.emit(event);
    try {
      for (const { name, options: clusterOptions, path } of normalized.clusters) {
        this.#clusters.set(name, new Cluster(name, clusterOptions, path));
      }
      this.#routes = readOptions('routes', () => compileRoutes(normalized.routes, new Set(this.#clusters.keys())));
      // From the compiled table: the rules are read once, by compileRoutes.
      this.#routeHosts = new HostSet(this.#routes.hosts);
    } catch (err) {
      for (const cluster of this.#clusters.values()) void cluster.destroy();
      throw err;
    }
    this.#catchAll = normalized.catchAll === undefined ? undefined : this.#clusters.get(normalized.catchAll);
    this.#discoverySuffix = normalized.discovery?.suffix.toLowerCase();
    this.#discovery =
      normalized.discovery === undefined
        ? undefined
        : new Discovery(
            normalized.discovery,
            (cluster) => cluster.onHealthEvent(emit),
            () => this.#closing !== undefined,
          );
    const pass = normalized.passthrough;
    this.#ownsPassthrough = pass === true;
    this.#passthrough = pass === true ? new Agent() : pass === false ? undefined : pass;
    this.#dispatcher = new BalancedDispatcher({
      dispatch: (opts, handler) => this.#dispatch(opts, handler),
      close: () => this.close(),
      destroy: (reason) => this.#destroy(reason),
    });
    this.dispatcher = this.#dispatcher;
    // fetch is passed around unbound (to SDKs, as globalThis.fetch): it must not need `this`.
    this.fetch = this.fetch.bind(this);
    for (const cluster of this.#clusters.values()) {
      cluster.onHealthEvent(emit);
      try {
        cluster.start();
      } catch (err) {
        // A custom resolver's start() threw: nothing may keep running (clusters, timers, the passthrough agent).
        void this.#destroy();
        throw new ResolverError(`The resolver of cluster "${cluster.name}" failed to start`, { cause: err });
      }
    }
  }

  #dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Before routing: a closed client must not create discovered clusters (nor mirror, nor pass through).
    if (this.#closing !== undefined) {
      toLegacyHandler(handler).onError?.(new ClientClosedError());
      return false;
    }
    if (this.#catchAll !== undefined) return this.#catchAll.dispatch(options, handler);
    let origin: ParsedOrigin;
    try {
      origin = parseOrigin(options.origin);
    } catch (err) {
      toLegacyHandler(handler).onError?.(err as Error);
      return false;
    }
    const { authority, host } = origin;
    // No route table (the common case): no route request to build.
    const refused = this.#routes.size === 0 ? undefined : unroutable(options);
    if (refused !== undefined) {
      toLegacyHandler(handler).onError?.(refused);
      return false;
    }
    const decision =
      this.#routes.size === 0
        ? undefined
        : this.#routes.route(
            {
              host,
              authority,
              method: options.method.toUpperCase(),
              path: requestPath(options),
              headers: options.headers,
            },
            this.#random,
          );
    if (decision !== undefined) {
      const cluster = this.#clusters.get(decision.cluster) as Cluster;
      const mirror = decision.mirror;
      if (mirror === undefined || this.#random() >= mirror.share) return cluster.dispatch(options, handler, decision);
      const target = this.#clusters.get(mirror.cluster) as Cluster;
      return this.#mirror.dispatch(cluster, target, options, handler, decision, origin, host);
    }
    let cluster = this.#clusters.get(host);
    if (cluster === undefined && this.#discovery !== undefined) {
      try {
        cluster = this.#discovery.clusterFor(host);
      } catch (err) {
        // A discovery target the resolvers reject: the request fails with that error, the client stays up.
        toLegacyHandler(handler).onError?.(
          isSidecarlessError(err) ? err : new ResolverError(thrownMessage(err), { cause: err }),
        );
        return false;
      }
    }
    if (cluster !== undefined) return cluster.dispatch(options, handler);
    if (this.#passthrough !== undefined) {
      this.#passthroughCount++;
      // A passthrough of the user's may be of another undici major than the caller: give it both handler styles.
      return this.#passthrough.dispatch(options, this.#ownsPassthrough ? handler : (toDualHandler(handler) as never));
    }
    toLegacyHandler(handler).onError?.(new NoRouteError(authority, requestPath(options)));
    return false;
  }

  /**
   * `fetch` with balancing: the same inputs (string, URL or `Request`; `RequestInit` with streaming bodies and an
   * `AbortSignal`) and the same `Response`, from the platform's own fetch. The URL's authority is the logical
   * service name (sent as `Host`); the endpoint is chosen by the picker.
   *
   * Failures reject as fetch does: a `TypeError('fetch failed')` whose `cause` is the underlying error, a
   * {@link SidecarlessError} with a stable code where sidecarless raised it (see {@link findSidecarlessError}).
   * Aborts reject with the signal's reason. After {@link Client.close}, calls reject the same way, with a
   * `SIDECARLESS_CLIENT_CLOSED` cause.
   *
   * Like fetch, it reads every `RequestInit` member by property access (inherited members, getters, a `Request`
   * given as `init`), never throws synchronously (every failure is a rejection), and needs no `this`:
   * `const f = client.fetch; f(url)` and `globalThis.fetch = client.fetch` work. `init.dispatcher` is refused
   * (`SIDECARLESS_INVALID_OPTION`): the client is the dispatcher; use the platform's fetch for another one.
   *
   * Redirects follow fetch's rules. One to the same origin is balanced again; on a single-service client, one to
   * another origin (the service sends the caller elsewhere) goes out as plain fetch would send it, not to the
   * service's endpoints. On a multi-service client every hop is routed like any request (to a cluster, the
   * passthrough, or `SIDECARLESS_NO_ROUTE`).
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    try {
      if (this.#closing !== undefined) {
        return Promise.reject(new TypeError('fetch failed', { cause: new ClientClosedError() }));
      }
      // One a call, also on a multi-service client: it ends the redirect hops fetch drops (fetch-dispatcher.ts).
      const dispatcher = new ServiceFetchDispatcher(
        this.dispatcher,
        this.#refuseRedirects ? refuseRedirects : this.#catchAll === undefined ? undefined : this.#elsewhere,
      );
      // Without an init, the call's dispatcher is its init too (`{ dispatcher }` of its own): one object a call.
      let options: RequestInit = dispatcher as unknown as RequestInit;
      if (init != null) {
        const read = readRequestInit(init, this.dispatcher);
        read.dispatcher = dispatcher;
        options = read as RequestInit;
      }
      return platformFetch(input, options).catch((err: unknown) => {
        dispatcher.abandon(); // a redirect fetch gave up on: its hop ends (fetch-dispatcher.ts)
        throw err;
      });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Where a single-service client's `fetch` sends a redirect hop to another origin (one function, made once). */
  readonly #elsewhere = (): Dispatcher => {
    // A hop that arrives after close() is refused by the closed balanced dispatcher rather than opening an agent.
    if (this.#closing !== undefined) return this.dispatcher;
    // As plain fetch sends it: through the global dispatcher (a proxy, a mock), unless that is this very client. One
    // of this client's `globalDispatcher()`s counts the hops it passes through itself.
    const global = getGlobalDispatcher();
    if (!this.#globals.has(global as GlobalDispatcher)) this.#passthroughCount++;
    return global !== this.dispatcher ? global : this.#plain();
  };

  /**
   * Resolves once every configured cluster's resolver has delivered its first endpoint set (requests never need
   * this: they wait for endpoints on their own, up to `waitForReadyTimeoutMs`). Useful at startup, in tests and in
   * readiness probes. Rejects with `SIDECARLESS_NO_ENDPOINTS` (naming the first cluster still waiting) after
   * `timeoutMs`, with `SIDECARLESS_CLIENT_CLOSED` when the client is closed or destroyed first, and with
   * `SIDECARLESS_INVALID_OPTION` for a `timeoutMs` that is not a number of ms from 0 to 2^31-1.
   *
   * The first answer may be empty (the service has no instance yet). To wait for instances, pass
   * `{ minEndpoints: n }`: every configured cluster's latest set must then hold at least `n` endpoints. On timeout
   * the error's `cause` is the waiting cluster's resolver state (its last error, or a {@link ServiceNotFoundError}).
   *
   * @example
   * ```ts
   * const client = createClient({ target: 'srv:///_http._tcp.users' });
   * await client.ready(5_000); // the first SRV answer is in
   * await client.ready(5_000, { minEndpoints: 1 }); // and it lists at least one endpoint
   * ```
   */
  ready(timeoutMs = 10_000, options?: ReadyOptions): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new ClientClosedError());
    return this.#readyWaits.wait([...this.#clusters.values()], timeoutMs, options);
  }

  /**
   * Replaces the route table atomically. The new table is validated first (a bad one throws and changes nothing);
   * requests already dispatched finish where the old table sent them. A single-service client (`target`) has no
   * route table: it throws `SIDECARLESS_INVALID_OPTION` naming `routes`.
   *
   * @example
   * ```ts
   * client.setRoutes([{ match: { host: 'checkout' }, split: [{ cluster: 'checkout', weight: 50 }, { cluster: 'checkout-v2', weight: 50 }] }]);
   * ```
   */
  setRoutes(routes: readonly RouteConfig[]): void {
    if (this.#catchAll !== undefined) {
      throw new InvalidOptionError(
        'routes',
        'a single-service client has no route table; create the client with `clusters` to route',
      );
    }
    this.#routes = readOptions('routes', () => compileRoutes(routes, new Set(this.#clusters.keys())));
    this.#routeHosts = new HostSet(this.#routes.hosts);
  }

  /**
   * A dispatcher for undici's global slot (`setGlobalDispatcher`): requests to the client's own host names balance,
   * every other host goes to an ordinary undici `Agent` (or `options.others`), as if sidecarless were not there.
   * Own names: on a single-service client its `name` (give one: `createClient({ name: 'users', target })`); on a
   * multi-service client the cluster names, the hosts its route rules name and its discovery domain; and
   * `options.hosts`. Throws `SIDECARLESS_INVALID_OPTION` for bad options, or on a single-service client without a
   * host-like `name` or `hosts`. Closing it closes the client; after `close()` it refuses every request, to any host,
   * with `SIDECARLESS_CLIENT_CLOSED` (an `options.others` of yours is left open).
   *
   * @example
   * ```ts
   * import { setGlobalDispatcher } from 'undici';
   * const users = createClient({ name: 'users', target: 'dns:///users.internal:8080' });
   * setGlobalDispatcher(users.globalDispatcher());
   * await fetch('http://users/profile/42'); // balanced
   * await fetch('https://api.stripe.com/v1/charges'); // a plain request, not to `users`
   * ```
   */
  globalDispatcher(options?: GlobalDispatcherOptions): UndiciDispatcher {
    const { hosts, others } = normalizeGlobalDispatcherOptions(options);
    if (this.#closing !== undefined) throw new ClientClosedError();
    const extra = new HostSet(hosts);
    let owns: (host: string) => boolean;
    if (this.#catchAll !== undefined) {
      const name = this.#catchAll.name;
      const named = isHostName(name);
      if (!named && extra.size === 0) {
        throw new InvalidOptionError(
          'globalDispatcher.hosts',
          `the client's name ${JSON.stringify(name)} is not a host name: give the client a \`name\` (the host in your URLs) or list \`hosts\``,
        );
      }
      owns = (host) => (named && host === name) || extra.has(host);
    } else {
      const suffix = this.#discoverySuffix;
      owns = (host) =>
        this.#clusters.has(host) ||
        this.#routeHosts.has(host) ||
        extra.has(host) ||
        (suffix !== undefined && host.length > suffix.length && host.endsWith(suffix));
    }
    // Through the balanced dispatcher: closing one closes the client, and a closed client refuses every request.
    const global = new GlobalDispatcher(this.#dispatcher, owns, others, this.#plain, () => this.#passthroughCount++);
    this.#globals.add(global);
    return global;
  }

  /**
   * A snapshot of every cluster's endpoints, states and counters. Building each endpoint's figures is O(endpoints)
   * in one synchronous turn; `{ endpoints: false }` leaves them out (each cluster's `endpoints` empty, its
   * `endpointCount` and `ejectedCount` still there), as a metrics scrape of cluster figures wants at thousands of
   * endpoints. Throws `SIDECARLESS_INVALID_OPTION` for options that are not an object or a non-boolean `endpoints`.
   *
   * @example
   * ```ts
   * for (const c of client.stats({ endpoints: false }).clusters) console.log(c.name, c.endpointCount, c.ejectedCount);
   * ```
   */
  stats(options?: StatsOptions): ClientStats {
    const discovered = this.#discovery === undefined ? [] : [...this.#discovery.clusters()];
    return {
      clusters: statsOfClusters([...this.#clusters.values(), ...discovered], options),
      passthrough: this.#passthroughCount,
      mirrored: { sent: this.#mirror.sent, skipped: this.#mirror.skipped, dropped: this.#mirror.dropped },
    };
  }

  /**
   * Subscribes to endpoint health events of every cluster, discovered ones included: `eject` and `return` (outlier
   * detection, with the rule or way back as `reason`), `unhealthy` and `healthy` (active health checks). Returns a
   * handle whose `dispose()` unsubscribes. Throws `SIDECARLESS_INVALID_OPTION` (`listener`) for a non-function.
   *
   * @example
   * ```ts
   * const sub = client.onHealthEvent((e) => log.warn(`${e.cluster} ${e.endpoint.key} ${e.type}: ${e.reason}`));
   * sub.dispose();
   * ```
   */
  onHealthEvent(listener: (event: HealthEvent) => void): Subscription {
    return this.#listeners.onHealthEvent(listener);
  }

  /**
   * Calls `listener` once when the client has closed: when {@link Client.close} or {@link Client.destroy} has
   * finished, before its promise resolves (on a microtask if that already happened). The exporters end their
   * registration with it. Returns a handle whose `dispose()` unsubscribes. Throws `SIDECARLESS_INVALID_OPTION`
   * (`listener`) for a non-function.
   */
  onClose(listener: () => void): Subscription {
    return this.#listeners.onClose(listener);
  }

  /**
   * The configured clusters and every discovered one not yet closed, whatever the discovery cache lists: those an
   * idle expiry or eviction took out are still draining (close() waits for them, destroy() fails their requests).
   */
  *#allClusters(): Iterable<Cluster> {
    yield* this.#clusters.values();
    if (this.#discovery !== undefined) yield* this.#discovery.all();
  }

  /** The endpoints of the client's single (or first configured) cluster: a snapshot made per read, O(endpoints). */
  get endpoints(): ClusterStats['endpoints'] {
    return this.#clusters.values().next().value?.stats().endpoints ?? [];
  }

  /**
   * Stops resolution, fails requests still waiting for an endpoint and pending {@link Client.ready} calls with
   * `SIDECARLESS_CLIENT_CLOSED`, lets in-flight requests finish (bounded by
   * `drainTimeoutMs`), and closes every connection and timer, so the process can exit. Idempotent: every call returns
   * the same promise.
   */
  close(): Promise<void> {
    this.#dispatcher.markClosed();
    this.#readyWaits.failAll(new ClientClosedError());
    this.#closing ??= this.#listeners.closing(
      (async () => {
        const clusters = [...this.#allClusters()];
        this.#discovery?.clear();
        await Promise.all(clusters.map((c) => c.close()));
        if (this.#ownsPassthrough) await this.#passthrough?.close();
        await this.#plainAgent?.close();
      })(),
    );
    return this.#closing;
  }

  /**
   * Closes at once: like {@link Client.close}, but in-flight requests fail now (with `reason` when given) instead of
   * finishing.
   */
  destroy(reason?: Error): Promise<void> {
    return this.#destroy(reason);
  }

  #destroy(reason?: Error): Promise<void> {
    this.#dispatcher.markClosed();
    this.#readyWaits.failAll(new ClientClosedError());
    const done = this.#listeners.closing(
      (async () => {
        const clusters = [...this.#allClusters()];
        await Promise.all(clusters.map((c) => c.destroy(reason)));
        this.#discovery?.clear();
        if (this.#ownsPassthrough) await this.#passthrough?.destroy(reason ?? null);
        await this.#plainAgent?.destroy(reason ?? null);
      })(),
    );
    this.#closing ??= done;
    return done;
  }

  /** `await using client = createClient(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a {@link Client}. Same as `new Client(options)`.
 *
 * @example
 * ```ts
 * const client = createClient({ target: ['127.0.0.1:8081', '127.0.0.1:8082'], picker: 'round-robin' });
 * ```
 *
 * @category Client
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
