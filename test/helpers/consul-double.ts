/**
 * A Consul HTTP API double for `GET /v1/health/service/:name`, following the documented response shapes and
 * blocking-query semantics (https://developer.hashicorp.com/consul/api-docs/features/blocking and
 * https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service):
 *
 * - every answer carries `X-Consul-Index` (the service's modify index), `X-Consul-KnownLeader`,
 *   `X-Consul-LastContact`;
 * - `?index=N` with N > 0 blocks until the service's index exceeds N, or until `wait` (default 5m, max 10m) plus a
 *   random jitter of up to wait/16 elapses, then answers with the current (possibly unchanged) body;
 * - `passing` keeps entries whose checks all pass; `tag` (repeatable) keeps entries carrying every tag; `dc` picks
 *   the datacenter (an unknown one is HTTP 500 "No path to datacenter"); `ns` and `partition` (Consul Enterprise)
 *   pick the namespace and admin partition (default `default`; entries of a non-default one carry
 *   `Service.Namespace` / `Service.Partition`); `filter` is evaluated with the filter language of `bexpr.ts`
 *   (an invalid expression is HTTP 400 "Failed to create boolexpr evaluator");
 * - `tls` (Node `https.ServerOptions`: `key`, `cert`, and `requestCert` + `ca` for mutual TLS) at construction
 *   serves HTTPS instead of HTTP;
 * - with ACLs on, a request whose `X-Consul-Token` is not the token gets HTTP 403 "ACL not found". Any request
 *   whose URL contains the token is recorded in {@link ConsulDouble.leaks}.
 *
 * Fault switches ({@link ConsulDouble.fault}) replace the normal answer of every request while set.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { compileFilter, FilterSyntaxError } from './bexpr.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface ConsulInstance {
  /** Service ID; defaults to `${service}-${index}`. */
  readonly id?: string;
  /** Node name. @defaultValue `node-${index}` */
  readonly node?: string;
  readonly nodeAddress: string;
  /** Service.Address; '' (the default) means "use the node address". */
  readonly address?: string;
  readonly port: number;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
  readonly nodeMeta?: Readonly<Record<string, string>>;
  readonly weights?: { readonly Passing: number; readonly Warning: number };
  /** Status of the service check (the node's serfHealth check always passes). @defaultValue 'passing' */
  readonly status?: CheckStatus;
  /** @defaultValue 'dc1' */
  readonly datacenter?: string;
  /** Consul Enterprise namespace. @defaultValue 'default' */
  readonly namespace?: string;
  /** Consul Enterprise admin partition. @defaultValue 'default' */
  readonly partition?: string;
}

export type ConsulFault =
  | { readonly kind: 'status'; readonly status: number; readonly body?: string }
  | { readonly kind: 'garbage' }
  | { readonly kind: 'wrong-shape' }
  /** Answers normally, but only after `delayMs` (longer than the client's timeout in tests). */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** Misbehaving server: answers at once, every time, with a new index. */
  | { readonly kind: 'instant' };

export interface RecordedRequest {
  readonly url: string;
  readonly token: string | undefined;
  readonly at: number;
  /** The `index` query parameter, or undefined when absent. */
  readonly index: string | undefined;
  readonly wait: string | undefined;
}

interface Waiter {
  readonly service: string;
  readonly index: bigint;
  wake(): void;
}

function parseGoDuration(text: string | null): number {
  if (text === null) return 300_000;
  const match = /^(\d+)(ms|s|m|h)?$/.exec(text);
  if (match === null) return 300_000;
  const n = Number(match[1]);
  const unit = match[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n * 3_600_000;
  return Math.min(ms, 600_000);
}

export class ConsulDouble {
  readonly #server: http.Server | https.Server;
  readonly #services = new Map<string, ConsulInstance[]>();
  /** Indexes are uint64, as Consul's (bigint: exact above 2^53). */
  readonly #indexes = new Map<string, bigint>();
  readonly #waiters = new Set<Waiter>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #raftIndex = 100n;
  port = 0;
  /** Requests received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** URLs of requests that carried the ACL token in the URL (must stay empty). */
  readonly leaks: string[] = [];
  /** When set, the ACL token every request must present in `X-Consul-Token`. */
  aclToken: string | undefined;
  /** When set, replaces the normal answer. */
  fault: ConsulFault | undefined;
  /**
   * When set, the index every service reports and blocks on, whatever the writes: `0` plays a server whose
   * `X-Consul-Index` reads 0 (Consul's docs tell clients to treat an index below 1 as 1). A blocking query with
   * `index` at or above it then waits its full `wait`, since no write can move the index past it. A bigint plays
   * an index above 2^53 (Consul's indexes are uint64), or, above 2^64 - 1, a header no uint64 can be.
   */
  forcedIndex: number | bigint | undefined;

  constructor(options: { readonly tls?: https.ServerOptions } = {}) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.#handle(req, res);
    this.#server = options.tls === undefined ? http.createServer(handler) : https.createServer(options.tls, handler);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Requests currently blocked in a blocking query. */
  get blocked(): number {
    return this.#waiters.size;
  }

  /** The service's current `X-Consul-Index`. */
  indexOf(service: string): bigint {
    return this.forcedIndex !== undefined ? BigInt(this.forcedIndex) : (this.#indexes.get(service) ?? 1n);
  }

  /** Replaces a service's instances (a catalog write): bumps its index and wakes blocked queries. */
  setService(service: string, instances: readonly ConsulInstance[]): void {
    this.#services.set(service, [...instances]);
    this.#raftIndex++;
    this.#indexes.set(service, this.#raftIndex);
    this.#wake(service);
  }

  /**
   * Moves a service's index back (as after a snapshot restore or a leader with an older state). Blocked queries
   * are not woken: they time out at `wait` and then see the lower index.
   */
  rewindIndex(service: string, to: number | bigint): void {
    this.#indexes.set(service, BigInt(to));
    this.#raftIndex = BigInt(to) > 1n ? BigInt(to) : 1n;
  }

  /** A write that bumps the index without changing the result (Consul does this; clients must cope). */
  touch(service: string): void {
    this.#raftIndex++;
    this.#indexes.set(service, this.#raftIndex);
    this.#wake(service);
  }

  /** Requests received since `since` (an index into {@link ConsulDouble.requests}). */
  requestsSince(since: number): RecordedRequest[] {
    return this.requests.slice(since);
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const w of [...this.#waiters]) w.wake();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #wake(service: string): void {
    for (const w of [...this.#waiters]) {
      if (w.service === service && this.indexOf(service) > w.index) w.wake();
    }
  }

  #later(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://consul');
    const tokenHeader = req.headers['x-consul-token'];
    const token = Array.isArray(tokenHeader) ? tokenHeader[0] : tokenHeader;
    this.requests.push({
      url: req.url ?? '',
      token,
      at: performance.now(),
      index: url.searchParams.get('index') ?? undefined,
      wait: url.searchParams.get('wait') ?? undefined,
    });
    if (this.aclToken !== undefined && (req.url ?? '').includes(this.aclToken)) this.leaks.push(req.url ?? '');
    const match = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || match === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      return;
    }
    const service = decodeURIComponent(match[1] as string);
    if (this.aclToken !== undefined && token !== this.aclToken) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('ACL not found');
      return;
    }
    const fault = this.fault;
    if (fault !== undefined && fault.kind !== 'slow') {
      this.#answerFault(fault, service, res);
      return;
    }
    const answer = () => {
      if (res.destroyed) return;
      this.#answer(service, url.searchParams, res);
    };
    const respond = fault?.kind === 'slow' ? () => this.#later(answer, fault.delayMs) : answer;
    const indexText = url.searchParams.get('index') ?? '0';
    const indexParam = /^\d{1,20}$/.test(indexText) ? BigInt(indexText) : 0n;
    if (!(indexParam > 0n) || this.indexOf(service) > indexParam) {
      respond();
      return;
    }
    const wait = parseGoDuration(url.searchParams.get('wait'));
    const jitter = Math.floor(Math.random() * (wait / 16));
    let timer: NodeJS.Timeout | undefined;
    const waiter: Waiter = {
      service,
      index: indexParam,
      wake: () => {
        if (!this.#waiters.delete(waiter)) return;
        if (timer !== undefined) {
          clearTimeout(timer);
          this.#timers.delete(timer);
        }
        respond();
      },
    };
    this.#waiters.add(waiter);
    timer = this.#later(() => waiter.wake(), wait + jitter);
    res.on('close', () => {
      if (this.#waiters.delete(waiter) && timer !== undefined) {
        clearTimeout(timer);
        this.#timers.delete(timer);
      }
    });
  }

  #headers(service: string): Record<string, string> {
    return {
      'content-type': 'application/json',
      'x-consul-index': String(this.indexOf(service)),
      'x-consul-knownleader': 'true',
      'x-consul-lastcontact': '0',
      'x-consul-effective-consistency': 'leader',
    };
  }

  #answerFault(fault: ConsulFault, service: string, res: http.ServerResponse): void {
    switch (fault.kind) {
      case 'status':
        res.writeHead(fault.status, { 'content-type': 'text/plain' }).end(fault.body ?? 'rpc error: internal');
        return;
      case 'garbage':
        res.writeHead(200, this.#headers(service)).end('[{"Node": {"Node": "n1", "Addr');
        return;
      case 'wrong-shape':
        res.writeHead(200, this.#headers(service)).end('{"Nodes": [], "Index": 7}');
        return;
      case 'instant':
        this.touch(service);
        res.writeHead(200, this.#headers(service)).end(JSON.stringify(this.#entries(service, new URLSearchParams())));
        return;
      default:
        return;
    }
  }

  #answer(service: string, params: URLSearchParams, res: http.ServerResponse): void {
    const dc = params.get('dc') ?? 'dc1';
    const known = new Set(['dc1', ...[...this.#services.values()].flat().map((i) => i.datacenter ?? 'dc1')]);
    if (!known.has(dc)) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('No path to datacenter');
      return;
    }
    let entries: unknown[];
    try {
      entries = this.#entries(service, params);
    } catch (err) {
      if (!(err instanceof FilterSyntaxError)) throw err;
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`Failed to create boolexpr evaluator: ${err.message}`);
      return;
    }
    res.writeHead(200, this.#headers(service)).end(JSON.stringify(entries));
  }

  #entries(service: string, params: URLSearchParams): unknown[] {
    const dc = params.get('dc') ?? 'dc1';
    const passing = params.has('passing') && params.get('passing') !== 'false';
    const tags = params.getAll('tag');
    const ns = params.get('ns') || 'default';
    const partition = params.get('partition') || 'default';
    const filter = compileFilter(params.get('filter') ?? '');
    const instances = this.#services.get(service) ?? [];
    return instances
      .map((inst, i) => ({ inst, i }))
      .filter(({ inst }) => (inst.datacenter ?? 'dc1') === dc)
      .filter(({ inst }) => (inst.namespace ?? 'default') === ns && (inst.partition ?? 'default') === partition)
      .filter(({ inst }) => !passing || (inst.status ?? 'passing') === 'passing')
      .filter(({ inst }) => tags.every((t) => (inst.tags ?? []).includes(t)))
      .map(({ inst, i }) => {
        const node = inst.node ?? `node-${i}`;
        const id = inst.id ?? `${service}-${i}`;
        const modify = Number(this.indexOf(service)); // a JSON number, as Consul writes it
        return {
          Node: {
            ID: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
            Node: node,
            Address: inst.nodeAddress,
            Datacenter: inst.datacenter ?? 'dc1',
            TaggedAddresses: { lan: inst.nodeAddress, wan: inst.nodeAddress },
            Meta: { 'consul-network-segment': '', ...inst.nodeMeta },
            CreateIndex: 5,
            ModifyIndex: 5,
          },
          Service: {
            ID: id,
            Service: service,
            Tags: inst.tags === undefined ? [] : [...inst.tags],
            Address: inst.address ?? '',
            Meta: inst.meta === undefined ? null : { ...inst.meta },
            Port: inst.port,
            Weights: inst.weights ?? { Passing: 1, Warning: 1 },
            EnableTagOverride: false,
            Proxy: { MeshGateway: {}, Expose: {} },
            Connect: {},
            CreateIndex: modify,
            ModifyIndex: modify,
            ...(inst.namespace === undefined ? {} : { Namespace: inst.namespace }),
            ...(inst.partition === undefined ? {} : { Partition: inst.partition }),
          },
          Checks: [
            {
              Node: node,
              CheckID: 'serfHealth',
              Name: 'Serf Health Status',
              Status: 'passing',
              Notes: '',
              Output: 'Agent alive and reachable',
              ServiceID: '',
              ServiceName: '',
              ServiceTags: [],
              Type: '',
              CreateIndex: 5,
              ModifyIndex: 5,
            },
            {
              Node: node,
              CheckID: `service:${id}`,
              Name: `Service '${service}' check`,
              Status: inst.status ?? 'passing',
              Notes: '',
              Output: '',
              ServiceID: id,
              ServiceName: service,
              ServiceTags: inst.tags === undefined ? [] : [...inst.tags],
              Type: 'http',
              CreateIndex: modify,
              ModifyIndex: modify,
            },
          ],
        };
      })
      .filter((entry) => filter(entry));
  }
}

/** Starts a double on 127.0.0.1 with an ephemeral port (HTTPS with `tls`). */
export function startConsulDouble(options?: ConstructorParameters<typeof ConsulDouble>[0]): Promise<ConsulDouble> {
  return new ConsulDouble(options).start();
}
