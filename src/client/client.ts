/**
 * The client: what users create. Owns the clusters and the route table, and exposes a balanced `fetch`, an undici
 * `dispatcher`, stats, health events and `close()`.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { Agent, type Dispatcher } from 'undici';
import { Cluster, type ClusterOptions, type ClusterStats } from '../cluster/cluster.js';
import {
  ClientClosedError,
  InvalidOptionError,
  isSidecarlessError,
  NoEndpointsError,
  NoRouteError,
} from '../common/errors.js';
import type { Disposable, HealthEvent } from '../health/endpoint-health.js';
import { type LegacyHandler, toLegacyHandler } from '../common/handler.js';
import type { PickerRegistry } from '../pickers/picker.js';
import { BalancedDispatcher } from './dispatcher.js';
import { ServiceFetchDispatcher } from './fetch-dispatcher.js';
import { parseOrigin } from '../request/origin.js';
import { bodyReplay } from '../request/policy.js';
import type { ResolverRegistry } from '../resolvers/resolver.js';
import { parseTarget } from '../resolvers/resolver.js';
import { compileRoutes, type RouteConfig, type RouteDecision, type RouteTable } from '../routing/router.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import { systemRandom } from '../common/runtime.js';

/** One service: the options of its single cluster, plus a name. */
export interface SingleServiceOptions extends ClusterOptions {
  /**
   * A name for the service, used in errors, stats and logs. @defaultValue the target's scheme and authority, or
   * `'default'` for resolver objects and lists
   */
  readonly name?: string | undefined;
}

/** Lazily created clusters for hosts under a discovery domain (transparent mode). */
export interface DiscoveryOptions {
  /**
   * Hosts ending in `.<domain>` (e.g. `users.service.consul` for `service.consul`) get a cluster of their own on
   * first use.
   */
  readonly domain: string;
  /**
   * The target for a host's cluster. @defaultValue `(host) => 'srv:///' + host` (SRV records under the name, as
   * Consul's DNS interface serves them)
   */
  readonly target?: ((host: string) => ClusterOptions['target']) | undefined;
  /** Options for every discovered cluster (everything but `target`). */
  readonly cluster?: Omit<ClusterOptions, 'target'> | undefined;
  /** Discovered clusters kept at once; the least recently used is closed beyond it. @defaultValue 100 */
  readonly maxClusters?: number | undefined;
  /** A discovered cluster unused this long is closed, ms. @defaultValue 300000 */
  readonly idleTimeout?: number | undefined;
}

/** Several services behind one client, with a route table. */
export interface MultiServiceOptions {
  /**
   * The clusters, by name. A request whose host equals a cluster's name goes there when no route matches. May be
   * empty or omitted when `discovery` is set (a transparent client whose clusters are all discovered).
   */
  readonly clusters?: Readonly<Record<string, ClusterOptions>> | undefined;
  /** Route rules, first match wins; validated at construction and by {@link Client.setRoutes}. */
  readonly routes?: readonly RouteConfig[] | undefined;
  /** Lazily created clusters for hosts under a discovery domain. */
  readonly discovery?: DiscoveryOptions | undefined;
  /**
   * What to do with a request no route, cluster or discovery domain claims: `true` sends it as a plain request
   * (through an undici `Agent` the client owns), a `Dispatcher` sends it through that one, `false` fails it with
   * `SIDECARLESS_NO_ROUTE`. @defaultValue false
   */
  readonly passthrough?: boolean | Dispatcher | undefined;
  /** Defaults for every cluster that does not set its own. */
  readonly resolvers?: ResolverRegistry | undefined;
  /** Defaults for every cluster that does not set its own. */
  readonly pickers?: PickerRegistry | undefined;
  /** Defaults for every cluster that does not set its own. */
  readonly clock?: Clock | undefined;
  /** Defaults for every cluster, and the random source of weighted splits and mirroring. */
  readonly random?: RandomSource | undefined;
}

/** Options of {@link createClient}: one service (`target`), or several (`clusters` and/or `discovery`). */
export type ClientOptions = SingleServiceOptions | MultiServiceOptions;

/** A point-in-time snapshot of a client. */
export interface ClientStats {
  /** Configured clusters first, then discovered ones. */
  readonly clusters: readonly ClusterStats[];
  /**
   * Requests sent to the passthrough dispatcher, and, on a single-service client, redirects `fetch` followed to
   * another origin (sent as plain fetch would send them).
   */
  readonly passthrough: number;
  /** Mirrored copies sent, and skipped (body not replayable or over 1 MiB, or 64 already in flight). */
  readonly mirrored: {
    /** Shadow copies dispatched to the mirror cluster. */
    readonly sent: number;
    /** Requests picked for mirroring whose copy was not sent. */
    readonly skipped: number;
  };
}

interface Discovery {
  readonly options: DiscoveryOptions;
  readonly suffix: string;
  readonly cache: LRUCache<string, Cluster>;
}

// The option keys each client shape takes. `satisfies` checks both lists against the option types both ways: a new
// option the lists miss fails the typecheck, so they cannot drift, and anything else a caller passes (a typo such as
// `waitForReadyTimout`) is refused at construction instead of being silently ignored.
const SINGLE_SERVICE_KEYS: ReadonlySet<string> = new Set(
  Object.keys({
    name: true,
    target: true,
    picker: true,
    host: true,
    endpointHeader: true,
    waitForReadyTimeout: true,
    drainTimeout: true,
    pool: true,
    tls: true,
    zoneAware: true,
    connectBackoff: true,
    resolvers: true,
    pickers: true,
    clock: true,
    random: true,
    retry: true,
    retryBudget: true,
    hedge: true,
    timeoutMs: true,
    limits: true,
    breaker: true,
    outlierDetection: true,
    healthCheck: true,
    slowStart: true,
    panicThreshold: true,
  } satisfies Record<keyof SingleServiceOptions, true>),
);
const MULTI_SERVICE_KEYS: ReadonlySet<string> = new Set(
  Object.keys({
    clusters: true,
    routes: true,
    discovery: true,
    passthrough: true,
    resolvers: true,
    pickers: true,
    clock: true,
    random: true,
  } satisfies Record<keyof MultiServiceOptions, true>),
);

function rejectUnknownKeys(options: object, known: ReadonlySet<string>, shape: string): void {
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new InvalidOptionError(key, `unknown option for a ${shape} client`);
  }
}

/** The longest a Node timer can wait, ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_MIRRORS_IN_FLIGHT = 64;
const MAX_MIRROR_BODY = 1024 * 1024;
const MIRROR_HANDLER_BASE = {
  onConnect() {},
  onHeaders: () => true,
  onData: () => true,
};

/** `handler`, also calling `end` when the request completes or fails (before the handler hears of it). */
function withEnd(handler: LegacyHandler, end: () => void): LegacyHandler {
  const wrapped: LegacyHandler = {
    onConnect: (abort, context) => handler.onConnect?.(abort, context),
    onResponseStarted: () => handler.onResponseStarted?.(),
    onHeaders: (statusCode, headers, resume, statusText) =>
      handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true,
    onData: (chunk) => handler.onData?.(chunk) ?? true,
    onComplete: (trailers) => {
      end();
      handler.onComplete?.(trailers);
    },
    onError: (err) => {
      end();
      handler.onError?.(err);
    },
    onBodySent: (chunkSize, totalBytesSent) => handler.onBodySent?.(chunkSize, totalBytesSent),
    onRequestSent: () => handler.onRequestSent?.(),
  };
  // undici refuses upgrade requests to handlers without onUpgrade: keep its absence visible.
  if (handler.onUpgrade !== undefined) {
    wrapped.onUpgrade = (statusCode, headers, socket) => handler.onUpgrade?.(statusCode, headers, socket);
  }
  return wrapped;
}

function defaultName(options: SingleServiceOptions): string {
  if (typeof options.target !== 'string') return 'default';
  try {
    const t = parseTarget(options.target);
    return `${t.scheme}:${t.authority || t.path}`.slice(0, 200);
  } catch {
    return 'default';
  }
}

function hostOf(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1).toLowerCase();
  const colon = authority.lastIndexOf(':');
  return (colon < 0 ? authority : authority.slice(0, colon)).toLowerCase();
}

/** Re-raises a cluster's option error under `clusters.<name>.`. */
function prefixed(err: unknown, prefix: string): unknown {
  if (err instanceof InvalidOptionError) {
    const message = err.message.replace(/^Invalid option `[^`]*`: /, '');
    return new InvalidOptionError(`${prefix}.${err.option}`, message, { cause: err });
  }
  return err;
}

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
 */
export class Client {
  /**
   * An undici `Dispatcher` that balances: pass it as `dispatcher` to `undici.request`, `undici.fetch`, `stream`,
   * `pipeline`, or install it with `setGlobalDispatcher`.
   */
  readonly dispatcher: Dispatcher;
  readonly #dispatcher: BalancedDispatcher;

  readonly #clusters = new Map<string, Cluster>();
  /** The only cluster of a single-service client: it takes every request no route claims. */
  readonly #catchAll: Cluster | undefined;
  #routes: RouteTable;
  readonly #discovery: Discovery | undefined;
  readonly #passthrough: Dispatcher | undefined;
  readonly #ownsPassthrough: boolean;
  readonly #random: RandomSource;
  readonly #defaults: Pick<MultiServiceOptions, 'resolvers' | 'pickers' | 'clock' | 'random'>;
  readonly #listeners = new Set<(event: HealthEvent) => void>();
  #passthroughCount = 0;
  /** Where a single-service client's `fetch` follows redirects to other origins; made on first use. */
  #redirectAgent: Agent | undefined;
  #mirrorsInFlight = 0;
  #mirrored = 0;
  #mirrorSkipped = 0;
  /** `ready()` calls still waiting, each settled (and its timer cleared) by the function stored here. */
  readonly #readyWaits = new Set<(error?: Error) => void>();
  #closing: Promise<void> | undefined;

  /** Validates every option (throwing `SIDECARLESS_*` errors that name the option) and starts resolution. */
  constructor(options: ClientOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'expected an object with `target` or `clusters`');
    }
    const multi =
      ('clusters' in options && options.clusters !== undefined) ||
      ('discovery' in options && options.discovery !== undefined);
    if (!multi) rejectUnknownKeys(options, SINGLE_SERVICE_KEYS, 'single-service');
    if (!multi && (options as SingleServiceOptions).target === undefined) {
      throw new InvalidOptionError('target', 'is required (or `clusters` for several services)');
    }
    if (multi && (options as Partial<SingleServiceOptions>).target !== undefined) {
      throw new InvalidOptionError('target', 'give either `target` (one service) or `clusters`, not both');
    }
    const created: Cluster[] = [];
    try {
      if (!multi) {
        const single = options as SingleServiceOptions;
        const name = single.name ?? defaultName(single);
        if (typeof name !== 'string' || name.length === 0) {
          throw new InvalidOptionError('name', 'expected a non-empty string');
        }
        const cluster = new Cluster(name, single);
        created.push(cluster);
        this.#clusters.set(name, cluster);
        this.#catchAll = cluster;
        this.#random = single.random ?? systemRandom;
        this.#defaults = {};
        this.#routes = compileRoutes([], new Set());
        this.#passthrough = undefined;
        this.#ownsPassthrough = false;
        this.#discovery = undefined;
      } else {
        const m = options as MultiServiceOptions;
        const configured = m.clusters ?? {};
        if (
          typeof configured !== 'object' ||
          configured === null ||
          (Object.keys(configured).length === 0 && m.discovery === undefined)
        ) {
          throw new InvalidOptionError('clusters', 'expected an object with at least one cluster (or `discovery`)');
        }
        rejectUnknownKeys(m, MULTI_SERVICE_KEYS, 'multi-service');
        this.#defaults = { resolvers: m.resolvers, pickers: m.pickers, clock: m.clock, random: m.random };
        this.#random = m.random ?? systemRandom;
        for (const [name, clusterOptions] of Object.entries(configured)) {
          if (name.length === 0) throw new InvalidOptionError('clusters', 'cluster names must be non-empty');
          let cluster: Cluster;
          try {
            cluster = new Cluster(name, this.#withDefaults(clusterOptions));
          } catch (err) {
            throw prefixed(err, `clusters.${name}`);
          }
          created.push(cluster);
          this.#clusters.set(name, cluster);
        }
        this.#catchAll = undefined;
        this.#routes = compileRoutes(m.routes ?? [], new Set(this.#clusters.keys()));
        this.#discovery = this.#resolveDiscovery(m.discovery);
        const pass = m.passthrough ?? false;
        if (pass !== true && pass !== false && (typeof pass !== 'object' || typeof pass.dispatch !== 'function')) {
          throw new InvalidOptionError('passthrough', 'expected true, false or an undici Dispatcher');
        }
        this.#ownsPassthrough = pass === true;
        this.#passthrough = pass === true ? new Agent() : pass === false ? undefined : pass;
      }
    } catch (err) {
      for (const cluster of created) void cluster.destroy();
      throw err;
    }
    this.#dispatcher = new BalancedDispatcher({
      dispatch: (opts, handler) => this.#dispatch(opts, handler),
      close: () => this.close(),
      destroy: (reason) => this.#destroy(reason),
    });
    this.dispatcher = this.#dispatcher;
    for (const cluster of this.#clusters.values()) {
      cluster.onHealthEvent((event) => this.#emit(event));
      cluster.start();
    }
  }

  #withDefaults(options: ClusterOptions): ClusterOptions {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'expected an object');
    return {
      ...options,
      resolvers: options.resolvers ?? this.#defaults.resolvers,
      pickers: options.pickers ?? this.#defaults.pickers,
      clock: options.clock ?? this.#defaults.clock,
      random: options.random ?? this.#defaults.random,
    };
  }

  #resolveDiscovery(raw: DiscoveryOptions | undefined): Discovery | undefined {
    if (raw === undefined) return undefined;
    if (typeof raw !== 'object' || raw === null) throw new InvalidOptionError('discovery', 'expected { domain }');
    const domain = typeof raw.domain === 'string' ? raw.domain.toLowerCase().replace(/^\.+|\.+$/g, '') : '';
    if (domain.length === 0 || /\s/.test(domain)) {
      throw new InvalidOptionError('discovery.domain', 'expected a domain such as "service.consul"');
    }
    if (raw.target !== undefined && typeof raw.target !== 'function') {
      throw new InvalidOptionError('discovery.target', 'expected a function from host to target');
    }
    const maxClusters = raw.maxClusters ?? 100;
    if (!Number.isInteger(maxClusters) || maxClusters < 1) {
      throw new InvalidOptionError('discovery.maxClusters', 'expected an integer >= 1');
    }
    const idleTimeout = raw.idleTimeout ?? 300_000;
    if (typeof idleTimeout !== 'number' || !(idleTimeout >= 1) || idleTimeout > 2 ** 31 - 1) {
      throw new InvalidOptionError('discovery.idleTimeout', 'expected a number of ms >= 1');
    }
    if (raw.cluster !== undefined) {
      // Validate the template once, with a placeholder target, so a bad option fails at construction.
      try {
        void new Cluster('discovery', this.#withDefaults({ ...raw.cluster, target: [] })).destroy();
      } catch (err) {
        throw prefixed(err, 'discovery.cluster');
      }
    }
    const cache: LRUCache<string, Cluster> = new LRUCache<string, Cluster>({
      max: maxClusters,
      ttl: idleTimeout,
      updateAgeOnGet: true,
      ttlAutopurge: true,
      // disposeAfter, not dispose: the entry is gone by then, so it may be put back.
      disposeAfter: (cluster, host, reason) => {
        // Idle means no traffic: a cluster still serving a long stream is kept for another idle period rather than
        // closed (which would cut the stream off after drainTimeout). Evictions by `maxClusters` still close it.
        if (reason === 'expire' && this.#closing === undefined && cluster.stats().inFlight > 0) {
          cache.set(host, cluster);
          return;
        }
        void cluster.close();
      },
    });
    return { options: raw, suffix: `.${domain}`, cache };
  }

  #discovered(host: string): Cluster | undefined {
    const discovery = this.#discovery;
    if (discovery === undefined || !host.endsWith(discovery.suffix) || host.length <= discovery.suffix.length) {
      return undefined;
    }
    // A second look: a get that finds the entry expired removes it, and disposeAfter puts a busy cluster right back.
    let cluster = discovery.cache.get(host) ?? discovery.cache.get(host);
    if (cluster === undefined) {
      const target = discovery.options.target?.(host) ?? `srv:///${host}`;
      cluster = new Cluster(host, this.#withDefaults({ ...discovery.options.cluster, target }));
      cluster.onHealthEvent((event) => this.#emit(event));
      cluster.start();
      discovery.cache.set(host, cluster);
    }
    return cluster;
  }

  #dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Before routing: a closed client must not create discovered clusters (nor mirror, nor pass through).
    if (this.#closing !== undefined) {
      toLegacyHandler(handler).onError?.(new ClientClosedError());
      return false;
    }
    if (this.#catchAll !== undefined) return this.#catchAll.dispatch(options, handler);
    let authority: string;
    try {
      authority = parseOrigin(options.origin).authority;
    } catch (err) {
      toLegacyHandler(handler).onError?.(err as Error);
      return false;
    }
    const host = hostOf(authority);
    const decision = this.#routes.route(
      { host, authority, method: options.method.toUpperCase(), path: options.path, headers: options.headers },
      this.#random,
    );
    if (decision !== undefined) {
      const cluster = this.#clusters.get(decision.cluster) as Cluster;
      const mirror = decision.mirror;
      if (mirror === undefined || this.#random() >= mirror.share) return cluster.dispatch(options, handler, decision);
      return this.#dispatchMirrored(cluster, options, handler, decision, authority);
    }
    let cluster = this.#clusters.get(host);
    if (cluster === undefined) {
      try {
        cluster = this.#discovered(host);
      } catch (err) {
        // A discovery target the resolvers reject: the request fails with that error, the client stays up.
        toLegacyHandler(handler).onError?.(isSidecarlessError(err) ? err : new Error(String(err), { cause: err }));
        return false;
      }
    }
    if (cluster !== undefined) return cluster.dispatch(options, handler);
    if (this.#passthrough !== undefined) {
      this.#passthroughCount++;
      return this.#passthrough.dispatch(options, handler);
    }
    toLegacyHandler(handler).onError?.(new NoRouteError(authority, options.path));
    return false;
  }

  /**
   * Dispatches a request picked for mirroring and sends a shadow copy (response discarded, bounded), like Envoy's
   * request mirroring (the copy's Host gets `-shadow`). A streamed body (which is what fetch always hands over) is
   * teed, so the copy goes out once the main request has sent the whole body; bodies above 1 MiB are not mirrored.
   */
  #dispatchMirrored(
    cluster: Cluster,
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
    decision: RouteDecision,
    authority: string,
  ): boolean {
    if (this.#mirrorsInFlight >= MAX_MIRRORS_IN_FLIGHT) {
      this.#mirrorSkipped++;
      return cluster.dispatch(options, handler, decision);
    }
    const target = this.#clusters.get((decision.mirror as NonNullable<RouteDecision['mirror']>).cluster) as Cluster;
    const host = hostOf(authority);
    const origin = `${parseOrigin(options.origin).protocol}//${host}-shadow${authority.slice(host.length)}`;
    // The slot is taken before any body is buffered, so the cap also bounds the memory held for copies.
    this.#mirrorsInFlight++;
    let state: 'pending' | 'sent' | 'released' = 'pending';
    const release = () => {
      if (state !== 'pending') return;
      state = 'released';
      this.#mirrorsInFlight--;
      this.#mirrorSkipped++;
    };
    const send = (body: Dispatcher.DispatchOptions['body']) => {
      if (state !== 'pending') return;
      state = 'sent';
      this.#mirrored++;
      const done = () => {
        this.#mirrorsInFlight--;
      };
      const copyHandler: LegacyHandler = { ...MIRROR_HANDLER_BASE, onComplete: done, onError: done };
      const copy: Dispatcher.DispatchOptions = { ...options, origin };
      if (body !== undefined) copy.body = body;
      target.dispatch(copy, copyHandler as Dispatcher.DispatchHandler);
    };
    const { body } = options;
    if (bodyReplay(body) !== 'once') {
      send(undefined);
      return cluster.dispatch(options, handler, decision);
    }
    if (typeof body !== 'object' || body === null || !(Symbol.asyncIterator in body)) {
      release();
      return cluster.dispatch(options, handler, decision);
    }
    const source = body as AsyncIterable<Uint8Array | string>;
    const teed = {
      async *[Symbol.asyncIterator]() {
        const chunks: Buffer[] = [];
        let size = 0;
        try {
          for await (const chunk of source) {
            if (state === 'pending') {
              const bytes = Buffer.from(chunk);
              size += bytes.length;
              if (size <= MAX_MIRROR_BODY) chunks.push(bytes);
              else {
                chunks.length = 0;
                release();
              }
            }
            yield chunk;
          }
          send(Buffer.concat(chunks));
        } finally {
          // The main request stopped sending its body part-way: there is nothing whole to copy.
          release();
        }
      },
    };
    // A main request that ends without reading its body (refused, no endpoint, an early response) frees the slot.
    const main = withEnd(toLegacyHandler(handler), release);
    const sent = { ...options, body: teed as unknown as NonNullable<Dispatcher.DispatchOptions['body']> };
    return cluster.dispatch(sent, main as Dispatcher.DispatchHandler, decision);
  }

  /**
   * `fetch` with balancing: the same inputs (string, URL or `Request`; `RequestInit` with streaming bodies and an
   * `AbortSignal`) and the same `Response`, from the platform's own fetch. The URL's authority is the logical
   * service name (sent as `Host`); the endpoint is chosen by the picker.
   *
   * Failures reject as fetch does: a `TypeError('fetch failed')` whose `cause` is the underlying error, a
   * {@link SidecarlessError} with a stable code where sidecarless raised it (see {@link findSidecarlessError}).
   * Aborts reject with the signal's reason.
   *
   * Redirects follow fetch's rules. One to the same origin is balanced again; on a single-service client, one to
   * another origin (the service sends the caller elsewhere) goes out as plain fetch would send it, not to the
   * service's endpoints. On a multi-service client every hop is routed like any request (to a cluster, the
   * passthrough, or `SIDECARLESS_NO_ROUTE`).
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    if (this.#closing !== undefined) return Promise.reject(new ClientClosedError());
    const dispatcher =
      this.#catchAll === undefined
        ? this.dispatcher
        : new ServiceFetchDispatcher(this.dispatcher, () => this.#elsewhere());
    return fetch(input, { ...init, dispatcher } as unknown as RequestInit);
  }

  #elsewhere(): Dispatcher {
    // A hop that arrives after close() is refused by the closed balanced dispatcher rather than opening an agent.
    if (this.#closing !== undefined) return this.dispatcher;
    this.#passthroughCount++;
    return (this.#redirectAgent ??= new Agent());
  }

  /**
   * Resolves once every configured cluster's resolver has delivered its first endpoint set (requests never need
   * this: they wait for endpoints on their own, up to `waitForReadyTimeout`). Useful at startup, in tests and in
   * readiness probes. Rejects with `SIDECARLESS_NO_ENDPOINTS` (naming the first cluster still waiting) after
   * `timeoutMs`, with `SIDECARLESS_CLIENT_CLOSED` when the client is closed or destroyed first, and with
   * `SIDECARLESS_INVALID_OPTION` for a `timeoutMs` that is not a number of ms from 0 to 2^31-1.
   *
   * @example
   * ```ts
   * const client = createClient({ target: 'srv:///_http._tcp.users' });
   * await client.ready(5_000); // the first SRV answer is in
   * ```
   */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new ClientClosedError());
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || timeoutMs > MAX_TIMER_MS) {
      return Promise.reject(new InvalidOptionError('timeoutMs', 'expected a number of ms from 0 to 2^31-1'));
    }
    const clusters = [...this.#clusters.values()];
    if (clusters.every((c) => c.resolved)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        this.#readyWaits.delete(settle);
        if (error === undefined) resolve();
        else reject(error);
      };
      // Ref'd, like a request's wait for endpoints (see Clock.setTimeout): the caller awaits it, and an unref'd
      // timer would let a top-level `await client.ready()` end the process (exit code 13) instead of rejecting.
      // close() and destroy() clear it, so it never outlives the client.
      const timer = setTimeout(() => {
        const waiting = clusters.find((c) => !c.resolved);
        settle(new NoEndpointsError(waiting?.name ?? 'unknown', timeoutMs));
      }, timeoutMs);
      this.#readyWaits.add(settle);
      void Promise.all(clusters.map((c) => c.whenResolved())).then(() => settle());
    });
  }

  #failReadyWaits(): void {
    const error = new ClientClosedError();
    for (const settle of [...this.#readyWaits]) settle(error);
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
    this.#routes = compileRoutes(routes, new Set(this.#clusters.keys()));
  }

  /** A snapshot of every cluster's endpoints, states and counters. */
  stats(): ClientStats {
    const discovered = this.#discovery === undefined ? [] : [...this.#discovery.cache.values()];
    return {
      clusters: [...this.#clusters.values(), ...discovered].map((c) => c.stats()),
      passthrough: this.#passthroughCount,
      mirrored: { sent: this.#mirrored, skipped: this.#mirrorSkipped },
    };
  }

  /**
   * Subscribes to endpoint health events of every cluster, discovered ones included: `eject` and `return` (outlier
   * detection, with the rule or way back as `reason`), `unhealthy` and `healthy` (active health checks). Returns a
   * handle whose `dispose()` unsubscribes.
   *
   * @example
   * ```ts
   * const sub = client.onHealthEvent((e) => log.warn(`${e.cluster} ${e.endpoint.key} ${e.type}: ${e.reason}`));
   * sub.dispose();
   * ```
   */
  onHealthEvent(listener: (event: HealthEvent) => void): Disposable {
    this.#listeners.add(listener);
    return { dispose: () => this.#listeners.delete(listener) };
  }

  #emit(event: HealthEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the others still hear the event.
      }
    }
  }

  *#allClusters(): Iterable<Cluster> {
    yield* this.#clusters.values();
    if (this.#discovery !== undefined) yield* this.#discovery.cache.values();
  }

  /** The endpoints of the client's single cluster (or of the first configured cluster; none without one). */
  get endpoints(): ClusterStats['endpoints'] {
    return this.#clusters.values().next().value?.stats().endpoints ?? [];
  }

  /**
   * Stops resolution, fails requests still waiting for an endpoint and pending {@link Client.ready} calls with
   * `SIDECARLESS_CLIENT_CLOSED`, lets in-flight requests finish (bounded by
   * `drainTimeout`), and closes every connection and timer, so the process can exit. Idempotent: every call returns
   * the same promise.
   */
  close(): Promise<void> {
    this.#dispatcher.markClosed();
    this.#failReadyWaits();
    this.#closing ??= (async () => {
      const clusters = [...this.#allClusters()];
      this.#discovery?.cache.clear();
      await Promise.all(clusters.map((c) => c.close()));
      if (this.#ownsPassthrough) await this.#passthrough?.close();
      await this.#redirectAgent?.close();
    })();
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
    this.#failReadyWaits();
    const done = (async () => {
      const clusters = [...this.#allClusters()];
      await Promise.all(clusters.map((c) => c.destroy(reason)));
      this.#discovery?.cache.clear();
      if (this.#ownsPassthrough) await this.#passthrough?.destroy(reason ?? null);
      await this.#redirectAgent?.destroy(reason ?? null);
    })();
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
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
