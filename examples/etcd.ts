/**
 * Balance across endpoints stored under an etcd key prefix, following changes through a watch.
 *
 * Run: node --import tsx examples/etcd.ts [target]
 *
 * With a target (e.g. `etcd://127.0.0.1:2379/services/users/`) it fetches `http://users/` through it a few times.
 * Without one it runs standalone: it starts a throw-away etcd (needs `etcd` on PATH: apt-get install -y
 * etcd-server) and two HTTP backends, stores them as `{"host":...,"port":...}` values, then deletes one.
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '../src/index.js';
import { EtcdServer } from '../test/helpers/etcd.js';

const cleanup: Array<() => Promise<void> | void> = [];
let target = process.argv[2];
let remove: (() => Promise<unknown>) | undefined;

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
  const etcd = await EtcdServer.start();
  cleanup.push(() => etcd.close());
  const [a, b] = ports as [number, number];
  await etcd.put('/services/users/a', JSON.stringify({ host: '127.0.0.1', port: a, weight: 1, zone: 'z1' }));
  await etcd.put('/services/users/b', `127.0.0.1:${b}`);
  remove = () => etcd.delete('/services/users/a');
  target = `etcd://${etcd.address}/services/users/`;
}

const client = createClient({ target });
try {
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await (await client.fetch('http://users/')).text());
  console.log(`answers: ${answers.join(', ')}`);
  if (remove !== undefined) {
    await remove();
    for (let i = 0; i < 100 && client.endpoints.length !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    const after: string[] = [];
    for (let i = 0; i < 2; i++) after.push(await (await client.fetch('http://users/')).text());
    console.log(`after deleting one key: ${after.join(', ')}`);
  }
} finally {
  await client.close();
  for (const fn of cleanup) await fn();
}
