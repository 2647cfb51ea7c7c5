// Regression tests from an adversarial pass over the public entry points (wave 4 probe): the exporters' entry
// points check their arguments when called, with typed errors, rather than failing later at collection time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createClient, isSidecarlessError } from 'sidecarless';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';

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
