// Regression tests from an adversarial pass over the public entry points (wave 4 probe): the exporters' entry
// points check their arguments when called, with typed errors, rather than failing later at collection time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { Counter, Registry } from 'prom-client';
import { createClient, isSidecarlessError } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import { backendsForFile } from '../helpers/backends.js';

const backend = backendsForFile();

function assertInvalid(fn: () => unknown, option?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSidecarlessError(err), `expected a SidecarlessError, got ${String(err)}`);
    assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION', err.message);
    if (option !== undefined) assert.equal((err as { option?: string }).option, option, err.message);
    return true;
  });
}

const throwingProxy = (): object =>
  new Proxy(
    {},
    {
      get() {
        throw new Error('boom');
      },
      ownKeys() {
        throw new Error('boom');
      },
    },
  );

describe('probe: registerPrometheusMetrics and registerOpenTelemetryMetrics refuse bad arguments when called', () => {
  it('a client that is not a Client, null options, a Proxy, a registry or meter of the wrong kind, bad attributes', async () => {
    const client = createClient({ target: 'static://127.0.0.1:1', name: 'svc' });
    try {
      for (const notClient of [null, undefined, {}, 5]) {
        assertInvalid(() => registerPrometheusMetrics(notClient as never, { registry: new Registry() }));
        assertInvalid(() => registerOpenTelemetryMetrics(notClient as never));
      }
      assertInvalid(() => registerPrometheusMetrics(client, null as never));
      assertInvalid(() => registerPrometheusMetrics(client, throwingProxy() as never));
      assertInvalid(() => registerOpenTelemetryMetrics(client, throwingProxy() as never));
      assertInvalid(() => registerPrometheusMetrics(client, { registry: 5 as never }), 'registry');
      assertInvalid(() => registerPrometheusMetrics(client, { registry: {} as never }), 'registry');
      assertInvalid(() => registerOpenTelemetryMetrics(client, { meter: {} as never }), 'meter');
      assertInvalid(() => registerOpenTelemetryMetrics(client, { attributes: 5 as never }), 'attributes');
      assertInvalid(() => registerOpenTelemetryMetrics(client, { attributes: { a: {} as never } }), 'attributes.a');
      // Valid arguments still register.
      registerPrometheusMetrics(client, { registry: new Registry() }).unregister();
      registerOpenTelemetryMetrics(client, { attributes: { 'service.name': 'x', n: 1, b: true } }).unregister();
    } finally {
      await client.close();
    }
  });
});

describe('registerPrometheusMetrics: a metric name taken on the registry', () => {
  it("throws SIDECARLESS_INVALID_OPTION (prefix) and leaves none of the exporter's metrics behind", async () => {
    const client = createClient({ target: 'static://127.0.0.1:1', name: 'svc' });
    const registry = new Registry();
    try {
      // A name the exporter registers late in its list: the metrics before it would be registered by then.
      const mine = new Counter({ name: 'sidecarless_retries_total', help: "the user's own", registers: [registry] });
      assert.throws(
        () => registerPrometheusMetrics(client, { registry }),
        (err: unknown) => {
          assert.ok(isSidecarlessError(err), `expected a SidecarlessError, got ${String(err)}`);
          assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
          assert.equal((err as { option?: string }).option, 'prefix');
          assert.match(err.message, /"sidecarless_retries_total"/);
          return true;
        },
      );
      assert.deepEqual(
        registry.getMetricsAsArray().map((m) => m.name),
        ['sidecarless_retries_total'],
        "only the user's metric is left",
      );
      assert.equal(registry.getSingleMetric('sidecarless_retries_total'), mine);
      // Once the name is free again, the registration goes through.
      registry.removeSingleMetric('sidecarless_retries_total');
      const registration = registerPrometheusMetrics(client, { registry });
      assert.ok(registry.getSingleMetric('sidecarless_requests_total') !== undefined);
      registration.unregister();
      assert.equal(registry.getMetricsAsArray().length, 0);
    } finally {
      await client.close();
    }
  });

  // Probe 19: the endpoint metrics a failed registration added stayed in the registry's shared set, and every later
  // registration there (with endpoint metrics or not) failed on the same clash.
  it('a failed registration with endpointMetrics leaves the next one, without them, free to go', async () => {
    const first = createClient({ target: 'static://127.0.0.1:3', name: 'first' });
    const client = createClient({ target: 'static://127.0.0.1:1', name: 'svc' });
    const other = createClient({ target: 'static://127.0.0.1:2', name: 'other' });
    const registry = new Registry();
    try {
      registerPrometheusMetrics(first, { registry }); // the registry's shared set outlives the failed call
      new Counter({ name: 'sidecarless_endpoint_attempts_total', help: "the user's own", registers: [registry] });
      assert.throws(() => registerPrometheusMetrics(client, { registry, endpointMetrics: true }), {
        code: 'SIDECARLESS_INVALID_OPTION',
      });
      const registration = registerPrometheusMetrics(other, { registry });
      assert.ok(registry.getSingleMetric('sidecarless_requests_total') !== undefined);
      registration.unregister();
    } finally {
      await Promise.all([first.close(), client.close(), other.close()]);
    }
  });

  it('takes any object with the three registry methods it uses (a registry of another prom-client version)', async () => {
    const client = createClient({ target: 'static://127.0.0.1:1', name: 'svc' });
    const inner = new Registry();
    const calls: string[] = [];
    const structural = {
      registerMetric: (m: Parameters<Registry['registerMetric']>[0]) => {
        calls.push('register');
        inner.registerMetric(m);
      },
      getSingleMetric: (name: string) => inner.getSingleMetric(name),
      removeSingleMetric: (name: string) => {
        calls.push('remove');
        inner.removeSingleMetric(name);
      },
    };
    try {
      const registration = registerPrometheusMetrics(client, { registry: structural });
      assert.ok((await inner.metrics()).includes('sidecarless_requests_total'));
      registration.unregister();
      assert.ok(calls.includes('register') && calls.includes('remove'));
      assert.equal(inner.getMetricsAsArray().length, 0);
      assertInvalid(
        () =>
          registerPrometheusMetrics(client, { registry: { ...structural, removeSingleMetric: undefined } as never }),
        'registry',
      );
    } finally {
      await client.close();
    }
  });
});

describe('exporters and clusters that come and go', () => {
  const read = async (registry: Registry, name: string, cluster: string): Promise<number | undefined> => {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (metric?.values ?? []) as { metricName?: string; labels: Record<string, unknown>; value: number }[];
    return values.find((v) => v.metricName === `${name}_count` && v.labels.upstream_cluster === cluster)?.value;
  };

  it("prometheus: a discovered cluster made again under its name keeps its request histogram (it was removed as the old one's)", async () => {
    const b = await backend('rediscovered');
    const client = createClient({ discovery: { domain: 'svc.local', maxClusters: 1, target: () => [b.address] } });
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry });
    try {
      for (let i = 0; i < 5; i++) await (await client.fetch('http://a.svc.local/')).arrayBuffer();
      assert.equal(await read(registry, 'sidecarless_request_duration_seconds', 'a.svc.local'), 5);
      // b takes the only slot (a is closed, idle), then a is made again.
      await (await client.fetch('http://b.svc.local/')).arrayBuffer();
      for (let i = 0; i < 2; i++) await (await client.fetch('http://a.svc.local/')).arrayBuffer();
      assert.equal(
        await read(registry, 'sidecarless_request_duration_seconds', 'a.svc.local'),
        7,
        'the series goes on',
      );
      await (await client.fetch('http://a.svc.local/')).arrayBuffer();
      assert.equal(await read(registry, 'sidecarless_request_duration_seconds', 'a.svc.local'), 8);
    } finally {
      await client.close();
    }
  });

  it('opentelemetry: maxEndpointsPerCluster bounds the endpoint histogram from the first attempt, before any collection', async () => {
    const backends = await Promise.all(Array.from({ length: 6 }, (_, i) => backend(`otel-bound-${i}`)));
    const client = createClient({ target: backends.map((b) => b.address), picker: 'round-robin' });
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    registerOpenTelemetryMetrics(client, {
      meter: provider.getMeter('probe'),
      endpointMetrics: true,
      maxEndpointsPerCluster: 2,
    });
    try {
      await client.ready();
      for (let i = 0; i < 18; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      const { resourceMetrics } = await reader.collect();
      const metric = resourceMetrics.scopeMetrics
        .flatMap((m) => m.metrics)
        .find((m) => m.descriptor.name === 'sidecarless.endpoint.attempt.duration');
      const endpoints = new Set(metric?.dataPoints.map((p) => p.attributes['sidecarless.endpoint']));
      assert.equal(endpoints.size, 2, [...endpoints].join());
    } finally {
      await client.close();
      await provider.shutdown();
    }
  });

  it('opentelemetry: discovered clusters that come and go between collections still get their endpoint latencies', async () => {
    const b = await backend('otel-churn');
    const client = createClient({ discovery: { domain: 'svc.local', maxClusters: 1, target: () => [b.address] } });
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    registerOpenTelemetryMetrics(client, { meter: provider.getMeter('churn'), endpointMetrics: true });
    try {
      // Each host evicts the one before (maxClusters 1); no collection runs meanwhile.
      for (let i = 0; i < 30; i++) await (await client.fetch(`http://h${i % 10}.svc.local/`)).arrayBuffer();
      const { resourceMetrics } = await reader.collect();
      const metric = resourceMetrics.scopeMetrics
        .flatMap((m) => m.metrics)
        .find((m) => m.descriptor.name === 'sidecarless.endpoint.attempt.duration');
      const counts = new Map<unknown, number>();
      for (const p of metric?.dataPoints ?? []) {
        const cluster = p.attributes['sidecarless.cluster'];
        counts.set(cluster, (counts.get(cluster) ?? 0) + (p.value as { count: number }).count);
      }
      assert.equal(counts.size, 10, [...counts.keys()].join());
      for (const [cluster, n] of counts) assert.equal(n, 3, String(cluster));
    } finally {
      await client.close();
      await provider.shutdown();
    }
  });
});
