// Observability: stats, diagnostics_channel events, and the Prometheus and OpenTelemetry adapters, checked against
// real traffic on loopback.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import { type Client, createClient, histogramQuantile } from '../../src/index.js';
import { registerOpenTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { registerPrometheusMetrics } from '../../src/metrics/prometheus.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

describe('metrics', () => {
  const backends: Backend[] = [];
  let client: Client;
  before(async () => {
    backends.push(await startBackend('ok-1'), await startBackend('ok-2'));
    backends.push(
      await startBackend('teapot', (req, res) => {
        req.resume();
        res.writeHead(req.url === '/missing' ? 404 : 200);
        res.end();
      }),
    );
    client = createClient({ target: backends.map((b) => b.address), name: 'inventory', random: () => 0 });
  });
  after(async () => {
    await client.close();
    await stopAll(backends);
  });

  it('publishes request, pick and resolve events on diagnostics channels', async () => {
    const seen: Record<string, unknown[]> = { start: [], end: [], pick: [] };
    const on = (key: string) => (m: unknown) => seen[key]?.push(m);
    const handlers = {
      'sidecarless:request:start': on('start'),
      'sidecarless:request:end': on('end'),
      'sidecarless:pick': on('pick'),
    };
    for (const [name, fn] of Object.entries(handlers)) diagnostics.subscribe(name, fn);
    try {
      await (await client.fetch('http://inventory/items?x=1')).arrayBuffer();
    } finally {
      for (const [name, fn] of Object.entries(handlers)) diagnostics.unsubscribe(name, fn);
    }
    const clusterId = client.stats().clusters[0]?.id;
    assert.deepEqual(seen.start, [
      { cluster: 'inventory', clusterId, method: 'GET', authority: 'inventory', path: '/items?x=1' },
    ]);
    const end = seen.end?.[0] as { statusCode: number; attempts: number; durationMs: number; error: unknown };
    assert.equal(end.statusCode, 200);
    assert.equal(end.attempts, 1);
    assert.equal(end.error, undefined);
    assert.ok(end.durationMs >= 0);
    assert.equal((seen.pick?.[0] as { endpoint: string } | undefined)?.endpoint, backends[0]?.address);
    assert.equal((seen.pick?.[0] as { clusterId: number } | undefined)?.clusterId, clusterId);
  });

  it('counts per cluster and per endpoint in stats, with latency histograms', async () => {
    for (let i = 0; i < 8; i++) await (await client.fetch('http://inventory/')).arrayBuffer();
    // Round robin from the first endpoint: the teapot (third) answers 404 to /missing.
    await (await client.fetch('http://inventory/missing')).arrayBuffer();
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.equal(stats.requests.total, 10);
    assert.equal(stats.requests.statusClasses['2xx'] + stats.requests.statusClasses['4xx'], 10);
    assert.equal(stats.requests.latency.count, 10);
    assert.ok(histogramQuantile(stats.requests.latency, 0.5) > 0);
    assert.equal(
      stats.endpoints.reduce((n, e) => n + e.attempts, 0),
      10,
    );
    for (const e of stats.endpoints) assert.equal(e.latency.count, e.attempts);
  });

  it('Prometheus: a scrape reports the real numbers', async () => {
    const registry = new Registry();
    const registration = registerPrometheusMetrics(client, { registry, labels: { service: 'frontend' } });
    try {
      const before = client.stats().clusters[0]?.requests.total ?? 0;
      await (await client.fetch('http://inventory/')).arrayBuffer();
      const text = await registry.metrics();
      assert.match(
        text,
        new RegExp(`sidecarless_requests_total\\{service="frontend",cluster="inventory"\\} ${before + 1}\\n`),
      );
      assert.match(text, /# TYPE sidecarless_request_duration_seconds histogram/);
      assert.match(
        text,
        new RegExp(
          `sidecarless_request_duration_seconds_count\\{service="frontend",cluster="inventory"\\} ${before + 1}`,
        ),
      );
      assert.match(
        text,
        /sidecarless_request_duration_seconds_bucket\{service="frontend",cluster="inventory",le="\+Inf"\}/,
      );
      for (const b of backends) {
        assert.match(
          text,
          new RegExp(
            `sidecarless_endpoint_attempts_total\\{service="frontend",cluster="inventory",endpoint="${b.address}"\\} \\d+`,
          ),
        );
      }
      assert.match(text, /sidecarless_endpoints\{service="frontend",cluster="inventory"\} 3/);
      assert.throws(() => registerPrometheusMetrics(client, { registry }), /already been registered/);
    } finally {
      registration.unregister();
    }
    assert.equal(await registry.metrics(), '\n');
  });

  it('OpenTelemetry: the duration histogram and observable instruments carry real numbers', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    const registration = registerOpenTelemetryMetrics(client, { meter: provider.getMeter('test') });
    // Another client whose cluster has the same name: its requests must not reach this registration.
    const twin = createClient({ target: backends.map((b) => b.address), name: 'inventory' });
    try {
      await (await client.fetch('http://inventory:8080/a')).arrayBuffer();
      await (await twin.fetch('http://inventory:8080/twin')).arrayBuffer();
      await (await client.fetch('http://inventory:8080/b', { method: 'POST', body: 'x' })).arrayBuffer();
      await (await twin.fetch('http://inventory:8080/twin')).arrayBuffer();
      assert.notEqual(twin.stats().clusters[0]?.id, client.stats().clusters[0]?.id);
      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      const find = (name: string) => all.find((m) => m.descriptor.name === name);
      const duration = find('http.client.request.duration');
      assert.ok(duration, 'histogram exported');
      const points = duration.dataPoints as unknown as {
        attributes: Record<string, unknown>;
        value: { count: number };
      }[];
      const total = points.reduce((n, p) => n + p.value.count, 0);
      assert.equal(total, 2);
      assert.ok(
        points.every((p) => p.attributes['server.address'] === 'inventory' && p.attributes['server.port'] === 8080),
      );
      assert.deepEqual(points.map((p) => p.attributes['http.request.method']).sort(), ['GET', 'POST']);
      const requests = find('sidecarless.requests');
      const value = (requests?.dataPoints[0] as { value: number } | undefined)?.value;
      assert.equal(value, client.stats().clusters[0]?.requests.total);
      assert.equal((find('sidecarless.endpoints')?.dataPoints[0] as { value: number } | undefined)?.value, 3);
    } finally {
      registration.unregister();
      await Promise.all([provider.shutdown(), twin.close()]);
    }
  });
});
