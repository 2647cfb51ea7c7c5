/**
 * The resolver contract, target parsing and the URL-scheme registry resolvers plug into.
 *
 * A resolver turns a target (`static://10.0.0.1:80,10.0.0.2:80`, `dns:///users.internal:8080`, ...) into a live
 * endpoint set and keeps it fresh. It knows nothing of connections or balancing; the cluster owns those.
 *
 * @module
 */
import type { Endpoint } from '../common/endpoint.js';
import { InvalidOptionError, InvalidTargetError, type SidecarlessError, UnknownSchemeError } from '../common/errors.js';
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
   * the resolver must not mutate them afterwards. Keys must be unique within the set.
   */
  onUpdate(endpoints: readonly Endpoint[]): void;
  /**
   * Resolution failed. The previous set stays in use (last known good); the resolver keeps retrying with backoff
   * on its own and calls `onUpdate` once it succeeds.
   */
  onError(error: SidecarlessError): void;
}

/**
 * A source of endpoint sets. Created by a {@link ResolverFactory} (or by the user), owned by exactly one cluster.
 *
 * Life cycle: `start` once, then any number of `refresh`, then `close` (idempotent). The cluster calls `close`
 * when it closes; a resolver that owns timers, sockets or watches must release them there and leave no handle
 * that keeps the process alive (timers unref'd).
 *
 * @category Resolvers
 */
export interface Resolver {
  /** Starts resolving; results go to `listener`. Called once, before any other method. */
  start(listener: ResolverListener): void;
  /**
   * A hint that the current set may be stale. The cluster calls it each time an endpoint enters
   * `transient-failure` (it refused or dropped a connection), so hints come in bursts while endpoints fail.
   *
   * The rule every built-in resolver follows, and custom resolvers should too:
   * - while the resolver is backing off after a failed resolution, the hint is ignored: a retry is already
   *   scheduled, and cutting the backoff short would hammer a discovery server that is failing;
   * - while a resolution is already starting or due within the rate limit, the hint adds nothing;
   * - otherwise it triggers one early re-resolution, at most once per the resolver's refresh interval
   *   (`dns:`/`srv:` `minTtl`, Consul and etcd `refreshInterval`); further hints inside the interval are dropped.
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
 * Creates a resolver for a parsed target. Validate the target synchronously and throw
 * {@link InvalidTargetError} for a bad one, so users see the error at construction. Do not start I/O here:
 * resolution starts in {@link Resolver.start}.
 *
 * @category Resolvers
 */
export type ResolverFactory = (target: Target, context: ResolverContext) => Resolver;

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s;

/**
 * Parses a target string. Throws {@link InvalidTargetError} when it has no scheme or contains whitespace.
 *
 * @example
 * ```ts
 * parseTarget('dns://127.0.0.1:53/users.internal:8080?ttl=5');
 * // { scheme: 'dns', authority: '127.0.0.1:53', path: 'users.internal:8080', query: ttl=5 }
 * ```
 *
 * @category Resolvers
 */
export function parseTarget(raw: string): Target {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InvalidTargetError(String(raw), 'a target must be a non-empty string');
  }
  if (/\s/.test(raw)) throw new InvalidTargetError(raw, 'a target must not contain whitespace');
  const match = SCHEME.exec(raw);
  if (match === null) throw new InvalidTargetError(raw, 'expected "scheme:..." (e.g. "static://10.0.0.1:8080")');
  const scheme = (match[1] as string).toLowerCase();
  let rest = match[2] as string;
  let queryText = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    queryText = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let authority = '';
  let path: string;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    path = slash < 0 ? '' : rest.slice(slash + 1);
  } else {
    path = rest.startsWith('/') ? rest.slice(1) : rest;
  }
  return { scheme, authority, path, query: new URLSearchParams(queryText), raw };
}

/**
 * Maps URL schemes to resolver factories. Each client uses its own registry, so registering a scheme never
 * affects another client. {@link createResolverRegistry} returns one with the built-in schemes.
 *
 * @example
 * ```ts
 * const resolvers = createResolverRegistry();
 * resolvers.register('fleet', (target) => new StaticResolver(lookUpFleet(target.path)));
 * const client = createClient({ target: 'fleet:///checkout', resolvers });
 * ```
 *
 * @category Resolvers
 */
export class ResolverRegistry {
  readonly #factories = new Map<string, ResolverFactory>();

  /**
   * Registers (or replaces) the factory for `scheme` (without the colon, case-insensitive).
   * Throws {@link InvalidOptionError} for a malformed scheme.
   */
  register(scheme: string, factory: ResolverFactory): this {
    if (typeof scheme !== 'string' || !/^[a-zA-Z][a-zA-Z0-9+.-]*$/.test(scheme)) {
      throw new InvalidOptionError('scheme', `expected a URL scheme like "consul", got ${JSON.stringify(scheme)}`);
    }
    if (typeof factory !== 'function') throw new InvalidOptionError('factory', 'expected a function');
    this.#factories.set(scheme.toLowerCase(), factory);
    return this;
  }

  /** True when `scheme` has a factory. */
  has(scheme: string): boolean {
    return this.#factories.has(scheme.toLowerCase());
  }

  /** The registered schemes, sorted. */
  schemes(): string[] {
    return [...this.#factories.keys()].sort();
  }

  /**
   * Parses `target` and creates its resolver. Throws {@link InvalidTargetError} or {@link UnknownSchemeError}.
   */
  create(target: string | Target, context: ResolverContext): Resolver {
    const parsed = typeof target === 'string' ? parseTarget(target) : target;
    const factory = this.#factories.get(parsed.scheme);
    if (factory === undefined) throw new UnknownSchemeError(parsed.scheme, this.schemes());
    return factory(parsed, context);
  }
}
