/**
 * A canary release from the client side: one client, two clusters (`stable` and `canary`), a route table that sends
 * 90 % of `shop` traffic to stable and 10 % to canary, sticky per user when the request names one, a header that
 * forces the canary, and `client.setRoutes()` shifting the split to 50/50 at runtime without a restart.
 *
 * Starts three HTTP backends on 127.0.0.1 (two stable, one canary), sends a bounded number of requests in each
 * phase, prints the observed shares, closes everything and exits.
 *
 * Run: node --import tsx examples/canary-split.ts [--seed N]
 * `--seed` makes the random part of the splits repeatable (a seeded generator as the client's `random`).
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createClient, type RandomSource, type RouteConfig } from '../src/index.js';

const { values } = parseArgs({ options: { seed: { type: 'string' } } });

/** mulberry32: a tiny seeded generator, enough for repeatable demos (not for anything secret). */
function seeded(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function startBackend(name: string): Promise<{ address: string; server: http.Server }> {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.end(name);
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }),
    );
  });
}

const stable = await Promise.all(['stable-1', 'stable-2'].map(startBackend));
const canary = await Promise.all(['canary-1'].map(startBackend));

/** The route table for a given canary percentage. */
function routes(canaryPercent: number): RouteConfig[] {
  return [
    // Testers opt in with a header: always the canary.
    {
      name: 'force-canary',
      match: { host: 'shop', headers: [{ name: 'x-canary', exact: 'yes' }] },
      cluster: 'canary',
    },
    // Everyone else: a weighted split. With an `x-user-id` the choice is sticky (a hash of the user id), so a user
    // does not flip between versions; without one each request is split at random.
    {
      name: 'split',
      match: { host: 'shop' },
      split: [
        { cluster: 'stable', weight: 100 - canaryPercent },
        { cluster: 'canary', weight: canaryPercent },
      ],
      sticky: { header: 'x-user-id' },
    },
  ];
}

const client = createClient({
  clusters: {
    stable: { target: stable.map((b) => b.address) },
    canary: { target: canary.map((b) => b.address) },
  },
  routes: routes(10),
  random: values.seed === undefined ? undefined : seeded(Number(values.seed)), // Math.random by default
});

/** Runs `task(0..n-1)`, 8 at a time. */
async function eight(n: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Which side answered a request to `shop`. */
async function side(headers: Record<string, string>): Promise<'stable' | 'canary'> {
  const res = await client.fetch('http://shop/checkout', { headers });
  return (await res.text()).startsWith('canary') ? 'canary' : 'stable';
}

/** Sends `n` requests and returns how many each side answered. */
async function send(n: number, headers: Record<string, string> = {}) {
  const counts = { stable: 0, canary: 0 };
  await eight(n, async () => {
    counts[await side(headers)]++;
  });
  return counts;
}

const pct = (part: number, total: number) => `${((100 * part) / total).toFixed(1)} %`;

/** Each of `users` users sends `perUser` requests; returns the side each user saw ('both' if it flipped). */
async function sides(users: number, perUser: number): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  await eight(users, async (u) => {
    const user = `user-${u}`;
    const set = new Set<string>();
    for (let i = 0; i < perUser; i++) set.add(await side({ 'x-user-id': user }));
    seen.set(user, set.size === 1 ? [...set].join('') : 'both');
  });
  return seen;
}

try {
  const N = 1000;
  let c = await send(N);
  console.log(`90/10 split, ${N} requests: stable ${pct(c.stable, N)}, canary ${pct(c.canary, N)}`);

  const USERS = 200;
  const before = await sides(USERS, 3);
  const canaryUsers = [...before].filter(([, side]) => side === 'canary').map(([user]) => user);
  const flipped = [...before.values()].filter((side) => side === 'both').length;
  console.log(
    `sticky on x-user-id, ${USERS} users x 3 requests: users who saw both sides: ${flipped}; ` +
      `users on canary ${pct(canaryUsers.length, USERS)}`,
  );

  c = await send(20, { 'x-canary': 'yes' });
  console.log(`x-canary: yes, 20 requests: canary ${c.canary}/20`);

  client.setRoutes(routes(50));
  c = await send(N);
  console.log(`setRoutes() to 50/50, ${N} requests: stable ${pct(c.stable, N)}, canary ${pct(c.canary, N)}`);

  const after = await sides(USERS, 1);
  const kept = canaryUsers.filter((user) => after.get(user) === 'canary').length;
  const nowCanary = [...after.values()].filter((side) => side === 'canary').length;
  // A sticky key maps to a fixed point in [0, 1); the canary owns the top of the range, so growing it only adds users.
  console.log(
    `sticky users after the shift: canary ${pct(nowCanary, USERS)}; ` +
      `canary users from before still on canary: ${kept}/${canaryUsers.length}`,
  );
} finally {
  await client.close();
  await Promise.all([...stable, ...canary].map(({ server }) => new Promise((r) => server.close(r))));
}
