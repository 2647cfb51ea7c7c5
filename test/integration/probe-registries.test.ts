// Outside-in probe (wave 5): a hostile or broken Consul, through `sidecarless` only. The bar: a typed error with a
// stable code, never a crash or a hang, and every usable entry used.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ConsulResolver,
  createEndpoint,
  type Endpoint,
  EtcdResolver,
  KubernetesResolver,
  type Resolver,
  type SidecarlessError,
} from 'sidecarless';

let mode = '';
let body = '';
const server = http.createServer((req, res) => {
  req.resume();
  if (mode === 'loris') {
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '5' });
    res.write('[');
    const t = setInterval(() => res.write(' '), 50);
    res.on('close', () => clearInterval(t));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(Date.now()) });
  res.end(body);
});
let address = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const entry = (id: string, Address: string, Port: number, Meta: Record<string, string> = {}) => ({
  Node: { Node: `node-${id}`, Address: '127.0.0.1' },
  Service: { ID: id, Service: 'svc', Address, Port, Meta },
  Checks: [],
});

/** Starts a resolver, collects what it says for `ms` (or until the first update when `untilUpdate`). */
async function observe(ms: number): Promise<{ updates: Endpoint[][]; errors: SidecarlessError[] }> {
  const r = new ConsulResolver({ address, service: 'svc', waitMs: 500, timeoutMarginMs: 300 });
  const updates: Endpoint[][] = [];
  const errors: SidecarlessError[] = [];
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    r.start({
      onUpdate: (e) => {
        updates.push([...e]);
        clearTimeout(t);
        resolve();
      },
      onError: (e) => errors.push(e),
    });
  });
  r.close();
  return { updates, errors };
}

describe('probe: hostile Consul', () => {
  it('regression (a "__proto__" metadata key vanished): createEndpoint keeps it as an own key, prototype untouched', () => {
    const metadata = JSON.parse('{"__proto__":"x","constructor":"y"}') as Record<string, string>;
    const e = createEndpoint({ host: '127.0.0.1', port: 1, metadata });
    assert.deepEqual(Object.entries(e.metadata), [
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
    assert.equal(Object.getPrototypeOf(e.metadata), Object.prototype);
  });

  it('regression (Consul Meta "__proto__" vanished): CRLF host, zone id, port 70000 skipped and reported; the good entry keeps its meta', async () => {
    body = JSON.stringify([
      entry('crlf', 'evil.test\r\nX-Injected: 1', 80),
      entry('nul', 'evil\u0000.test', 80),
      entry('zone', 'fe80::1%eth0', 81),
      entry('port', '127.0.0.1', 70000),
      entry('good', '127.0.0.1', 82, JSON.parse('{"__proto__":"x","toString":"z"}') as Record<string, string>),
    ]);
    mode = 'json';
    const { updates, errors } = await observe(3000);
    assert.deepEqual(
      updates.at(-1)?.map((e) => e.key),
      ['127.0.0.1:82'],
    );
    const meta = updates.at(-1)?.[0]?.metadata ?? {};
    assert.equal(Object.hasOwn(meta, 'meta.__proto__') && meta['meta.__proto__'], 'x');
    assert.equal(meta['meta.toString'], 'z');
    assert.ok(errors.length >= 1);
    for (const e of errors) assert.equal(e.code, 'SIDECARLESS_RESOLVER_FAILED');
  });

  it('a body that trickles forever ends with a typed timeout, no update', async () => {
    mode = 'loris';
    const { updates, errors } = await observe(5000);
    assert.equal(updates.length, 0);
    assert.equal(errors[0]?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(errors[0]?.message ?? '', /no answer within/);
  });

  it('deeply nested JSON (200,000 levels) is a typed error, not a stack overflow', async () => {
    mode = 'json';
    body = '['.repeat(200_000) + ']'.repeat(200_000);
    const { updates, errors } = await observe(3000);
    assert.equal(updates.length, 0);
    assert.equal(errors[0]?.code, 'SIDECARLESS_RESOLVER_FAILED');
  });
});

/** A server that answers what `answer` says, or (`'trickle'`) a status and a body that never ends. */
async function trickleServer(
  answer: (req: http.IncomingMessage) => { status: number; body?: string } | 'trickle-200' | 'trickle-500',
): Promise<{ url: string; close(): void }> {
  const s = http.createServer((req, res) => {
    req.resume();
    const what = answer(req);
    if (typeof what === 'object') {
      res.writeHead(what.status, { 'content-type': 'application/json' });
      return res.end(what.body ?? '');
    }
    res.writeHead(what === 'trickle-200' ? 200 : 500, { 'content-type': 'application/json' });
    res.write('{');
    const t = setInterval(() => res.write(' '), 50);
    res.on('close', () => clearInterval(t));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => {
      s.closeAllConnections();
      s.close();
    },
  };
}

/** The first error a resolver reports within `ms` (undefined if none). */
async function firstError(r: Resolver, ms: number): Promise<SidecarlessError | undefined> {
  const error = await new Promise<SidecarlessError | undefined>((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    r.start({
      onUpdate: () => {},
      onError: (e) => {
        clearTimeout(t);
        resolve(e);
      },
    });
  });
  r.close();
  return error;
}

describe('probe: registry bodies trickled forever', () => {
  const k8s = (url: string) =>
    new KubernetesResolver({
      service: 'users',
      namespace: 'ns',
      apiServer: url,
      token: 't',
      requestTimeoutMs: 300,
      env: {},
    });

  it('regression (a Kubernetes list body trickled forever held the resolver, no error): timeout within requestTimeoutMs', async () => {
    const server = await trickleServer(() => 'trickle-200');
    const error = await firstError(k8s(server.url), 5000);
    server.close();
    assert.equal(error?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(error?.message ?? '', /no complete answer within 300 ms/);
  });

  it('regression (a Kubernetes watch 500 whose body never ends held the resolver): the 500 is reported', async () => {
    const list = JSON.stringify({ kind: 'EndpointSliceList', metadata: { resourceVersion: '1' }, items: [] });
    const server = await trickleServer((req) =>
      req.url?.includes('watch=1') ? 'trickle-500' : { status: 200, body: list },
    );
    const error = await firstError(k8s(server.url), 5000);
    server.close();
    assert.equal(error?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(error?.message ?? '', /answered 500/);
  });

  it('regression (an etcd watch 500 whose body never ends held the resolver): the 500 is reported', async () => {
    const range = JSON.stringify({ header: { revision: '5' }, kvs: [] });
    const server = await trickleServer((req) =>
      req.url === '/v3/watch' ? 'trickle-500' : { status: 200, body: range },
    );
    const error = await firstError(
      new EtcdResolver({ endpoints: [server.url], prefix: '/svc/', requestTimeoutMs: 300 }),
      5000,
    );
    server.close();
    assert.equal(error?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(error?.message ?? '', /500/);
  });

  it('regression (a Kubernetes watch trickling blanks, never a line, stayed open forever): idle after watchTimeoutMs + requestTimeoutMs', async () => {
    const list = JSON.stringify({ kind: 'EndpointSliceList', metadata: { resourceVersion: '1' }, items: [] });
    const server = await trickleServer((req) =>
      req.url?.includes('watch=1') ? 'trickle-200' : { status: 200, body: list },
    );
    const r = new KubernetesResolver({
      service: 'users',
      namespace: 'ns',
      apiServer: server.url,
      token: 't',
      requestTimeoutMs: 300,
      watchTimeoutMs: 1000,
      env: {},
    });
    const error = await firstError(r, 8000);
    server.close();
    assert.equal(error?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(error?.message ?? '', /received nothing/);
  });
});
