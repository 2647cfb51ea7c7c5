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
 * of range, a host no connection can be made to such as `999.1.1.1` or `0.0.0.0`, larger than `maxValueBytes`) is
 * skipped, logged, counted ({@link EtcdResolver.skippedValues}) and reported to `onError` as a `bad-response`; the
 * rest of the set is still delivered. When every key under the prefix holds such a value, nothing is delivered: the
 * last good set stays in use (the prefix is not empty, so there is no "not found"). When two keys hold the same
 * `host:port`, the first key in byte order wins.
 *
 * **Protocol:** `POST /v3/kv/range` over `[prefix, prefix+1)` reads the set and its revision; `POST /v3/watch`
 * from revision+1 streams newline-delimited JSON changes. PUT and DELETE events update the set, and the whole set
 * is delivered once per received chunk (a burst of events in one chunk is one update; identical sets are not
 * re-delivered). When the watch is cancelled because its revision was compacted (`compact_revision` set), the
 * resolver lists again and re-watches. A watch etcd cancels for another reason is a failure: `forbidden` for an auth
 * one (a missing permission), else `server-error`; but an expired token is first met by a new login and a watch from
 * the revision held, without listing again (once per working watch: refused again, it is a failure). When a request
 * fails or the stream breaks, the error goes to `onError` as an {@link EtcdError}, the last good set stays in use,
 * and the resolver moves to the next member, listing again after exponential backoff.
 * The watch asks for progress notifications (etcd sends one every 10 minutes on a quiet watch), so a stream on which
 * nothing at all arrives for `watchIdleTimeoutMs` is taken for a dead (half-open) connection: it is aborted with
 * an {@link EtcdError} `timeout` and the resolver lists again.
 * Listings start at most once per `minRelistIntervalMs`. With `username`/`password`, each cycle first calls
 * `POST /v3/auth/authenticate` and sends the token in the `Authorization` header; when etcd answers that auth is not
 * enabled, the cycle goes on without a token (as etcd's Go client does: credentials usually reach the clients before
 * auth is enabled), and a request refused for its token (expired, or none while auth has since been enabled) is made
 * again once after a new login.
 *
 * **refresh()**: restarts the list-and-watch cycle (which also replaces a watch connection that may have died
 * silently), at most once per `refreshIntervalMs`; ignored during error backoff.
 *
 * @module
 */
import { Pool } from 'undici';
import type { Endpoint } from '../../common/endpoint.js';
import { isSidecarlessError, ServiceNotFoundError } from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { Backoff } from '../../common/backoff.js';
import { EtcdError } from '../errors.js';
import { withDeadline } from '../deadline.js';
import { type Liveness, watchLiveness } from '../liveness.js';
import { LineSplitter } from '../line-splitter.js';
import { readBody, readErrorDetail } from '../read-body.js';
import type { Resolver, ResolverFactory, ResolverListener } from '../resolver.js';
import { asTargetError } from '../target.js';
import { type WatchRun, WatchLoop } from '../watch-loop.js';
import {
  type EtcdResolverOptions,
  etcdOptionsFromTarget,
  type ResolvedEtcdOptions,
  resolveEtcdOptions,
} from './options.js';
import {
  bad,
  type EtcdKeyValue,
  parseEtcdEndpoint,
  parseEtcdRange,
  parseEtcdWatchLine,
  statusError,
  watchCanceledError,
} from './parse.js';
import { EtcdAuth } from './auth.js';

export type { EtcdResolverOptions, EtcdTlsOptions } from './options.js';
export { DiscoveryError, type DiscoveryFailureReason, EtcdError } from '../errors.js';

const debug = createDebug('etcd');

/** Why a cycle ended without an error. */
type CycleEnd = 'compacted' | 'stopped';

const tooLarge = (max: number) => bad(`etcd answered with a body larger than ${max} bytes`);

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
  readonly #loop: WatchLoop;
  readonly #pools = new Map<string, Pool>();
  readonly #set = new Map<string, Endpoint>();
  /** Keys whose latest value is unusable (skipped): when only such keys are left, the last set stays. */
  readonly #unusable = new Set<string>();
  /** A skipped value was reported since the last delivery. */
  #reported = false;
  #member = 0;
  #skipped = 0;
  #lists = 0;
  #revision = 0;

  /** Validates every option (throwing `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: EtcdResolverOptions) {
    this.#options = resolveEtcdOptions(options);
    const { backoff, clock, minRelistIntervalMs, prefix, random, refreshIntervalMs } = this.#options;
    this.#loop = new WatchLoop(
      {
        label: prefix,
        clock,
        backoff: new Backoff(backoff, random),
        minIntervalMs: minRelistIntervalMs,
        refresh: { mode: 'watch', intervalMs: refreshIntervalMs },
        debug,
      },
      (run) => this.#cycle(run),
    );
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

  /** Keys held from the prefix, those with an unusable value included (at most `maxEndpoints`). @internal */
  get held(): number {
    return this.#set.size + this.#unusable.size;
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
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
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

  /** One run of the loop on the current member; a failure moves to the next member. */
  async #cycle(run: WatchRun): Promise<undefined> {
    const origin = this.#options.origins[this.#member % this.#options.origins.length] as string;
    let end: CycleEnd;
    try {
      end = await this.#listAndWatch(origin, run);
    } catch (err) {
      if (run.signal.aborted) throw err; // stopped by refresh() or close(): not a failure
      this.#member++;
      throw toEtcdError(err, origin);
    }
    debug('%s: cycle ended (%s); listing again', this.#options.prefix, end);
    return undefined;
  }

  /** One cycle: authenticate, list, deliver, watch until the stream ends. Resolves only on compaction or stop. */
  async #listAndWatch(origin: string, run: WatchRun): Promise<CycleEnd> {
    const { signal } = run;
    const pool = this.#pool(origin);
    const auth = new EtcdAuth(
      this.#options,
      (path, payload, headers) => this.#post(pool, signal, path, payload, headers),
      (format, ...args) => debug(`%s: ${format}`, this.#options.prefix, ...args),
    );
    // Without credentials the listing starts in the same turn as the cycle (no login to wait for).
    if (this.#options.username !== undefined) await auth.login();
    run.started();
    this.#lists++;
    const { key64, rangeEnd64 } = this.#options;
    const range = parseEtcdRange(
      await auth.retry(() =>
        this.#post(pool, signal, '/v3/kv/range', { key: key64, range_end: rangeEnd64 }, auth.headers),
      ),
    );
    this.#set.clear();
    this.#unusable.clear();
    for (const kv of range.kvs) this.#put(kv, run);
    this.#revision = range.revision;
    this.#deliver(run);

    for (;;) {
      const body = await auth.retry(() => this.#openWatch(pool, signal, auth.headers));
      const liveness = this.#watchLiveness(body, origin);
      try {
        return await this.#follow(body, origin, liveness, run, () => auth.worked());
      } catch (err) {
        if (signal.aborted || !auth.renewable(err)) throw err;
        // The token expired before the watch was made (a slow link) or while it ran: what was seen is still
        // right, so log in again and watch on from the revision held, without listing again.
        debug(
          '%s: %s; logging in again, watching from %d',
          this.#options.prefix,
          (err as Error).message,
          this.#revision,
        );
      } finally {
        liveness.stop();
      }
      await auth.renew();
    }
  }

  /** Opens the watch from the revision held. */
  async #openWatch(
    pool: Pool,
    signal: AbortSignal,
    headers: Record<string, string>,
  ): Promise<AsyncIterable<Buffer> & { destroy(error?: Error): void }> {
    const watch = await pool.request({
      method: 'POST',
      path: '/v3/watch',
      headers,
      body: JSON.stringify({
        create_request: {
          key: this.#options.key64,
          range_end: this.#options.rangeEnd64,
          start_revision: String(this.#revision + 1),
          progress_notify: true,
        },
      }),
      signal,
    });
    if (watch.statusCode !== 200) {
      const text = await readErrorDetail(watch.body, this.#options.clock, this.#options.requestTimeoutMs);
      throw statusError(watch.statusCode, text);
    }
    return watch.body;
  }

  /** Aborts the watch body with a `timeout` error when no message arrives for `watchIdleTimeoutMs`. */
  #watchLiveness(body: { destroy(error?: Error): void }, origin: string): Liveness {
    const { clock, watchIdleTimeoutMs } = this.#options;
    return watchLiveness(clock, watchIdleTimeoutMs, (quiet) => {
      debug('%s: nothing on the watch from %s for %d ms; aborting', this.#options.prefix, origin, quiet);
      body.destroy(
        new EtcdError(
          'timeout',
          `etcd watch from ${origin} received nothing (not even a progress notification) for ${watchIdleTimeoutMs} ms`,
        ),
      );
    });
  }

  /**
   * Reads watch messages until the stream ends or etcd cancels the watch (both errors), or its revision was
   * compacted (`compacted`). `working` is called on each message after the creation.
   */
  async #follow(
    body: AsyncIterable<Buffer> & { destroy(error?: Error): void },
    origin: string,
    liveness: { seen(): void },
    run: WatchRun,
    working: () => void,
  ): Promise<CycleEnd> {
    const lines = new LineSplitter(this.#options.maxResponseBytes, (max) =>
      bad(`etcd watch message larger than ${max} bytes`),
    );
    for await (const chunk of body) {
      let changed = false;
      for (const line of lines.push(chunk)) {
        const message = parseEtcdWatchLine(line);
        liveness.seen();
        if (message.kind === 'compacted' || message.kind === 'canceled') {
          body.destroy();
          if (changed) this.#deliver(run);
          if (message.kind === 'canceled') throw watchCanceledError(message.reason);
          debug('%s: watch revision compacted (at %d)', this.#options.prefix, message.compactRevision);
          return 'compacted';
        }
        if (message.kind === 'created') {
          run.healthy();
          // Not the revision the watch has reached: the events from its start come after (a watch made again
          // from the revision held must not skip them).
          continue;
        }
        working();
        if (message.kind === 'events') {
          for (const event of message.events) {
            if (event.type === 'DELETE') {
              this.#set.delete(event.kv.id);
              this.#unusable.delete(event.kv.id);
            } else {
              this.#put(event.kv, run);
            }
          }
          changed = true;
        }
        if (message.revision > this.#revision) this.#revision = message.revision;
      }
      if (changed) this.#deliver(run);
    }
    throw new EtcdError('connection', `etcd watch stream from ${origin} ended`);
  }

  #put(kv: EtcdKeyValue, run: WatchRun): void {
    const max = this.#options.maxEndpoints;
    if (this.held >= max && !this.#set.has(kv.id) && !this.#unusable.has(kv.id)) {
      // Not taken: the set held stays within the bound, the last delivered one stays in force, and the cycle ends
      // (the next one lists afresh, after the backoff).
      throw new EtcdError('limit', `etcd prefix ${this.#options.prefix} holds more than maxEndpoints (${max}) keys`);
    }
    try {
      this.#set.set(kv.id, parseEtcdEndpoint(kv.key, kv.value, this.#options.maxValueBytes));
      this.#unusable.delete(kv.id);
    } catch (err) {
      // The key no longer holds a usable endpoint: drop what it held before, keep the rest (and report it).
      this.#set.delete(kv.id);
      this.#unusable.add(kv.id);
      this.#reported = true;
      this.#skipped++;
      debug('%s: skipping malformed value: %s', this.#options.prefix, (err as Error).message);
      run.report(isSidecarlessError(err) ? err : bad(`etcd value at ${JSON.stringify(kv.key)} is unusable`, err));
    }
  }

  /**
   * Delivers the set the keys hold, unless every key left holds an unusable value: then the prefix is not empty (no
   * `notFound`), and the last set stays in use (invariant 4), reported as a `bad-response` unless a skipped value was
   * reported since the last delivery. An empty prefix is delivered as an empty set with `notFound`.
   */
  #deliver(run: WatchRun): void {
    const reported = this.#reported;
    this.#reported = false;
    const { prefix } = this.#options;
    if (this.#set.size === 0 && this.#unusable.size > 0) {
      const keys = this.#unusable.size === 1 ? 'its only key holds' : `all ${this.#unusable.size} of its keys hold`;
      const message = `etcd prefix ${JSON.stringify(prefix)}: ${keys} no usable endpoint; keeping the last set`;
      debug('%s: %s', prefix, message);
      if (!reported) run.report(bad(message));
      return;
    }
    // Ids are the keys' bytes as latin1 characters: the default string order is byte order.
    const keys = [...this.#set.keys()].sort();
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
    debug('%s: set at revision %d', prefix, this.#revision);
    run.deliver(
      endpoints,
      endpoints.length > 0
        ? undefined
        : new ServiceNotFoundError(prefix, `etcd has no endpoint under the prefix ${JSON.stringify(prefix)}`),
    );
  }

  /** A bounded JSON POST whose body is returned as text; non-200 statuses become errors. */
  async #post(
    pool: Pool,
    parent: AbortSignal,
    path: string,
    payload: unknown,
    headers?: Record<string, string>,
  ): Promise<string> {
    const { clock, requestTimeoutMs } = this.#options;
    return withDeadline(
      clock,
      requestTimeoutMs,
      parent,
      async (signal) => {
        const res = await pool.request({
          method: 'POST',
          path,
          headers: headers ?? { 'content-type': 'application/json' },
          body: JSON.stringify(payload),
          signal,
        });
        const text = await readBody(res.body, this.#options.maxResponseBytes, tooLarge);
        if (res.statusCode !== 200) throw statusError(res.statusCode, text);
        return text;
      },
      () => new EtcdError('timeout', `etcd ${path} got no answer within ${requestTimeoutMs} ms`),
    );
  }
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

/** Factory for `etcd://host:port[,host:port]/prefix/`; clock and random come from the cluster. */
export const etcdResolverFactory: ResolverFactory = (target, context) => {
  const options = etcdOptionsFromTarget(target);
  return asTargetError(target, () => new EtcdResolver({ ...options, clock: context.clock, random: context.random }));
};
