/**
 * The etcd resolver: endpoints stored under a key prefix in etcd v3, read through etcd's JSON gateway
 * (grpc-gateway, `/v3/...`) and kept fresh with a watch.
 *
 * **Target:** `etcd://host:port[,host:port...]/key/prefix/[?tls=true]`, e.g. `etcd://127.0.0.1:2379/services/users/`.
 * The key prefix is the URL path including its leading `/` (here `/services/users/`); every key that starts with
 * it holds one endpoint. Several comma-separated members are tried in turn. With no authority (`etcd:///p/`) the
 * member is `127.0.0.1:2379`. Credentials are never accepted in the target: use the options form
 * ({@link EtcdResolverOptions.username} / `password`).
 *
 * **Value format.** Each value is either a JSON object
 * ```json
 * {"host":"10.0.0.1","port":8080,"weight":2,"priority":0,"zone":"eu-west-1a","metadata":{"version":"2"}}
 * ```
 * (`host` and `port` required; `weight` defaults to 1, `priority` to 0; `zone` and `metadata`, an object of string
 * values, are optional; other fields are ignored), or a plain `host:port` string (`[v6]:port` for IPv6). The
 * endpoint metadata also gets `etcd.key` = the etcd key. A value that fits neither (bad JSON, wrong types, port out
 * of range, larger than `maxValueBytes`) is skipped, logged and counted ({@link EtcdResolver.skippedValues});
 * the rest of the set is still delivered. When two keys hold the same `host:port`, the first key in byte order wins.
 *
 * **Protocol:** `POST /v3/kv/range` over `[prefix, prefix+1)` reads the set and its revision; `POST /v3/watch`
 * from revision+1 streams newline-delimited JSON changes. PUT and DELETE events update the set, and the whole set
 * is delivered once per received chunk (a burst of events in one chunk is one update; identical sets are not
 * re-delivered). When the watch is cancelled because its revision was compacted, the resolver lists again and
 * re-watches. When a request fails or the stream breaks, the error goes to `onError` as an {@link EtcdError}, the
 * last good set stays in use, and the resolver moves to the next member, listing again after exponential backoff.
 * The watch asks for progress notifications (etcd sends one every 10 minutes on a quiet watch), so a stream on which
 * nothing at all arrives for `watchIdleTimeout` is taken for a dead (half-open) connection: it is aborted with
 * an {@link EtcdError} `timeout` and the resolver lists again.
 * Listings start at most once per `minRelistInterval`. With `username`/`password`, each cycle first calls
 * `POST /v3/auth/authenticate` and sends the token in the `Authorization` header.
 *
 * **refresh()**: restarts the list-and-watch cycle (which also replaces a watch connection that may have died
 * silently), at most once per `refreshInterval`; ignored during error backoff.
 *
 * @module
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { createEndpoint, type Endpoint, parseHostPort } from '../../common/endpoint.js';
import { EtcdError, InvalidOptionError, InvalidTargetError, isSidecarlessError } from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { type Clock, type RandomSource, systemClock, systemRandom, type TimerHandle } from '../../common/runtime.js';
import { Backoff, type BackoffOptions, resolveBackoffOptions } from '../../common/backoff.js';
import type { Resolver, ResolverFactory, ResolverListener, Target } from '../resolver.js';

const debug = createDebug('etcd');

/** TLS settings for `https://` etcd members (undici `connect` options). @category Resolvers */
export interface EtcdTlsOptions {
  /** CA certificate(s) to trust instead of the system store. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined;
  /** Client certificate (PEM), for etcd's client-certificate auth. */
  readonly cert?: string | Buffer | undefined;
  /** Client private key (PEM). */
  readonly key?: string | Buffer | undefined;
  /** Verify the server certificate. @defaultValue true */
  readonly rejectUnauthorized?: boolean | undefined;
  /** SNI server name and the name the certificate is checked against. @defaultValue the member's host */
  readonly servername?: string | undefined;
}

/** Options of {@link EtcdResolver}. @category Resolvers */
export interface EtcdResolverOptions {
  /** The key prefix; every key under it holds one endpoint (see the module documentation for the value format). */
  readonly prefix: string;
  /**
   * etcd members, tried in turn: `host:port`, `http://host:port` or `https://host:port`.
   * @defaultValue ['http://127.0.0.1:2379']
   */
  readonly endpoints?: readonly string[] | undefined;
  /** User for etcd auth (`/v3/auth/authenticate`); needs `password`. @defaultValue none (no auth) */
  readonly username?: string | undefined;
  /** Password for `username`. Never logged or put in an error message. @defaultValue none */
  readonly password?: string | undefined;
  /** TLS settings for `https://` members. @defaultValue system CAs, verification on */
  readonly tls?: EtcdTlsOptions | undefined;
  /** Timeout of a range or auth request and of the watch's response headers, ms. @defaultValue 10000 */
  readonly requestTimeout?: number | undefined;
  /** Minimum time between two listings (the hot-loop guard after compactions or quick stream breaks), ms. @defaultValue 1000 */
  readonly minRelistInterval?: number | undefined;
  /** Minimum time between two `refresh()`-triggered restarts, ms. @defaultValue 5000 */
  readonly refreshInterval?: number | undefined;
  /**
   * Longest silence accepted on the watch stream, ms: when no message at all (event, progress notification) arrives
   * for this long, the connection is presumed dead, the watch is aborted (`timeout`) and the prefix is listed again.
   * Keep it above etcd's progress-notification interval (10 minutes, not configurable per watch), or quiet
   * prefixes are re-listed needlessly.
   * @defaultValue 720000 (12 minutes)
   */
  readonly watchIdleTimeout?: number | undefined;
  /** Largest value accepted, bytes; larger ones are skipped as malformed. @defaultValue 65536 */
  readonly maxValueBytes?: number | undefined;
  /** Largest range response or watch message accepted, bytes. @defaultValue 67108864 */
  readonly maxResponseBytes?: number | undefined;
  /** Backoff between failed cycles. @defaultValue 1 s, ×1.6, jitter 0.2, max 120 s */
  readonly backoff?: BackoffOptions | undefined;
  /** Clock for timers. @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
}

/** One key-value pair from a range response or a watch event. */
export interface EtcdKeyValue {
  /** The key, decoded as UTF-8. */
  readonly key: string;
  /** The raw value bytes (empty for DELETE events). */
  readonly value: Buffer;
  /** The revision of the last change to this key (0 when absent). */
  readonly modRevision: number;
}

/** A parsed `/v3/kv/range` response. */
export interface EtcdRangeResult {
  /** The store revision the listing reflects. */
  readonly revision: number;
  readonly kvs: readonly EtcdKeyValue[];
}

/** A parsed watch event. */
export interface EtcdWatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: EtcdKeyValue;
}

/** One parsed line of the `/v3/watch` stream. */
export type EtcdWatchMessage =
  | { readonly kind: 'created'; readonly revision: number }
  | { readonly kind: 'events'; readonly revision: number; readonly events: readonly EtcdWatchEvent[] }
  | { readonly kind: 'canceled'; readonly compactRevision: number; readonly reason: string }
  | { readonly kind: 'progress'; readonly revision: number };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const INT64 = /^\d{1,16}$/;

function bad(message: string, cause?: unknown): EtcdError {
  return new EtcdError('bad-response', message, cause === undefined ? undefined : { cause });
}

/** int64 fields arrive as JSON strings (grpc-gateway); absent means 0 (proto3 default). */
function revisionOf(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && INT64.test(value)) return Number(value);
  throw bad(`etcd field ${field} is not a revision`);
}

function bytesOf(value: unknown, field: string): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw bad(`etcd field ${field} is not base64`);
  }
  return Buffer.from(value, 'base64');
}

function keyValueOf(value: unknown): EtcdKeyValue {
  if (!isRecord(value)) throw bad('etcd key-value is not an object');
  const key = bytesOf(value.key, 'kv.key');
  if (key.length === 0) throw bad('etcd key-value has no key');
  return {
    key: key.toString('utf8'),
    value: bytesOf(value.value, 'kv.value'),
    modRevision: revisionOf(value.mod_revision, 'kv.mod_revision'),
  };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw bad(`etcd ${what} is not valid JSON`, err);
  }
}

/** A gateway error object (`{"error": ..., "code": n, "message": ...}`) as an {@link EtcdError}. */
function gatewayError(body: Record<string, unknown>): EtcdError | undefined {
  const error = body.error;
  if (error === undefined) return undefined;
  const detail = isRecord(error) ? error.message : (body.message ?? error);
  const text = typeof detail === 'string' ? detail.slice(0, 200) : 'unknown error';
  return new EtcdError('server-error', `etcd reported an error: ${JSON.stringify(text)}`);
}

/**
 * Parses a `/v3/kv/range` response body. Pure. Throws {@link EtcdError} (`bad-response` or `server-error`) when the
 * body is not the expected JSON.
 */
export function parseEtcdRange(body: string): EtcdRangeResult {
  const parsed = parseJson(body, 'range response');
  if (!isRecord(parsed)) throw bad('etcd range response is not an object');
  const error = gatewayError(parsed);
  if (error !== undefined) throw error;
  if (!isRecord(parsed.header)) throw bad('etcd range response has no header');
  const revision = revisionOf(parsed.header.revision, 'header.revision');
  const kvs = parsed.kvs ?? [];
  if (!Array.isArray(kvs)) throw bad('etcd range response kvs is not an array');
  return { revision, kvs: kvs.map(keyValueOf) };
}

/**
 * Parses one line of the `/v3/watch` stream (`{"result": {...}}` or `{"error": {...}}`). Pure. Throws
 * {@link EtcdError}: `server-error` for an error message, `bad-response` for anything malformed.
 */
export function parseEtcdWatchLine(line: string): EtcdWatchMessage {
  const parsed = parseJson(line, 'watch message');
  if (!isRecord(parsed)) throw bad('etcd watch message is not an object');
  const error = gatewayError(parsed);
  if (error !== undefined) throw error;
  const result = parsed.result;
  if (!isRecord(result)) throw bad('etcd watch message has no result');
  const header = result.header;
  if (header !== undefined && !isRecord(header)) throw bad('etcd watch header is not an object');
  const revision = revisionOf(header?.revision, 'header.revision');
  if (result.canceled === true) {
    const reason = typeof result.cancel_reason === 'string' ? result.cancel_reason.slice(0, 200) : '';
    return { kind: 'canceled', compactRevision: revisionOf(result.compact_revision, 'compact_revision'), reason };
  }
  if (result.compact_revision !== undefined && revisionOf(result.compact_revision, 'compact_revision') > 0) {
    return { kind: 'canceled', compactRevision: revisionOf(result.compact_revision, 'compact_revision'), reason: '' };
  }
  if (result.created === true) return { kind: 'created', revision };
  const events = result.events;
  if (events === undefined || events === null) return { kind: 'progress', revision };
  if (!Array.isArray(events)) throw bad('etcd watch events is not an array');
  return {
    kind: 'events',
    revision,
    events: events.map((event): EtcdWatchEvent => {
      if (!isRecord(event)) throw bad('etcd watch event is not an object');
      const type = event.type ?? 'PUT'; // proto3 omits the default enum value, PUT
      if (type !== 'PUT' && type !== 'DELETE') throw bad('etcd watch event has an unknown type');
      return { type, kv: keyValueOf(event.kv) };
    }),
  };
}

/**
 * Parses one stored value (see the module documentation for the format) into an endpoint whose metadata includes
 * `etcd.key`. Pure. Throws {@link EtcdError} (`bad-response`) for a malformed value.
 *
 * @example
 * ```ts
 * parseEtcdEndpoint('/services/users/a', Buffer.from('{"host":"10.0.0.1","port":8080,"weight":2}'));
 * parseEtcdEndpoint('/services/users/b', Buffer.from('10.0.0.2:8080'));
 * ```
 */
export function parseEtcdEndpoint(key: string, value: Buffer | string, maxValueBytes = 65_536): Endpoint {
  const size = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  if (size > maxValueBytes) throw bad(`etcd value at ${JSON.stringify(key)} is larger than ${maxValueBytes} bytes`);
  const text = (typeof value === 'string' ? value : value.toString('utf8')).trim();
  try {
    if (text.startsWith('{')) {
      const parsed = parseJson(text, 'value');
      if (!isRecord(parsed)) throw bad('not an object');
      const { host, port, weight, priority, zone, metadata } = parsed;
      if (metadata !== undefined && metadata !== null && !isRecord(metadata)) throw bad('metadata is not an object');
      return createEndpoint({
        host: host as string,
        port: port as number,
        weight: (weight ?? undefined) as number | undefined,
        priority: (priority ?? undefined) as number | undefined,
        zone: (zone ?? undefined) as string | undefined,
        metadata: { ...((metadata ?? {}) as Record<string, string>), 'etcd.key': key },
      });
    }
    if (text.length === 0 || /\s/.test(text)) throw bad('expected a JSON object or host:port');
    return createEndpoint({ ...parseHostPort(text), metadata: { 'etcd.key': key } });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw bad(`etcd value at ${JSON.stringify(key)} is not a valid endpoint: ${detail}`, err);
  }
}

/** The exclusive end of the range of keys that start with `prefix` (etcd's `clientv3.GetPrefixRangeEnd`). */
export function etcdPrefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function msOption(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(name, `expected a number of ms from ${min} to ${MAX_TIMER_MS}, got ${String(value)}`);
  }
  return value;
}

function intOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidOptionError(name, 'expected a positive integer');
  }
  return value;
}

function memberOrigin(member: unknown, index: number): string {
  const name = `endpoints[${index}]`;
  if (typeof member !== 'string' || member.length === 0) throw new InvalidOptionError(name, 'expected a string');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(member) ? member : `http://${member}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidOptionError(name, `expected host:port or http(s)://host:port, got ${JSON.stringify(member)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidOptionError(name, `expected an http: or https: address, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new InvalidOptionError(name, 'expected only scheme, host and port (no credentials, path or query)');
  }
  return url.origin;
}

type StopCause = 'refresh' | 'close';

/** Why a cycle ended without an error. */
type CycleEnd = 'compacted' | StopCause;

interface ResolvedEtcdOptions {
  readonly prefix: string;
  readonly key64: string;
  readonly rangeEnd64: string;
  readonly origins: readonly string[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly connect: Record<string, unknown> | undefined;
  readonly requestTimeoutMs: number;
  readonly minRelistIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly watchIdleTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly maxResponseBytes: number;
  readonly clock: Clock;
}

/**
 * Resolves endpoints stored under an etcd key prefix, listed once and then watched. See the module documentation
 * for the value format and the protocol.
 *
 * @example
 * ```ts
 * const resolver = new EtcdResolver({
 *   endpoints: ['https://etcd-0:2379', 'https://etcd-1:2379'],
 *   prefix: '/services/users/',
 *   username: 'reader',
 *   password: process.env.ETCD_PASSWORD,
 *   tls: { ca: readFileSync('ca.pem') },
 * });
 * const client = createClient({ target: resolver });
 * ```
 *
 * @category Resolvers
 */
export class EtcdResolver implements Resolver {
  readonly #options: ResolvedEtcdOptions;
  readonly #backoff: Backoff;
  readonly #pools = new Map<string, Pool>();
  readonly #set = new Map<string, Endpoint>();
  #listener: ResolverListener | undefined;
  #started = false;
  #closed = false;
  #timer: TimerHandle | undefined;
  #cycle: { controller: AbortController; cause: StopCause | undefined } | undefined;
  #member = 0;
  #backingOff = false;
  #lastList = Number.NEGATIVE_INFINITY;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #lastDelivered: string | undefined;
  #skipped = 0;
  #lists = 0;
  #revision = 0;

  /** Validates every option (throwing `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: EtcdResolverOptions) {
    if (!isRecord(options)) throw new InvalidOptionError('options', 'expected an object with at least `prefix`');
    const { prefix } = options;
    if (typeof prefix !== 'string' || prefix.length === 0) {
      throw new InvalidOptionError('prefix', 'expected a non-empty key prefix, e.g. "/services/users/"');
    }
    const members = options.endpoints ?? ['http://127.0.0.1:2379'];
    if (!Array.isArray(members) || members.length === 0) {
      throw new InvalidOptionError('endpoints', 'expected a non-empty array of etcd member addresses');
    }
    const origins = members.map(memberOrigin);
    const { username, password } = options;
    if (username !== undefined && (typeof username !== 'string' || username.length === 0)) {
      throw new InvalidOptionError('username', 'expected a non-empty string');
    }
    if (password !== undefined && typeof password !== 'string') {
      throw new InvalidOptionError('password', 'expected a string');
    }
    if ((username === undefined) !== (password === undefined)) {
      throw new InvalidOptionError(
        username === undefined ? 'username' : 'password',
        'username and password go together',
      );
    }
    if (options.tls !== undefined && !isRecord(options.tls)) throw new InvalidOptionError('tls', 'expected an object');
    let connect: Record<string, unknown> | undefined;
    if (options.tls !== undefined) {
      connect = {};
      for (const field of ['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'] as const) {
        if (options.tls[field] !== undefined) connect[field] = options.tls[field];
      }
    }
    const key = Buffer.from(prefix, 'utf8');
    this.#options = {
      prefix,
      key64: key.toString('base64'),
      rangeEnd64: etcdPrefixRangeEnd(key).toString('base64'),
      origins,
      username,
      password,
      connect,
      requestTimeoutMs: msOption(options.requestTimeout, 'requestTimeout', 10_000, 1),
      minRelistIntervalMs: msOption(options.minRelistInterval, 'minRelistInterval', 1000, 0),
      refreshIntervalMs: msOption(options.refreshInterval, 'refreshInterval', 5000, 0),
      watchIdleTimeoutMs: msOption(options.watchIdleTimeout, 'watchIdleTimeout', 720_000, 1),
      maxValueBytes: intOption(options.maxValueBytes, 'maxValueBytes', 65_536),
      maxResponseBytes: intOption(options.maxResponseBytes, 'maxResponseBytes', 64 * 1024 * 1024),
      clock: options.clock ?? systemClock,
    };
    this.#backoff = new Backoff(resolveBackoffOptions(options.backoff, 'backoff'), options.random ?? systemRandom);
  }

  /**
   * Malformed values skipped so far, counted once each time such a value is read (listed or watched). A key whose
   * well-formed value repeats an earlier key's `host:port` is not counted: it is ignored when the set is built.
   */
  get skippedValues(): number {
    return this.#skipped;
  }

  /** Listings (`/v3/kv/range`) started so far. */
  get listCount(): number {
    return this.#lists;
  }

  /** The last etcd revision seen. */
  get revision(): number {
    return this.#revision;
  }

  start(listener: ResolverListener): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#listener = listener;
    this.#schedule(0);
  }

  refresh(): void {
    if (this.#closed || this.#cycle === undefined || this.#backingOff) return;
    const now = this.#options.clock.now();
    if (now - this.#lastRefresh < this.#options.refreshIntervalMs) return;
    this.#lastRefresh = now;
    debug('%s: refresh hint, restarting list and watch', this.#options.prefix);
    this.#stop('refresh');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener = undefined;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stop('close');
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
  }

  #stop(cause: StopCause): void {
    const cycle = this.#cycle;
    if (cycle === undefined || cycle.cause !== undefined) return;
    cycle.cause = cause;
    cycle.controller.abort();
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimeout(
      () => {
        this.#timer = undefined;
        void this.#run();
      },
      Math.max(0, delayMs),
    );
  }

  #relistDelay(): number {
    return this.#lastList + this.#options.minRelistIntervalMs - this.#options.clock.now();
  }

  #pool(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      const { connect } = this.#options;
      pool = new Pool(origin, {
        connections: 2,
        headersTimeout: this.#options.requestTimeoutMs + 1000,
        bodyTimeout: 0, // the watch stream is long-lived; range and auth bodies are bounded by our own timer
        ...(connect !== undefined ? { connect } : {}),
      });
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  async #run(): Promise<void> {
    if (this.#closed) return;
    const origin = this.#options.origins[this.#member % this.#options.origins.length] as string;
    const cycle = { controller: new AbortController(), cause: undefined as StopCause | undefined };
    this.#cycle = cycle;
    let end: CycleEnd | undefined;
    let failure: EtcdError | undefined;
    try {
      end = await this.#listAndWatch(origin, cycle);
    } catch (err) {
      if (cycle.cause !== undefined) end = cycle.cause;
      else failure = toEtcdError(err, origin);
    } finally {
      if (this.#cycle === cycle) this.#cycle = undefined;
    }
    if (this.#closed || end === 'close') return;
    if (failure === undefined) {
      debug('%s: cycle ended (%s); listing again', this.#options.prefix, end);
      this.#schedule(this.#relistDelay());
      return;
    }
    this.#member++;
    this.#backingOff = true;
    const delay = Math.max(this.#backoff.next(), this.#relistDelay());
    debug('%s: %s (%s); retrying in %d ms', this.#options.prefix, failure.message, failure.reason, Math.round(delay));
    this.#listener?.onError(failure);
    this.#schedule(delay);
  }

  /** One cycle: authenticate, list, deliver, watch until the stream ends. Resolves only on compaction or stop. */
  async #listAndWatch(origin: string, cycle: { controller: AbortController }): Promise<CycleEnd> {
    const { signal } = cycle.controller;
    const pool = this.#pool(origin);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.#options.username !== undefined) {
      const body = await this.#post(pool, '/v3/auth/authenticate', {
        name: this.#options.username,
        password: this.#options.password,
      });
      const parsed = parseJson(body, 'auth response');
      if (!isRecord(parsed) || typeof parsed.token !== 'string' || parsed.token.length === 0) {
        throw bad('etcd auth response has no token');
      }
      headers.authorization = parsed.token;
    }
    this.#lastList = this.#options.clock.now();
    this.#lists++;
    const range = parseEtcdRange(
      await this.#post(
        pool,
        '/v3/kv/range',
        { key: this.#options.key64, range_end: this.#options.rangeEnd64 },
        headers,
      ),
    );
    this.#set.clear();
    for (const kv of range.kvs) this.#put(kv);
    this.#revision = range.revision;
    this.#deliver();

    const watch = await pool.request({
      method: 'POST',
      path: '/v3/watch',
      headers,
      body: JSON.stringify({
        create_request: {
          key: this.#options.key64,
          range_end: this.#options.rangeEnd64,
          start_revision: String(range.revision + 1),
          progress_notify: true,
        },
      }),
      signal,
    });
    if (watch.statusCode !== 200) {
      const text = await readCapped(watch.body, 64 * 1024).catch(() => '');
      throw statusError(watch.statusCode, text);
    }
    const liveness = this.#watchLiveness(watch.body, origin);
    try {
      return await this.#follow(watch.body, origin, liveness);
    } finally {
      liveness.stop();
    }
  }

  /**
   * Aborts the watch body with a `timeout` error when no message arrives for `watchIdleTimeout`. One timer per
   * idle period rather than one per message: when it fires early (messages came meanwhile) it re-arms for the rest.
   */
  #watchLiveness(body: { destroy(error?: Error): void }, origin: string): { seen(): void; stop(): void } {
    const { clock, watchIdleTimeoutMs } = this.#options;
    let last = clock.now();
    let timer: TimerHandle | undefined;
    const arm = (ms: number) => {
      timer = clock.setTimeout(() => {
        const quiet = clock.now() - last;
        if (quiet < watchIdleTimeoutMs) {
          arm(watchIdleTimeoutMs - quiet);
          return;
        }
        timer = undefined;
        debug('%s: nothing on the watch from %s for %d ms; aborting', this.#options.prefix, origin, quiet);
        body.destroy(
          new EtcdError(
            'timeout',
            `etcd watch from ${origin} received nothing (not even a progress notification) for ${watchIdleTimeoutMs} ms`,
          ),
        );
      }, ms);
    };
    arm(watchIdleTimeoutMs);
    return {
      seen: () => {
        last = clock.now();
      },
      stop: () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
      },
    };
  }

  /** Reads watch messages until the stream ends (an error) or the watch is cancelled (`compacted`). */
  async #follow(
    body: AsyncIterable<Buffer> & { destroy(error?: Error): void },
    origin: string,
    liveness: { seen(): void },
  ): Promise<CycleEnd> {
    const max = this.#options.maxResponseBytes;
    let buffered = '';
    for await (const chunk of body) {
      buffered += chunk.toString('utf8');
      let changed = false;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        // A complete line counts against the cap too, not only an unterminated rest.
        if (newline > max) throw bad(`etcd watch message larger than ${max} bytes`);
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
        if (line.length === 0) continue;
        const message = parseEtcdWatchLine(line);
        liveness.seen();
        if (message.kind === 'canceled') {
          body.destroy();
          if (changed) this.#deliver();
          debug(
            '%s: watch canceled (compacted at %d) %s',
            this.#options.prefix,
            message.compactRevision,
            message.reason,
          );
          return 'compacted';
        }
        if (message.kind === 'created') {
          this.#backingOff = false;
          this.#backoff.reset();
        } else if (message.kind === 'events') {
          for (const event of message.events) {
            if (event.type === 'DELETE') this.#set.delete(event.kv.key);
            else this.#put(event.kv);
          }
          changed = true;
        }
        if (message.revision > this.#revision) this.#revision = message.revision;
      }
      if (buffered.length > max) throw bad(`etcd watch message larger than ${max} bytes`);
      if (changed) this.#deliver();
    }
    throw new EtcdError('connection', `etcd watch stream from ${origin} ended`);
  }

  #put(kv: EtcdKeyValue): void {
    try {
      this.#set.set(kv.key, parseEtcdEndpoint(kv.key, kv.value, this.#options.maxValueBytes));
    } catch (err) {
      // The key no longer holds a usable endpoint: drop what it held before, keep the rest.
      this.#set.delete(kv.key);
      this.#skipped++;
      debug('%s: skipping malformed value: %s', this.#options.prefix, (err as Error).message);
    }
  }

  #deliver(): void {
    if (this.#closed) return;
    const keys = [...this.#set.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const endpoints: Endpoint[] = [];
    const seen = new Set<string>();
    for (const key of keys) {
      const endpoint = this.#set.get(key) as Endpoint;
      if (seen.has(endpoint.key)) {
        debug('%s: %s repeats %s; ignored', this.#options.prefix, key, endpoint.key);
        continue;
      }
      seen.add(endpoint.key);
      endpoints.push(endpoint);
    }
    const fingerprint = JSON.stringify(endpoints.map((e) => [e.key, e.weight, e.priority, e.zone ?? null, e.metadata]));
    if (fingerprint === this.#lastDelivered) return;
    this.#lastDelivered = fingerprint;
    debug('%s: delivering %d endpoints (revision %d)', this.#options.prefix, endpoints.length, this.#revision);
    this.#listener?.onUpdate(endpoints);
  }

  /** A bounded JSON POST whose body is returned as text; non-200 statuses become errors. */
  async #post(pool: Pool, path: string, payload: unknown, headers?: Record<string, string>): Promise<string> {
    const { clock, requestTimeoutMs } = this.#options;
    const controller = new AbortController();
    const parent = this.#cycle?.controller.signal;
    const onAbort = () => controller.abort();
    parent?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, requestTimeoutMs);
    try {
      const res = await pool.request({
        method: 'POST',
        path,
        headers: headers ?? { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: controller.signal,
      });
      const text = await readCapped(res.body, this.#options.maxResponseBytes);
      if (res.statusCode !== 200) throw statusError(res.statusCode, text);
      return text;
    } catch (err) {
      if (timedOut) throw new EtcdError('timeout', `etcd ${path} got no answer within ${requestTimeoutMs} ms`);
      throw err;
    } finally {
      clock.clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    }
  }
}

// etcd's gateway answers failed authentication with HTTP 400 (gRPC InvalidArgument), not 401: tell auth failures
// apart by etcd's own messages so they surface as `forbidden`, like a permission error (403).
const AUTH_FAILURE =
  /authentication failed|user name is empty|invalid auth token|permission denied|auth is not enabled/i;

function statusError(status: number, body: string): EtcdError {
  let detail = '';
  let authFailure = false;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed)) {
      const message = isRecord(parsed.error) ? parsed.error.message : (parsed.message ?? parsed.error);
      if (typeof message === 'string') {
        detail = `: ${JSON.stringify(message.slice(0, 200))}`;
        authFailure = AUTH_FAILURE.test(message);
      }
    }
  } catch {
    // not JSON: no detail
  }
  const reason = status === 401 || status === 403 || authFailure ? 'forbidden' : 'http-status';
  return new EtcdError(reason, `etcd answered HTTP ${status}${detail}`, { status });
}

function toEtcdError(err: unknown, origin: string): EtcdError {
  if (isSidecarlessError(err) && err instanceof EtcdError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new EtcdError('timeout', `etcd ${origin} did not answer in time`, { cause: err });
  }
  const detail = typeof code === 'string' ? code : 'network error';
  return new EtcdError('connection', `etcd ${origin} failed (${detail})`, { cause: err });
}

async function readCapped(
  body: Readable | (AsyncIterable<Buffer> & { destroy(): void }),
  max: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw bad(`etcd answered with a body larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Builds {@link EtcdResolverOptions} from a parsed `etcd:` target (see the module documentation). */
export function etcdOptionsFromTarget(target: Target): EtcdResolverOptions {
  const raw = target.raw.replace(/([?&](?:password|token)=)[^&#]*/gi, '$1<redacted>');
  for (const key of target.query.keys()) {
    if (key !== 'tls') {
      const hint = key === 'password' || key === 'username' ? ' (credentials go in the options object)' : '';
      throw new InvalidTargetError(raw, `unknown query parameter "${key}"${hint}`);
    }
  }
  if (target.authority.includes('@')) throw new InvalidTargetError(raw, 'credentials are not accepted in the target');
  const tls = target.query.get('tls');
  if (tls !== null && tls !== 'true' && tls !== 'false') throw new InvalidTargetError(raw, 'tls must be true or false');
  let prefix: string;
  try {
    prefix = `/${decodeURIComponent(target.path)}`;
  } catch {
    throw new InvalidTargetError(raw, 'the key prefix is not valid percent-encoding');
  }
  if (prefix === '/')
    throw new InvalidTargetError(raw, 'expected etcd://host:port/key/prefix/ with a non-empty prefix');
  const scheme = tls === 'true' ? 'https' : 'http';
  const members = target.authority === '' ? ['127.0.0.1:2379'] : target.authority.split(',');
  if (members.some((m) => m.length === 0)) throw new InvalidTargetError(raw, 'empty entry in the member list');
  return { prefix, endpoints: members.map((m) => `${scheme}://${m}`) };
}

/** Factory for `etcd://host:port[,host:port]/prefix/`; clock and random come from the cluster. @category Resolvers */
export const etcdResolverFactory: ResolverFactory = (target, context) => {
  const options = etcdOptionsFromTarget(target);
  try {
    return new EtcdResolver({ ...options, clock: context.clock, random: context.random });
  } catch (err) {
    if (isSidecarlessError(err)) throw new InvalidTargetError(target.raw, err.message, { cause: err });
    throw err;
  }
};
