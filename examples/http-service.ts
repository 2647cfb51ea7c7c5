/**
 * A service that calls another service: a small node:http "frontend" that, for each incoming request, asks the
 * "inventory" service (three backends) for every item through `client.fetch`, and answers with the combined JSON.
 * The balancer lives inside the frontend process: no sidecar, no extra hop.
 *
 * Starts the three inventory backends and the frontend on 127.0.0.1 (ephemeral ports), sends a few requests to
 * the frontend with the plain global `fetch`, prints the answers, then shuts down in order: the frontend stops
 * accepting, the client drains and closes its connections, the backends stop.
 *
 * Run: node --import tsx examples/http-service.ts
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient, findSidecarlessError, statusForError } from '../src/index.js';

const STOCK: Record<string, number> = { apple: 12, pear: 0, plum: 7, fig: 3 };

/** One inventory backend: `GET /stock/:sku` answers `{ sku, stock, backend }`. */
function startInventory(name: string): Promise<{ address: string; server: http.Server }> {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const sku = decodeURIComponent(req.url?.match(/^\/stock\/([^/?]+)/)?.[1] ?? '');
      const stock = STOCK[sku];
      res.setHeader('content-type', 'application/json');
      if (stock === undefined) res.statusCode = 404;
      res.end(JSON.stringify({ sku, stock: stock ?? null, backend: name }));
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }),
    );
  });
}

const inventoryBackends = await Promise.all(['inventory-1', 'inventory-2', 'inventory-3'].map(startInventory));

// One client per downstream service, created once at start-up and shared by every request.
const inventory = createClient({
  name: 'inventory',
  target: inventoryBackends.map((b) => b.address),
  retry: { maxAttempts: 2 }, // a GET that fails on one backend is tried once more on another
  timeoutMs: 2_000,
});

interface StockAnswer {
  sku: string;
  stock: number | null;
  backend: string;
}

/** `GET /basket?skus=a,b`: the stock of each item, asked of the inventory service in parallel. */
const frontend = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://frontend');
  // When the caller goes away, stop the downstream calls too.
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  try {
    if (url.pathname !== '/basket') {
      res.writeHead(404).end();
      return;
    }
    const skus = (url.searchParams.get('skus') ?? '').split(',').filter((s) => s !== '');
    const items = await Promise.all(
      skus.map(async (sku) => {
        const r = await inventory.fetch(`http://inventory/stock/${encodeURIComponent(sku)}`, {
          signal: abort.signal,
        });
        return (await r.json()) as StockAnswer;
      }),
    );
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        items: items.map(({ sku, stock }) => ({ sku, stock, available: (stock ?? 0) > 0 })),
        servedBy: items.map((i) => i.backend),
      }),
    );
  } catch (err) {
    // Match on the stable code, never on the message; statusForError maps it (503 nothing could answer, 504 out of
    // time, 502 an endpoint broke the exchange, ...).
    const code = findSidecarlessError(err)?.code;
    res.writeHead(statusForError(err), { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: code ?? 'upstream failure' }));
  }
});
await new Promise<void>((resolve) => frontend.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(frontend.address() as AddressInfo).port}`;
console.log(`frontend on ${base}, inventory on ${inventoryBackends.length} backends`);

try {
  const used = new Set<string>();
  for (const skus of ['apple,pear', 'plum,fig,apple', 'pear', 'fig,plum']) {
    const res = await fetch(`${base}/basket?skus=${skus}`); // the caller: plain fetch, knows nothing of sidecarless
    const body = (await res.json()) as { servedBy: string[] };
    for (const b of body.servedBy) used.add(b);
    console.log(`GET /basket?skus=${skus} -> ${res.status} ${JSON.stringify(body)}`);
  }
  console.log(`inventory backends used: ${[...used].sort().join(', ')}`);
} finally {
  // Stop accepting first (idle keep-alive connections close too), then drain the client, then the backends.
  await new Promise((r) => frontend.close(r));
  await inventory.close();
  await Promise.all(inventoryBackends.map(({ server }) => new Promise((r) => server.close(r))));
}
