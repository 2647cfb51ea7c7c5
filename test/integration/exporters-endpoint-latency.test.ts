/**
 * The exporters' endpoint latency histograms leave out the same attempts as the endpoint's own histogram in
 * `stats()`: over HTTP/2, a stream the endpoint refused unprocessed (REFUSED_STREAM, classified `goaway`) says nothing
 * of its latency, and the exporters counted it (probe 16: 20 observations against the stats' 10).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { Registry } from 'prom-client';
import { createClient } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';

describe('exporters: endpoint latency over HTTP/2 with refused streams', () => {
  const sessions = new Set<http2.ServerHttp2Session>();
  let n = 0;
  // Refuses every other stream unprocessed; answers the rest.
  const server = http2.createServer((req, res) => {
    if (n++ % 2 === 0) res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    else res.end('ok');
  });
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('observe only the attempts the stats observe', async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = createClient({ target: [`127.0.0.1:${port}`], http2: true, outlierDetection: false });
    const registry = new Registry();
    registerPrometheusMetrics(client, { registry, endpointMetrics: true });
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    registerOpenTelemetryMetrics(client, { meter: provider.getMeter('t'), endpointMetrics: true });
    try {
      for (let i = 0; i < 10; i++) assert.equal(await (await client.fetch('http://svc/')).text(), 'ok');
      const endpoint = client.stats().clusters[0]?.endpoints[0];
      assert.equal(endpoint?.attempts, 20, 'each request refused once, then answered');
      assert.equal(endpoint.latency.count, 10);
      const prom = (await registry.getMetricsAsJSON()).find((m) => m.name === 'sidecarless_endpoint_latency_seconds');
      const promCount = (prom?.values as { metricName?: string; value: number }[] | undefined)?.find((v) =>
        v.metricName?.endsWith('_count'),
      )?.value;
      assert.equal(promCount, 10, 'Prometheus');
      const { resourceMetrics } = await reader.collect();
      const otel = resourceMetrics.scopeMetrics
        .flatMap((sm) => sm.metrics)
        .find((m) => m.descriptor.name === 'sidecarless.endpoint.attempt.duration');
      assert.equal((otel?.dataPoints[0]?.value as { count?: number } | undefined)?.count, 10, 'OpenTelemetry');
    } finally {
      await client.close();
      await provider.shutdown();
    }
  });
});
