/**
 * A service that exposes Prometheus metrics: it calls a downstream (three backends) through a sidecarless client
 * and serves `GET /metrics` from a prom-client registry the client's metrics are registered on (in the OpenMetrics
 * format when the scraper's Accept header asks for it).
 *
 * The example sends a bounded number of requests through the service, scrapes its own /metrics once, prints the
 * sidecarless lines, and exits. With `--serve` it stays up after that, printing the address of /metrics (scrape it,
 * or send traffic to the service at the same address) until SIGINT or SIGTERM, then closes everything and exits.
 *
 * Run: node --import tsx examples/prometheus-metrics.ts [--serve]
 * In your own code, import from 'sidecarless' and 'sidecarless/prometheus' instead of '../src/...'.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type OpenMetricsContentType, Registry } from 'prom-client';
import { createClient } from '../src/index.js';
import { registerPrometheusMetrics } from '../src/exporters/prometheus.js';

const listen = (server: http.Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );

// The downstream: three backends; one answers 503 to every fifth request.
let n = 0;
const downstream = [1, 2, 3].map((i) =>
  http.createServer((req, res) => {
    req.resume();
    res.writeHead(i === 3 && ++n % 5 === 0 ? 503 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ stock: i * 10 }));
  }),
);
const addresses = await Promise.all(downstream.map(listen));

const inventory = createClient({ target: addresses, name: 'inventory' });
// Two registries with the same metrics: Prometheus text, and OpenMetrics for scrapers that ask for it (Prometheus
// does, in its Accept header). A client can be registered on several registries, and several clients on one.
const text = new Registry();
const openMetrics = new Registry<OpenMetricsContentType>();
openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
for (const registry of [text, openMetrics]) {
  // Per-endpoint series are off unless asked for (endpoint addresses change on every deploy); on here to show them.
  registerPrometheusMetrics(inventory, { registry, client: 'inventory', endpointMetrics: true });
}

const service = http.createServer(async (req, res) => {
  if (req.url === '/metrics') {
    const registry = req.headers.accept?.includes('application/openmetrics-text') === true ? openMetrics : text;
    res.setHeader('content-type', registry.contentType);
    res.end(await registry.metrics());
    return;
  }
  try {
    const upstream = await inventory.fetch('http://inventory/stock');
    res.end(await upstream.text());
  } catch (err) {
    res.writeHead(502);
    res.end(String(err));
  }
});
const serviceAddress = await listen(service);

for (let i = 0; i < 30; i++) await (await fetch(`http://${serviceAddress}/buy`)).text();
const metrics = await (await fetch(`http://${serviceAddress}/metrics`)).text();
const wanted =
  /^sidecarless_(requests_total|responses_total|retries_total|endpoints|request_duration_seconds_count|endpoint_attempts_total|endpoint_retries_total)\{/;
console.log(
  metrics
    .split('\n')
    .filter((line) => wanted.test(line))
    .join('\n'),
);

if (process.argv.includes('--serve')) {
  console.log(`serving http://${serviceAddress}/metrics`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

await inventory.close();
await Promise.all([service, ...downstream].map((s) => new Promise((r) => s.close(r))));
