/**
 * A Kubernetes API server double for `discovery.k8s.io/v1` EndpointSlices, written from the API reference
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/ "Efficient detection of changes", "Watch bookmarks",
 * "Retrieving large results sets in chunks", "Resource versions"; the EndpointSlice v1 reference), not from the
 * resolver:
 *
 * - HTTPS (HTTP/2 with HTTP/1.1 fallback, as the API server) with a self-signed certificate for 127.0.0.1 and
 *   `kubernetes.default.svc` ({@link tlsMaterial}), or plain HTTP (`tls: false`, like `kubectl proxy`);
 * - `Authorization: Bearer <token>`: an unknown or missing token is 401 (Status reason `Unauthorized`); a known token
 *   without permission in the namespace is 403 (reason `Forbidden`, the API server's wording);
 * - `GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices`: a list (`kind: EndpointSliceList`,
 *   `metadata.resourceVersion` = the store's current revision), filtered by `labelSelector` (equality-based: `k=v`,
 *   `k==v`, `k!=v`, `k`, `!k`, comma = and; set-based expressions are 400), paged by `limit` with `metadata.continue`
 *   (an expired continue token is 410);
 * - the same with `watch=1`: 200 and a chunked stream of JSON lines `{"type":..,"object":..}` with every change after
 *   `resourceVersion` (or, without one, ADDED for each current object first); a resourceVersion older than the
 *   retained history gets an `ERROR` event with a 410 `Expired` Status (or, with `expiredAs: 'status'`, an HTTP 410);
 *   `allowWatchBookmarks=true` adds `BOOKMARK` events every `bookmarkIntervalMs`; the server ends the stream after
 *   `timeoutSeconds` (or its default);
 * - every object gets `metadata.resourceVersion` (a global counter, as etcd's revision) on each write.
 *
 * Switches: {@link KubernetesApiDouble.fault} answers every request with a status;
 * {@link KubernetesApiDouble.endlessContinue} makes every list page say that more follows (a broken server);
 * {@link KubernetesApiDouble.compact} drops history; {@link KubernetesApiDouble.restart} closes every connection and listens again on the same port
 * (history lost: old resourceVersions expire); {@link KubernetesApiDouble.silence} keeps watches open but mute.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SlicePortSpec {
  readonly name?: string;
  readonly port?: number;
  readonly protocol?: string;
}

export interface SliceEndpointSpec {
  readonly addresses: readonly string[];
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly zone?: string;
  readonly nodeName?: string;
  readonly pod?: string;
  readonly forZones?: readonly string[];
}

/** Builds an EndpointSlice object as the EndpointSlice controller writes it. */
export function endpointSlice(
  name: string,
  service: string,
  ports: readonly SlicePortSpec[],
  endpoints: readonly SliceEndpointSpec[],
  addressType: 'IPv4' | 'IPv6' | 'FQDN' = 'IPv4',
): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'double' },
    },
    addressType,
    ports: ports.map((p) => ({ protocol: 'TCP', ...p })),
    endpoints: endpoints.map((e) => ({
      addresses: e.addresses,
      conditions: {
        ...(e.ready !== undefined ? { ready: e.ready } : {}),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
      ...(e.zone !== undefined ? { zone: e.zone } : {}),
      ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
      ...(e.pod !== undefined ? { targetRef: { kind: 'Pod', name: e.pod, namespace: 'x' } } : {}),
      ...(e.forZones !== undefined ? { hints: { forZones: e.forZones.map((z) => ({ name: z })) } } : {}),
    })),
  };
}

let material: { cert: string; key: string } | undefined;

/** A self-signed certificate (its own CA) for 127.0.0.1 and kubernetes.default.svc, made once per process. */
export function tlsMaterial(): { cert: string; key: string } {
  material ??= selfSigned('kube-apiserver', 'IP:127.0.0.1,DNS:kubernetes.default.svc,DNS:localhost');
  return material;
}

/** A self-signed certificate for `name` (its own CA), valid one day. */
export function selfSigned(name: string, altNames = `DNS:${name}`): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-k8s-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`,
        '-addext', `subjectAltName=${altNames}`,
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ], // prettier-ignore
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Stored {
  readonly namespace: string;
  readonly object: Record<string, unknown>;
}

interface HistoryEntry {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly namespace: string;
  readonly object: Record<string, unknown>;
}

interface Watcher {
  readonly namespace: string;
  readonly selector: (labels: Record<string, string>) => boolean;
  send(type: string, object: unknown): void;
  end(): void;
}

export interface RecordedApiRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  readonly httpVersion: string;
}

export interface KubernetesApiOptions {
  /** Serve HTTPS with {@link tlsMaterial}. @defaultValue true */
  readonly tls?: boolean;
  /** Tokens accepted, each with the namespaces it may read (`*` for all). @defaultValue { 'test-token': ['*'] } */
  readonly tokens?: Readonly<Record<string, readonly string[]>>;
  /** BOOKMARK interval for watches that allow them, ms. @defaultValue 60000 */
  readonly bookmarkIntervalMs?: number;
  /** Watch timeout when the request has no `timeoutSeconds`, ms. @defaultValue 1800000 */
  readonly defaultWatchTimeoutMs?: number;
  /** How an expired resourceVersion is reported to a watch. @defaultValue 'event' */
  readonly expiredAs?: 'event' | 'status';
  /**
   * Client certificate authentication (the API server's `--client-ca-file`): a request presenting a certificate
   * signed by this CA is authenticated (and may read every namespace) without a token. @defaultValue none
   */
  readonly clientCa?: string;
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** Compiles an equality-based label selector; `undefined` for syntax the double (and this use) does not accept. */
export function compileSelector(text: string | null): ((labels: Record<string, string>) => boolean) | undefined {
  if (text === null || text === '') return () => true;
  const tests: Array<(labels: Record<string, string>) => boolean> = [];
  for (const raw of text.split(',')) {
    const term = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(term)) !== null) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      tests.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = /^(!?)([\w./-]+)$/.exec(term)) !== null) {
      const [, not, key] = m as unknown as [string, string, string];
      tests.push(not === '!' ? (l) => !(key in l) : (l) => key in l);
    } else {
      return undefined;
    }
  }
  return (labels) => tests.every((t) => t(labels));
}

export class KubernetesApiDouble {
  readonly requests: RecordedApiRequest[] = [];
  /** TCP connections accepted so far. */
  connections = 0;
  fault: { readonly status: number; readonly reason?: string } | undefined;
  /**
   * While set, every list page (first and continued) is empty and carries a `continue` token, so a list never ends:
   * `repeat` gives the same token every time, `fresh` a new one every time. {@link KubernetesApiDouble.listPages}
   * counts the pages served.
   */
  endlessContinue: 'repeat' | 'fresh' | undefined;
  /** List pages served (each list request, first pages and continued ones). */
  listPages = 0;
  readonly #options: Required<Omit<KubernetesApiOptions, 'tls' | 'clientCa'>> & { tls: boolean };
  readonly #clientCa: string | undefined;
  readonly #objects = new Map<string, Stored>(); // `${ns}/${name}`
  #history: HistoryEntry[] = [];
  #rv = 100;
  #oldest = 100; // history holds every change after this revision
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  #server: http.Server | http2.Http2SecureServer | undefined;
  #port = 0;
  #silent = false;
  #failWatches = false;
  #expireWatches = false;

  constructor(options: KubernetesApiOptions = {}) {
    this.#options = {
      tls: options.tls ?? true,
      tokens: options.tokens ?? { 'test-token': ['*'] },
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      defaultWatchTimeoutMs: options.defaultWatchTimeoutMs ?? 1_800_000,
      expiredAs: options.expiredAs ?? 'event',
    };
    this.#clientCa = options.clientCa;
  }

  /** `https://127.0.0.1:port` (or `http://`). */
  get url(): string {
    return `${this.#options.tls ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  /** Open watch streams. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /** The store's current resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  async listen(port = 0): Promise<this> {
    const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: unknown) =>
      this.#handle(req as http.IncomingMessage, res as http.ServerResponse);
    const server = this.#options.tls
      ? http2.createSecureServer(
          {
            ...tlsMaterial(),
            allowHTTP1: true,
            ...(this.#clientCa !== undefined
              ? { requestCert: true, rejectUnauthorized: false, ca: [this.#clientCa] }
              : {}),
          },
          handler,
        )
      : http.createServer(handler);
    server.on('connection', (socket: Socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Creates or replaces an object (`metadata.name` names it); returns its new resourceVersion. */
  apply(namespace: string, object: Record<string, unknown>): number {
    const meta = object.metadata as Record<string, unknown>;
    const key = `${namespace}/${String(meta.name)}`;
    const type = this.#objects.has(key) ? 'MODIFIED' : 'ADDED';
    const rv = ++this.#rv;
    const stored = { ...object, metadata: { ...meta, namespace, resourceVersion: String(rv), uid: `uid-${key}` } };
    this.#objects.set(key, { namespace, object: stored });
    this.#record({ rv, type, namespace, object: stored });
    return rv;
  }

  /** Deletes an object; returns the deletion's resourceVersion. */
  delete(namespace: string, name: string): number {
    const key = `${namespace}/${name}`;
    const stored = this.#objects.get(key);
    if (stored === undefined) throw new Error(`no ${key}`);
    this.#objects.delete(key);
    const rv = ++this.#rv;
    const meta = stored.object.metadata as Record<string, unknown>;
    this.#record({
      rv,
      type: 'DELETED',
      namespace,
      object: { ...stored.object, metadata: { ...meta, resourceVersion: String(rv) } },
    });
    return rv;
  }

  /** Sends a raw line to every open watch (malformed input tests). */
  broadcastRaw(line: string): void {
    for (const w of this.#watchers) (w as Watcher & { raw?: (l: string) => void }).raw?.(line);
  }

  /** Drops the change history: watches from an older resourceVersion now get 410. */
  compact(): void {
    this.#history = [];
    this.#oldest = this.#rv;
  }

  /** Keeps watches open but sends nothing more on them (a half-open connection). */
  silence(on = true): void {
    this.#silent = on;
  }

  /** While on, every watch opens (200) and then sends an `ERROR` event with a 500 Status as its first line. */
  failWatches(on = true): void {
    this.#failWatches = on;
  }

  /** While on, every watch from a resourceVersion is told at once that it expired (a 410, as the server's option). */
  expireWatches(on = true): void {
    this.#expireWatches = on;
  }

  /** Ends every watch as the server's timeout would. */
  endWatches(): void {
    for (const w of [...this.#watchers]) w.end();
  }

  /** Simulates a restart: every connection drops, history is lost, the server listens again on the same port. */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    this.compact();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.listen(this.#port);
  }

  /** Stops listening and drops every connection (the store is kept). */
  async stop(): Promise<void> {
    for (const w of [...this.#watchers]) w.end();
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async close(): Promise<void> {
    await this.stop();
  }

  #record(entry: HistoryEntry): void {
    this.#history.push(entry);
    for (const w of this.#watchers) {
      const labels = ((entry.object.metadata as Record<string, unknown>).labels ?? {}) as Record<string, string>;
      if (w.namespace === entry.namespace && w.selector(labels)) w.send(entry.type, entry.object);
    }
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    this.requests.push({
      path: url.pathname,
      query: url.searchParams,
      authorization: auth,
      httpVersion: req.httpVersion,
    });
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const match = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([a-z0-9-]+)\/endpointslices$/.exec(url.pathname);
    const token = auth?.startsWith('Bearer ') === true ? auth.slice(7) : undefined;
    const certified = (req.socket as { authorized?: boolean } | undefined)?.authorized === true;
    const allowed = certified ? ['*'] : token === undefined ? undefined : this.#options.tokens[token];
    if (allowed === undefined) return json(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (match === null || req.method !== 'GET') {
      return json(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    }
    const namespace = match[1] as string;
    const watch = url.searchParams.get('watch');
    const verb = watch === '1' || watch === 'true' ? 'watch' : 'list';
    if (!allowed.includes('*') && !allowed.includes(namespace)) {
      return json(
        403,
        status(
          403,
          'Forbidden',
          `endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:${namespace}:default" cannot ` +
            `${verb} resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}"`,
        ),
      );
    }
    if (this.fault !== undefined) {
      const { status: code, reason } = this.fault;
      return json(code, status(code, reason ?? 'InternalError', 'fault injected by the test'));
    }
    const selector = compileSelector(url.searchParams.get('labelSelector'));
    if (selector === undefined) return json(400, status(400, 'BadRequest', 'unable to parse requirement'));
    if (verb === 'watch') return this.#watch(namespace, selector, url.searchParams, res, json);
    return this.#list(namespace, selector, url.searchParams, json);
  }

  #matching(namespace: string, selector: (labels: Record<string, string>) => boolean): Record<string, unknown>[] {
    return [...this.#objects.entries()]
      .filter(([, s]) => s.namespace === namespace)
      .filter(([, s]) =>
        selector(((s.object.metadata as Record<string, unknown>).labels ?? {}) as Record<string, string>),
      )
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, s]) => s.object);
  }

  #list(
    namespace: string,
    selector: (labels: Record<string, string>) => boolean,
    query: URLSearchParams,
    json: (code: number, body: unknown) => void,
  ): void {
    this.listPages++;
    if (this.endlessContinue !== undefined) {
      const next = this.endlessContinue === 'repeat' ? 'more' : `more-${this.listPages}`;
      const metadata = { resourceVersion: String(this.#rv), continue: Buffer.from(next).toString('base64') };
      return json(200, { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata, items: [] });
    }
    let rv = this.#rv;
    let offset = 0;
    const token = query.get('continue');
    if (token !== null && token !== '') {
      const parsed = JSON.parse(Buffer.from(token, 'base64').toString()) as { rv: number; offset: number };
      if (parsed.rv < this.#oldest) {
        return json(410, status(410, 'Expired', 'The provided continue parameter is too old'));
      }
      ({ rv, offset } = parsed);
    }
    // The double serves pages from the current state (a real server reads them at the snapshot's revision).
    const all = this.#matching(namespace, selector);
    const limit = Number(query.get('limit') ?? 0);
    const items = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
    const next = limit > 0 && offset + limit < all.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (next) metadata.continue = Buffer.from(JSON.stringify({ rv, offset: offset + limit })).toString('base64');
    json(200, { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata, items });
  }

  #watch(
    namespace: string,
    selector: (labels: Record<string, string>) => boolean,
    query: URLSearchParams,
    res: http.ServerResponse,
    json: (code: number, body: unknown) => void,
  ): void {
    const rvText = query.get('resourceVersion');
    const from = rvText === null || rvText === '' || rvText === '0' ? undefined : Number(rvText);
    const expired = from !== undefined && (from < this.#oldest || this.#expireWatches);
    if (expired && this.#options.expiredAs === 'status') {
      return json(410, status(410, 'Expired', `too old resource version: ${from} (${this.#oldest})`));
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    // As the API server: the headers go at once, not with the first event (over HTTP/1.1 Node holds them until then).
    res.flushHeaders();
    const line = (type: string, object: unknown) => {
      if (!this.#silent) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    if (expired) {
      line('ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.#oldest})`));
      res.end();
      return;
    }
    if (this.#failWatches) {
      line('ERROR', status(500, 'InternalError', 'watch failure injected by the test'));
      res.end();
      return;
    }
    const timers: NodeJS.Timeout[] = [];
    const watcher: Watcher & { raw: (l: string) => void } = {
      namespace,
      selector,
      send: line,
      raw: (l) => res.write(`${l}\n`),
      end: () => {
        if (!this.#watchers.delete(watcher)) return;
        for (const t of timers) clearInterval(t); // clears a timeout too
        res.end();
      },
    };
    if (from === undefined) {
      for (const object of this.#matching(namespace, selector)) line('ADDED', object);
    } else {
      for (const e of this.#history) {
        const labels = ((e.object.metadata as Record<string, unknown>).labels ?? {}) as Record<string, string>;
        if (e.rv > from && e.namespace === namespace && selector(labels)) line(e.type, e.object);
      }
    }
    this.#watchers.add(watcher);
    const seconds = query.get('timeoutSeconds');
    const timeoutMs = seconds === null ? this.#options.defaultWatchTimeoutMs : Number(seconds) * 1000;
    // A silenced server (a half-open connection) does not end its watches either.
    timers.push(setTimeout(() => this.#silent || watcher.end(), timeoutMs));
    if (query.get('allowWatchBookmarks') === 'true') {
      timers.push(
        setInterval(() => {
          line('BOOKMARK', {
            kind: 'EndpointSlice',
            apiVersion: 'discovery.k8s.io/v1',
            metadata: { resourceVersion: String(this.#rv) },
          });
        }, this.#options.bookmarkIntervalMs),
      );
    }
    res.on('close', () => watcher.end());
  }
}

/** Starts a double on a free port. */
export async function startKubernetesApi(options?: KubernetesApiOptions): Promise<KubernetesApiDouble> {
  return new KubernetesApiDouble(options).listen();
}
