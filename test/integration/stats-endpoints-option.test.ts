// `stats({ endpoints: false })`: cluster figures without a snapshot per endpoint, the counts that replace them
// (`endpointCount`, `ejectedCount`), and the exporters asking for no endpoints when they report none (probe 18: at
// 10,000 endpoints a scrape of a few cluster series built 10,000 endpoint snapshots, a 22-50 ms stall).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { Registry } from 'prom-client';
import {
  type Client,
  type ClusterStats,
  createClient,
  InvalidOptionError,
  StaticResolver,
  type StatsOptions,
} from '../../src/index.js';
import { registerOpenTelemetryMetrics } from '../../src/exporters/opentelemetry.js';
import { registerPrometheusMetrics } from '../../src/exporters/prometheus.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** A static address nothing is asked of: the endpoint is listed, never picked. */
const idle = (i: number) => `127.0.0.1:${20_000 + i}`;

/** Records the options of every `client.stats()` call, the exporters' included. */
function spyOnStats(client: Client): (StatsOptions | undefined)[] {
  const calls: (StatsOptions | undefined)[] = [];
  const original = client.stats.bind(client);
  client.stats = (options?: StatsOptions) => {
    calls.push(options);
    return original(options);
  };
  return calls;
}

/** The value of one Prometheus sample. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line !== undefined, `no sample ${name}{${labels}} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('stats({ endpoints: false })', () => {
  const backends: Backend[] = [];
  const clients: Client[] = [];
  const track = (client: Client): Client => {
    clients.push(client);
    return client;
  };
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await stopAll(backends);
  });

  /**
   * A client of `bad` (answers 500) and `extra + 1` good backends, with `bad` ejected by outlier detection (the
   * fake clock never reaches its return).
   */
  async function withEjection(extra: number, resolver?: StaticResolver): Promise<{ client: Client; bad: Backend }> {
    const bad = await startBackend('bad', (req, res) => {
      req.resume();
      res.writeHead(500);
      res.end();
    });
    const goods = await Promise.all(Array.from({ length: extra + 1 }, (_, i) => startBackend(`good-${i}`)));
    backends.push(bad, ...goods);
    const addresses = [bad.address, ...goods.map((b) => b.address)];
    resolver?.update(addresses);
    const client = track(
      createClient({
        target: resolver ?? addresses,
        name: 'svc',
        clock: new FakeClock(),
        random: () => 0,
        panicThreshold: 0,
        outlierDetection: { intervalMs: 50, consecutive5xx: 2, baseEjectionTimeMs: 60_000 },
      }),
    );
    await client.ready();
    for (let i = 0; i < 40 && !(client.stats().clusters[0]?.endpoints.some((e) => e.ejected) ?? false); i++) {
      await (await client.fetch(`http://svc/${i}`)).arrayBuffer();
    }
    assert.equal(client.stats().clusters[0]?.endpoints.find((e) => e.key === bad.address)?.ejected, true);
    return { client, bad };
  }

  /** What the endpoint list says of the counts, read from a full snapshot. */
  const counted = (c: ClusterStats | undefined) => [c?.endpoints.length, c?.endpoints.filter((e) => e.ejected).length];

  it('leaves out the endpoint list and keeps its counts, equal to a full snapshot, default unchanged', async () => {
    const client = track(createClient({ target: [idle(0), idle(1), idle(2)], name: 'plain' }));
    await client.ready();
    const full = client.stats().clusters[0];
    assert.equal(full?.endpoints.length, 3, 'no options: the endpoints, as before');
    assert.deepEqual(client.stats({}).clusters[0]?.endpoints.length, 3);
    assert.deepEqual(client.stats({ endpoints: true }).clusters[0]?.endpoints.length, 3);
    assert.equal(full.endpointCount, 3);
    assert.equal(full.ejectedCount, 0, 'no outlier detection: nothing ejected');
    const light = client.stats({ endpoints: false }).clusters[0];
    assert.deepEqual(light?.endpoints, []);
    assert.equal(light.endpointCount, 3);
    assert.equal(light.ejectedCount, 0);
    // Everything else is the same snapshot.
    const { endpoints: _a, requests: ra, ...restFull } = full;
    const { endpoints: _b, requests: rb, ...restLight } = light;
    assert.deepEqual(restLight, restFull);
    assert.equal(rb.total, ra.total);
  });

  it('counts an ejected endpoint, and follows a resolver update that adds endpoints and one that removes it', async () => {
    const resolver = new StaticResolver([]);
    const { client, bad } = await withEjection(3, resolver);
    const light = () => client.stats({ endpoints: false }).clusters[0];
    assert.deepEqual(counted(client.stats().clusters[0]), [5, 1]);
    assert.deepEqual([light()?.endpointCount, light()?.ejectedCount, light()?.endpoints.length], [5, 1, 0]);

    const kept = client.stats().clusters[0]!.endpoints.map((e) => e.key);
    resolver.update([...kept, idle(10), idle(11)]);
    await client.ready(5_000, { minEndpoints: 7 });
    assert.deepEqual(counted(client.stats().clusters[0]), [7, 1]);
    assert.deepEqual([light()?.endpointCount, light()?.ejectedCount], [7, 1], 'the ejected endpoint stayed');

    resolver.update(kept.filter((k) => k !== bad.address));
    for (let i = 0; i < 50 && light()?.endpointCount !== 4; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(counted(client.stats().clusters[0]), [4, 0]);
    assert.deepEqual([light()?.endpointCount, light()?.ejectedCount], [4, 0], 'the ejected endpoint left the set');
  });

  it('after close(): no endpoints and nothing ejected, with or without the list', async () => {
    const { client } = await withEjection(0);
    await client.close();
    for (const options of [undefined, { endpoints: false }]) {
      const c = client.stats(options).clusters[0];
      assert.deepEqual([c?.endpoints.length, c?.endpointCount, c?.ejectedCount], [0, 0, 0]);
    }
  });

  it('refuses bad options with SIDECARLESS_INVALID_OPTION naming the option', async () => {
    const client = track(createClient({ target: [idle(0)], name: 'bad-options' }));
    const refused = (options: unknown, option: string) =>
      assert.throws(
        () => client.stats(options as StatsOptions),
        (err: unknown) => {
          assert.ok(err instanceof InvalidOptionError, String(err));
          assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
          assert.equal(err.option, option);
          return true;
        },
      );
    refused(null, 'options');
    refused(false, 'options');
    refused('endpoints', 'options');
    refused([], 'options');
    refused({ endpoints: 'false' }, 'options.endpoints');
    refused({ endpoints: 0 }, 'options.endpoints');
    refused({ endpoint: false }, 'options.endpoint');
    refused(
      Object.defineProperty({}, 'endpoints', {
        enumerable: true,
        get() {
          throw new Error('no');
        },
      }),
      'options.endpoints',
    );
    // Refused also with no cluster to snapshot (a discovery client before its first request).
    const discovering = track(createClient({ discovery: { domain: 'svc.local' } }));
    assert.equal(discovering.stats().clusters.length, 0);
    assert.throws(() => discovering.stats({ endpoints: 1 } as never), InvalidOptionError);
  });

  it('Prometheus without endpoint metrics asks for no endpoints, and reports the same endpoint count', async () => {
    const { client } = await withEjection(3);
    const calls = spyOnStats(client);
    const registry = new Registry();
    const registration = registerPrometheusMetrics(client, { registry });
    try {
      const text = await registry.metrics();
      assert.ok(calls.length > 0, 'the exporter read the stats');
      assert.ok(
        calls.every((o) => o?.endpoints === false),
        `every call without endpoints: ${JSON.stringify(calls)}`,
      );
      const [endpoints] = counted(client.stats().clusters[0]);
      assert.equal(sample(text, 'sidecarless_endpoints', 'client="svc",upstream_cluster="svc"'), endpoints);
      assert.equal(sample(text, 'sidecarless_ejections_total', 'client="svc",upstream_cluster="svc"'), 1);
    } finally {
      registration.unregister();
    }
  });

  it('Prometheus with endpoint metrics still reads the endpoints', async () => {
    const { client, bad } = await withEjection(1);
    const calls = spyOnStats(client);
    const registry = new Registry();
    const registration = registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    try {
      const text = await registry.metrics();
      assert.ok(
        calls.some((o) => o === undefined || o.endpoints !== false),
        'a scrape with endpoints',
      );
      assert.equal(sample(text, 'sidecarless_endpoints', 'client="svc",upstream_cluster="svc"'), 3);
      const labels = `client="svc",upstream_cluster="svc",upstream_endpoint="${bad.address}"`;
      assert.equal(sample(text, 'sidecarless_endpoint_ejected', labels), 1);
    } finally {
      registration.unregister();
    }
  });

  for (const endpointMetrics of [false, true]) {
    it(`OpenTelemetry (endpointMetrics: ${endpointMetrics}): the same endpoint and ejected counts; endpoints built only when reported`, async () => {
      const { client } = await withEjection(3);
      const calls = spyOnStats(client);
      const reader = new PullReader();
      const provider = new MeterProvider({ readers: [reader] });
      const registration = registerOpenTelemetryMetrics(client, { meter: provider.getMeter('t'), endpointMetrics });
      try {
        const { resourceMetrics } = await reader.collect();
        const seen = calls.splice(0);
        const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
        const value = (name: string) =>
          (all.find((m) => m.descriptor.name === name)?.dataPoints[0] as { value: number } | undefined)?.value;
        assert.deepEqual(
          [value('sidecarless.endpoints'), value('sidecarless.endpoints.ejected')],
          counted(client.stats().clusters[0]),
        );
        assert.deepEqual(counted(client.stats().clusters[0]), [5, 1]);
        assert.ok(seen.length > 0, 'the exporter read the stats');
        if (endpointMetrics) assert.ok(seen.some((o) => o === undefined || o.endpoints !== false));
        else
          assert.ok(
            seen.every((o) => o?.endpoints === false),
            JSON.stringify(seen),
          );
      } finally {
        registration.unregister();
        await provider.shutdown();
      }
    });
  }
});
