/**
 * A large ring-hash build does not stall the event loop (issue 14, "Scale"): through the package entry, a cluster
 * whose ring is built in steps serves requests at once on its first build, serves only endpoints of the set in
 * force while a rebuild runs, and stops the build on close(). Turns are run by hand (the balancer's `defer` hook).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createClient, createEndpoint, type Endpoint } from 'sidecarless';
import { manualTurns } from '../../helpers/manual-turns.js';
import { PushResolver } from '../../helpers/push-resolver.js';

const turns = manualTurns();

describe('ring hash built in steps, in a cluster', () => {
  const servers: { server: Server; port: number }[] = [];
  before(async () => {
    for (let i = 0; i < 3; i++) {
      let port = 0;
      const server = createServer((_req, res) => res.end(String(port)));
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      port = (server.address() as AddressInfo).port;
      servers.push({ server, port });
    }
  });
  after(async () => {
    await Promise.all(servers.map((s) => new Promise((done) => s.server.close(done))));
  });
  const live = (i: number): Endpoint => createEndpoint({ host: '127.0.0.1', port: servers[i]!.port });

  function setup() {
    const resolver = new PushResolver();
    // 40,000 virtual nodes each: more entries than a ring built at once (65,536) with 2 or 3 endpoints.
    const client = createClient({
      clusters: {
        svc: {
          target: resolver,
          picker: { name: 'ring-hash', hashKey: { header: 'x-user' }, vnodesPerEndpoint: 40_000 },
        },
      },
    });
    const served = async (user: string): Promise<number> => {
      const res = await client.fetch('http://svc/', { headers: { 'x-user': user } });
      return Number(await res.text());
    };
    return { resolver, client, served };
  }

  it('serves at once on its first build, keeps to the set in force during a rebuild, then follows the full ring', async () => {
    const { resolver, client, served } = setup();
    try {
      resolver.push([live(0), live(1), live(2)]);
      assert.ok(turns.pending > 0, 'the first build runs in steps');
      const ports = new Set(servers.map((s) => s.port));
      assert.ok(ports.has(await served('u0')), 'served by the coarse ring before any step');
      let steps = 0;
      while (turns.pending > 0 && steps < 10_000) {
        turns.turn();
        steps++;
      }
      assert.ok(steps > 2, `${steps} steps`);
      const before = new Map<string, number>();
      for (let i = 0; i < 30; i++) before.set(`u${i}`, await served(`u${i}`));
      // Endpoint 2 leaves: while the smaller ring is built, no request goes to it, and the others keep their keys.
      resolver.push([live(0), live(1)]);
      assert.ok(turns.pending > 0, 'the rebuild runs in steps');
      const gone = servers[2]!.port;
      let during = 0;
      for (let i = 0; turns.pending > 0 && i < 10_000; i++) {
        const user = `u${i % 30}`;
        const port = await served(user);
        assert.notEqual(port, gone, `${user} went to the removed endpoint`);
        if (before.get(user) !== gone) assert.equal(port, before.get(user), `${user} moved`);
        during++;
        turns.turn();
      }
      assert.ok(during >= 30, `${during} requests during the rebuild`);
      // Picked right the first time: no attempt went to the removed endpoint and was retried elsewhere.
      assert.equal(client.stats().clusters[0]?.requests.extraAttempts, 0);
      for (let i = 0; i < 30; i++) {
        const was = before.get(`u${i}`);
        if (was !== gone) assert.equal(await served(`u${i}`), was);
      }
    } finally {
      await client.close();
    }
  });

  it('close() stops a build under way', async () => {
    const { resolver, client } = setup();
    resolver.push([live(0), live(1), live(2)]);
    assert.ok(turns.pending > 0);
    await client.close();
    assert.equal(turns.pending, 0);
  });
});
