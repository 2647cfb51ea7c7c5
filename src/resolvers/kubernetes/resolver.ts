/**
 * The Kubernetes resolver: a Service's endpoints read from its `discovery.k8s.io/v1` EndpointSlices, listed once and
 * then watched through the API server.
 *
 * **Target:** `kubernetes:///service[.namespace][:port]`, e.g. `kubernetes:///users.shop:http`. The namespace
 * defaults to the pod's own; the port is a name (looked up in each slice) or a number. `?zone=` gives the caller's
 * zone. The API server and credentials come from the pod's service account or the kubeconfig (see
 * {@link KubernetesResolverOptions} and `credentials.ts`).
 *
 * **Protocol** (the API's list/watch contract): `GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices` with
 * `labelSelector=kubernetes.io/service-name={service}` lists the slices (in pages of `pageSize`, following
 * `continue`; a page repeating an earlier token, or more pages than max(1,000, `maxEndpoints / pageSize`), fails the
 * listing with a `bad-response`) and gives the collection's `resourceVersion`; the same path with `watch=1`, that `resourceVersion`,
 * `allowWatchBookmarks=true` and `timeoutSeconds` streams one JSON event per line. ADDED and MODIFIED replace a
 * slice, DELETED removes it, BOOKMARK only moves the resourceVersion; the merged set is delivered once per received
 * chunk. When the server ends the watch (its timeout), the resolver watches again from the last resourceVersion.
 * A `410 Gone` answer or an ERROR event carrying a 410 Status (the resourceVersion is too old) lists again. A failed
 * request, a broken stream, or a watch on which nothing arrives for `watchTimeoutMs + requestTimeoutMs` is an
 * {@link KubernetesError}: the last set stays in use and the watch resumes after backoff.
 *
 * **Which endpoints serve**: ready ones; terminating ones get no new requests (removed from the set, their in-flight
 * requests finish while the cluster drains them); when none is ready, serving terminating ones are used rather than
 * none. With the caller's `zone` known, `hints.forZones` narrow the set. See `parse.ts`, `buildEndpoints`.
 *
 * **Unusable entries**: a malformed slice (its previous version dropped), or an endpoint whose address no connection
 * can be made to (`999.1.1.1`, `0.0.0.0`, a multicast address), is skipped, counted (`stats.skipped`) and reported as
 * a `bad-response`; the rest is delivered. When nothing usable is left because of them, the last set stays in use
 * (invariant 4) and the report says so; a set empty with nothing skipped (the Service scaled to zero) is delivered.
 * See `slices.ts`.
 *
 * **refresh()**: lists again (aborting the watch), at most once per `refreshIntervalMs`; ignored during backoff.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Endpoint } from '../../common/endpoint.js';
import { createDebug } from '../../common/debug.js';
import { Backoff } from '../../common/backoff.js';
import { KubernetesError } from '../errors.js';
import { withDeadline } from '../deadline.js';
import { readBody, readErrorDetail, type ResponseBody } from '../read-body.js';
import type { Resolver, ResolverFactory, ResolverListener } from '../resolver.js';
import { asTargetError } from '../target.js';
import { tapErrors, type WatchResult, type WatchRun, WatchLoop } from '../watch-loop.js';
import { type ApiConnection, acquireConnection } from './connection.js';
import { readToken } from './credentials.js';
import { type KubernetesResolverEvent, type KubernetesResolverStats, kubernetesChannel } from './diagnostics.js';
import {
  type KubernetesResolverOptions,
  kubernetesOptionsFromTarget,
  type ResolvedKubernetesOptions,
  resolveKubernetesOptions,
} from './options.js';
import { bad, parseJson, parseSliceList, parseStatus, parseWatchLine } from './parse.js';
import { SliceSet } from './slices.js';
import { type WatchEnd, followWatch } from './watch.js';

export type { KubernetesResolverOptions, KubernetesTlsOptions } from './options.js';
export type { KubernetesResolverEvent, KubernetesResolverStats } from './diagnostics.js';
export { KubernetesError } from '../errors.js';

const debug = createDebug('kubernetes');

/** The RBAC rule the resolver needs, quoted in 401/403 errors. */
const RBAC_RULE =
  'the identity needs a Role (bound with a RoleBinding) granting get, list and watch on endpointslices ' +
  'in the API group discovery.k8s.io';

/**
 * The fewest pages a list may take before it is given up as endless (a server handing out `continue` tokens
 * forever): the bound is this or `maxEndpoints / pageSize`, whichever is more (1,000 with the defaults).
 */
const MIN_LIST_PAGES = 1000;

/**
 * Resolves a Kubernetes Service's endpoints from its EndpointSlices, listed once and then watched. See the module
 * documentation for the protocol and which endpoints serve.
 *
 * @example
 * ```ts
 * // In a pod: the service account's token, CA and namespace are found on their own.
 * const client = createClient({
 *   target: new KubernetesResolver({ service: 'users', namespace: 'shop', port: 'http', zone: process.env.ZONE }),
 *   zoneAware: process.env.ZONE ? { localZone: process.env.ZONE } : undefined,
 * });
 * ```
 *
 * @category Resolvers
 */
export class KubernetesResolver implements Resolver {
  readonly #options: ResolvedKubernetesOptions;
  readonly #loop: WatchLoop;
  readonly #label: string;
  #connection: ApiConnection | undefined;
  #slices: SliceSet;
  #resourceVersion: string | undefined;
  readonly #earlyEnds: Backoff;
  #counts = { lists: 0, watches: 0, events: 0, bookmarks: 0, expired: 0, skipped: 0, errors: 0 };

  /**
   * Validates every option and reads the configuration files (kubeconfig, CA, namespace; throwing
   * `SIDECARLESS_INVALID_OPTION` naming the option); starts no network I/O.
   */
  constructor(options: KubernetesResolverOptions) {
    this.#options = resolveKubernetesOptions(options);
    const { backoff, clock, minRelistIntervalMs, namespace, random, refreshIntervalMs, service } = this.#options;
    this.#label = `kubernetes:${namespace}/${service}`;
    this.#slices = new SliceSet(this.#label, this.#options.maxEndpoints);
    this.#earlyEnds = new Backoff(backoff, random);
    this.#loop = new WatchLoop(
      {
        label: this.#label,
        clock,
        backoff: new Backoff(backoff, random),
        minIntervalMs: minRelistIntervalMs,
        refresh: { mode: 'watch', intervalMs: refreshIntervalMs },
        debug,
        toError: (err) => this.#toError(err),
      },
      (run) => this.#cycle(run),
    );
    debug('%s: API server %s from %s', this.#label, this.#options.server.origin, this.#options.server.source);
  }

  /** The namespace watched (the option, the target's, the pod's own, the context's, or `default`). */
  get namespace(): string {
    return this.#options.namespace;
  }

  /** Counters of the list-and-watch cycle. */
  get stats(): KubernetesResolverStats {
    return { ...this.#counts, slices: this.#slices.size, resourceVersion: this.#resourceVersion };
  }

  /** Takes a reference on the shared API server connection and starts listing and watching. */
  start(listener: ResolverListener): void {
    if (this.#loop.closed || this.#connection !== undefined) return;
    this.#connection = acquireConnection(this.#options.server, this.#options.requestTimeoutMs + 1000);
    this.#loop.start(
      tapErrors(listener, (error) => {
        this.#counts.errors++;
        this.#publish({ kind: 'error', error });
      }),
    );
  }

  /** Lists again (aborting the watch), at most once per `refreshIntervalMs`; ignored during backoff. */
  refresh(): void {
    this.#loop.refresh();
  }

  /** Stops the watch and releases the shared connection (closed with its last resolver). */
  async close(): Promise<void> {
    if (this.#loop.closed) return;
    this.#loop.close();
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.release();
  }

  #publish(event: Omit<KubernetesResolverEvent, 'namespace' | 'service' | 'resourceVersion'>): void {
    if (!kubernetesChannel.hasSubscribers) return;
    const { namespace, service } = this.#options;
    kubernetesChannel.publish({ namespace, service, resourceVersion: this.#resourceVersion, ...event });
  }

  #toError(err: unknown): KubernetesError {
    if (err instanceof KubernetesError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    const origin = this.#options.server.origin;
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new KubernetesError('timeout', `Kubernetes API server ${origin} did not answer in time`, { cause: err });
    }
    const detail = typeof code === 'string' ? code : 'network error';
    return new KubernetesError('connection', `Kubernetes API server ${origin} failed (${detail})`, { cause: err });
  }

  #path(query: Record<string, string>): string {
    const { namespace, service } = this.#options;
    const params = new URLSearchParams({ labelSelector: `kubernetes.io/service-name=${service}`, ...query });
    return `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?${params}`;
  }

  async #headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    let token: string | undefined;
    try {
      token = await readToken(this.#options.server.token);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new KubernetesError('forbidden', `cannot read the service account token file (${String(code)})`, {
        cause: err,
      });
    }
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  /**
   * One run: list when there is no resourceVersion, then watch until the stream ends. A watch the server ended well
   * before its `timeoutSeconds` (a proxy or an overloaded server closing streams early) is resumed after the next
   * delay of a backoff of its own, reset by a watch that lasts; one that lasted is resumed at once (within
   * `minRelistIntervalMs`). A watch that expired (410) early is listed again after the same backoff.
   */
  async #cycle(run: WatchRun): Promise<WatchResult | undefined> {
    try {
      const headers = await this.#headers();
      run.started();
      if (this.#resourceVersion === undefined) await this.#list(run, headers);
      const opened = this.#options.clock.now();
      const end = await this.#watch(run, headers);
      const lasted = this.#options.clock.now() - opened >= this.#options.watchTimeoutMs / 2;
      if (end === 'expired') {
        this.#counts.expired++;
        this.#publish({ kind: 'expired' });
        debug('%s: resourceVersion %s expired; listing again', this.#label, this.#resourceVersion);
        this.#resourceVersion = undefined;
        if (lasted) return undefined;
        // Expired at once, maybe on the version a list just gave: a server (or a proxy's cache) that does this on
        // every watch would get a list and a watch per minRelistIntervalMs for good; the early-end backoff spaces
        // the lists out, and a watch that lasts resets it.
        return { nextMs: this.#earlyEnds.next() };
      }
      this.#publish({ kind: 'watch-end' });
      if (lasted) {
        this.#earlyEnds.reset();
        debug('%s: watch ended by the server; resuming from %s', this.#label, this.#resourceVersion);
        return undefined;
      }
      const nextMs = this.#earlyEnds.next();
      debug('%s: watch ended early; resuming from %s in %d ms', this.#label, this.#resourceVersion, nextMs);
      return { nextMs };
    } catch (err) {
      // refresh(), or more than maxEndpoints: list again (a fresh list recovers once the registry is sane again).
      if (run.signal.aborted || (err instanceof KubernetesError && err.reason === 'limit')) {
        this.#resourceVersion = undefined;
      }
      throw err;
    }
  }

  /**
   * Lists every page. A page whose `continue` token repeats an earlier one, or more pages than the bound (see
   * {@link MIN_LIST_PAGES}), fail the listing with a `bad-response`: the last set stays, and the next list comes after
   * the backoff.
   */
  async #list(run: WatchRun, headers: Record<string, string>): Promise<void> {
    const { maxEndpoints, pageSize } = this.#options;
    const maxPages = Math.max(MIN_LIST_PAGES, Math.ceil(maxEndpoints / pageSize));
    const slices = new SliceSet(this.#label, maxEndpoints);
    const tokens = new Set<string>(); // digests: a token may be large
    let continueToken = '';
    let resourceVersion: string;
    for (let page = 1; ; page++) {
      const query: Record<string, string> = { limit: String(pageSize) };
      if (continueToken !== '') query.continue = continueToken;
      const text = await this.#get(this.#path(query), headers, run.signal);
      const list = parseSliceList(text);
      for (const item of list.items) this.#counts.skipped += slices.accept(item, false);
      resourceVersion = list.resourceVersion;
      continueToken = list.continueToken;
      if (continueToken === '') break;
      const digest = createHash('sha256').update(continueToken).digest('base64');
      if (tokens.has(digest)) {
        throw bad(`Kubernetes list of ${this.#label} sent the continue token of an earlier page again (page ${page})`);
      }
      if (page >= maxPages) {
        throw bad(`Kubernetes list of ${this.#label} did not end within ${maxPages} pages of ${pageSize}`);
      }
      tokens.add(digest);
    }
    this.#slices = slices;
    this.#resourceVersion = resourceVersion;
    this.#counts.lists++;
    this.#publish({ kind: 'list' });
    debug('%s: listed %d slices at resourceVersion %s', this.#label, slices.size, resourceVersion);
    run.healthy();
    this.#deliver(run);
  }

  async #watch(run: WatchRun, headers: Record<string, string>): Promise<WatchEnd> {
    const { requestTimeoutMs, watchTimeoutMs } = this.#options;
    const path = this.#path({
      watch: '1',
      allowWatchBookmarks: 'true',
      resourceVersion: this.#resourceVersion as string,
      timeoutSeconds: String(Math.ceil(watchTimeoutMs / 1000)),
    });
    const res = await this.#request(path, headers, run.signal);
    // Read, not destroyed unread: undici errors an unread body it is told to destroy, and with no listener that
    // error event crashed the process.
    const detail = res.statusCode === 200 ? '' : await readErrorDetail(res.body, this.#options.clock, requestTimeoutMs);
    if (res.statusCode === 410) return 'expired';
    if (res.statusCode !== 200) throw this.#statusError(res.statusCode, detail);
    this.#counts.watches++;
    this.#publish({ kind: 'watch' });
    // Healthy once an event was applied, not when the stream opened: a watch that fails at its first line (a
    // malformed one, an ERROR event) would otherwise reset the backoff every time and be retried every second.
    let applied = false;
    return followWatch(res.body, {
      clock: this.#options.clock,
      idleMs: watchTimeoutMs + requestTimeoutMs,
      maxLineBytes: this.#options.maxResponseBytes,
      onIdle: (quiet) =>
        new KubernetesError(
          'timeout',
          `Kubernetes watch of ${this.#label} received nothing for ${Math.round(quiet)} ms`,
        ),
      onLine: (line) => {
        const result = this.#event(line);
        if (!applied) {
          applied = true;
          run.healthy();
        }
        return result;
      },
      onChunk: (changed) => {
        if (changed) this.#deliver(run);
      },
      debug: (message) => debug('%s: %s', this.#label, message),
    });
  }

  /** Applies one watch line. Returns `changed` when the set may have changed, `expired` on a 410 ERROR. */
  #event(line: string): 'changed' | 'expired' | undefined {
    const event = parseWatchLine(line);
    switch (event.type) {
      case 'BOOKMARK':
        this.#counts.bookmarks++;
        this.#resourceVersion = event.resourceVersion;
        return undefined;
      case 'ERROR': {
        const { code, reason, message } = event.status;
        if (code === 410 || reason === 'Expired' || reason === 'Gone') return 'expired';
        throw new KubernetesError('server-error', `Kubernetes watch error ${code} ${reason}: ${message}`, {
          status: code,
        });
      }
      default: {
        this.#counts.events++;
        const rv = (event.object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv !== '') this.#resourceVersion = rv;
        if (event.type === 'DELETED') {
          if (event.name === undefined) this.#counts.skipped++;
          else this.#slices.delete(event.name);
        } else {
          this.#counts.skipped += this.#slices.accept(event.object, true);
        }
        return 'changed';
      }
    }
  }

  /** Delivers the merged set, unless nothing in it is usable because entries were skipped (the last set stays). */
  #deliver(run: WatchRun): void {
    const { port, zone } = this.#options;
    const { built, deliver, report } = this.#slices.build(port, zone);
    if (report !== undefined) {
      debug('%s: %s', this.#label, report.message);
      run.report(report);
    }
    if (!deliver) return;
    debug('%s: %d endpoints (%s%s)', this.#label, built.endpoints.length, built.state, built.hinted ? ', hinted' : '');
    this.#publish({ kind: 'update', endpoints: built.endpoints.length, state: built.state });
    run.deliver(built.endpoints as Endpoint[]);
  }

  readonly #tooLarge = (max: number) => bad(`Kubernetes API answered with a body larger than ${max} bytes`);

  #statusError(status: number, text: string): KubernetesError {
    const parsed = parseStatus(safeJson(text));
    const detail = parsed?.message ? `: ${parsed.message}` : '';
    const where = `endpointslices in namespace "${this.#options.namespace}"`;
    if (status === 401 || status === 403) {
      const what = status === 401 ? '401 Unauthorized (the token or certificate was rejected)' : '403 Forbidden';
      return new KubernetesError('forbidden', `Kubernetes API ${what} for ${where}; ${RBAC_RULE}${detail}`, {
        status,
      });
    }
    return new KubernetesError('http-status', `Kubernetes API answered ${status} for ${where}${detail}`, { status });
  }

  /** Sends a GET; the response headers must come within `requestTimeoutMs`. */
  async #request(
    path: string,
    headers: Record<string, string>,
    parent: AbortSignal,
  ): Promise<{ statusCode: number; body: ResponseBody & AsyncIterable<Buffer> }> {
    const { clock, requestTimeoutMs } = this.#options;
    const connection = this.#connection;
    if (connection === undefined) throw new KubernetesError('connection', `${this.#label} is closed`);
    // The body (a watch stream) is read after this returns, so `parent` stays linked: it belongs to this run only.
    return withDeadline(
      clock,
      requestTimeoutMs,
      parent,
      async (signal) => {
        const res = await connection.request({ method: 'GET', path, headers, signal });
        return { statusCode: res.statusCode, body: res.body };
      },
      () => new KubernetesError('timeout', `Kubernetes API got no answer within ${requestTimeoutMs} ms`),
      'run',
    );
  }

  /**
   * A bounded GET whose body is returned as text; a non-200 status is an error. The whole answer, body included,
   * must come within `requestTimeoutMs`: a body trickled forever would otherwise hold the resolver with no error.
   */
  async #get(path: string, headers: Record<string, string>, parent: AbortSignal): Promise<string> {
    const { clock, requestTimeoutMs } = this.#options;
    return withDeadline(
      clock,
      requestTimeoutMs,
      parent,
      async (signal) => {
        const res = await this.#request(path, headers, signal);
        const text = await readBody(res.body, this.#options.maxResponseBytes, this.#tooLarge);
        if (res.statusCode !== 200) throw this.#statusError(res.statusCode, text);
        return text;
      },
      () => new KubernetesError('timeout', `Kubernetes API list got no complete answer within ${requestTimeoutMs} ms`),
    );
  }
}

function safeJson(text: string): unknown {
  try {
    return parseJson(text, 'status');
  } catch {
    return undefined;
  }
}

/** Factory for `kubernetes:///service[.namespace][:port]`; clock and random come from the cluster. */
export const kubernetesResolverFactory: ResolverFactory = (target, context) => {
  const options = kubernetesOptionsFromTarget(target);
  return asTargetError(
    target,
    () => new KubernetesResolver({ ...options, clock: context.clock, random: context.random }),
  );
};
