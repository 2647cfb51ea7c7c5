/**
 * The Consul resolver: a service's healthy instances from Consul's health API, kept fresh with blocking queries.
 *
 * **Target:** `consul://[host:port]/service-name[?query]`, e.g.
 * `consul://127.0.0.1:8500/web?dc=dc1&tag=v2&passing=true&wait=5m`. With no authority (`consul:///web`) the agent
 * address comes from `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`. Query parameters (each maps to an option of
 * {@link ConsulResolverOptions}):
 * - `dc` ({@link ConsulResolverOptions.datacenter}), `ns` ({@link ConsulResolverOptions.namespace}),
 *   `partition`, `filter` (a Consul filter expression), `tag` (repeat it: every tag must be present);
 * - `health` = `passing` | `warning` | `any`; `passing=true` is `health=passing`, `passing=false` is
 *   `health=warning` (critical instances are never balanced to unless `health=any`);
 * - `wait` (`300ms`, `30s`, `5m`; at most `10m`), `zone-key` (the `Service.Meta` key holding the zone);
 * - `tls=true` (https with the system CAs; use the options form for a private CA or client certificates).
 *
 * The ACL token is never accepted in the target (a URL ends up in logs); it comes from the `token` option or
 * the `CONSUL_HTTP_TOKEN` environment variable, and travels only in the `X-Consul-Token` header.
 *
 * **Protocol** (Consul "Blocking Queries"): `GET /v1/health/service/:name` with `index` set to the last
 * `X-Consul-Index` and `wait`. The index is an unsigned 64-bit integer, kept and compared exactly (also above
 * 2^53); one that is not a decimal uint64 counts as missing (the next query does not block). An index that goes
 * backwards is reset to 0 (the next query does not block and reads the full state); an index below 1 is sent as 1. The client timeout is `waitMs × 17/16 + timeoutMarginMs`,
 * since Consul adds up to `wait / 16` of jitter. Queries start at most once per `minRequestIntervalMs`, so a server
 * that answers at once with a new index cannot cause a hot loop. Failures go to `onError` as {@link ConsulError}
 * (with a `reason`) and are retried with exponential backoff, keeping the index; the last good set stays in use.
 * An empty answer is authoritative and is delivered as an empty set. An unchanged set (a wake-up without a change)
 * is not delivered again.
 *
 * **Mapping** of one health entry to an {@link Endpoint}:
 * - host: `Service.Address`, or `Node.Address` when it is empty; port: `Service.Port`;
 * - weight: `Service.Weights.Passing` for a passing instance, `Service.Weights.Warning` for one whose worst check
 *   is `warning` (defaults 1 and 1, as Consul). A weight of 0 means "send no traffic" (Consul's DNS interface
 *   omits such instances too), so the instance is left out of the set;
 * - zone: `Service.Meta[zoneKey]`, else `Node.Meta[zoneKey]` (`zoneKey` defaults to `zone`);
 * - metadata: `tag:<tag>` = `''` for each tag, `meta.<key>` = value for each `Service.Meta` entry, and
 *   `consul.service-id`, `consul.node`, `consul.datacenter` (when known), `consul.health`
 *   (`passing` | `warning` | `critical`).
 * Entries of the wrong shape are skipped and counted ({@link ConsulResolver.skippedEntries}); when two instances
 * share `host:port` the first one wins. A body that is not a JSON array, or whose entries are all malformed, is an
 * error (`bad-response`) and leaves the last good set in place.
 *
 * **refresh()**: when a blocking query is in flight, it is aborted and re-issued with the same index (which returns
 * at once if anything changed and also replaces a connection that may have died silently). At most one such
 * early re-query per `refreshIntervalMs`; during error backoff the hint is ignored.
 *
 * @module
 */
import { Pool } from 'undici';
import { ServiceNotFoundError } from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { Backoff } from '../../common/backoff.js';
import { ConsulError } from '../errors.js';
import { withDeadline } from '../deadline.js';
import { readBody } from '../read-body.js';
import type { Resolver, ResolverFactory, ResolverListener } from '../resolver.js';
import { asTargetError } from '../target.js';
import { type WatchRun, WatchLoop } from '../watch-loop.js';
import {
  type ConsulResolverOptions,
  consulOptionsFromTarget,
  redactConsulTarget,
  type ResolvedConsulOptions,
  resolveConsulOptions,
} from './options.js';
import { type ConsulParseResult, formatConsulDuration, parseConsulHealth } from './parse.js';

export type { ConsulHealthFilter, ConsulResolverOptions, ConsulTlsOptions } from './options.js';
export { ConsulError, DiscoveryError, type DiscoveryFailureReason } from '../errors.js';

const debug = createDebug('consul');

/** The largest `X-Consul-Index`: Consul's indexes are uint64. A larger header is invalid (the index resets to 0). */
const MAX_CONSUL_INDEX = 2n ** 64n - 1n;

/**
 * Resolves a Consul service through the health API with blocking queries. See the module documentation for the
 * protocol, the mapping to endpoints and the error handling.
 *
 * @example
 * ```ts
 * const resolver = new ConsulResolver({ address: 'https://consul.internal:8501', service: 'web', tags: ['v2'] });
 * const client = createClient({ target: resolver });
 * ```
 *
 * @category Resolvers
 */
export class ConsulResolver implements Resolver {
  readonly #options: ResolvedConsulOptions;
  readonly #pool: Pool;
  readonly #loop: WatchLoop;
  /** Consul indexes are uint64: kept exact, beyond the 2^53 a number holds. */
  #index = 0n;
  #requests = 0;
  #skipped = 0;

  /** Validates every option (throwing `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: ConsulResolverOptions) {
    this.#options = resolveConsulOptions(options);
    const { clock, connect, minRequestIntervalMs, refreshIntervalMs, service } = this.#options;
    this.#loop = new WatchLoop(
      {
        label: service,
        clock,
        backoff: new Backoff(this.#options.backoff, this.#options.random),
        minIntervalMs: minRequestIntervalMs,
        refresh: { mode: 'watch', intervalMs: refreshIntervalMs },
        debug,
      },
      (run) => this.#query(run),
    );
    // Our own timer bounds each query; undici's timeouts (300 s by default, below a 5 m wait + jitter) sit above it.
    const undiciTimeout = this.#options.timeoutMs + 1000;
    this.#pool = new Pool(this.#options.origin, {
      connections: 2,
      headersTimeout: undiciTimeout,
      bodyTimeout: undiciTimeout,
      ...(connect !== undefined ? { connect } : {}),
    });
  }

  /** Queries sent so far (for diagnostics and tests). */
  get requestCount(): number {
    return this.#requests;
  }

  /** Malformed or duplicate entries skipped so far. */
  get skippedEntries(): number {
    return this.#skipped;
  }

  /**
   * The index the next blocking query will send (0: the next query does not block). Consul's indexes are unsigned
   * 64-bit integers: one above 2^53 (`Number.MAX_SAFE_INTEGER`) shows here rounded to the nearest number, while
   * the query sends it exact and compares it exactly.
   */
  get index(): number {
    return Number(this.#index);
  }

  start(listener: ResolverListener): void {
    this.#loop.start(listener);
  }

  refresh(): void {
    this.#loop.refresh();
  }

  async close(): Promise<void> {
    if (this.#loop.closed) return;
    this.#loop.close();
    await this.#pool.destroy().catch(() => {});
  }

  #path(): string {
    const params = this.#options.query;
    let extra = '';
    if (this.#index > 0n) {
      extra = `index=${this.#index}&wait=${formatConsulDuration(this.#options.waitMs)}`;
    }
    const query = [params, extra].filter((s) => s.length > 0).join('&');
    return `/v1/health/service/${encodeURIComponent(this.#options.service)}${query ? `?${query}` : ''}`;
  }

  /** One blocking query, bounded by the client timeout; aborted with the run on refresh or close. */
  async #query(
    run: WatchRun,
  ): Promise<{ endpoints: ConsulParseResult['endpoints']; notFound: ServiceNotFoundError | undefined }> {
    const { clock, service, timeoutMs } = this.#options;
    run.started();
    this.#requests++;
    let result: ConsulParseResult;
    let indexHeader: string | undefined;
    try {
      ({ result, indexHeader } = await withDeadline(
        clock,
        timeoutMs,
        run.signal,
        (signal) => this.#request(signal),
        () => new ConsulError('timeout', `Consul query for service "${service}" got no answer within ${timeoutMs} ms`),
      ));
    } catch (err) {
      throw this.#toError(err);
    }
    this.#updateIndex(indexHeader);
    this.#skipped += result.skipped;
    if (result.skipped > 0) {
      debug('%s: skipped %d malformed entries (first: %s)', service, result.skipped, result.firstProblem);
      // Reported, not fatal: the rest of the set is delivered (one bad registry entry must not cost the others).
      run.report(
        new ConsulError(
          'bad-response',
          `Consul service "${service}": skipped ${result.skipped} unusable entries (first: ${result.firstProblem})`,
        ),
      );
    }
    debug('%s: answer at index %s', service, this.#index);
    const notFound =
      result.endpoints.length > 0
        ? undefined
        : new ServiceNotFoundError(
            service,
            `Consul has no instance of service "${service}"` +
              (result.excluded > 0 ? ` (${result.excluded} left out by the health filter)` : ''),
          );
    return { endpoints: result.endpoints, notFound };
  }

  #updateIndex(header: string | undefined): void {
    // A uint64 in decimal, compared exactly (a number would round one above 2^53, and the query would send back an
    // index Consul never gave).
    const parsed = header !== undefined && /^\d{1,20}$/.test(header) ? BigInt(header) : undefined;
    const next = parsed !== undefined && parsed <= MAX_CONSUL_INDEX ? parsed : undefined;
    if (next === undefined) {
      // Without an index the next query cannot block; the rate limit keeps it from looping hot.
      debug('%s: missing or invalid X-Consul-Index; next query will not block', this.#options.service);
      this.#index = 0n;
    } else if (next < this.#index) {
      debug('%s: X-Consul-Index went backwards (%s -> %s); resetting to 0', this.#options.service, this.#index, next);
      this.#index = 0n;
    } else {
      this.#index = next > 1n ? next : 1n;
    }
  }

  async #request(signal: AbortSignal): Promise<{ result: ConsulParseResult; indexHeader: string | undefined }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#options.token !== undefined) headers['x-consul-token'] = this.#options.token;
    const res = await this.#pool.request({ method: 'GET', path: this.#path(), headers, signal });
    const body = await readBody(
      res.body,
      this.#options.maxResponseBytes,
      (max) => new ConsulError('bad-response', `Consul answered with a body larger than ${max} bytes`),
    );
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new ConsulError(
        'forbidden',
        `Consul refused the query for service "${this.#options.service}" (HTTP ${res.statusCode}: ${this.#snippet(body)})`,
        { status: res.statusCode },
      );
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new ConsulError(
        'http-status',
        `Consul answered HTTP ${res.statusCode} for service "${this.#options.service}": ${this.#snippet(body)}`,
        { status: res.statusCode },
      );
    }
    const raw = res.headers['x-consul-index'];
    const indexHeader = Array.isArray(raw) ? raw[0] : raw;
    const result = parseConsulHealth(body, {
      health: this.#options.health,
      zoneKey: this.#options.zoneKey,
      maxEntries: this.#options.maxEndpoints,
    });
    return { result, indexHeader };
  }

  /** A short, printable, token-free excerpt of a body for an error message. */
  #snippet(body: string): string {
    let text = body.slice(0, 200).replace(/[^\x20-\x7e]/g, '?');
    const { token } = this.#options;
    if (token !== undefined && token.length > 0) text = text.split(token).join('<redacted>');
    return JSON.stringify(text);
  }

  #toError(err: unknown): ConsulError {
    const { service } = this.#options;
    if (err instanceof ConsulError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new ConsulError('timeout', `Consul query for service "${service}" timed out`, { cause: err });
    }
    const detail = typeof code === 'string' ? code : 'network error';
    return new ConsulError('connection', `Consul query for service "${service}" failed (${detail})`, { cause: err });
  }
}

/** Factory for `consul://host:port/service?...`; clock and random come from the cluster. */
export const consulResolverFactory: ResolverFactory = (target, context) => {
  const options = consulOptionsFromTarget(target);
  const build = () => new ConsulResolver({ ...options, clock: context.clock, random: context.random });
  return asTargetError(target, build, redactConsulTarget(target.raw));
};
