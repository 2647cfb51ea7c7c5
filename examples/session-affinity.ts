/**
 * Session affinity with consistent hashing: requests carrying the same session cookie go to the same backend, and
 * when a backend leaves, only the sessions it held move (the others keep their backend, and their caches).
 *
 * Starts four HTTP backends (A to D) on 127.0.0.1, balances them with `ring-hash` on the `session` cookie through a
 * `StaticResolver`, sends a few requests per session, then removes one backend with `resolver.update()` and shows
 * which sessions moved. Ends with `maglev` keyed on a header (`x-user-id`), the other hashing policy.
 *
 * Run: node --import tsx examples/session-affinity.ts
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, createClient, StaticResolver } from '../src/index.js';

interface Backend {
  readonly name: string;
  readonly address: string;
  readonly server: http.Server;
}

function startBackend(name: string): Promise<Backend> {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.end(name);
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ name, server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }),
    );
  });
}

const REPEATS = 5;

/** Sends `REPEATS` requests with `headers` and returns the distinct backends that answered. */
async function backendsFor(client: Client, headers: Record<string, string>): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < REPEATS; i++) {
    const res = await client.fetch('http://cart/items', { headers });
    seen.add(await res.text());
  }
  return seen;
}

const backends = await Promise.all(['A', 'B', 'C', 'D'].map(startBackend));
const nameOf = new Map(backends.map((b) => [b.address, b.name]));
const sessions = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

// 1. ring-hash on a cookie, over a list we can change at runtime.
const resolver = new StaticResolver(backends.map((b) => b.address));
const ring = createClient({
  name: 'cart',
  target: resolver,
  picker: { name: 'ring-hash', hashKey: { cookie: 'session' } },
});

console.log(`ring-hash on cookie "session", backends ${backends.map((b) => b.name).join(' ')}`);
const before = new Map<string, string>();
for (const session of sessions) {
  const seen = await backendsFor(ring, { cookie: `session=${session}; theme=dark` });
  const backend = [...seen].join('+');
  before.set(session, backend);
  console.log(`  session=${session.padEnd(6)} -> ${backend} (${seen.size === 1 ? 'sticky' : 'NOT sticky'})`);
}

// Take away the backend that holds the first session, so at least one session has to move.
const removed = backends.find((b) => b.name === before.get(sessions[0] as string)) as Backend;
resolver.update(backends.filter((b) => b !== removed).map((b) => b.address));
// The new set is delivered asynchronously; wait until the client no longer lists the removed endpoint.
for (let i = 0; i < 200 && ring.endpoints.some((e) => e.key === removed.address); i++) await sleep(10);
console.log(`removed ${removed.name}; now ${ring.endpoints.map((e) => nameOf.get(e.key)).join(' ')}`);

let moved = 0;
for (const session of sessions) {
  const seen = await backendsFor(ring, { cookie: `session=${session}` });
  const backend = [...seen].join('+');
  const was = before.get(session);
  if (backend !== was) moved++;
  console.log(`  session=${session.padEnd(6)} -> ${backend} (${backend === was ? 'stayed' : `moved from ${was}`})`);
}
const held = sessions.filter((s) => before.get(s) === removed.name).length;
console.log(`moved ${moved} of ${sessions.length} sessions; ${held} of them were on ${removed.name}`);
await ring.close();

// 2. maglev on a header: the same stickiness from a lookup table (faster to build and to pick; on membership
// changes it moves slightly more than the removed endpoint's keys).
const maglev = createClient({
  name: 'profiles',
  target: backends.map((b) => b.address),
  picker: { name: 'maglev', hashKey: { header: 'x-user-id' } },
});
console.log('maglev on header "x-user-id"');
for (const user of ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']) {
  const seen = await backendsFor(maglev, { 'x-user-id': user });
  console.log(`  x-user-id=${user} -> ${[...seen].join('+')} (${seen.size === 1 ? 'sticky' : 'NOT sticky'})`);
}
await maglev.close();

await Promise.all(backends.map(({ server }) => new Promise((r) => server.close(r))));
