/**
 * An Express 5 service that calls its downstream services through one sidecarless client: `undici.request` with
 * `client.dispatcher` in one route, `client.fetch` in another, and an error handler that turns sidecarless errors
 * into HTTP statuses by their stable `code` (no endpoint: 503, deadline: 504, ...).
 *
 * Starts three "inventory" backends and one "reviews" backend on 127.0.0.1. The reviews service starts with no
 * endpoint (its resolver has an empty list, as a discovery system reports a service whose instances are all down),
 * to show the error path; then its backend is added and the same request succeeds. Sends a few requests to the
 * Express app with the global `fetch`, prints the answers, closes everything and exits.
 *
 * Run: node --import tsx examples/express-service.ts
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { request } from 'undici';
import { createClient, findSidecarlessError, StaticResolver, statusForError } from '../src/index.js';

const STOCK: Record<string, number> = { apple: 12, pear: 0, plum: 7 };

function startBackend(handler: http.RequestListener): Promise<{ address: string; server: http.Server }> {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }),
    );
  });
}

/** `GET /stock/:sku` answers `{ sku, stock, backend }`, 404 for an unknown item. */
const inventoryBackends = await Promise.all(
  ['inventory-1', 'inventory-2', 'inventory-3'].map((name) =>
    startBackend((req, res) => {
      const sku = decodeURIComponent(req.url?.match(/^\/stock\/([^/?]+)/)?.[1] ?? '');
      const stock = STOCK[sku];
      res.setHeader('content-type', 'application/json');
      if (stock === undefined) res.statusCode = 404;
      res.end(JSON.stringify({ sku, stock: stock ?? null, backend: name }));
    }),
  ),
);
/** `GET /for/:sku` answers a list of reviews. */
const reviewsBackend = await startBackend((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify([{ stars: 5, text: 'crisp' }]));
});
const reviewsResolver = new StaticResolver([]); // no instance yet

// One client for every downstream service: a request goes to the cluster named by its URL's host.
const downstream = createClient({
  clusters: {
    inventory: { target: inventoryBackends.map((b) => b.address), timeoutMs: 2_000 },
    reviews: { target: reviewsResolver, waitForReadyTimeoutMs: 200 },
  },
});

/** An upstream answered with an error status we pass on. */
class UpstreamStatus extends Error {
  constructor(readonly status: number) {
    super(`upstream answered ${status}`);
  }
}

const app = express();

// undici.request through the balancer: the lowest-overhead path.
app.get('/stock/:sku', async (req, res) => {
  const { statusCode, body } = await request(`http://inventory/stock/${encodeURIComponent(req.params.sku)}`, {
    dispatcher: downstream.dispatcher,
  });
  const data = (await body.json()) as { stock: number | null; backend: string };
  if (statusCode === 404) throw new UpstreamStatus(404);
  res.json({ sku: req.params.sku, stock: data.stock, servedBy: data.backend });
});

// client.fetch: the same balancer behind the fetch API. Express 5 sends a rejected promise to the error handler.
app.get('/product/:sku', async (req, res) => {
  const sku = encodeURIComponent(req.params.sku);
  const [stock, reviews] = await Promise.all([
    downstream.fetch(`http://inventory/stock/${sku}`).then((r) => r.json() as Promise<{ stock: number | null }>),
    downstream.fetch(`http://reviews/for/${sku}`).then((r) => r.json() as Promise<unknown[]>),
  ]);
  res.json({ sku: req.params.sku, stock: stock.stock, reviews });
});

app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
  if (err instanceof UpstreamStatus) {
    res.status(err.status).json({ error: 'not found' });
    return;
  }
  // statusForError: 503 when nothing could take the call, 504 when out of time, 502 when an endpoint broke it, ...
  // findSidecarlessError looks inside fetch's TypeError('fetch failed') for the stable code.
  const code = findSidecarlessError(err)?.code;
  const status = statusForError(err);
  if (status === 503) res.set('retry-after', '1');
  res.status(status).json({ error: code ?? 'internal error' });
});

const server = await new Promise<http.Server>((resolve) => {
  const s = app.listen(0, '127.0.0.1', () => resolve(s));
});
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
console.log(`express app on ${base}`);

try {
  for (const path of ['/stock/apple', '/stock/plum', '/stock/pear', '/stock/kiwi', '/product/apple']) {
    const res = await fetch(`${base}${path}`);
    console.log(`GET ${path} -> ${res.status} ${await res.text()}`);
  }
  // A reviews instance comes up: the resolver reports it, and the same request now succeeds.
  reviewsResolver.update([reviewsBackend.address]);
  const reviews = () => downstream.stats().clusters.find((c) => c.name === 'reviews')?.endpoints.length ?? 0;
  for (let i = 0; i < 100 && reviews() === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const res = await fetch(`${base}/product/apple`);
  console.log(`after a reviews instance appeared: GET /product/apple -> ${res.status} ${await res.text()}`);
} finally {
  await new Promise((r) => server.close(r));
  await downstream.close();
  await Promise.all([...inventoryBackends, reviewsBackend].map(({ server }) => new Promise((r) => server.close(r))));
}
