// Regression tests from an adversarial pass over the metrics exporters, stats and tracing (wave 5 probe): series that
// were dropped, merged or double counted, series that grew without bound, and a request that lost its caller's trace.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { Registry } from 'prom-client';
import { createClient, isSidecarlessError, StaticResolver } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import { backendsForFile } from '../helpers/backends.js';

const backend = backendsForFile();

interface Point {
  readonly attributes: Record<string, unknown>;
  readonly value: number | { count: number; sum?: number };
}

function otel(): { meter: ReturnType<MeterProvider['getMeter']>; provider: MeterProvider; points: Points } {
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  const points: Points = async (name) => {
    const { resourceMetrics } = await reader.collect();
    const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name);
    return metrics.flatMap((m) => m.dataPoints as unknown as Point[]);
  };
  return { meter: provider.getMeter('probe'), provider, points };
}
type Points = (name: string) => Promise<Point[]>;

const count = (p: Point | undefined): number | undefined =>
  p === undefined ? undefined : typeof p.value === 'number' ? p.value : p.value.count;

function assertInvalid(fn: () => unknown, option: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSidecarlessError(err), `expected a SidecarlessError, got ${String(err)}`);
    assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION', err.message);
    assert.equal((err as { option?: string }).option, option, err.message);
    return true;
  });
}

/** A server that takes requests and never answers them (the caller gives up first). */
async function hanging(): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req) => req.resume());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('opentelemetry: endpoint latency of an endpoint that joined after a collection', () => {
  it('records sidecarless.endpoint.attempt.duration from its first attempt, not from the next collection on', async () => {
    const [a, b] = [await backend('otel-join-a'), await backend('otel-join-b')];
    const resolver = new StaticResolver([a.address]);
    const client = createClient({ name: 'svc', target: resolver, picker: 'round-robin' });
    const { meter, provider, points } = otel();
    registerOpenTelemetryMetrics(client, { meter, endpointMetrics: true });
    try {
      for (let i = 0; i < 2; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      await points('sidecarless.endpoint.attempt.duration'); // a periodic reader's collection
      resolver.update([a.address, b.address]);
      for (let i = 0; i < 50 && client.stats().clusters[0]?.endpoints.length !== 2; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      for (let i = 0; i < 10; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      const attempts = client.stats().clusters[0]?.endpoints.find((e) => e.key === b.address)?.attempts;
      assert.ok(attempts !== undefined && attempts > 0, 'the joined endpoint took attempts');
      const durations = await points('sidecarless.endpoint.attempt.duration');
      const joined = durations.find((p) => p.attributes['sidecarless.endpoint'] === b.address);
      assert.equal(count(joined), attempts, 'every attempt on the joined endpoint is in its histogram');
    } finally {
      await client.close();
      await provider.shutdown();
    }
  });
});

describe('opentelemetry: one meter, clients whose series would be one', () => {
  it('refuses the same client twice on a meter, until the first registration ends', async () => {
    const s = await backend('otel-twice');
    const client = createClient({ name: 'users', target: [s.address] });
    const { meter, provider, points } = otel();
    try {
      const first = registerOpenTelemetryMetrics(client, { meter });
      assertInvalid(() => registerOpenTelemetryMetrics(client, { meter }), 'meter');
      for (let i = 0; i < 4; i++) await (await client.fetch('http://users/')).arrayBuffer();
      const attempts = await points('sidecarless.request.attempts');
      assert.equal(count(attempts[0]), 4, 'four requests, each counted once');
      // Another meter is another scope: the same client may be registered there.
      registerOpenTelemetryMetrics(client, { meter: provider.getMeter('other') }).unregister();
      first.unregister();
      registerOpenTelemetryMetrics(client, { meter }).unregister();
    } finally {
      await client.close();
      await provider.shutdown();
    }
  });

  it('refuses a second client with a cluster of the same name on a meter; on its own meter it registers', async () => {
    const s = await backend('otel-same-name');
    const a = createClient({ name: 'users', target: [s.address] });
    const b = createClient({ name: 'users', target: [s.address] });
    const c = createClient({ name: 'orders', target: [s.address] });
    const { meter, provider, points } = otel();
    try {
      registerOpenTelemetryMetrics(a, { meter });
      assertInvalid(() => registerOpenTelemetryMetrics(b, { meter }), 'meter');
      registerOpenTelemetryMetrics(c, { meter }); // another name: its own series
      registerOpenTelemetryMetrics(b, { meter: provider.getMeter('b') });
      for (let i = 0; i < 3; i++) await (await a.fetch('http://users/')).arrayBuffer();
      for (let i = 0; i < 5; i++) await (await b.fetch('http://users/')).arrayBuffer();
      const requests = await points('sidecarless.requests');
      const users = requests.filter((p) => p.attributes['sidecarless.cluster'] === 'users');
      assert.deepEqual(users.map(count).sort(), [3, 5], 'one series per client, each with its own count');
      // A closed client's registration ends: the name is free again on the meter.
      await a.close();
      registerOpenTelemetryMetrics(b, { meter }).unregister();
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
      await provider.shutdown();
    }
  });
});

describe('caller-chosen error codes do not become metric series', () => {
  it('abort reasons and request body errors with codes of their own count as _CALLER, in stats and both exporters', async () => {
    const hang = await hanging();
    const client = createClient({ name: 'svc', target: [hang.address], outlierDetection: false });
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry });
    const { meter, provider, points } = otel();
    registerOpenTelemetryMetrics(client, { meter });
    const request = (init: { signal?: AbortSignal; method?: string; body?: Readable }) =>
      client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET', ...init }).then(
        () => assert.fail('the request should fail'),
        (err: unknown) => (err as { code?: unknown }).code,
      );
    try {
      const seen = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const controller = new AbortController();
          const reason = Object.assign(new Error('cancelled by the user'), { code: `CANCELLED_${i}` });
          setTimeout(() => controller.abort(reason), 5);
          return request({ signal: controller.signal });
        }),
      );
      for (let i = 0; i < 5; i++) {
        const body = new Readable({
          read() {
            this.destroy(Object.assign(new Error('body broke'), { code: `EBODY_${i}` }));
          },
        });
        seen.push(await request({ method: 'POST', body }));
      }
      assert.equal(new Set(seen).size, 105, 'the caller still gets its own errors, codes and all');
      const stats = client.stats().clusters[0]?.requests;
      assert.equal(stats?.callerErrors, 105);
      assert.deepEqual(stats?.errors, { _CALLER: 105 });
      const text = await registry.metrics();
      const series = text.split('\n').filter((l) => l.startsWith('sidecarless_request_errors_total{'));
      assert.deepEqual(series, [
        'sidecarless_request_errors_total{client="svc",upstream_cluster="svc",error_code="_CALLER"} 105',
      ]);
      const types = new Set((await points('sidecarless.request.duration')).map((p) => p.attributes['error.type']));
      assert.deepEqual([...types], ['_CALLER']);
    } finally {
      await client.destroy();
      await hang.close();
      await provider.shutdown();
    }
  });

  it("a plain AbortController.abort() keeps the platform's code", async () => {
    const hang = await hanging();
    const client = createClient({ name: 'svc', target: [hang.address] });
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 5);
      const signal = controller.signal;
      await assert.rejects(client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET', signal }));
      assert.deepEqual(Object.keys(client.stats().clusters[0]?.requests.errors ?? {}), ['AbortError']);
    } finally {
      await client.destroy();
      await hang.close();
    }
  });
});

describe('prometheus: histogram series of clusters and endpoints that come and go', () => {
  const durationCount = async (registry: Registry, cluster: string): Promise<number | undefined> => {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'sidecarless_request_duration_seconds');
    const values = (metric?.values ?? []) as { metricName?: string; labels: Record<string, unknown>; value: number }[];
    return values.find((v) => v.metricName?.endsWith('_count') === true && v.labels.upstream_cluster === cluster)
      ?.value;
  };

  it('a discovered cluster closed when idle keeps its request histogram across a scrape, and goes on counting when made again', async () => {
    const b = await backend('idle-scrape');
    const client = createClient({ discovery: { domain: 'svc.test', target: () => [b.address], idleTimeoutMs: 50 } });
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry, client: 'disc' });
    try {
      for (let i = 0; i < 3; i++) await (await client.fetch('http://a.svc.test/')).arrayBuffer();
      assert.equal(await durationCount(registry, 'a.svc.test'), 3);
      for (let i = 0; i < 200 && client.stats().clusters.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(client.stats().clusters.length, 0, 'closed when idle');
      assert.equal(await durationCount(registry, 'a.svc.test'), 3, 'a scrape while it is gone keeps the series');
      for (let i = 0; i < 2; i++) await (await client.fetch('http://a.svc.test/')).arrayBuffer();
      assert.equal(await durationCount(registry, 'a.svc.test'), 5, 'made again, it goes on counting');
    } finally {
      await client.close();
    }
    assert.equal(await durationCount(registry, 'a.svc.test'), undefined, 'the client closed: its series are gone');
  });

  it('endpoint latency series of endpoints that left go without a scrape', async () => {
    const s = await backend('churn-stay');
    const resolver = new StaticResolver([s.address]);
    const client = createClient({
      name: 'svc',
      target: resolver,
      outlierDetection: false,
      retry: false,
      picker: 'round-robin',
    });
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    const latency = registry.getSingleMetric('sidecarless_endpoint_latency_seconds');
    const held = () => Object.keys((latency as unknown as { hashMap: object }).hashMap).length;
    const closed = await hanging();
    const port = closed.address.split(':')[1];
    await closed.close();
    try {
      for (let n = 1; n <= 60; n++) {
        // One endpoint replaced each round: a closed port on another loopback address, refused at once.
        const gone = `127.0.0.${1 + n}:${port}`;
        resolver.update([s.address, gone]);
        for (let i = 0; i < 50 && client.stats().clusters[0]?.endpoints[1]?.key !== gone; i++) {
          await new Promise((r) => setTimeout(r, 2));
        }
        for (let i = 0; i < 2; i++) {
          await client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET' }).then(
            (r: { body: { text(): Promise<string> } }) => r.body.text(),
            () => undefined,
          );
        }
        assert.ok(held() <= 2, `round ${n}: ${held()} latency series held for 2 endpoints`);
      }
    } finally {
      await client.close();
    }
  });
});

describe('tracing: the caller context of a request that waited for an endpoint', () => {
  it("sends its attempt in the caller's async context, not in that of the resolver update that released it", async () => {
    const s = await backend('queued-context');
    const resolver = new StaticResolver([]); // no endpoint yet: requests wait in the queue
    const client = createClient({ name: 'svc', target: resolver });
    const als = new AsyncLocalStorage<string>();
    const sent: (string | undefined)[] = [];
    const onCreate = () => sent.push(als.getStore());
    diagnostics.subscribe('undici:request:create', onCreate);
    try {
      const call = (caller: string) =>
        als.run(caller, async () => {
          const r = await client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET' });
          await r.body.text();
        });
      const pending = [call('caller-a'), call('caller-b')];
      await new Promise((r) => setTimeout(r, 20));
      als.run('config-reload', () => resolver.update([s.address]));
      await Promise.all(pending);
      assert.deepEqual(sent.sort(), ['caller-a', 'caller-b']);
    } finally {
      diagnostics.unsubscribe('undici:request:create', onCreate);
      await client.close();
    }
  });
});
