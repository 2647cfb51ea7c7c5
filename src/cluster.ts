/**
 * A cluster: one logical service. One resolver, one subchannel pool, one picker policy; the request path from
 * pick to subchannel.
 *
 * @module
 */
import type { Dispatcher, Pool } from 'undici';
import { createEndpointSet, type Endpoint, type EndpointInit } from './endpoint.js';
import {
  ClientClosedError,
  InvalidOptionError,
  isSidecarlessError,
  NoEndpointsError,
  ProtocolMismatchError,
  ResolverError,
  type SidecarlessError,
} from './errors.js';
import { createDebug } from './internal/debug.js';
import { toLegacyHandler } from './internal/handler.js';
import { createPickerRegistry } from './picker/index.js';
import type { ConfiguredPolicy, Picker, PickerOption, PickerRegistry, PickResult } from './picker/picker.js';
import { BalancedRequest } from './request/balanced-request.js';
import { withHostHeader } from './request/headers.js';
import { parseOrigin } from './request/origin.js';
import { createResolverRegistry } from './resolver/index.js';
import type { Resolver, ResolverRegistry } from './resolver/resolver.js';
import { StaticResolver } from './resolver/static.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from './runtime.js';
import { type BackoffOptions, type ResolvedBackoffOptions, resolveBackoffOptions } from './subchannel/backoff.js';
import type { Subchannel, SubchannelState } from './subchannel/subchannel.js';
import { SubchannelPool } from './subchannel/subchannel-pool.js';

const debug = createDebug('cluster');

/** Where a cluster's endpoints come from. */
export type TargetOption = string | Resolver | ReadonlyArray<string | EndpointInit | Endpoint>;

/** Options of one cluster (one logical service). */
export interface ClusterOptions {
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
  /** Backoff after an endpoint refuses connections. Defaults: 1 s, x1.6, jitter 0.2, max 120 s. */
  readonly connectBackoff?: BackoffOptions | undefined;
  /** Resolver registry for target strings. @defaultValue createResolverRegistry() */
  readonly resolvers?: ResolverRegistry | undefined;
  /** Picker registry for policy names. @defaultValue createPickerRegistry() */
  readonly pickers?: PickerRegistry | undefined;
  /** Clock for every timer and measurement (tests inject a fake). @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for every random choice (tests inject a seeded one). @defaultValue Math.random */
  readonly random?: RandomSource | undefined;
}

/** Per-endpoint figures in a {@link ClusterStats} snapshot. */
export interface EndpointStats {
  readonly key: string;
  readonly state: SubchannelState;
  readonly weight: number;
  readonly inFlight: number;
  readonly attempts: number;
  readonly responses: number;
  /** Responses by status class: `{ '2xx': n, ... }`. */
  readonly statusClasses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
  readonly errors: number;
  readonly connectFailures: number;
  /** Mean time to response headers, ms (0 before the first response). */
  readonly meanLatencyMs: number;
}

/** A point-in-time snapshot of a cluster. */
export interface ClusterStats {
  readonly name: string;
  /** Active endpoints, in resolver order. */
  readonly endpoints: readonly EndpointStats[];
  /** Removed endpoints still finishing in-flight requests. */
  readonly draining: number;
  /** Requests waiting for an endpoint. */
  readonly pending: number;
  readonly resolver: {
    readonly updates: number;
    readonly errors: number;
    readonly lastError: string | undefined;
  };
}

const QUEUE: PickResult<Subchannel> = { type: 'queue' };
const MAX_TIMER_MS = 2 ** 31 - 1;

function timeoutOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(name, `expected a number of ms from 0 to ${MAX_TIMER_MS}, got ${String(value)}`);
  }
  return value;
}

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
  readonly policy: ConfiguredPolicy;
  readonly host: string | false | undefined;
  readonly waitForReadyTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly poolOptions: Pool.Options;
  readonly connectBackoff: ResolvedBackoffOptions;
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
  /** The cluster's name (used in errors, stats and logs). */
  readonly name: string;

  readonly #options: ResolvedClusterOptions;
  readonly #resolver: Resolver;
  readonly #pool: SubchannelPool;
  #picker: Picker<Subchannel> | null = null;
  readonly #pending = new Set<BalancedRequest>();
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
    const pool = options.pool ?? {};
    if (typeof pool !== 'object' || pool === null) throw new InvalidOptionError('pool', 'expected undici Pool options');
    if ('factory' in pool) throw new InvalidOptionError('pool.factory', 'the cluster creates its own pools');
    this.#options = {
      name,
      policy: pickers.configure(options.picker ?? 'round-robin'),
      host,
      waitForReadyTimeoutMs: timeoutOption(options.waitForReadyTimeout, 'waitForReadyTimeout', 10_000),
      drainTimeoutMs: timeoutOption(options.drainTimeout, 'drainTimeout', 30_000),
      poolOptions: pool,
      connectBackoff: resolveBackoffOptions(options.connectBackoff, 'connectBackoff'),
      clock,
      random,
    };
    this.#resolver = this.#createResolver(options);
    this.#pool = new SubchannelPool({
      protocol: 'http:',
      poolOptions: this.#options.poolOptions,
      clock,
      random,
      connectBackoff: this.#options.connectBackoff,
      drainTimeoutMs: this.#options.drainTimeoutMs,
      observer: {
        onStateChange: (subchannel, previous) => this.#onStateChange(subchannel, previous),
        onOutcome: () => {},
      },
      onMembershipChange: () => this.#rebuildPicker(),
    });
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
  }

  #onResolverError(error: SidecarlessError): void {
    if (this.#closed) return;
    this.#resolverErrors++;
    this.#lastResolverError = isSidecarlessError(error) ? error : new ResolverError(String(error), { cause: error });
    debug('%s: resolver error (%s); keeping %d endpoints', this.name, error.message, this.#pool.subchannels.length);
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
    const active = this.#pool.subchannels;
    let eligible = active.filter((s) => s.usable);
    // Every endpoint failing to connect: keep sending (and let callers see the real connection error) rather than
    // parking requests behind backoff timers.
    if (eligible.length === 0) eligible = [...active];
    const { policy, config } = this.#options.policy;
    this.#picker = eligible.length === 0 ? null : policy.build(eligible, config, this.#options);
    this.#flushPending();
  }

  #flushPending(): void {
    if (this.#picker === null || this.#pending.size === 0) return;
    const waiting = [...this.#pending];
    this.#pending.clear();
    for (const request of waiting) this.#route(request);
  }

  /**
   * Dispatches one request (undici `Dispatcher.dispatch` semantics). Errors reach the handler's `onError`, never
   * throw. Returns true when accepted.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const user = toLegacyHandler(handler);
    if (this.#closed) {
      user.onError?.(new ClientClosedError());
      return false;
    }
    let authority: string;
    try {
      const origin = parseOrigin(options.origin);
      if (origin.protocol !== 'http:') {
        throw new ProtocolMismatchError(
          `Cluster "${this.name}" speaks plain HTTP; a ${origin.protocol} request is refused rather than sent unencrypted`,
        );
      }
      authority = origin.authority;
    } catch (err) {
      user.onError?.(err as Error);
      return false;
    }
    const request = new BalancedRequest(
      options,
      user,
      { method: options.method, path: options.path, authority, headers: options.headers },
      this,
    );
    if (!request.start()) {
      request.fail(request.abortReason ?? new Error('aborted'));
      return true;
    }
    this.#route(request);
    return true;
  }

  #route(request: BalancedRequest): void {
    if (request.done) return;
    const result = this.#picker === null ? QUEUE : this.#picker.pick(request.context);
    switch (result.type) {
      case 'complete':
        this.#send(request, result.target);
        return;
      case 'queue':
        this.#enqueue(request);
        return;
      default:
        this.#clearTimer(request);
        request.fail(result.error);
    }
  }

  #send(request: BalancedRequest, subchannel: Subchannel): void {
    this.#clearTimer(request);
    const { options } = request;
    const host = this.#options.host;
    const hostValue = host === undefined ? request.context.authority : host;
    request.markSent();
    const attempt: Dispatcher.DispatchOptions = { ...options, origin: subchannel.origin };
    if (hostValue !== false) attempt.headers = withHostHeader(options.headers, hostValue);
    subchannel.dispatch(attempt, request);
  }

  #enqueue(request: BalancedRequest): void {
    const waitMs = this.#options.waitForReadyTimeoutMs;
    if (request.queueTimer === undefined) {
      if (waitMs === 0) {
        request.fail(new NoEndpointsError(this.name, 0, { cause: this.#lastResolverError }));
        return;
      }
      request.queueTimer = this.#options.clock.setTimeout(() => {
        request.queueTimer = undefined;
        this.#pending.delete(request);
        request.fail(new NoEndpointsError(this.name, waitMs, { cause: this.#lastResolverError }));
      }, waitMs);
    }
    request.markQueued();
    this.#pending.add(request);
  }

  #clearTimer(request: BalancedRequest): void {
    if (request.queueTimer !== undefined) {
      this.#options.clock.clearTimeout(request.queueTimer);
      request.queueTimer = undefined;
    }
  }

  /** @internal Removes an aborted request from the wait queue. */
  dequeue(request: BalancedRequest): void {
    this.#clearTimer(request);
    this.#pending.delete(request);
  }

  /** The current active endpoints, in resolver order. */
  get endpoints(): readonly Endpoint[] {
    return this.#pool.subchannels.map((s) => s.endpoint);
  }

  /** A point-in-time snapshot of endpoints, states and counters. */
  stats(): ClusterStats {
    return {
      name: this.name,
      endpoints: this.#pool.subchannels.map((s) => {
        const c = s.counters;
        return {
          key: s.key,
          state: s.state,
          weight: s.endpoint.weight,
          inFlight: s.inFlight,
          attempts: c.attempts,
          responses: c.responses,
          statusClasses: {
            '1xx': c.statusClasses[1],
            '2xx': c.statusClasses[2],
            '3xx': c.statusClasses[3],
            '4xx': c.statusClasses[4],
            '5xx': c.statusClasses[5],
          },
          errors: c.errors,
          connectFailures: c.connectFailures,
          meanLatencyMs: c.responses === 0 ? 0 : c.latencySumMs / c.responses,
        };
      }),
      draining: this.#pool.draining.size,
      pending: this.#pending.size,
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
      request.fail(error);
    }
  }

  /**
   * Stops resolution, fails waiting requests with `SIDECARLESS_CLIENT_CLOSED`, lets in-flight requests finish
   * (bounded by `drainTimeout`) and closes every connection. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#picker = null;
      this.#closing = (async () => {
        this.#failPending(new ClientClosedError());
        await this.#resolver.close();
        await this.#pool.close();
      })();
    }
    return this.#closing;
  }

  /** Like {@link Cluster.close}, but fails in-flight requests at once (with `reason` when given). */
  async destroy(reason?: Error): Promise<void> {
    this.#closed = true;
    this.#picker = null;
    this.#failPending(reason ?? new ClientClosedError());
    await this.#resolver.close();
    await this.#pool.destroy(reason);
  }
}
