/**
 * The smallest useful program: balance a fixed list of endpoints, through fetch and through undici.
 *
 * Run: node --import tsx examples/static-list.ts
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createClient } from '../src/index.js';

const servers = await Promise.all(
  [1, 2, 3].map(
    (n) =>
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((req, res) => res.end(`backend ${n} saw Host: ${req.headers.host}`));
        server.listen(0, '127.0.0.1', () => resolve(server));
      }),
  ),
);
const ports = servers.map((s) => (s.address() as AddressInfo).port);

const client = createClient({ target: `static://${ports.map((p) => `127.0.0.1:${p}`).join(',')}` });

for (let i = 0; i < 3; i++) {
  const res = await client.fetch('http://catalog/items');
  console.log(await res.text());
}
const { body } = await request('http://catalog/items', { dispatcher: client.dispatcher });
console.log(`via undici.request: ${await body.text()}`);

await client.close();
await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
