// A hostile registry must not grow a resolver's memory without bound (probe, wave 5): `maxEndpoints` bounds what
// each remote resolver holds. Past it: a typed error (DiscoveryError, reason 'limit'), the last good set kept, the
// held state within the bound (counted, not measured in heap), and recovery once the registry is sane again.
// Kubernetes against the API double, etcd and Consul against hostile doubles written here; ZooKeeper against the
// real server in test/servers/zookeeper.test.ts.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  ConsulError,
  ConsulResolver,
  DiscoveryError,
  EtcdError,
  EtcdResolver,
  InvalidOptionError,
  KubernetesError,
  KubernetesResolver,
} from 'sidecarless';
import { RecordingListener } from '../helpers/dns-listener.js';
import { endpointSlice, type KubernetesApiDouble, startKubernetesApi } from '../helpers/kubernetes-api.js';

/** The tests' recording listener, under the names these tests use. */
class Recorder extends RecordingListener {
  get listener(): this {
    return this;
  }
  get keys(): string[] {
    return this.lastKeys;
  }
  limitErrors(): DiscoveryError[] {
    return this.errors.filter((e): e is DiscoveryError => e instanceof DiscoveryError && e.reason === 'limit');
  }
}

/** Polls `predicate` every 10 ms, bounded in time and count. */
async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !predicate(); i++) {
    if (Date.now() > deadline || i > 100_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const FAST = { initialMs: 20, maxMs: 100, multiplier: 2, jitter: 0 };
const MAX = 5;

describe('maxEndpoints: validated at construction', () => {
  for (const bad of [0, -1, 1.5, 'many', 10_000_001]) {
    it(`refuses ${JSON.stringify(bad)} with SIDECARLESS_INVALID_OPTION naming maxEndpoints`, () => {
      const builds = [
        () => new ConsulResolver({ address: '127.0.0.1:1', service: 's', maxEndpoints: bad as number }),
        () => new EtcdResolver({ endpoints: ['http://127.0.0.1:1'], prefix: '/s/', maxEndpoints: bad as number }),
        () =>
          new KubernetesResolver({
            service: 's',
            namespace: 'n',
            apiServer: 'http://127.0.0.1:1',
            token: 't',
            env: {},
            maxEndpoints: bad as number,
          }),
      ];
      for (const build of builds) {
        assert.throws(build, (err: unknown) => {
          assert.ok(err instanceof InvalidOptionError);
          assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
          assert.match(err.message, /maxEndpoints/);
          return true;
        });
      }
    });
  }
});

describe('maxEndpoints: Kubernetes, a watch sending ADDED slices with new names forever', () => {
  let api: KubernetesApiDouble;
  const NS = 'shop';
  const open: KubernetesResolver[] = [];
  const slice = (name: string, ips: string[]) =>
    endpointSlice(
      name,
      'users',
      [{ name: 'http', port: 8080 }],
      ips.map((ip) => ({ addresses: [ip] })),
    );
  before(async () => {
    api = await startKubernetesApi({ tls: false });
  });
  afterEach(() => {
    for (const r of open.splice(0)) r.close();
  });
  after(() => api.close());

  it('bounds the slices held, reports a limit KubernetesError, keeps the last good set, recovers by relisting', async () => {
    api.apply(NS, slice('users-a', ['10.0.0.1', '10.0.0.2', '10.0.0.3']));
    const r = new KubernetesResolver({
      service: 'users',
      namespace: NS,
      port: 'http',
      apiServer: api.url,
      token: 'test-token',
      env: {},
      watchTimeoutMs: 5000,
      requestTimeoutMs: 2000,
      minRelistIntervalMs: 0,
      refreshIntervalMs: 0,
      backoff: FAST,
      maxEndpoints: MAX,
    });
    open.push(r);
    const rec = new Recorder();
    r.start(rec.listener);
    await until(() => rec.updates.length >= 1, 'the first set');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    // Hostile: new slice names, each an endpoint (and empty ones, which are state too), far past the bound.
    const hostile: string[] = [];
    for (let i = 0; i < 40; i++) {
      const name = `users-x${i}`;
      hostile.push(name);
      api.apply(NS, i % 2 === 0 ? slice(name, [`10.1.0.${i + 1}`]) : slice(name, []));
      assert.ok(r.stats.slices <= MAX, `held ${r.stats.slices} slices`);
    }
    await until(() => rec.limitErrors().length >= 2, 'limit errors (watch, then the relist)');
    const limit = rec.limitErrors()[0];
    assert.ok(limit instanceof KubernetesError);
    assert.equal(limit.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(limit.message, /maxEndpoints \(5\)/);
    assert.ok(r.stats.slices <= MAX, `held ${r.stats.slices} slices`);
    assert.ok(
      rec.updates.every((u) => u.length > 0 && u.length <= MAX),
      'never emptied, never past the bound',
    );
    assert.ok(rec.keys.includes('10.0.0.1:8080'), 'the last good set stays');
    // Sane again: the resolver lists afresh by itself.
    const updates = rec.updates.length;
    for (const name of hostile) api.delete(NS, name);
    api.apply(NS, slice('users-b', ['10.0.0.9']));
    await until(() => rec.updates.length > updates && rec.keys.length === 4, 'the sane set');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080', '10.0.0.9:8080']);
    assert.equal(r.stats.slices, 2);
  });
});

describe('Kubernetes list pages: a server whose every page says more follows', () => {
  let api: KubernetesApiDouble;
  const open: KubernetesResolver[] = [];
  before(async () => {
    api = await startKubernetesApi({ tls: false });
  });
  afterEach(() => {
    for (const r of open.splice(0)) r.close();
    api.endlessContinue = undefined;
  });
  after(() => api.close());

  function resolver(options: { backoffMs: number; minRelistIntervalMs: number; pageSize?: number; max?: number }) {
    const r = new KubernetesResolver({
      service: 'users',
      namespace: 'shop',
      port: 'http',
      apiServer: api.url,
      token: 'test-token',
      env: {},
      requestTimeoutMs: 2000,
      minRelistIntervalMs: options.minRelistIntervalMs,
      backoff: { initialMs: options.backoffMs, maxMs: options.backoffMs, multiplier: 1, jitter: 0 },
      ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
      ...(options.max !== undefined ? { maxEndpoints: options.max } : {}),
    });
    open.push(r);
    return r;
  }

  /** Starts `r`; resolves with the first two errors and how far apart they came, ms. */
  async function twoFailures(r: KubernetesResolver, rec: Recorder): Promise<{ pages: number; apartMs: number }> {
    const times: number[] = [];
    const listener = {
      onUpdate: (endpoints: Parameters<Recorder['onUpdate']>[0]) => rec.onUpdate(endpoints),
      onError: (error: Parameters<Recorder['onError']>[0]) => {
        times.push(performance.now());
        rec.onError(error);
      },
    };
    const start = api.listPages;
    r.start(listener);
    await until(() => rec.errors.length >= 1, 'the first failed list');
    const pages = api.listPages - start;
    await until(() => rec.errors.length >= 2, 'the second failed list');
    return { pages, apartMs: (times[1] as number) - (times[0] as number) };
  }

  // The relist after a failed list waits for the backoff, or for minRelistIntervalMs from the failed list's start.
  for (const spacing of [
    { backoffMs: 400, minRelistIntervalMs: 20 },
    { backoffMs: 1, minRelistIntervalMs: 400 },
  ]) {
    it(`regression (a repeated continue token paged forever at full speed, no error): bad-response at the repeat; next list after ${JSON.stringify(spacing)}`, async () => {
      api.endlessContinue = 'repeat';
      const rec = new Recorder();
      const { pages, apartMs } = await twoFailures(resolver(spacing), rec);
      assert.equal(pages, 2, 'the second page repeats the token of the first');
      const error = rec.errors[0];
      assert.ok(error instanceof KubernetesError);
      assert.equal(error.reason, 'bad-response');
      assert.equal(error.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.match(error.message, /continue token of an earlier page/);
      assert.ok(apartMs >= 350, `the next list came ${apartMs} ms after the failure`);
      assert.equal(rec.updates.length, 0);
    });
  }

  it('fresh continue tokens forever: the list gives up after 1,000 pages (or maxEndpoints / pageSize when more)', async () => {
    api.endlessContinue = 'fresh';
    const rec = new Recorder();
    const r = resolver({ backoffMs: 300, minRelistIntervalMs: 20 });
    const { pages, apartMs } = await twoFailures(r, rec);
    await r.close();
    assert.equal(pages, 1000);
    assert.equal((rec.errors[0] as KubernetesError).reason, 'bad-response');
    assert.match(rec.errors[0]?.message ?? '', /did not end within 1000 pages of 500/);
    assert.ok(apartMs >= 250, `the next list came ${apartMs} ms after the failure`);
    // A bound that needs more pages: maxEndpoints / pageSize.
    const rec2 = new Recorder();
    const r2 = resolver({ backoffMs: 60_000, minRelistIntervalMs: 20, pageSize: 2, max: 2400 });
    const start = api.listPages;
    r2.start(rec2);
    await until(() => rec2.errors.length >= 1, 'the failed list');
    assert.equal(api.listPages - start, 1200);
    assert.match(rec2.errors[0]?.message ?? '', /did not end within 1200 pages of 2/);
  });
});

describe('maxEndpoints: etcd, a prefix that grows past the bound (range and watch)', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const kv = (i: number) => ({ key: b64(`/svc/${i}`), value: b64(`10.2.0.${i}:80`), mod_revision: '1' });
  let keys = [1, 2, 3];
  let revision = 10;
  let watches: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/v3/kv/range') {
        res.end(JSON.stringify({ header: { revision: String(revision) }, kvs: keys.map(kv) }));
        return;
      }
      res.write(`${JSON.stringify({ result: { header: { revision: String(revision) }, created: true } })}\n`);
      watches.push(res);
      res.on('close', () => (watches = watches.filter((w) => w !== res)));
    });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('bounds the keys held, reports a limit EtcdError, keeps the last good set, recovers by listing again', async () => {
    const r = new EtcdResolver({ endpoints: [url], prefix: '/svc/', backoff: FAST, maxEndpoints: MAX });
    const rec = new Recorder();
    r.start(rec.listener);
    try {
      await until(() => rec.updates.length >= 1 && watches.length === 1, 'the first set and a watch');
      assert.equal(rec.keys.length, 3);
      // Hostile: one watch message putting 200 new keys; the range answers them too from now on.
      keys = Array.from({ length: 203 }, (_, i) => i + 1);
      revision++;
      const events = keys.slice(3).map((i) => ({ type: 'PUT', kv: kv(i) }));
      watches[0]?.write(`${JSON.stringify({ result: { header: { revision: String(revision) }, events } })}\n`);
      await until(() => rec.limitErrors().length >= 2, 'limit errors (watch, then the range)');
      const limit = rec.limitErrors()[0];
      assert.ok(limit instanceof EtcdError);
      assert.equal(limit.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.ok(r.held <= MAX, `held ${r.held} keys`);
      assert.ok(rec.updates.every((u) => u.length > 0 && u.length <= MAX));
      assert.equal(rec.updates.length, 1, 'the over-limit set is never delivered');
      // Sane again.
      keys = [1, 2, 7];
      revision++;
      await until(() => rec.updates.length > 1, 'the sane set');
      assert.deepEqual(rec.keys, ['10.2.0.1:80', '10.2.0.2:80', '10.2.0.7:80']);
      assert.equal(r.held, 3);
    } finally {
      r.close();
    }
  });
});

describe('maxEndpoints: Consul, an answer with more entries than the bound', () => {
  let count = 3;
  let index = 1;
  const entry = (i: number) => ({
    Node: { Node: `n${i}`, Address: '127.0.0.1' },
    Service: { ID: `s${i}`, Service: 'svc', Address: `10.3.${Math.floor(i / 250)}.${(i % 250) + 1}`, Port: 80 },
    Checks: [],
  });
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(index) });
    res.end(JSON.stringify(Array.from({ length: count }, (_, i) => entry(i))));
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

  it('refuses the answer with a limit ConsulError, keeps the last good set, follows the registry once sane', async () => {
    const r = new ConsulResolver({
      address,
      service: 'svc',
      waitMs: 1000,
      minRequestIntervalMs: 0,
      backoff: FAST,
      maxEndpoints: MAX,
    });
    const rec = new Recorder();
    r.start(rec.listener);
    try {
      await until(() => rec.updates.length >= 1, 'the first set');
      assert.equal(rec.keys.length, 3);
      count = 1000;
      index++;
      await until(() => rec.limitErrors().length >= 1, 'a limit error');
      const limit = rec.limitErrors()[0];
      assert.ok(limit instanceof ConsulError);
      assert.equal(limit.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.match(limit.message, /1000 entries, more than maxEndpoints \(5\)/);
      assert.ok(rec.updates.every((u) => u.length > 0 && u.length <= MAX));
      assert.equal(rec.keys.length, 3, 'the last good set stays');
      count = 4;
      index++;
      await until(() => rec.keys.length === 4, 'the sane set');
    } finally {
      r.close();
    }
  });
});
