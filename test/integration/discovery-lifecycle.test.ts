// Discovery mode (a cluster per host) at the edges of a cluster's life. Regressions (probe 6): close() did not wait
// for a cluster an idle expiry had just taken out; a host whose target was refused evicted another host's cluster;
// a fully qualified host (trailing dot) was not discovered; a bad target was named under an option that does not
// exist.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  type Client,
  createClient,
  createEndpoint,
  findSidecarlessError,
  type Resolver,
  StaticResolver,
} from 'sidecarless';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('discovered clusters: lifecycle', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('ok');
  });
  after(async () => {
    await stopAll([backend]);
  });

  it('close() waits for a cluster an idle expiry took out just before (its resolver and connections)', async () => {
    let resolverClosed = false;
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        idleTimeoutMs: 50,
        // A resolver whose close() takes a while (a watch being torn down).
        target: (): Resolver => ({
          start(listener) {
            setTimeout(() => listener.onUpdate([createEndpoint({ host: '127.0.0.1', port: backend.port })]), 1);
          },
          close: () =>
            new Promise<void>((resolve) =>
              setTimeout(() => {
                resolverClosed = true;
                resolve();
              }, 300),
            ),
        }),
      },
    });
    const res = await request('http://users.svc.test/', { dispatcher: client.dispatcher });
    await res.body.text();
    // Past the idle time and the sweep (half of it): the cluster is out of the cache, closing.
    for (let i = 0; i < 100 && client.stats().clusters.length > 0; i++) await sleep(20);
    assert.equal(client.stats().clusters.length, 0, 'expired');
    assert.equal(resolverClosed, false, 'still closing');
    await client.close();
    assert.equal(resolverClosed, true, "close() resolved only after the expired cluster's resolver closed");
  });

  it("a host whose target is refused, or whose target function throws, takes no cluster's place", async () => {
    let made = 0;
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        maxClusters: 2,
        target: (host) => {
          if (host.startsWith('bad')) return 'static://not a target';
          if (host.startsWith('throw')) throw new Error('no such tenant');
          made++;
          return new StaticResolver([backend.address]);
        },
      },
    });
    try {
      for (const h of ['a', 'b']) {
        await (await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher })).body.text();
      }
      const codes = [];
      for (const h of ['bad1', 'throw1', 'bad2']) {
        const err = await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher }).catch((e: unknown) => e);
        codes.push(findSidecarlessError(err)?.code);
      }
      assert.deepEqual(codes, [
        'SIDECARLESS_INVALID_TARGET',
        'SIDECARLESS_RESOLVER_FAILED',
        'SIDECARLESS_INVALID_TARGET',
      ]);
      assert.deepEqual(
        client
          .stats()
          .clusters.map((c) => c.name)
          .sort(),
        ['a.svc.test', 'b.svc.test'],
      );
      for (const h of ['a', 'b']) {
        await (await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher })).body.text();
      }
      assert.equal(made, 2, 'a and b kept their clusters');
    } finally {
      await client.close();
    }
  });

  it('a fully qualified host (trailing dot) is the same service', async () => {
    const hosts: string[] = [];
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        target: (host) => {
          hosts.push(host);
          return new StaticResolver([backend.address]);
        },
      },
    });
    try {
      for (const url of ['http://users.svc.test./a', 'http://users.svc.test/b', 'http://USERS.svc.test.:80/c']) {
        const res = await request(url, { dispatcher: client.dispatcher });
        await res.body.text();
        assert.equal(res.statusCode, 200, url);
      }
      assert.deepEqual(hosts, ['users.svc.test']);
    } finally {
      await client.close();
    }
  });

  it('a target the discovery function makes that is no target names discovery.target', async () => {
    const client = createClient({
      discovery: { domain: 'svc.test', target: (() => Promise.resolve('static://127.0.0.1:1')) as never },
    });
    try {
      const err = await request('http://users.svc.test/', { dispatcher: client.dispatcher }).catch((e: unknown) => e);
      const typed = findSidecarlessError(err) as { code?: string; option?: string } | undefined;
      assert.equal(typed?.code, 'SIDECARLESS_INVALID_OPTION');
      assert.equal(typed?.option, 'discovery.target');
    } finally {
      await client.close();
    }
  });

  it('a host past maxClusters plus the busy overflow is refused with both numbers in the message (probe 18)', async () => {
    // Resolvers that never answer: each request keeps its cluster busy.
    const never = (): Resolver => ({ start() {}, close() {} });
    const client = createClient({
      discovery: { domain: 'svc.test', maxClusters: 1, target: never, cluster: { waitForReadyTimeoutMs: 60_000 } },
    });
    const pending: Array<Promise<unknown>> = [];
    try {
      for (let i = 0; i < 1001; i++) {
        pending.push(request(`http://h${i}.svc.test/`, { dispatcher: client.dispatcher }).catch((e: unknown) => e));
      }
      // Each request made its cluster when it was dispatched: 1001 busy clusters now.
      const err = await request('http://extra.svc.test/', { dispatcher: client.dispatcher }).catch((e: unknown) => e);
      const typed = findSidecarlessError(err) as { code?: string; limit?: string; message: string } | undefined;
      assert.equal(typed?.code, 'SIDECARLESS_OVERLOADED');
      assert.equal(typed?.limit, 'maxClusters');
      // Before the fix: "maxClusters (1) reached", as if one busy cluster were enough.
      assert.equal(
        typed?.message,
        'Cluster "extra.svc.test" is overloaded: 1001 busy discovered clusters: maxClusters (1) plus the busy overflow (1000)',
      );
    } finally {
      await client.destroy();
      await Promise.all(pending);
    }
  });

  // Probe 23, defect 2: a target() or resolver start() that closed the client still got its cluster made, started and
  // sent the request, after close() had taken its list of clusters: the resolver was never closed.
  for (const where of ['target()', "the resolver's start()"] as const) {
    it(`close() called from ${where} of a discovered host: the request fails, nothing made stays up (probe 23)`, async () => {
      let started = 0;
      let closed = 0;
      let client: Client | undefined;
      const resolver = (host: string): Resolver => ({
        start(listener) {
          started++;
          if (where !== 'target()' && host.startsWith('x.')) void client?.close();
          listener.onUpdate([createEndpoint({ host: '127.0.0.1', port: backend.port })]);
        },
        close() {
          closed++;
        },
      });
      client = createClient({
        discovery: {
          domain: 'svc.test',
          target: (host) => {
            if (where === 'target()' && host.startsWith('x.')) void client?.close();
            return resolver(host);
          },
        },
      });
      await (await request('http://a.svc.test/', { dispatcher: client.dispatcher })).body.text();
      await assert.rejects(request('http://x.svc.test/', { dispatcher: client.dispatcher }), {
        code: 'SIDECARLESS_CLIENT_CLOSED',
      });
      await client.close();
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        [],
      );
      assert.equal(closed, started, `every resolver started is closed (${started} started)`);
    });
  }
});

// Probe 17: a busy discovered cluster past its idle time was put back into the cache from inside the cache's own
// purge walk, which ended the walk; the other expired busy clusters stayed in the cache stale, hidden from stats(),
// close() and destroy(), which then resolved with their requests still in flight and their sockets open.
describe('busy discovered clusters past their idle time (probe 17)', () => {
  const HOSTS = 20;
  const IDLE_MS = 100;

  /** A backend that holds every request until it is answered; `sockets()` counts its open connections. */
  async function holdingServer() {
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      held.push(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      address,
      held,
      sockets: () => new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n))),
      /** Answers the requests held for `host`, or every one. */
      answer: (host?: string) => {
        for (const res of held)
          if (!res.writableEnded && (host === undefined || res.req.headers.host === host)) res.end('x');
      },
      stop: () => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  /** One request per discovered host, all held by the server for several idle periods; their outcomes. */
  async function busyPastIdle(client: Client, server: Awaited<ReturnType<typeof holdingServer>>) {
    const outcomes: string[] = new Array<string>(HOSTS).fill('pending');
    const settled = Promise.all(
      outcomes.map((_, i) =>
        request(`http://h${i}.svc.test/hold`, { dispatcher: client.dispatcher })
          .then((res) => res.body.text())
          .then(
            () => void (outcomes[i] = 'ok'),
            (err: unknown) => void (outcomes[i] = (err as { code?: string }).code ?? String(err)),
          ),
      ),
    );
    await until(() => server.held.length === HOSTS, 'every request reached the server');
    // Several idle periods with every cluster busy: each one expires (and must be kept) more than once.
    await sleep(IDLE_MS * 4);
    return { outcomes, settled };
  }

  async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
    for (let i = 0; i < 500 && !(await check()); i++) await sleep(20);
    assert.ok(await check(), what);
  }

  it('stats() lists every busy cluster, and destroy() fails every request and closes every socket', async () => {
    const server = await holdingServer();
    const client = createClient({
      discovery: { domain: 'svc.test', maxClusters: 3, idleTimeoutMs: IDLE_MS, target: () => [server.address] },
    });
    try {
      const { outcomes, settled } = await busyPastIdle(client, server);
      const names = client.stats().clusters.map((c) => c.name);
      assert.equal(names.length, HOSTS, `every busy cluster is listed, got ${names.join(', ')}`);
      await client.destroy();
      // Bounded only so that a request left hanging fails the test instead of hanging it.
      await Promise.race([settled, sleep(5_000)]);
      assert.deepEqual(
        outcomes.filter((o) => o !== 'SIDECARLESS_CLIENT_CLOSED'),
        [],
        'every in-flight request failed with the destroy',
      );
      await until(async () => (await server.sockets()) === 0, 'every connection closed');
    } finally {
      server.answer();
      await client.destroy();
      await server.stop();
    }
  });

  it('close() resolves only once the requests of every busy cluster have finished, in whatever order', async () => {
    const server = await holdingServer();
    const client = createClient({
      discovery: { domain: 'svc.test', maxClusters: 3, idleTimeoutMs: IDLE_MS, target: () => [server.address] },
    });
    try {
      const { outcomes, settled } = await busyPastIdle(client, server);
      // The clusters stats() lists finish first: a close() that only knew of those resolved then.
      const listed = client.stats().clusters.map((c) => c.name);
      const order = [...listed, ...server.held.map((res) => res.req.headers.host ?? '')];
      let closed = false;
      const closing = client.close().then(() => void (closed = true));
      for (const host of new Set(order)) {
        assert.equal(closed, false, `close() resolved with requests in flight (${outcomes.join(', ')})`);
        server.answer(host);
        await sleep(30);
      }
      await closing;
      await settled;
      assert.deepEqual(new Set(outcomes), new Set(['ok']), 'every request finished');
      await until(async () => (await server.sockets()) === 0, 'every connection closed');
    } finally {
      server.answer();
      await client.destroy();
      await server.stop();
    }
  });
});

// Probe 23, defect 4: a discovered cluster's idle time and LRU place counted from when its last request started, so a
// cluster whose long request had just ended was closed as idle, and evicted before one used less recently.
describe('discovered clusters: idle time and LRU order count from the end of the last request (probe 23)', () => {
  /** A backend that holds requests to `/hold` until `answer()`; answers any other path at once. */
  async function server() {
    const held: http.ServerResponse[] = [];
    const srv = http.createServer((req, res) => {
      req.resume();
      if (req.url === '/hold') held.push(res);
      else res.end('x');
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return {
      address: `127.0.0.1:${(srv.address() as AddressInfo).port}`,
      held,
      answer: () => held.splice(0).forEach((res) => res.end('x')),
      stop: () => {
        srv.closeAllConnections();
        return new Promise<void>((resolve) => srv.close(() => resolve()));
      },
    };
  }
  const get = async (client: Client, url: string) =>
    (await request(url, { dispatcher: client.dispatcher })).body.text();

  it('a cluster whose long request just ended is not closed as idle', async () => {
    const s = await server();
    const made: string[] = [];
    const IDLE_MS = 1500;
    const client = createClient({
      discovery: { domain: 'svc.test', idleTimeoutMs: IDLE_MS, target: (h) => (made.push(h), [s.address]) },
    });
    try {
      const long = get(client, 'http://a.svc.test/hold');
      for (let i = 0; i < 250 && s.held.length === 0; i++) await sleep(20);
      // Held for two thirds of the idle time (never idle meanwhile), then idle for half of it: past the idle time
      // since the request started, well within it since it ended.
      await sleep((IDLE_MS * 2) / 3);
      s.answer();
      await long;
      await sleep(IDLE_MS / 2);
      await get(client, 'http://a.svc.test/');
      assert.deepEqual(made, ['a.svc.test'], 'the cluster was kept: target() called once');
    } finally {
      s.answer();
      await client.close();
      await s.stop();
    }
  });

  it('the cluster whose request ended last is the most recently used', async () => {
    const s = await server();
    const client = createClient({
      discovery: { domain: 'svc.test', maxClusters: 2, target: () => [s.address] },
    });
    try {
      await get(client, 'http://a.svc.test/');
      await get(client, 'http://b.svc.test/');
      // a's long request starts, b's short one starts and ends, then a's ends: a is the most recently used.
      const long = get(client, 'http://a.svc.test/hold');
      for (let i = 0; i < 250 && s.held.length === 0; i++) await sleep(20);
      await get(client, 'http://b.svc.test/');
      s.answer();
      await long;
      await get(client, 'http://c.svc.test/'); // makes room: the least recently used idle cluster goes
      assert.deepEqual(
        client
          .stats()
          .clusters.map((c) => c.name)
          .sort(),
        ['a.svc.test', 'c.svc.test'],
      );
    } finally {
      s.answer();
      await client.close();
      await s.stop();
    }
  });
});
