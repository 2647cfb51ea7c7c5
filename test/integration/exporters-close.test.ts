// A closed client's metrics (probe, wave 5): a service creating and closing clients (per tenant, per test) must not
// leak series. When a client closes, its Prometheus registration ends and its series leave the registry; its
// OpenTelemetry callback stops observing it and is removed. Through the package entry points.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { Registry } from 'prom-client';
import { type Client, createClient } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';

const requestEnd = diagnostics.channel('sidecarless:request:end');
const attemptEnd = diagnostics.channel('sidecarless:attempt:end');
const tick = () => new Promise((resolve) => setImmediate(resolve));

let backends: Backend[];
before(async () => {
  backends = await startBackends(1);
});
after(() => stopAll(backends));

function tenant(name: string): Client {
  return createClient({ target: backends.map((b) => b.address), name });
}

async function get(client: Client, name: string): Promise<void> {
  await (await client.fetch(`http://${name}/`)).arrayBuffer();
}

describe('Prometheus: a closed client leaves the registry', () => {
  it('close() removes its series (histograms and collected ones) before its promise resolves; others stay', async () => {
    const registry = new Registry();
    const a = tenant('tenant-a');
    const b = tenant('tenant-b');
    registerPrometheusMetrics(a, { registry, endpointMetrics: true });
    const rb = registerPrometheusMetrics(b, { registry, endpointMetrics: true });
    try {
      await get(a, 'tenant-a');
      await get(b, 'tenant-b');
      let text = await registry.metrics();
      assert.match(text, /sidecarless_request_duration_seconds_count\{client="tenant-a"/);
      assert.match(text, /sidecarless_endpoint_attempts_total\{client="tenant-a"/);
      await a.close();
      text = await registry.metrics();
      assert.doesNotMatch(text, /client="tenant-a"/);
      assert.match(text, /sidecarless_request_duration_seconds_count\{client="tenant-b"/);
      assert.match(text, /sidecarless_requests_total\{client="tenant-b"/);
    } finally {
      rb.unregister();
      await b.close();
      await a.close();
    }
    assert.deepEqual(await registry.getMetricsAsJSON(), [], 'the metric objects left with the last client');
  });

  it('regression (closed clients leaked series): 50 tenants made and closed leave nothing behind', async () => {
    const registry = new Registry();
    const subscribed = requestEnd.hasSubscribers || attemptEnd.hasSubscribers;
    for (let i = 0; i < 50; i++) {
      const client = tenant(`t${i}`);
      registerPrometheusMetrics(client, { registry, endpointMetrics: i % 2 === 0 });
      if (i % 10 === 0) await get(client, `t${i}`);
      // Every other one destroyed rather than closed: both end the registration.
      await (i % 3 === 0 ? client.destroy() : client.close());
    }
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
    if (!subscribed) {
      assert.equal(requestEnd.hasSubscribers, false, 'channel subscriptions released');
      assert.equal(attemptEnd.hasSubscribers, false, 'channel subscriptions released');
    }
  });

  it('unregister() after close does nothing; a client registered after it closed is dropped at once', async () => {
    const registry = new Registry();
    const a = tenant('late');
    const registration = registerPrometheusMetrics(a, { registry });
    await a.close();
    registration.unregister();
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
    const late = registerPrometheusMetrics(a, { registry });
    await tick();
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
    late.unregister();
    // The label is free again for a new client of the same name.
    const again = tenant('late');
    registerPrometheusMetrics(again, { registry });
    assert.match(await registry.metrics(), /client="late"/);
    await again.close();
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
  });
});

describe('OpenTelemetry: a closed client is observed no more', () => {
  it('close() removes its observable callback and unsubscribes its histograms; the other client still reports', async () => {
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter('test');
    const a = tenant('otel-a');
    const b = tenant('otel-b');
    let observedA = 0;
    const statsA = a.stats.bind(a);
    // Count how often the exporter reads the closed client.
    a.stats = () => {
      observedA++;
      return statsA();
    };
    registerOpenTelemetryMetrics(a, { meter, attributes: { tenant: 'a' } });
    const rb = registerOpenTelemetryMetrics(b, { meter, attributes: { tenant: 'b' } });
    try {
      await get(a, 'otel-a');
      await get(b, 'otel-b');
      const tenants = async () => {
        const { resourceMetrics } = await reader.collect();
        const requests = resourceMetrics.scopeMetrics
          .flatMap((s) => s.metrics)
          .find((m) => m.descriptor.name === 'sidecarless.requests');
        return (requests?.dataPoints ?? []).map((p) => p.attributes.tenant).sort();
      };
      assert.deepEqual(await tenants(), ['a', 'b']);
      await a.close();
      const before = observedA;
      await tenants();
      await get(b, 'otel-b');
      await tenants();
      assert.equal(observedA, before, 'the closed client is not read any more');
      const { resourceMetrics } = await reader.collect();
      const durations = resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .find((m) => m.descriptor.name === 'sidecarless.request.duration');
      const countA = (durations?.dataPoints ?? [])
        .filter((p) => p.attributes.tenant === 'a')
        .reduce((n, p) => n + (p.value as { count: number }).count, 0);
      assert.equal(countA, 1, 'no request of the closed client recorded after close');
    } finally {
      rb.unregister();
      await b.close();
      await provider.shutdown();
    }
  });
});

describe('client.onClose', () => {
  it('calls each listener once when close() or destroy() has finished, before its promise resolves', async () => {
    const client = tenant('on-close');
    const calls: string[] = [];
    const seen = () => [...calls];
    client.onClose(() => {
      throw new Error('a failing listener is its own business');
    });
    client.onClose(() => calls.push('first'));
    client.onClose(() => calls.push('disposed')).dispose();
    const closing = client.close();
    assert.deepEqual(seen(), [], 'not before the client has closed');
    await closing;
    assert.deepEqual(seen(), ['first']);
    await client.destroy();
    assert.deepEqual(seen(), ['first'], 'once');
    client.onClose(() => calls.push('late'));
    await tick();
    assert.deepEqual(seen(), ['first', 'late'], 'a listener added after the close is called on a microtask');
  });
});
