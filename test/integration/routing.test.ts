// Routing and traffic policy through one client with several clusters, on real backends.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Client, createClient, findSidecarlessError, StaticResolver } from '../../src/index.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';
import { FakeClock } from '../helpers/fake-clock.js';

const backends: Backend[] = [];
async function backend(id: string, handler?: Parameters<typeof startBackend>[1]): Promise<Backend> {
  const b = await startBackend(id, handler);
  backends.push(b);
  return b;
}
after(async () => {
  await stopAll(backends);
});
async function id(client: Client, url: string, init?: RequestInit): Promise<string> {
  const res = await client.fetch(url, init);
  await res.arrayBuffer();
  return res.headers.get('x-backend') ?? `status ${res.status}`;
}

describe('route table', () => {
  let users: Backend;
  let usersV2: Backend;
  let billing: Backend;
  let plain: Backend;
  let client: Client;
  before(async () => {
    users = await backend('users');
    usersV2 = await backend('users-v2');
    billing = await backend('billing');
    plain = await backend('plain');
    client = createClient({
      clusters: {
        users: { target: [users.address] },
        'users-v2': { target: [usersV2.address] },
        billing: { target: [billing.address] },
      },
      routes: [
        { match: { host: 'users', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'users-v2' },
        { match: { host: 'users', path: { prefix: '/v2/' } }, cluster: 'users-v2' },
        { match: { host: 'api', path: { prefix: '/billing' } }, cluster: 'billing' },
        { match: { host: 'api' }, cluster: 'users' },
      ],
      passthrough: true,
    });
  });
  after(async () => {
    await client.close();
  });

  it('routes by header, path and host, first match wins', async () => {
    assert.equal(await id(client, 'http://users/me', { headers: { 'x-canary': 'yes' } }), 'users-v2');
    assert.equal(await id(client, 'http://users/v2/me'), 'users-v2');
    assert.equal(await id(client, 'http://users/me'), 'users', 'no rule: the cluster named by the host');
    assert.equal(await id(client, 'http://api/billing/invoices'), 'billing');
    assert.equal(await id(client, 'http://api/anything'), 'users');
    assert.equal(await id(client, 'http://billing/x'), 'billing');
  });

  it('passes unknown hosts through as plain requests', async () => {
    assert.equal(await id(client, `http://${plain.address}/`), 'plain');
    assert.equal(client.stats().passthrough, 1);
  });

  it('without passthrough, an unknown host fails with SIDECARLESS_NO_ROUTE', async () => {
    const strict = createClient({ clusters: { users: { target: [users.address] } } });
    try {
      const err = await strict.fetch('http://unknown/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_NO_ROUTE');
    } finally {
      await strict.close();
    }
  });

  it('rejects a bad table at construction and at setRoutes, naming the rule; a bad swap changes nothing', async () => {
    assert.throws(() => createClient({ clusters: { a: { target: [users.address] } }, routes: [{ cluster: 'nope' }] }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'routes[0].cluster',
    });
    assert.throws(() => createClient({ clusters: { a: { target: [users.address], waitForReadyTimeout: -1 } } }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'clusters.a.waitForReadyTimeout',
    });
    assert.throws(() => client.setRoutes([{ cluster: 'users', match: { path: { regex: '[' } } }]), {
      option: 'routes[0].match.path.regex',
    });
    assert.equal(await id(client, 'http://users/v2/x'), 'users-v2', 'the old table is still in force');
  });
});

describe('weighted split and runtime swap', () => {
  it('splits 90/10 within tolerance, and a sticky split keeps each user on one side', async () => {
    const stable = await backend('stable');
    const canary = await backend('canary');
    const client = createClient({
      clusters: { stable: { target: [stable.address] }, canary: { target: [canary.address] } },
      routes: [
        {
          match: { host: 'shop' },
          split: [
            { cluster: 'stable', weight: 90 },
            { cluster: 'canary', weight: 10 },
          ],
        },
      ],
    });
    try {
      let onCanary = 0;
      for (let i = 0; i < 400; i++) if ((await id(client, 'http://shop/')) === 'canary') onCanary++;
      // 10 % of 400 = 40, sd ≈ 6: allow ± 5 sd.
      assert.ok(onCanary > 10 && onCanary < 70, `canary got ${onCanary}`);
      client.setRoutes([
        {
          match: { host: 'shop' },
          split: [
            { cluster: 'stable', weight: 50 },
            { cluster: 'canary', weight: 50 },
          ],
          sticky: { cookie: 'uid' },
        },
      ]);
      for (let user = 0; user < 20; user++) {
        const headers = { cookie: `uid=u${user}` };
        const first = await id(client, 'http://shop/', { headers });
        for (let again = 0; again < 3; again++) assert.equal(await id(client, 'http://shop/', { headers }), first);
      }
    } finally {
      await client.close();
    }
  });

  it('swapping the route table under load loses no request', async () => {
    const a = await backend('swap-a');
    const b = await backend('swap-b');
    const client = createClient({
      clusters: { a: { target: [a.address] }, b: { target: [b.address] } },
      routes: [{ cluster: 'a' }],
    });
    try {
      let failures = 0;
      let done = 0;
      const seen = new Set<string>();
      const load = Promise.all(
        Array.from({ length: 6 }, async () => {
          for (let i = 0; i < 60; i++) {
            try {
              seen.add(await id(client, 'http://svc/'));
            } catch {
              failures++;
            }
            done++;
          }
        }),
      );
      for (let swap = 0; swap < 20; swap++) {
        await new Promise((r) => setTimeout(r, 5));
        client.setRoutes([{ cluster: swap % 2 === 0 ? 'b' : 'a' }]);
      }
      await load;
      assert.equal(failures, 0);
      assert.equal(done, 360);
      assert.deepEqual([...seen].sort(), ['swap-a', 'swap-b']);
    } finally {
      await client.close();
    }
  });
});

describe('subsets', () => {
  it('routes to endpoints whose metadata matches, with the fallback policy when the subset is empty', async () => {
    const v1 = await backend('v1');
    const v2 = await backend('v2');
    const client = createClient({
      clusters: {
        svc: {
          target: [
            { host: '127.0.0.1', port: v1.port, metadata: { version: 'v1' } },
            { host: '127.0.0.1', port: v2.port, metadata: { version: 'v2' } },
          ],
        },
      },
      routes: [
        { match: { headers: [{ name: 'x-version', exact: 'v2' }] }, cluster: 'svc', subset: { version: 'v2' } },
        {
          match: { headers: [{ name: 'x-version', exact: 'v3' }] },
          cluster: 'svc',
          subset: { version: 'v3' },
          subsetFallback: 'fail',
        },
        {
          match: { headers: [{ name: 'x-version', exact: 'v4' }] },
          cluster: 'svc',
          subset: { version: 'v4' },
          subsetFallback: { version: 'v1' },
        },
        { cluster: 'svc', subset: { version: 'v9' } },
      ],
    });
    try {
      for (let i = 0; i < 6; i++)
        assert.equal(await id(client, 'http://svc/', { headers: { 'x-version': 'v2' } }), 'v2');
      const err = await client.fetch('http://svc/', { headers: { 'x-version': 'v3' } }).catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_EMPTY_SUBSET');
      for (let i = 0; i < 4; i++)
        assert.equal(await id(client, 'http://svc/', { headers: { 'x-version': 'v4' } }), 'v1');
      const any = new Set<string>();
      for (let i = 0; i < 6; i++) any.add(await id(client, 'http://svc/'));
      assert.deepEqual([...any].sort(), ['v1', 'v2'], "fallback 'any': the whole cluster");
    } finally {
      await client.close();
    }
  });
});

describe('priority failover and zone preference', () => {
  const failing = (_req: unknown, res: import('node:http').ServerResponse, b: Backend) => {
    res.writeHead(503, { 'x-backend': b.id });
    res.end();
  };
  // Sends requests until `count` endpoints have been ejected. A fixed number of requests is not enough: once one
  // endpoint of a level is out, the level is under 100 % healthy (x 1.4 overprovisioning) and a share of the
  // traffic spills to the next level at random, so the other failing endpoint may not be reached for a while.
  async function untilEjected(client: Client, count: number): Promise<void> {
    const ejected = new Set<string>();
    const sub = client.onHealthEvent((e) => {
      if (e.type === 'eject') ejected.add(e.endpoint.key);
    });
    try {
      for (let i = 0; i < 200 && ejected.size < count; i++) await id(client, 'http://svc/');
    } finally {
      sub.dispose();
    }
    assert.equal(ejected.size, count, `ejected within 200 requests: ${[...ejected].join()}`);
  }

  it('keeps traffic on priority 0 while it is healthy and fails over to priority 1 as it degrades', async () => {
    let p0Healthy = true;
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, b: Backend) => {
      req.resume();
      if (!p0Healthy) return failing(req, res, b);
      res.setHeader('x-backend', b.id);
      res.end();
    };
    const p0 = [await backend('p0-a', handler), await backend('p0-b', handler)];
    const p1 = [await backend('p1-a'), await backend('p1-b')];
    const client = createClient({
      target: [
        ...p0.map((b) => ({ host: '127.0.0.1', port: b.port, priority: 0 })),
        ...p1.map((b) => ({ host: '127.0.0.1', port: b.port, priority: 1 })),
      ],
      clock: new FakeClock(),
      retry: false,
      outlierDetection: { maxEjectionPercent: 100, consecutive5xx: 1 },
      panicThreshold: 0,
    });
    try {
      for (let i = 0; i < 20; i++) assert.match(await id(client, 'http://svc/'), /^p0-/);
      p0Healthy = false;
      // The first request to each P0 endpoint fails and ejects it; then everything goes to P1.
      await untilEjected(client, 2);
      const after = [];
      for (let i = 0; i < 20; i++) after.push(await id(client, 'http://svc/'));
      assert.ok(
        after.every((x) => x.startsWith('p1-')),
        after.join(),
      );
    } finally {
      await client.close();
    }
  });

  it('prefers the local zone, and spills to other zones when it has no healthy endpoint', async () => {
    let localHealthy = true;
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, b: Backend) => {
      req.resume();
      if (!localHealthy) return failing(req, res, b);
      res.setHeader('x-backend', b.id);
      res.end();
    };
    const local = [await backend('zone-a-1', handler), await backend('zone-a-2', handler)];
    const remote = [await backend('zone-b-1'), await backend('zone-b-2')];
    const client = createClient({
      target: [
        ...local.map((b) => ({ host: '127.0.0.1', port: b.port, zone: 'a' })),
        ...remote.map((b) => ({ host: '127.0.0.1', port: b.port, zone: 'b' })),
      ],
      zoneAware: { localZone: 'a', minClusterSize: 1 },
      clock: new FakeClock(),
      retry: false,
      outlierDetection: { maxEjectionPercent: 100, consecutive5xx: 1 },
      panicThreshold: 0,
    });
    try {
      for (let i = 0; i < 20; i++) assert.match(await id(client, 'http://svc/'), /^zone-a-/);
      localHealthy = false;
      await untilEjected(client, 2);
      for (let i = 0; i < 10; i++) assert.match(await id(client, 'http://svc/'), /^zone-b-/);
    } finally {
      await client.close();
    }
  });
});

describe('transparent mode', () => {
  it('creates clusters lazily for hosts under the discovery domain and closes idle ones (LRU)', async () => {
    const one = await backend('one');
    const two = await backend('two');
    const ports: Record<string, number> = { 'one.svc.test': one.port, 'two.svc.test': two.port };
    const client = createClient({
      clusters: { fixed: { target: [one.address] } },
      discovery: {
        domain: 'svc.test',
        target: (host) => new StaticResolver([`127.0.0.1:${ports[host]}`]),
        maxClusters: 1,
        idleTimeout: 200,
      },
    });
    try {
      assert.equal(await id(client, 'http://one.svc.test/'), 'one');
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['fixed', 'one.svc.test'],
      );
      assert.equal(await id(client, 'http://two.svc.test/'), 'two');
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['fixed', 'two.svc.test'],
        'maxClusters 1: the least recently used one was closed',
      );
      const deadline = Date.now() + 3_000;
      while (client.stats().clusters.length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['fixed'],
        'idle discovered clusters are closed',
      );
      const err = await client.fetch('http://elsewhere/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_NO_ROUTE');
    } finally {
      await client.close();
    }
  });
});

describe('mirroring', () => {
  it('sends a shadow copy to the mirror cluster and ignores its response', async () => {
    const main = await backend('main');
    const shadowHosts: string[] = [];
    const shadowBodies: string[] = [];
    const shadow = await backend('shadow', (req, res) => {
      shadowHosts.push(req.headers.host ?? '');
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        shadowBodies.push(body);
        res.writeHead(500);
        res.end();
      });
    });
    const client = createClient({
      clusters: { main: { target: [main.address] }, shadow: { target: [shadow.address], retry: false } },
      routes: [{ cluster: 'main', mirror: { cluster: 'shadow' } }],
    });
    try {
      for (let i = 0; i < 5; i++)
        assert.equal(await id(client, 'http://orders/x', { method: 'POST', body: 'o' }), 'main');
      const deadline = Date.now() + 2_000;
      while (shadowBodies.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(shadowHosts.length, 5);
      assert.ok(shadowHosts.every((h) => h === 'orders-shadow'));
      assert.deepEqual(shadowBodies, ['o', 'o', 'o', 'o', 'o'], 'the copy carries the same body');
      assert.equal(client.stats().mirrored.sent, 5);
    } finally {
      await client.close();
    }
  });
});
