// Endpoint health wired into the request path: outlier ejection, panic threshold, active health checks and slow
// start, against real backends on loopback. Outlier and slow-start timers run on a fake clock.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createClient, findSidecarlessError, type HealthEvent, StaticResolver } from '../../src/index.js';
import { type Backend, type Handler, startBackend, stopAll } from '../helpers/backends.js';
import { FakeClock } from '../helpers/fake-clock.js';

const backends: Backend[] = [];
async function backend(id: string, handler?: Handler): Promise<Backend> {
  const b = await startBackend(id, handler);
  backends.push(b);
  return b;
}
after(async () => {
  await stopAll(backends);
});
const failing: Handler = (req, res, b) => {
  req.resume();
  res.writeHead(503, { 'x-backend': b.id });
  res.end();
};
async function drive(client: ReturnType<typeof createClient>, n: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await client.fetch('http://svc/');
    await res.arrayBuffer();
    seen.push(res.headers.get('x-backend') ?? String(res.status));
  }
  return seen;
}

describe('outlier ejection in the request path', () => {
  it('ejects an endpoint after five consecutive 5xx, stops sending to it, and returns it after the ejection time', async () => {
    const bad = await backend('bad', failing);
    const good = [await backend('g1'), await backend('g2')];
    const clock = new FakeClock();
    const events: HealthEvent[] = [];
    const client = createClient({
      target: [bad.address, ...good.map((b) => b.address)],
      clock,
      random: () => 0,
      panicThreshold: 0,
      outlierDetection: { maxEjectionPercent: 50 },
    });
    const sub = client.onHealthEvent((e) => events.push(e));
    try {
      // Retries hide the 503s from callers; every answer comes from a healthy backend.
      const seen = await drive(client, 30);
      assert.ok(
        seen.every((id) => id === 'g1' || id === 'g2'),
        seen.join(),
      );
      assert.equal(bad.hits, 5, 'exactly five failures reach the bad endpoint before it is ejected');
      assert.deepEqual(
        events.map((e) => [e.type, e.reason, e.endpoint.key]),
        [['eject', 'consecutive-5xx', bad.address]],
      );
      const ep = client.stats().clusters[0]?.endpoints.find((e) => e.key === bad.address);
      assert.equal(ep?.ejected, true);
      // 30 s base ejection, returned at the next 10 s interval sweep after it.
      clock.advance(40_000);
      assert.deepEqual(events.at(-1)?.type, 'return');
      await drive(client, 3);
      assert.ok(bad.hits > 5, 'traffic reaches it again after its return');
    } finally {
      sub.dispose();
      await client.close();
    }
  });

  it('ejects an endpoint that refuses connections (local-origin failures: counted as 5xx, or on their own when split)', async () => {
    const dead = await backend('dead');
    await dead.stop();
    const good = await backend('g3');
    const events: HealthEvent[] = [];
    // Real clock: connection backoff (1 ms here) must expire between attempts for the endpoint to be tried again.
    const client = createClient({
      target: [dead.address, good.address],
      outlierDetection: { maxEjectionPercent: 50, splitExternalLocalOriginErrors: true },
      connectBackoff: { initialMs: 1, maxMs: 1, jitter: 0 },
    });
    client.onHealthEvent((e) => events.push(e));
    try {
      for (let i = 0; i < 200 && events.length === 0; i++) {
        await drive(client, 1);
        await new Promise((r) => setTimeout(r, 3));
      }
      assert.equal(events[0]?.reason, 'consecutive-local-origin-failure');
    } finally {
      await client.close();
    }
  });

  it('engages panic mode when too few endpoints are eligible, and releases it', async () => {
    const bads = [await backend('p1', failing), await backend('p2', failing)];
    const good = await backend('p3');
    const clock = new FakeClock();
    const client = createClient({
      target: [...bads.map((b) => b.address), good.address],
      clock,
      retry: false,
      outlierDetection: { maxEjectionPercent: 100, consecutive5xx: 2 },
    });
    try {
      for (let i = 0; i < 12; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      const stats = client.stats().clusters[0];
      assert.equal(stats?.endpoints.filter((e) => e.ejected).length, 2);
      assert.equal(stats?.panic, true, '1 of 3 eligible is below 50 %: balance across all');
      const before = bads[0]!.hits + bads[1]!.hits;
      await drive(client, 6);
      assert.ok(bads[0]!.hits + bads[1]!.hits > before, 'in panic, ejected endpoints take traffic again');
      clock.advance(40_000);
      assert.equal(client.stats().clusters[0]?.panic, false);
    } finally {
      await client.close();
    }
  });

  it('with the panic threshold off, fails fast with SIDECARLESS_ALL_EJECTED when every endpoint is ejected', async () => {
    const bad = await backend('solo', failing);
    const client = createClient({
      target: [bad.address],
      clock: new FakeClock(),
      retry: false,
      panicThreshold: 0,
    });
    try {
      for (let i = 0; i < 5; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_ALL_EJECTED');
    } finally {
      await client.close();
    }
  });
});

describe('active health checks', () => {
  it('takes an endpoint out when its health check fails, and back when it passes', async () => {
    let healthy = true;
    const checked = await backend('hc', (req, res, b) => {
      req.resume();
      res.setHeader('x-backend', b.id);
      if (req.url === '/health') res.writeHead(healthy ? 200 : 503);
      res.end();
    });
    const other = await backend('hc-other');
    const events: HealthEvent[] = [];
    const client = createClient({
      target: [checked.address, other.address],
      healthCheck: { intervalMs: 20, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 1 },
      outlierDetection: false,
    });
    client.onHealthEvent((e) => events.push(e));
    const waitFor = async (type: string) => {
      const deadline = Date.now() + 5_000;
      while (!events.some((e) => e.type === type) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(
        events.some((e) => e.type === type),
        `saw ${type}`,
      );
    };
    try {
      healthy = false;
      await waitFor('unhealthy');
      const seen = await drive(client, 6);
      assert.ok(
        seen.every((id) => id === 'hc-other'),
        seen.join(),
      );
      healthy = true;
      await waitFor('healthy');
      const after = await drive(client, 6);
      assert.ok(after.includes('hc'));
    } finally {
      await client.close();
    }
  });
});

describe('slow start', () => {
  it('ramps a new endpoint from 10 % of its weight', async () => {
    const a = await backend('s1');
    const b = await backend('s2');
    const clock = new FakeClock();
    const resolver = new StaticResolver([a.address]);
    const client = createClient({ target: resolver, clock, slowStart: { windowMs: 10_000 } });
    try {
      await drive(client, 1);
      resolver.update([a.address, { host: '127.0.0.1', port: b.port, weight: 10 }]);
      await new Promise((r) => setImmediate(r));
      const weight = () => client.stats().clusters[0]?.endpoints.find((e) => e.key === b.address)?.effectiveWeight;
      await drive(client, 1); // rebuilds happen on the tick; read the value the last build used
      assert.ok((weight() ?? 10) <= 1.01, `starts near 10 %: ${weight()}`);
      clock.advance(5_000);
      const mid = weight() ?? 0;
      assert.ok(mid > 4 && mid < 6, `halfway through the window: ${mid}`);
      clock.advance(6_000);
      assert.equal(weight(), 10);
    } finally {
      await client.close();
    }
  });
});
