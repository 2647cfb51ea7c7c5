/**
 * `npm run demo`: the main job on a static default.
 *
 * Starts three HTTP backends on 127.0.0.1 (ephemeral ports, each with its own simulated latency), builds a client
 * over the static endpoint list, sends a bounded number of requests through the balanced `fetch`, prints requests
 * and latency per endpoint, closes everything and exits 0.
 *
 * Flags: --requests N (default 300), --concurrency C (default 8), --picker NAME (default round-robin).
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createClient } from '../src/index.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '8' },
    picker: { type: 'string', default: 'round-robin' },
  },
});
const total = Math.min(Math.max(Number(values.requests) || 300, 1), 100_000);
const concurrency = Math.min(Math.max(Number(values.concurrency) || 8, 1), 256);

// Three backends: fast, medium, slow (simulated service time in ms).
const delays = [2, 5, 10];
const servers = await Promise.all(
  delays.map(
    (delay, i) =>
      new Promise<{ server: http.Server; address: string; id: string }>((resolve) => {
        const id = `backend-${i + 1}`;
        const server = http.createServer((req, res) => {
          req.resume();
          setTimeout(() => {
            res.setHeader('x-backend', id);
            res.end(`hello from ${id}\n`);
          }, delay);
        });
        server.listen(0, '127.0.0.1', () =>
          resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, id }),
        );
      }),
  ),
);

const client = createClient({ target: servers.map((s) => s.address), picker: values.picker, name: 'demo' });

const latencies = new Map<string, number[]>();
let errors = 0;
let next = 0;
const started = performance.now();
async function worker(): Promise<void> {
  while (next < total) {
    next++;
    const t0 = performance.now();
    try {
      const res = await client.fetch('http://demo-service/hello');
      await res.text();
      const id = res.headers.get('x-backend') ?? 'unknown';
      const list = latencies.get(id) ?? [];
      list.push(performance.now() - t0);
      latencies.set(id, list);
    } catch {
      errors++;
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = performance.now() - started;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const rows = servers.map(({ id, address }) => {
  const list = (latencies.get(id) ?? []).sort((a, b) => a - b);
  const mean = list.reduce((a, b) => a + b, 0) / Math.max(list.length, 1);
  return {
    endpoint: `${id} (${address})`,
    requests: list.length,
    share: `${((100 * list.length) / total).toFixed(1)} %`,
    'mean ms': mean.toFixed(2),
    'p50 ms': pct(list, 50).toFixed(2),
    'p99 ms': pct(list, 99).toFixed(2),
  };
});

console.log(`sidecarless demo: ${total} requests, concurrency ${concurrency}, picker ${values.picker}`);
console.table(rows);
console.log(`done in ${elapsed.toFixed(0)} ms (${((total / elapsed) * 1000).toFixed(0)} req/s), errors: ${errors}`);

await client.close();
await Promise.all(servers.map(({ server }) => new Promise((r) => server.close(r))));
process.exitCode = errors === 0 ? 0 : 1;
