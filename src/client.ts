/**
 * The client: what users create. Owns the cluster(s) and exposes a balanced `fetch`, an undici `dispatcher`, stats,
 * and `close()`.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { Cluster, type ClusterOptions, type ClusterStats } from './cluster.js';
import { ClientClosedError, InvalidOptionError } from './errors.js';
import type { Disposable, HealthEvent } from './health/endpoint-health.js';
import { BalancedDispatcher } from './request/dispatcher.js';
import { parseTarget } from './resolver/resolver.js';

/** Options of {@link createClient}. */
export interface ClientOptions extends ClusterOptions {
  /**
   * A name for the service, used in errors, stats and logs. @defaultValue the target's scheme and authority, or
   * `'default'` for resolver objects and lists
   */
  readonly name?: string | undefined;
}

/** A point-in-time snapshot of a client. */
export interface ClientStats {
  readonly clusters: readonly ClusterStats[];
}

function defaultName(options: ClientOptions): string {
  if (typeof options.target !== 'string') return 'default';
  try {
    const t = parseTarget(options.target);
    return `${t.scheme}:${t.authority || t.path}`.slice(0, 200);
  } catch {
    return 'default';
  }
}

/**
 * A client-side load balancer for one service.
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
 */
export class Client {
  /**
   * An undici `Dispatcher` that balances: pass it as `dispatcher` to `undici.request`, `undici.fetch`, `stream`,
   * `pipeline`, or install it with `setGlobalDispatcher`.
   */
  readonly dispatcher: Dispatcher;

  readonly #cluster: Cluster;
  #closing: Promise<void> | undefined;

  /** Validates every option (throwing `SIDECARLESS_*` errors that name the option) and starts resolution. */
  constructor(options: ClientOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'expected an object with at least `target`');
    }
    if (options.target === undefined) throw new InvalidOptionError('target', 'is required');
    const name = options.name ?? defaultName(options);
    if (typeof name !== 'string' || name.length === 0)
      throw new InvalidOptionError('name', 'expected a non-empty string');
    this.#cluster = new Cluster(name, options);
    this.dispatcher = new BalancedDispatcher({
      dispatch: (opts, handler) => this.#cluster.dispatch(opts, handler),
      close: () => this.close(),
      destroy: (reason) => this.#destroy(reason),
    });
    this.#cluster.start();
  }

  /**
   * `fetch` with balancing: the same inputs (string, URL or `Request`; `RequestInit` with streaming bodies and an
   * `AbortSignal`) and the same `Response`, from the platform's own fetch. The URL's authority is the logical
   * service name (sent as `Host`); the endpoint is chosen by the picker.
   *
   * Failures reject as fetch does: a `TypeError('fetch failed')` whose `cause` is the underlying error, a
   * {@link SidecarlessError} with a stable code where sidecarless raised it (see {@link findSidecarlessError}).
   * Aborts reject with the signal's reason.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    if (this.#closing !== undefined) return Promise.reject(new ClientClosedError());
    return fetch(input, { ...init, dispatcher: this.dispatcher } as unknown as RequestInit);
  }

  /** A snapshot of endpoints, states and counters. */
  stats(): ClientStats {
    return { clusters: [this.#cluster.stats()] };
  }

  /**
   * Subscribes to endpoint health events: `eject` and `return` (outlier detection, with the rule or way back as
   * `reason`), `unhealthy` and `healthy` (active health checks). Returns a handle whose `dispose()` unsubscribes.
   *
   * @example
   * ```ts
   * const sub = client.onHealthEvent((e) => log.warn(`${e.endpoint.key} ${e.type}: ${e.reason}`));
   * sub.dispose();
   * ```
   */
  onHealthEvent(listener: (event: HealthEvent) => void): Disposable {
    return this.#cluster.onHealthEvent(listener);
  }

  /** The cluster's current endpoints. */
  get endpoints(): ReturnType<Cluster['stats']>['endpoints'] {
    return this.#cluster.stats().endpoints;
  }

  /**
   * Stops resolution, fails requests still waiting for an endpoint, lets in-flight requests finish (bounded by
   * `drainTimeout`), and closes every connection and timer, so the process can exit. Idempotent: every call returns
   * the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#cluster.close();
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
    const done = this.#cluster.destroy(reason);
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
