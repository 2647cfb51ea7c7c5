/**
 * Balance across the instances of a service registered in ZooKeeper with Apache Curator's service discovery,
 * following changes through watches.
 *
 * Run: node --import tsx examples/zookeeper.ts [target]
 *
 * With a target (e.g. `zookeeper://127.0.0.1:2181/services/users`) it fetches `http://users/` through it a few times.
 * Without one it runs standalone: it starts a throw-away ZooKeeper (needs Java and ZooKeeper's jars: apt-get install
 * -y --no-install-recommends zookeeperd) and two HTTP backends, registers them as ephemeral Curator instances, then
 * closes the session of one (its instance node goes with it).
 * In your own code, import from 'sidecarless' and 'sidecarless/zookeeper' instead of '../src/...'.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient, createResolverRegistry } from '../src/index.js';
import { registerZooKeeper } from '../src/zookeeper.js';
import { ZooKeeperServer } from '../test/helpers/zookeeper.js';

const cleanup: Array<() => Promise<void> | void> = [];
let target = process.argv[2];
let leave: (() => Promise<unknown>) | undefined;

if (target === undefined) {
  const ports = await Promise.all(
    ['a', 'b'].map(
      (id) =>
        new Promise<number>((resolve) => {
          const server = http.createServer((_req, res) => res.end(`backend ${id}`));
          server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
          cleanup.push(() => void server.close());
        }),
    ),
  );
  const zk = await ZooKeeperServer.start();
  cleanup.push(() => zk.close());
  // Two registrations, each with its own session, as two service processes would do it.
  const [a, b] = await Promise.all([zk.admin(), zk.admin()]);
  cleanup.unshift(() => b.close());
  await a.mkdirp('/services/users');
  for (const [session, port] of [
    [a, ports[0]],
    [b, ports[1]],
  ] as const) {
    const id = randomUUID();
    const instance = { name: 'users', id, address: '127.0.0.1', port, sslPort: null, serviceType: 'DYNAMIC' };
    await session.create(`/services/users/${id}`, JSON.stringify(instance), { ephemeral: true });
  }
  leave = () => a.close();
  target = `zookeeper://${zk.address}/services/users`;
}

const client = createClient({ name: 'users', target, resolvers: registerZooKeeper(createResolverRegistry()) });
try {
  await client.ready(30_000, { minEndpoints: 1 });
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await (await client.fetch('http://users/')).text());
  console.log(`answers: ${answers.join(', ')}`);
  if (leave !== undefined) {
    await leave();
    for (let i = 0; i < 600 && client.endpoints.length !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    const after: string[] = [];
    for (let i = 0; i < 2; i++) after.push(await (await client.fetch('http://users/')).text());
    console.log(`after the instance left: ${after.join(', ')}`);
  }
} finally {
  await client.close();
  for (const fn of cleanup) await fn();
}
