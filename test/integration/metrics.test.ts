// Observability: stats, diagnostics_channel events, and the Prometheus and OpenTelemetry adapters, checked against
// real traffic on loopback.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { DataPointType, MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { type OpenMetricsContentType, Registry } from 'prom-client';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Client,
  createClient,
  createEndpoint,
  findSidecarlessError,
  type HealthEvent,
  histogramQuantile,
  type Resolver,
  ResolverError,
  type ResolverListener,
} from '../../src/index.js';
import { registerOpenTelemetryMetrics } from '../../src/exporters/opentelemetry.js';
import { registerPrometheusMetrics } from '../../src/exporters/prometheus.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';
import { FakeClock } from '../helpers/fake-clock.js';

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
      { cluster: 'inventory', clusterId, method: 'GET', scheme: 'http', authority: 'inventory', path: '/items?x=1' },
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

  it('Prometheus: a scrape reports the real numbers, labelled client and upstream_cluster', async () => {
    const registry = new Registry();
    const registration = registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    const labels = 'client="inventory",upstream_cluster="inventory"';
    try {
      const before = client.stats().clusters[0]?.requests.total ?? 0;
      await (await client.fetch('http://inventory/')).arrayBuffer();
      const text = await registry.metrics();
      assert.equal(sample(text, 'sidecarless_requests_total', labels), before + 1);
      assert.match(text, /# TYPE sidecarless_request_duration_seconds histogram/);
      // The histogram observes from registration on.
      assert.equal(sample(text, 'sidecarless_request_duration_seconds_count', labels), 1);
      assert.equal(sample(text, 'sidecarless_request_duration_seconds_bucket', `le="+Inf",${labels}`), 1);
      for (const b of backends) {
        assert.ok(
          sample(text, 'sidecarless_endpoint_attempts_total', `${labels},upstream_endpoint="${b.address}"`) > 0,
        );
      }
      assert.equal(sample(text, 'sidecarless_endpoints', labels), 3);
      // Regression: stats were cached for 50 ms, so a scrape right after another reported the old numbers.
      await (await client.fetch('http://inventory/')).arrayBuffer();
      assert.equal(sample(await registry.metrics(), 'sidecarless_requests_total', labels), before + 2);
      assert.ok(registration.names.includes('sidecarless_endpoint_attempts_total'));
      assert.ok(registration.names.includes('sidecarless_requests_total'));
    } finally {
      registration.unregister();
    }
    assert.equal(await registry.metrics(), '\n');
  });

  it('Prometheus: regression "resetMetrics() throws": every registry operation works', async () => {
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    await (await client.fetch('http://inventory/')).arrayBuffer();
    const labels = 'client="inventory",upstream_cluster="inventory"';
    const total = client.stats().clusters[0]?.requests.total ?? 0;
    const json = await registry.getMetricsAsJSON();
    const requests = json.find((m) => m.name === 'sidecarless_requests_total');
    assert.equal(requests?.type, 'counter');
    assert.deepEqual(requests?.values, [
      { value: total, labels: { client: 'inventory', upstream_cluster: 'inventory' } },
    ]);
    registry.resetMetrics();
    const afterReset = await registry.metrics();
    // Counters and gauges are read again from the stats; the histogram starts over, from the next request on.
    assert.equal(sample(afterReset, 'sidecarless_requests_total', labels), total);
    assert.doesNotMatch(afterReset, /sidecarless_request_duration_seconds_count/);
    await (await client.fetch('http://inventory/')).arrayBuffer();
    assert.equal(sample(await registry.metrics(), 'sidecarless_request_duration_seconds_count', labels), 1);
    registry.removeSingleMetric('sidecarless_endpoint_weight');
    assert.doesNotMatch(await registry.metrics(), /sidecarless_endpoint_weight/);
    registry.clear();
    assert.equal(await registry.metrics(), '\n');
    // Registering again after clear() puts the metrics back.
    const again = registerPrometheusMetrics(client, { registry, client: 'again' });
    assert.match(
      await registry.metrics(),
      /^sidecarless_requests_total\{client="again",upstream_cluster="inventory"\} /m,
    );
    assert.doesNotMatch(
      await registry.metrics(),
      /^sidecarless_endpoint_\w+\{client="again"/m,
      'per-endpoint series are off by default',
    );
    again.unregister();
  });

  it('Prometheus: regression "_total_total": OpenMetrics names each counter once, histograms and gauges as such', async () => {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const registration = registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    try {
      await (await client.fetch('http://inventory/')).arrayBuffer();
      for (let i = 0; i < 2; i++) {
        const text = await registry.metrics();
        assert.doesNotMatch(text, /_total_total/);
        assert.match(text, /^# TYPE sidecarless_requests counter$/m);
        assert.match(text, /^sidecarless_requests_total\{client="inventory",upstream_cluster="inventory"\} \d+$/m);
        assert.match(text, /^# TYPE sidecarless_request_duration_seconds histogram$/m);
        assert.match(text, /^# TYPE sidecarless_endpoints gauge$/m);
        assert.ok(text.endsWith('# EOF\n'));
      }
    } finally {
      registration.unregister();
    }
    assert.equal(await registry.metrics(), '\n# EOF\n');
  });

  it('Prometheus: regression "already been registered": clients share a registry, told apart by `client`', async () => {
    const other = createClient({ target: backends.map((b) => b.address), name: 'inventory' });
    const registry = new Registry();
    const first = registerPrometheusMetrics(client, { registry, client: 'shop' });
    const second = registerPrometheusMetrics(other, { registry, client: 'audit' });
    try {
      await (await other.fetch('http://inventory/')).arrayBuffer();
      await (await other.fetch('http://inventory/')).arrayBuffer();
      const text = await registry.metrics();
      const total = client.stats().clusters[0]?.requests.total;
      assert.equal(sample(text, 'sidecarless_requests_total', 'client="shop",upstream_cluster="inventory"'), total);
      assert.equal(sample(text, 'sidecarless_requests_total', 'client="audit",upstream_cluster="inventory"'), 2);
      assert.equal(
        sample(text, 'sidecarless_request_duration_seconds_count', 'client="audit",upstream_cluster="inventory"'),
        2,
      );
      assert.equal(
        sample(text, 'sidecarless_request_duration_seconds_count', 'client="shop",upstream_cluster="inventory"'),
        0,
      );
      assert.throws(
        () => registerPrometheusMetrics(other, { registry, client: 'shop' }),
        (err: unknown) =>
          findSidecarlessError(err)?.code === 'SIDECARLESS_INVALID_OPTION' && /"shop"/.test(String(err)),
      );
      assert.throws(
        () => registerPrometheusMetrics(other, { registry, labels: { service: 'x' } } as never),
        /setDefaultLabels/,
      );
      second.unregister();
      const after = await registry.metrics();
      assert.doesNotMatch(after, /client="audit"/);
      assert.match(after, /client="shop"/);
    } finally {
      first.unregister();
      second.unregister();
      await other.close();
    }
    assert.equal(await registry.metrics(), '\n');
  });

  it('Prometheus: per-endpoint series are bounded per cluster and follow the endpoint set', async () => {
    let listener: ResolverListener | undefined;
    const resolver: Resolver = {
      start(l) {
        listener = l;
      },
      refresh() {},
      close() {},
    };
    const moving = createClient({ target: resolver, name: 'moving' });
    const registry = new Registry();
    const registration = registerPrometheusMetrics(moving, {
      registry,
      endpointMetrics: true,
      maxEndpointsPerCluster: 2,
    });
    try {
      listener?.onUpdate(
        backends.map((b) => createEndpoint({ host: '127.0.0.1', port: Number(b.address.split(':')[1]) })),
      );
      for (let i = 0; i < 6; i++) await (await moving.fetch('http://moving/')).arrayBuffer();
      const count = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`)).length;
      let text = await registry.metrics();
      assert.equal(count(text, 'sidecarless_endpoint_attempts_total'), 2);
      assert.equal(count(text, 'sidecarless_endpoint_latency_seconds_count'), 2);
      // The first endpoint leaves: its series go, the third endpoint takes its place in the bound.
      listener?.onUpdate(
        backends.slice(1).map((b) => createEndpoint({ host: '127.0.0.1', port: Number(b.address.split(':')[1]) })),
      );
      await (await moving.fetch('http://moving/')).arrayBuffer();
      await (await moving.fetch('http://moving/')).arrayBuffer();
      text = await registry.metrics();
      assert.doesNotMatch(text, new RegExp(`upstream_endpoint="${backends[0]?.address}"`));
      assert.equal(count(text, 'sidecarless_endpoint_attempts_total'), 2);
      assert.throws(
        () => registerPrometheusMetrics(moving, { registry: new Registry(), maxEndpointsPerCluster: 0 }),
        /maxEndpointsPerCluster/,
      );
    } finally {
      registration.unregister();
      await moving.close();
    }
  });

  it('OpenTelemetry: the duration histogram and observable instruments carry real numbers', async () => {
    const reader = new PullReader();
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
      const duration = find('sidecarless.request.duration');
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
      const endpoints = find('sidecarless.endpoints');
      assert.equal((endpoints?.dataPoints[0] as { value: number } | undefined)?.value, 3);
      // A count of endpoints is an up-down counter (a non-monotonic sum), as the conventions have it.
      assert.equal(endpoints?.dataPointType, DataPointType.SUM);
      assert.equal((endpoints as { isMonotonic?: boolean } | undefined)?.isMonotonic, false);
      assert.equal(find('sidecarless.endpoint.attempts'), undefined, 'per-endpoint instruments are off by default');
    } finally {
      registration.unregister();
      await Promise.all([provider.shutdown(), twin.close()]);
    }
  });
});

/** The value of one Prometheus sample, e.g. `sample(text, 'sidecarless_ejections_total', 'client="svc",upstream_cluster="svc"')`. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line !== undefined, `no sample ${name}{${labels}} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A registry of its own with the client's series (per endpoint too); histograms observe from here on. */
function registered(client: Client): () => Promise<string> {
  const registry = new Registry();
  registerPrometheusMetrics(client, { registry, endpointMetrics: true });
  return () => registry.metrics();
}

/** A scrape from a registry of its own, so no earlier scrape's cached stats can answer. */
async function scrape(client: Client): Promise<string> {
  return registered(client)();
}

/** A loopback address nothing listens on: a server's ephemeral port, closed again. */
async function deadAddress(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

/** A backend that holds every response until `release()`; `arrived` resolves when the first request is in. */
async function heldBackend(id: string): Promise<{ backend: Backend; arrived: Promise<void>; release(): void }> {
  const held: http.ServerResponse[] = [];
  let signal: () => void = () => {};
  const arrived = new Promise<void>((resolve) => {
    signal = resolve;
  });
  const backend = await startBackend(id, (req, res) => {
    req.resume();
    held.push(res);
    signal();
  });
  return {
    backend,
    arrived,
    release() {
      for (const res of held.splice(0)) if (!res.destroyed) res.end(id);
    },
  };
}

describe('counters, with their exact Prometheus series', () => {
  const backends: Backend[] = [];
  const clients: Client[] = [];
  const track = <T extends Client>(client: T): T => {
    clients.push(client);
    return client;
  };
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await stopAll(backends);
  });

  it('ejection and return: both events carry clusterId, counted per cluster and per endpoint', async () => {
    const bad = await startBackend('bad', (req, res) => {
      req.resume();
      res.writeHead(500);
      res.end();
    });
    const good = await startBackend('good');
    backends.push(bad, good);
    const clock = new FakeClock();
    const client = track(
      createClient({
        target: [bad.address, good.address],
        name: 'svc',
        clock,
        random: () => 0,
        panicThreshold: 0,
        outlierDetection: { intervalMs: 50, consecutive5xx: 2, baseEjectionTimeMs: 100 },
      }),
    );
    const events: HealthEvent[] = [];
    const onEject = (m: unknown) => events.push(m as HealthEvent);
    diagnostics.subscribe('sidecarless:eject', onEject);
    try {
      for (let i = 0; i < 10 && events.length === 0; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      assert.equal(bad.hits, 2, 'two consecutive 500s eject');
      const cluster_ = 'client="svc",upstream_cluster="svc"';
      assert.equal(sample(await scrape(client), 'sidecarless_endpoints_ejected', cluster_), 1, 'while ejected');
      // 100 ms ejection, returned at the first 50 ms sweep after it.
      clock.advance(200);
      assert.equal(sample(await scrape(client), 'sidecarless_endpoints_ejected', cluster_), 0, 'returned');
    } finally {
      diagnostics.unsubscribe('sidecarless:eject', onEject);
    }
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.deepEqual(
      events.map((e) => [e.type, e.cluster, e.clusterId, e.endpoint.key]),
      [
        ['eject', 'svc', stats.id, bad.address],
        ['return', 'svc', stats.id, bad.address],
      ],
    );
    assert.equal(stats.ejections, 1);
    assert.equal(stats.returns, 1);
    const of = (address: string) => stats.endpoints.find((e) => e.key === address);
    assert.deepEqual(
      [of(bad.address)?.timesEjected, of(bad.address)?.returns, of(bad.address)?.ejected],
      [1, 1, false],
    );
    assert.deepEqual([of(good.address)?.timesEjected, of(good.address)?.returns], [0, 0]);
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_ejections_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(sample(text, 'sidecarless_ejection_returns_total', 'client="svc",upstream_cluster="svc"'), 1);
    const bad_ = `client="svc",upstream_cluster="svc",upstream_endpoint="${bad.address}"`;
    const good_ = `client="svc",upstream_cluster="svc",upstream_endpoint="${good.address}"`;
    assert.equal(sample(text, 'sidecarless_endpoint_ejections_total', bad_), 1);
    assert.equal(sample(text, 'sidecarless_endpoint_ejection_returns_total', bad_), 1);
    assert.equal(sample(text, 'sidecarless_endpoint_ejections_total', good_), 0);
    assert.equal(sample(text, 'sidecarless_endpoint_ejected', bad_), 0);
  });

  it('resolver errors: published with the kept endpoint count, counted, last error kept after an update', async () => {
    const one = await startBackend('one');
    const two = await startBackend('two');
    backends.push(one, two);
    let listener: ResolverListener | undefined;
    const resolver: Resolver = {
      start(l) {
        listener = l;
      },
      close() {},
    };
    const client = track(createClient({ target: resolver, name: 'svc' }));
    const messages: { endpoints: number; error: Error | undefined; clusterId: number }[] = [];
    const onResolve = (m: unknown) => messages.push(m as (typeof messages)[number]);
    diagnostics.subscribe('sidecarless:resolve', onResolve);
    try {
      assert.ok(listener, 'the cluster started the resolver');
      listener.onUpdate([createEndpoint({ host: '127.0.0.1', port: one.port })]);
      listener.onError(new ResolverError('registry unreachable'));
      listener.onUpdate([
        createEndpoint({ host: '127.0.0.1', port: one.port }),
        createEndpoint({ host: '127.0.0.1', port: two.port }),
      ]);
    } finally {
      diagnostics.unsubscribe('sidecarless:resolve', onResolve);
    }
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.deepEqual(
      messages.map((m) => [m.clusterId, m.endpoints, m.error?.message]),
      [
        [stats.id, 1, undefined],
        [stats.id, 1, 'registry unreachable'],
        [stats.id, 2, undefined],
      ],
    );
    assert.deepEqual(stats.resolver, { updates: 2, errors: 1, skipped: 0, lastError: 'registry unreachable' });
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_resolver_updates_total', 'client="svc",upstream_cluster="svc"'), 2);
    assert.equal(sample(text, 'sidecarless_resolver_errors_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(sample(text, 'sidecarless_endpoints', 'client="svc",upstream_cluster="svc"'), 2);
  });

  it('a failed request: request:end carries the error; errors by code and by kind, attempt latency counted', async () => {
    const dead = await deadAddress();
    const client = track(createClient({ target: [dead], name: 'svc', retry: false }));
    const scrapeLater = registered(client);
    const ends: { statusCode: number; error: Error | undefined; attempts: number; clusterId: number }[] = [];
    const onEnd = (m: unknown) => ends.push(m as (typeof ends)[number]);
    diagnostics.subscribe('sidecarless:request:end', onEnd);
    let failure: unknown;
    try {
      failure = await client.fetch('http://svc/').then(
        () => undefined,
        (err: unknown) => err,
      );
    } finally {
      diagnostics.unsubscribe('sidecarless:request:end', onEnd);
    }
    assert.ok(failure instanceof Error, 'the fetch failed');
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.equal(ends.length, 1);
    const [end] = ends;
    assert.ok(end?.error instanceof Error);
    assert.deepEqual([end.statusCode, end.attempts, end.clusterId], [0, 1, stats.id]);
    const code = (end.error as { code?: string }).code;
    assert.equal(code, 'ECONNREFUSED');
    assert.deepEqual(stats.requests.errors, { ECONNREFUSED: 1 });
    const [endpoint] = stats.endpoints;
    assert.deepEqual(endpoint?.errorsByKind, { connect: 1, reset: 0, timeout: 0, aborted: 0, goaway: 0, other: 0 });
    assert.equal(endpoint.latency.count, 1);
    const text = await scrapeLater();
    const labels = `client="svc",upstream_cluster="svc",upstream_endpoint="${dead}"`;
    assert.equal(
      sample(text, 'sidecarless_request_errors_total', 'client="svc",upstream_cluster="svc",error_code="ECONNREFUSED"'),
      1,
    );
    assert.equal(sample(text, 'sidecarless_endpoint_errors_total', `${labels},error_kind="connect"`), 1);
    // Only the kinds seen get a series.
    assert.doesNotMatch(text, /error_kind="reset"/);
    assert.equal(sample(text, 'sidecarless_endpoint_attempts_total', labels), 1);
    assert.equal(sample(text, 'sidecarless_endpoint_latency_seconds_count', labels), 1);
    assert.equal(sample(text, 'sidecarless_request_duration_seconds_count', 'client="svc",upstream_cluster="svc"'), 0);
  });

  it('limits.maxInFlight: a refused request counts as overloaded, not as a request', async () => {
    const slow = await heldBackend('slow');
    backends.push(slow.backend);
    const client = track(createClient({ target: [slow.backend.address], name: 'svc', limits: { maxInFlight: 1 } }));
    const first = client.fetch('http://svc/');
    await slow.arrived;
    const refused = await client.fetch('http://svc/').catch((err: unknown) => err);
    assert.equal(findSidecarlessError(refused)?.code, 'SIDECARLESS_OVERLOADED');
    slow.release();
    assert.equal(await (await first).text(), 'slow');
    const stats = client.stats().clusters[0];
    assert.deepEqual([stats?.requests.total, stats?.requests.overloaded], [1, 1]);
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_overloaded_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(sample(text, 'sidecarless_requests_total', 'client="svc",upstream_cluster="svc"'), 1);
  });

  it('an open breaker: circuitOpen counted, breaker_state reports open', async () => {
    const failing = await startBackend('failing', (req, res) => {
      req.resume();
      res.writeHead(500);
      res.end();
    });
    backends.push(failing);
    const client = track(
      createClient({
        target: [failing.address],
        name: 'svc',
        retry: false,
        outlierDetection: false,
        breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
      }),
    );
    for (let i = 0; i < 4; i++) await (await client.fetch('http://svc/')).arrayBuffer();
    const refused = await client.fetch('http://svc/').catch((err: unknown) => err);
    assert.equal(findSidecarlessError(refused)?.code, 'SIDECARLESS_CIRCUIT_OPEN');
    assert.equal(failing.hits, 4);
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.equal(stats.breaker, 'open');
    assert.equal(stats.requests.circuitOpen, 1);
    assert.deepEqual(stats.requests.errors, { SIDECARLESS_CIRCUIT_OPEN: 1 });
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_breaker_state', 'client="svc",upstream_cluster="svc",state="open"'), 1);
    assert.equal(sample(text, 'sidecarless_breaker_state', 'client="svc",upstream_cluster="svc",state="closed"'), 0);
    assert.equal(sample(text, 'sidecarless_breaker_state', 'client="svc",upstream_cluster="svc",state="half-open"'), 0);
    assert.equal(sample(text, 'sidecarless_circuit_open_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(
      sample(text, 'sidecarless_responses_total', 'client="svc",upstream_cluster="svc",code_class="5xx"'),
      4,
    );
  });

  it('a retry is counted on the endpoint it went to', async () => {
    const unavailable = await startBackend('unavailable', (req, res) => {
      req.resume();
      res.writeHead(503);
      res.end();
    });
    const ok = await startBackend('ok');
    backends.push(unavailable, ok);
    const client = track(
      createClient({
        target: [unavailable.address, ok.address],
        name: 'svc',
        random: () => 0,
        retry: { maxAttempts: 2 },
      }),
    );
    assert.equal((await client.fetch('http://svc/')).status, 200);
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.deepEqual([stats.requests.retries, stats.requests.hedges, stats.requests.extraAttempts], [1, 0, 1]);
    const of = (address: string) => stats.endpoints.find((e) => e.key === address);
    assert.deepEqual([of(unavailable.address)?.attempts, of(unavailable.address)?.retries], [1, 0]);
    assert.deepEqual([of(ok.address)?.attempts, of(ok.address)?.retries, of(ok.address)?.hedges], [1, 1, 0]);
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_retries_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(
      sample(
        text,
        'sidecarless_endpoint_retries_total',
        `client="svc",upstream_cluster="svc",upstream_endpoint="${ok.address}"`,
      ),
      1,
    );
    assert.equal(
      sample(
        text,
        'sidecarless_endpoint_retries_total',
        `client="svc",upstream_cluster="svc",upstream_endpoint="${unavailable.address}"`,
      ),
      0,
    );
  });

  it('a hedge is counted as a hedge, not a retry, on the endpoint it went to', async () => {
    const slow = await heldBackend('slow');
    const fast = await startBackend('fast');
    backends.push(slow.backend, fast);
    const client = track(
      createClient({
        target: [slow.backend.address, fast.address],
        name: 'svc',
        random: () => 0,
        hedge: { delayMs: 20 },
      }),
    );
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(JSON.parse(await res.text()).backend, 'fast');
    } finally {
      slow.release();
    }
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    assert.deepEqual([stats.requests.hedges, stats.requests.retries, stats.requests.extraAttempts], [1, 0, 1]);
    const of = (address: string) => stats.endpoints.find((e) => e.key === address);
    assert.deepEqual([of(fast.address)?.hedges, of(fast.address)?.retries], [1, 0]);
    assert.deepEqual([of(slow.backend.address)?.hedges, of(slow.backend.address)?.attempts], [0, 1]);
    const text = await scrape(client);
    assert.equal(sample(text, 'sidecarless_hedges_total', 'client="svc",upstream_cluster="svc"'), 1);
    assert.equal(sample(text, 'sidecarless_retries_total', 'client="svc",upstream_cluster="svc"'), 0);
    assert.equal(
      sample(
        text,
        'sidecarless_endpoint_hedges_total',
        `client="svc",upstream_cluster="svc",upstream_endpoint="${fast.address}"`,
      ),
      1,
    );
  });

  it('OpenTelemetry: semantic-convention attributes, units, and the per-endpoint instruments', async () => {
    const shop = await startBackend('shop', (req, res) => {
      req.resume();
      if (req.url === '/reset') {
        req.socket.destroy();
        return;
      }
      res.writeHead(req.url === '/missing' ? 404 : 200);
      res.end();
    });
    backends.push(shop);
    const client = track(createClient({ target: [shop.address], name: 'shop', retry: false, breaker: true }));
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    const registration = registerOpenTelemetryMetrics(client, {
      meter: provider.getMeter('test'),
      endpointMetrics: true,
    });
    try {
      await (await client.fetch('http://shop/')).arrayBuffer();
      await (await client.fetch('http://shop/missing')).arrayBuffer();
      await (await client.fetch('http://shop:8080/purge', { method: 'PURGE' })).arrayBuffer();
      const reset = await client.fetch('http://shop/reset').catch((err: unknown) => err);
      assert.ok(reset instanceof Error, 'the reset request failed');
      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      const find = (name: string) => {
        const metric = all.find((m) => m.descriptor.name === name);
        assert.ok(metric, `${name} exported`);
        return metric;
      };
      type Point = { attributes: Record<string, unknown>; value: number | { count: number } };
      const points = (name: string) => find(name).dataPoints as unknown as Point[];
      const requests = points('sidecarless.request.duration').map((p) => p.attributes);
      const byPath = (status: number | undefined, method = 'GET') =>
        requests.find((a) => a['http.response.status_code'] === status && a['http.request.method'] === method);
      assert.equal(requests.length, 4);
      assert.deepEqual(byPath(200), {
        'http.request.method': 'GET',
        'server.address': 'shop',
        'server.port': 80,
        'sidecarless.cluster': 'shop',
        'http.response.status_code': 200,
      });
      assert.equal(byPath(404)?.['error.type'], '404');
      assert.equal(byPath(404)?.['server.port'], 80);
      const purge = byPath(200, '_OTHER');
      assert.equal(purge?.['server.port'], 8080);
      assert.equal(purge?.['error.type'], undefined);
      const failed = byPath(undefined);
      // The error's own code: undici's for a connection closed mid-exchange.
      assert.equal(failed?.['error.type'], 'UND_ERR_SOCKET');

      const units = Object.fromEntries(all.map((m) => [m.descriptor.name, m.descriptor.unit]));
      assert.deepEqual(
        [
          units['sidecarless.requests'],
          units['sidecarless.retries'],
          units['sidecarless.endpoints'],
          units['sidecarless.endpoint.errors'],
          units['sidecarless.endpoint.attempt.duration'],
        ],
        ['{request}', '{attempt}', '{endpoint}', '{error}', 's'],
      );
      const key = shop.address;
      const attempts = points('sidecarless.endpoint.attempt.duration');
      assert.deepEqual(
        attempts.map((p) => [p.attributes['sidecarless.endpoint'], (p.value as { count: number }).count]),
        [[key, 4]],
      );
      const responses = Object.fromEntries(
        points('sidecarless.endpoint.responses').map((p) => [p.attributes['sidecarless.status_class'], p.value]),
      );
      assert.deepEqual(responses, { '1xx': 0, '2xx': 2, '3xx': 0, '4xx': 1, '5xx': 0 });
      const breaker = Object.fromEntries(
        points('sidecarless.breaker.state').map((p) => [p.attributes['sidecarless.breaker.state'], p.value]),
      );
      assert.deepEqual(breaker, { closed: 1, open: 0, 'half-open': 0 });
      assert.deepEqual(
        points('sidecarless.ejection_returns').map((p) => p.value),
        [0],
      );
      // The conventions' per-request metric is the undici instrumentation's (per attempt), never recorded here.
      assert.equal(
        all.some((m) => m.descriptor.name === 'http.client.request.duration'),
        false,
      );
      const perRequest = points('sidecarless.request.attempts').map((p) => (p.value as { count: number }).count);
      assert.deepEqual(perRequest, [4]);
      const errors = points('sidecarless.endpoint.errors').find((p) => p.attributes['error.type'] === 'reset');
      assert.equal(errors?.value, 1);
    } finally {
      registration.unregister();
      await provider.shutdown();
    }
  });
});
