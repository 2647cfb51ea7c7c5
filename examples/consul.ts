/**
 * Balance across the healthy instances of a Consul service, following changes through blocking queries.
 *
 * Run: node --import tsx examples/consul.ts [target]
 *
 * With a target (e.g. `consul://127.0.0.1:8500/web?tag=v2`; the ACL token comes from CONSUL_HTTP_TOKEN) it fetches
 * `http://web/` through it a few times. Without one it runs standalone: it starts two HTTP backends and the Consul
 * API double used by the tests, registers both backends as `web`, then deregisters one.
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '../src/index.js';
import { startConsulDouble } from '../test/helpers/consul-double.js';

const cleanup: Array<() => Promise<void> | void> = [];
let target = process.argv[2];
let deregister: (() => void) | undefined;

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
  const consul = await startConsulDouble();
  cleanup.push(() => consul.close());
  const [a, b] = ports as [number, number];
  consul.setService('web', [
    { nodeAddress: '127.0.0.1', port: a, tags: ['v2'], weights: { Passing: 1, Warning: 1 } },
    { nodeAddress: '10.0.0.1', address: '127.0.0.1', port: b, tags: ['v2'] },
  ]);
  deregister = () => consul.setService('web', [{ nodeAddress: '127.0.0.1', port: b, tags: ['v2'] }]);
  target = `consul://${consul.address}/web?tag=v2&wait=30s`;
}

const client = createClient({ target });
try {
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await (await client.fetch('http://web/')).text());
  console.log(`answers: ${answers.join(', ')}`);
  if (deregister !== undefined) {
    deregister();
    for (let i = 0; i < 100 && client.endpoints.length !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    const after: string[] = [];
    for (let i = 0; i < 2; i++) after.push(await (await client.fetch('http://web/')).text());
    console.log(`after deregistering one: ${after.join(', ')}`);
  }
} finally {
  await client.close();
  for (const fn of cleanup) await fn();
}
