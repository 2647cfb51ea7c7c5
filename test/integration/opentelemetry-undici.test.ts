// OpenTelemetry through the real SDK with @opentelemetry/instrumentation-undici installed and enabled, as the usual
// auto-instrumentation has it. Regression (issue 16.4): `http.client.request.duration` was recorded twice, per attempt
// by the instrumentation and per logical request by sidecarless, under one name, so sums double-counted.
// The instrumentation is a devDependency; CI fails without it, a local run without it skips, saying why.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PullReader } from '../helpers/metric-reader.js';
import { createClient } from 'sidecarless';
import type { Client } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

/** What the test uses of `@opentelemetry/instrumentation-undici`. */
interface UndiciInstrumentation {
  setMeterProvider(provider: unknown): void;
  enable(): void;
  disable(): void;
}
type UndiciModule = { UndiciInstrumentation: new (config?: object) => UndiciInstrumentation };

// Not a string literal, so that the typecheck does not need the package.
const INSTRUMENTATION: string = '@opentelemetry/instrumentation-undici';
let undici: UndiciModule | undefined;
let why: string | undefined;
try {
  undici = (await import(INSTRUMENTATION)) as UndiciModule;
} catch (err) {
  why = `${INSTRUMENTATION} is not installed (a devDependency): ${(err as Error).message}`;
  if (process.env.CI !== undefined) throw new Error(why, { cause: err });
}

type Point = { attributes: Record<string, unknown>; value: { count: number; sum: number } };

describe('OpenTelemetry with @opentelemetry/instrumentation-undici enabled', { skip: why }, () => {
  const backends: Backend[] = [];
  let client: Client;
  let instrumentation: UndiciInstrumentation;
  let provider: MeterProvider;
  let reader: PullReader;

  before(async () => {
    backends.push(await startBackend('ok-1'), await startBackend('ok-2'));
    let n = 0;
    backends.push(
      await startBackend('flaky', (req, res) => {
        req.resume();
        res.writeHead(++n % 2 === 0 ? 503 : 200);
        res.end();
      }),
    );
    reader = new PullReader();
    provider = new MeterProvider({ readers: [reader] });
    instrumentation = new (undici as UndiciModule).UndiciInstrumentation();
    instrumentation.setMeterProvider(provider);
    instrumentation.enable();
    client = createClient({ target: backends.map((b) => b.address), name: 'inventory' });
  });
  after(async () => {
    instrumentation.disable();
    await client.close();
    await provider.shutdown();
    await stopAll(backends);
  });

  it("http.client.request.duration is the instrumentation's, per attempt; sidecarless records per logical request under its own names", async () => {
    const registration = registerOpenTelemetryMetrics(client, { meter: provider.getMeter('sidecarless') });
    const requests = 20;
    try {
      for (let i = 0; i < requests; i++) {
        const res = await client.fetch('http://inventory/items');
        await res.arrayBuffer();
        assert.equal(res.status, 200, 'a 503 was retried on another endpoint');
      }
    } finally {
      registration.unregister();
    }
    const stats = client.stats().clusters[0];
    assert.ok(stats);
    const attempts = stats.endpoints.reduce((sum, e) => sum + e.attempts, 0);
    assert.ok(stats.requests.retries >= 1, 'the flaky endpoint caused retries');
    assert.equal(attempts, requests + stats.requests.retries);

    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const points = (name: string) =>
      all.filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints as unknown as Point[]);
    const count = (name: string) => points(name).reduce((sum, p) => sum + p.value.count, 0);

    // One point per attempt: the instrumentation's alone (with sidecarless also recording, it would be
    // attempts + requests).
    const http = points('http.client.request.duration');
    assert.equal(count('http.client.request.duration'), attempts);
    assert.ok(
      http.every((p) => p.attributes['server.address'] === '127.0.0.1'),
      'per attempt, to the endpoint',
    );
    assert.equal(
      all.filter((m) => m.descriptor.name === 'http.client.request.duration').length,
      1,
      'one producer of http.client.request.duration',
    );

    // One point per logical request, whatever its retries: sidecarless's own names.
    assert.equal(count('sidecarless.request.duration'), requests);
    const logical = points('sidecarless.request.duration');
    assert.ok(logical.every((p) => p.attributes['server.address'] === 'inventory'));
    assert.ok(logical.every((p) => p.attributes['http.response.status_code'] === 200));
    const perRequest = points('sidecarless.request.attempts');
    assert.equal(count('sidecarless.request.attempts'), requests);
    assert.equal(
      perRequest.reduce((sum, p) => sum + p.value.sum, 0),
      attempts,
      'the attempts histogram sums to the attempts the instrumentation saw',
    );
  });
});
