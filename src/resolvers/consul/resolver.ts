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
 * `X-Consul-Index` and `wait`. An index that goes backwards is reset to 0 (the next query does not block and
 * reads the full state); an index below 1 is sent as 1. The client timeout is `wait × 17/16 + timeoutMargin`,
 * since Consul adds up to `wait / 16` of jitter. Queries start at most once per `minRequestInterval`, so a server
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
 * early re-query per `refreshInterval`; during error backoff the hint is ignored.
 *
 * @module
 */
import { Pool } from 'undici';
import { createEndpoint, type Endpoint, MAX_ENDPOINT_WEIGHT } from '../../common/endpoint.js';
import { ConsulError, InvalidOptionError, InvalidTargetError, isSidecarlessError } from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { type Clock, type RandomSource, systemClock, systemRandom, type TimerHandle } from '../../common/runtime.js';
import { Backoff, type BackoffOptions, resolveBackoffOptions } from '../../common/backoff.js';
import type { Resolver, ResolverFactory, ResolverListener, Target } from '../resolver.js';

const debug = createDebug('consul');

/**
 * Which instances to balance to, by the worst status among their checks (node and service checks):
 * `passing` (all checks passing; sent to Consul as `passing=true`), `warning` (passing or warning; critical and
 * maintenance excluded), `any` (every registered instance).
 *
 * @category Resolvers
 */
export type ConsulHealthFilter = 'passing' | 'warning' | 'any';

/** TLS settings for an `https://` Consul address (undici `connect` options). @category Resolvers */
export interface ConsulTlsOptions {
  /** CA certificate(s) to trust instead of the system store. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined;
  /** Client certificate (PEM), for mutual TLS. */
  readonly cert?: string | Buffer | undefined;
  /** Client private key (PEM), for mutual TLS. */
  readonly key?: string | Buffer | undefined;
  /** Verify the server certificate. @defaultValue true */
  readonly rejectUnauthorized?: boolean | undefined;
  /** SNI server name and the name the certificate is checked against. @defaultValue the address host */
  readonly servername?: string | undefined;
}

/** Options of {@link ConsulResolver}. @category Resolvers */
export interface ConsulResolverOptions {
  /** The service name, as registered in Consul. */
  readonly service: string;
  /**
   * The Consul agent or server: `host:port`, `http://host:port` or `https://host:port`.
   * @defaultValue `CONSUL_HTTP_ADDR` from the environment, else `'http://127.0.0.1:8500'`
   */
  readonly address?: string | undefined;
  /**
   * ACL token, sent only in the `X-Consul-Token` header (never in a URL, log line or error message).
   * @defaultValue `CONSUL_HTTP_TOKEN` from the environment, else none
   */
  readonly token?: string | undefined;
  /** Datacenter to query (`dc`). @defaultValue the agent's datacenter */
  readonly datacenter?: string | undefined;
  /** Namespace (`ns`, Consul Enterprise). @defaultValue the token's namespace */
  readonly namespace?: string | undefined;
  /** Admin partition (`partition`, Consul Enterprise). @defaultValue the token's partition */
  readonly partition?: string | undefined;
  /** Only instances carrying every one of these tags (`tag=` repeated). @defaultValue [] */
  readonly tags?: readonly string[] | undefined;
  /** A Consul filter expression (`filter`), e.g. `Service.Meta.version == "2"`. @defaultValue none */
  readonly filter?: string | undefined;
  /** Which instances to keep by health. @defaultValue 'passing' */
  readonly health?: ConsulHealthFilter | undefined;
  /** Blocking-query `wait`, ms, from 1 to 600000 (Consul caps it at 10 minutes). @defaultValue 300000 */
  readonly wait?: number | undefined;
  /** Added to `wait × 17/16` to form the client timeout of one query, ms. @defaultValue 5000 */
  readonly timeoutMargin?: number | undefined;
  /** Minimum time between the starts of two queries, ms (the hot-loop guard). @defaultValue 1000 */
  readonly minRequestInterval?: number | undefined;
  /** Minimum time between two `refresh()`-triggered early re-queries, ms. @defaultValue 5000 */
  readonly refreshInterval?: number | undefined;
  /** The `Service.Meta` (then `Node.Meta`) key whose value becomes the endpoint zone. @defaultValue 'zone' */
  readonly zoneKey?: string | undefined;
  /** Largest response body accepted, bytes. @defaultValue 16777216 */
  readonly maxResponseBytes?: number | undefined;
  /** Backoff between failed queries. @defaultValue 1 s, ×1.6, jitter 0.2, max 120 s */
  readonly backoff?: BackoffOptions | undefined;
  /** TLS settings for an `https://` address. @defaultValue system CAs, verification on */
  readonly tls?: ConsulTlsOptions | undefined;
  /** Clock for timers. @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
  /** Environment read for `CONSUL_HTTP_ADDR` and `CONSUL_HTTP_TOKEN`. @defaultValue process.env */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
}

/** What {@link parseConsulHealth} needs besides the body. */
export interface ConsulParseOptions {
  /** @defaultValue 'passing' */
  readonly health?: ConsulHealthFilter | undefined;
  /** @defaultValue 'zone' */
  readonly zoneKey?: string | undefined;
}

/** The result of {@link parseConsulHealth}. */
export interface ConsulParseResult {
  /** The endpoint set, in Consul's order, keys unique. */
  readonly endpoints: Endpoint[];
  /** Entries of the wrong shape (or duplicates of an earlier `host:port`), skipped. */
  readonly skipped: number;
  /** Well-formed entries left out on purpose: filtered by health, or weight 0. */
  readonly excluded: number;
}

type CheckStatus = 'passing' | 'warning' | 'critical';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): string | undefined | null {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : null;
}

function stringMap(value: unknown): Record<string, string> | null {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') return null;
    out[k] = v;
  }
  return out;
}

function worstStatus(checks: unknown): CheckStatus | null {
  if (checks === undefined || checks === null) return 'passing';
  if (!Array.isArray(checks)) return null;
  let worst: CheckStatus = 'passing';
  for (const check of checks) {
    if (!isRecord(check) || typeof check.Status !== 'string') return null;
    if (check.Status === 'passing') continue;
    if (check.Status === 'warning') worst = 'warning';
    else return 'critical'; // critical, maintenance, or anything unknown
  }
  return worst;
}

function weightOf(value: unknown): number | null {
  if (value === undefined || value === null) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return null;
  return Math.min(value, MAX_ENDPOINT_WEIGHT);
}

/** One entry to an endpoint; `null` for a malformed entry, `'excluded'` for one left out on purpose. */
function toEndpoint(
  entry: unknown,
  health: ConsulHealthFilter,
  zoneKey: string,
  seen: Set<string>,
): Endpoint | null | 'excluded' {
  if (!isRecord(entry) || !isRecord(entry.Node) || !isRecord(entry.Service)) return null;
  const node = entry.Node;
  const service = entry.Service;
  const status = worstStatus(entry.Checks);
  if (status === null) return null;
  const serviceAddress = optionalString(service.Address);
  const nodeAddress = optionalString(node.Address);
  const nodeName = optionalString(node.Node);
  const datacenter = optionalString(node.Datacenter);
  const serviceId = optionalString(service.ID);
  if (serviceAddress === null || nodeAddress === null || nodeName === null || datacenter === null) return null;
  if (serviceId === null) return null;
  const host = serviceAddress !== undefined && serviceAddress !== '' ? serviceAddress : nodeAddress;
  if (host === undefined || host === '') return null;
  const { Port: port } = service;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  const tags = service.Tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) return null;
  const meta = stringMap(service.Meta);
  const nodeMeta = stringMap(node.Meta);
  if (meta === null || nodeMeta === null) return null;
  let passingWeight: number | null = 1;
  let warningWeight: number | null = 1;
  if (service.Weights !== undefined && service.Weights !== null) {
    if (!isRecord(service.Weights)) return null;
    passingWeight = weightOf(service.Weights.Passing);
    warningWeight = weightOf(service.Weights.Warning);
  }
  if (passingWeight === null || warningWeight === null) return null;
  if (health === 'passing' && status !== 'passing') return 'excluded';
  if (health === 'warning' && status === 'critical') return 'excluded';
  const weight = status === 'passing' ? passingWeight : warningWeight;
  if (weight === 0) return 'excluded';
  const metadata: Record<string, string> = {};
  for (const tag of tags) metadata[`tag:${tag}`] = '';
  for (const [k, v] of Object.entries(meta)) metadata[`meta.${k}`] = v;
  if (serviceId !== undefined) metadata['consul.service-id'] = serviceId;
  if (nodeName !== undefined) metadata['consul.node'] = nodeName;
  if (datacenter !== undefined) metadata['consul.datacenter'] = datacenter;
  metadata['consul.health'] = status;
  const zone = meta[zoneKey] || nodeMeta[zoneKey] || undefined;
  let endpoint: Endpoint;
  try {
    endpoint = createEndpoint({ host, port, weight, zone, metadata });
  } catch {
    return null;
  }
  if (seen.has(endpoint.key)) return null;
  seen.add(endpoint.key);
  return endpoint;
}

/**
 * Parses the body of `GET /v1/health/service/:name` into an endpoint set. Pure: no I/O, no state. Throws
 * {@link ConsulError} (`bad-response`) when the body is not a JSON array, or when it has entries and every one is
 * malformed; otherwise malformed entries are skipped and counted.
 *
 * @example
 * ```ts
 * const { endpoints } = parseConsulHealth(body, { health: 'warning', zoneKey: 'az' });
 * ```
 */
export function parseConsulHealth(body: string, options: ConsulParseOptions = {}): ConsulParseResult {
  const health = options.health ?? 'passing';
  const zoneKey = options.zoneKey ?? 'zone';
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw new ConsulError('bad-response', 'Consul answered with a body that is not valid JSON', { cause: err });
  }
  if (!Array.isArray(parsed)) {
    throw new ConsulError('bad-response', `Consul answered with JSON ${describeJson(parsed)} instead of an array`);
  }
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  let excluded = 0;
  for (const entry of parsed) {
    const result = toEndpoint(entry, health, zoneKey, seen);
    if (result === null) skipped++;
    else if (result === 'excluded') excluded++;
    else endpoints.push(result);
  }
  if (parsed.length > 0 && skipped === parsed.length) {
    throw new ConsulError('bad-response', `Consul answered with ${skipped} entries, none of the expected shape`);
  }
  return { endpoints, skipped, excluded };
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/**
 * Parses a Consul duration (`300ms`, `30s`, `5m`, `1h`; a bare number is seconds) into ms. Returns `undefined`
 * for anything else.
 */
export function parseConsulDuration(text: string): number | undefined {
  const match = /^(\d{1,9})(ms|s|m|h)?$/.exec(text);
  if (match === null) return undefined;
  const n = Number(match[1]);
  switch (match[2]) {
    case 'ms':
      return n;
    case 'm':
      return n * 60_000;
    case 'h':
      return n * 3_600_000;
    default:
      return n * 1000;
  }
}

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function msOption(value: unknown, name: string, fallback: number, min: number, max = MAX_TIMER_MS): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(name, `expected a number of ms from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function stringOption(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0)
    throw new InvalidOptionError(name, 'expected a non-empty string');
  return value;
}

function parseAddress(address: string): { origin: string; tls: boolean } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidOptionError(
      'address',
      `expected host:port or http(s)://host:port, got ${JSON.stringify(address)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidOptionError('address', `expected an http: or https: address, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new InvalidOptionError('address', 'expected only scheme, host and port (no credentials, path or query)');
  }
  return { origin: url.origin, tls: url.protocol === 'https:' };
}

interface ResolvedConsulOptions {
  readonly service: string;
  readonly origin: string;
  readonly token: string | undefined;
  readonly query: string;
  readonly health: ConsulHealthFilter;
  readonly waitMs: number;
  readonly timeoutMs: number;
  readonly minRequestIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly zoneKey: string;
  readonly maxResponseBytes: number;
  readonly clock: Clock;
}

type AbortCause = 'timeout' | 'refresh' | 'close';

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
  readonly #backoff: Backoff;
  readonly #pool: Pool;
  #listener: ResolverListener | undefined;
  #closed = false;
  #started = false;
  #timer: TimerHandle | undefined;
  #inFlight: { controller: AbortController; cause: AbortCause | undefined } | undefined;
  #backingOff = false;
  #index = 0;
  #lastStart = Number.NEGATIVE_INFINITY;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #lastDelivered: string | undefined;
  #requests = 0;
  #skipped = 0;

  /** Validates every option (throwing `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: ConsulResolverOptions) {
    if (!isRecord(options)) throw new InvalidOptionError('options', 'expected an object with at least `service`');
    const env = options.env ?? process.env;
    const service = stringOption(options.service, 'service');
    if (service === undefined) throw new InvalidOptionError('service', 'is required');
    if (/[\s/?#]/.test(service))
      throw new InvalidOptionError('service', 'must not contain whitespace, "/", "?" or "#"');
    const address = stringOption(options.address, 'address') ?? env.CONSUL_HTTP_ADDR ?? 'http://127.0.0.1:8500';
    const { origin, tls } = parseAddress(address);
    const token = options.token === undefined ? env.CONSUL_HTTP_TOKEN || undefined : options.token;
    if (token !== undefined && (typeof token !== 'string' || /[\r\n]/.test(token))) {
      throw new InvalidOptionError('token', 'expected a string without line breaks');
    }
    const health = options.health ?? 'passing';
    if (health !== 'passing' && health !== 'warning' && health !== 'any') {
      throw new InvalidOptionError('health', "expected 'passing', 'warning' or 'any'");
    }
    const tags = options.tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t.length > 0)) {
      throw new InvalidOptionError('tags', 'expected an array of non-empty strings');
    }
    const waitMs = msOption(options.wait, 'wait', 300_000, 1, 600_000);
    const timeoutMargin = msOption(options.timeoutMargin, 'timeoutMargin', 5000, 0);
    const maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    if (typeof maxResponseBytes !== 'number' || !Number.isInteger(maxResponseBytes) || maxResponseBytes < 1) {
      throw new InvalidOptionError('maxResponseBytes', 'expected a positive integer');
    }
    const params = new URLSearchParams();
    if (health === 'passing') params.set('passing', 'true');
    for (const tag of tags) params.append('tag', tag);
    const filter = stringOption(options.filter, 'filter');
    if (filter !== undefined) params.set('filter', filter);
    const dc = stringOption(options.datacenter, 'datacenter');
    if (dc !== undefined) params.set('dc', dc);
    const ns = stringOption(options.namespace, 'namespace');
    if (ns !== undefined) params.set('ns', ns);
    const partition = stringOption(options.partition, 'partition');
    if (partition !== undefined) params.set('partition', partition);
    const clock = options.clock ?? systemClock;
    const random = options.random ?? systemRandom;
    if (options.tls !== undefined && !isRecord(options.tls)) throw new InvalidOptionError('tls', 'expected an object');
    if (options.tls !== undefined && !tls) {
      throw new InvalidOptionError('tls', 'TLS options need an https:// address');
    }
    this.#options = {
      service,
      origin,
      token,
      query: params.toString(),
      health,
      waitMs,
      timeoutMs: Math.ceil((waitMs * 17) / 16) + timeoutMargin,
      minRequestIntervalMs: msOption(options.minRequestInterval, 'minRequestInterval', 1000, 0),
      refreshIntervalMs: msOption(options.refreshInterval, 'refreshInterval', 5000, 0),
      zoneKey: stringOption(options.zoneKey, 'zoneKey') ?? 'zone',
      maxResponseBytes,
      clock,
    };
    this.#backoff = new Backoff(resolveBackoffOptions(options.backoff, 'backoff'), random);
    const { ca, cert, key, rejectUnauthorized, servername } = options.tls ?? {};
    const connect: Record<string, unknown> = {};
    if (ca !== undefined) connect.ca = ca;
    if (cert !== undefined) connect.cert = cert;
    if (key !== undefined) connect.key = key;
    if (rejectUnauthorized !== undefined) connect.rejectUnauthorized = rejectUnauthorized;
    if (servername !== undefined) connect.servername = servername;
    // Our own timer bounds each query; undici's timeouts (300 s by default, below a 5 m wait + jitter) sit above it.
    const undiciTimeout = this.#options.timeoutMs + 1000;
    this.#pool = new Pool(origin, {
      connections: 2,
      headersTimeout: undiciTimeout,
      bodyTimeout: undiciTimeout,
      ...(Object.keys(connect).length > 0 ? { connect } : {}),
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

  /** The index the next blocking query will send (0: the next query does not block). */
  get index(): number {
    return this.#index;
  }

  start(listener: ResolverListener): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#listener = listener;
    this.#schedule(0);
  }

  refresh(): void {
    if (this.#closed || this.#inFlight === undefined || this.#backingOff) return;
    const now = this.#options.clock.now();
    if (now - this.#lastRefresh < this.#options.refreshIntervalMs) return;
    this.#lastRefresh = now;
    debug('%s: refresh hint, re-issuing the blocking query', this.#options.service);
    this.#abort('refresh');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener = undefined;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort('close');
    await this.#pool.destroy().catch(() => {});
  }

  #abort(cause: AbortCause): void {
    const current = this.#inFlight;
    if (current === undefined || current.cause !== undefined) return;
    current.cause = cause;
    current.controller.abort();
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimeout(
      () => {
        this.#timer = undefined;
        void this.#query();
      },
      Math.max(0, delayMs),
    );
  }

  /** Delay that keeps query starts at least `minRequestInterval` apart. */
  #rateLimitDelay(): number {
    return this.#lastStart + this.#options.minRequestIntervalMs - this.#options.clock.now();
  }

  #path(): string {
    const params = this.#options.query;
    let extra = '';
    if (this.#index > 0) {
      extra = `index=${Math.max(1, this.#index)}&wait=${formatDuration(this.#options.waitMs)}`;
    }
    const query = [params, extra].filter((s) => s.length > 0).join('&');
    return `/v1/health/service/${encodeURIComponent(this.#options.service)}${query ? `?${query}` : ''}`;
  }

  async #query(): Promise<void> {
    if (this.#closed) return;
    const { clock, service } = this.#options;
    this.#lastStart = clock.now();
    this.#requests++;
    const flight = { controller: new AbortController(), cause: undefined as AbortCause | undefined };
    this.#inFlight = flight;
    const timer = clock.setTimeout(() => this.#abort('timeout'), this.#options.timeoutMs);
    let result: ConsulParseResult | undefined;
    let failure: ConsulError | undefined;
    let indexHeader: string | undefined;
    try {
      ({ result, indexHeader } = await this.#request(flight.controller.signal));
    } catch (err) {
      failure = this.#toError(err, flight.cause);
    } finally {
      clock.clearTimeout(timer);
      if (this.#inFlight === flight) this.#inFlight = undefined;
    }
    if (this.#closed) return;
    if (flight.cause === 'refresh') {
      this.#schedule(this.#rateLimitDelay());
      return;
    }
    if (failure !== undefined || result === undefined) {
      const error = failure ?? new ConsulError('bad-response', 'Consul answered without a body');
      this.#backingOff = true;
      const delay = Math.max(this.#backoff.next(), this.#rateLimitDelay());
      debug('%s: query failed (%s: %s); retrying in %d ms', service, error.reason, error.message, Math.round(delay));
      this.#listener?.onError(error);
      this.#schedule(delay);
      return;
    }
    this.#backingOff = false;
    this.#backoff.reset();
    this.#updateIndex(indexHeader);
    this.#skipped += result.skipped;
    if (result.skipped > 0) debug('%s: skipped %d malformed entries', service, result.skipped);
    this.#deliver(result.endpoints);
    this.#schedule(this.#rateLimitDelay());
  }

  #updateIndex(header: string | undefined): void {
    const next = header !== undefined && /^\d{1,16}$/.test(header) ? Number(header) : undefined;
    if (next === undefined) {
      // Without an index the next query cannot block; the rate limit keeps it from looping hot.
      debug('%s: missing or invalid X-Consul-Index; next query will not block', this.#options.service);
      this.#index = 0;
    } else if (next < this.#index) {
      debug('%s: X-Consul-Index went backwards (%d -> %d); resetting to 0', this.#options.service, this.#index, next);
      this.#index = 0;
    } else {
      this.#index = Math.max(1, next);
    }
  }

  #deliver(endpoints: Endpoint[]): void {
    const fingerprint = JSON.stringify(endpoints.map((e) => [e.key, e.weight, e.zone ?? null, e.metadata]));
    if (fingerprint === this.#lastDelivered) return;
    this.#lastDelivered = fingerprint;
    debug('%s: delivering %d endpoints (index %d)', this.#options.service, endpoints.length, this.#index);
    this.#listener?.onUpdate(endpoints);
  }

  async #request(signal: AbortSignal): Promise<{ result: ConsulParseResult; indexHeader: string | undefined }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#options.token !== undefined) headers['x-consul-token'] = this.#options.token;
    const res = await this.#pool.request({ method: 'GET', path: this.#path(), headers, signal });
    const body = await readCapped(res.body, this.#options.maxResponseBytes);
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
    const result = parseConsulHealth(body, { health: this.#options.health, zoneKey: this.#options.zoneKey });
    return { result, indexHeader };
  }

  /** A short, printable, token-free excerpt of a body for an error message. */
  #snippet(body: string): string {
    let text = body.slice(0, 200).replace(/[^\x20-\x7e]/g, '?');
    const { token } = this.#options;
    if (token !== undefined && token.length > 0) text = text.split(token).join('<redacted>');
    return JSON.stringify(text);
  }

  #toError(err: unknown, cause: AbortCause | undefined): ConsulError {
    const { service } = this.#options;
    if (cause === 'timeout') {
      return new ConsulError(
        'timeout',
        `Consul query for service "${service}" got no answer within ${this.#options.timeoutMs} ms`,
      );
    }
    if (isSidecarlessError(err) && err instanceof ConsulError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new ConsulError('timeout', `Consul query for service "${service}" timed out`, { cause: err });
    }
    const detail = typeof code === 'string' ? code : 'network error';
    return new ConsulError('connection', `Consul query for service "${service}" failed (${detail})`, { cause: err });
  }
}

/** Reads a body as UTF-8, failing with `bad-response` beyond `max` bytes. */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw new ConsulError('bad-response', `Consul answered with a body larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const TARGET_PARAMS = new Set([
  'dc',
  'ns',
  'partition',
  'filter',
  'tag',
  'health',
  'passing',
  'wait',
  'tls',
  'zone-key',
]);

/** The target with any `token=` value blanked, for error messages. */
function redactTarget(raw: string): string {
  return raw.replace(/([?&]token=)[^&#]*/gi, '$1<redacted>');
}

/** Builds {@link ConsulResolverOptions} from a parsed `consul:` target (see the module documentation). */
export function consulOptionsFromTarget(target: Target): ConsulResolverOptions {
  const raw = redactTarget(target.raw);
  const q = target.query;
  if (q.has('token')) {
    throw new InvalidTargetError(
      raw,
      'the ACL token must not be in the target; use the token option or CONSUL_HTTP_TOKEN',
    );
  }
  for (const key of q.keys()) {
    if (!TARGET_PARAMS.has(key)) throw new InvalidTargetError(raw, `unknown query parameter "${key}"`);
  }
  let service: string;
  try {
    service = decodeURIComponent(target.path);
  } catch {
    throw new InvalidTargetError(raw, 'the service name is not valid percent-encoding');
  }
  if (service.length === 0 || /[\s/?#]/.test(service)) {
    throw new InvalidTargetError(raw, 'expected consul://host:port/service-name with a single-segment service name');
  }
  let health: ConsulHealthFilter | undefined;
  const healthText = q.get('health');
  const passing = q.get('passing');
  if (healthText !== null) {
    if (healthText !== 'passing' && healthText !== 'warning' && healthText !== 'any') {
      throw new InvalidTargetError(raw, 'health must be passing, warning or any');
    }
    health = healthText;
  } else if (passing !== null) {
    if (passing !== 'true' && passing !== 'false') throw new InvalidTargetError(raw, 'passing must be true or false');
    health = passing === 'true' ? 'passing' : 'warning';
  }
  let wait: number | undefined;
  const waitText = q.get('wait');
  if (waitText !== null) {
    wait = parseConsulDuration(waitText);
    if (wait === undefined || wait < 1 || wait > 600_000) {
      throw new InvalidTargetError(raw, 'wait must be a duration like 30s or 5m, at most 10m');
    }
  }
  const tls = q.get('tls');
  if (tls !== null && tls !== 'true' && tls !== 'false') throw new InvalidTargetError(raw, 'tls must be true or false');
  const options: Record<string, unknown> = { service };
  if (target.authority !== '') options.address = `${tls === 'true' ? 'https' : 'http'}://${target.authority}`;
  else if (tls === 'true') throw new InvalidTargetError(raw, 'tls=true needs an explicit host:port');
  const single: Array<[string, string]> = [
    ['dc', 'datacenter'],
    ['ns', 'namespace'],
    ['partition', 'partition'],
    ['filter', 'filter'],
    ['zone-key', 'zoneKey'],
  ];
  for (const [param, option] of single) {
    const value = q.get(param);
    if (value !== null) options[option] = value;
  }
  const tags = q.getAll('tag');
  if (tags.length > 0) options.tags = tags;
  if (health !== undefined) options.health = health;
  if (wait !== undefined) options.wait = wait;
  return options as unknown as ConsulResolverOptions;
}

/** Factory for `consul://host:port/service?...`; clock and random come from the cluster. @category Resolvers */
export const consulResolverFactory: ResolverFactory = (target, context) => {
  const options = consulOptionsFromTarget(target);
  try {
    return new ConsulResolver({ ...options, clock: context.clock, random: context.random });
  } catch (err) {
    if (isSidecarlessError(err)) throw new InvalidTargetError(redactTarget(target.raw), err.message, { cause: err });
    throw err;
  }
};
