// Outside-in probe (wave 5): the Prometheus exporter as a service's tests and scrapes use it, through the package
// entry points.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createClient } from 'sidecarless';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';

const promtoolMissing = spawnSync('promtool', ['--version']).status !== 0;

describe('probe: prom-client registry operations', () => {
  it('regression (after registry.clear() the client could never be registered again: "already registered")', async () => {
    const registry = new Registry();
    const client = createClient({ name: 'users', target: 'static://127.0.0.1:1' });
    const first = registerPrometheusMetrics(client, { registry });
    registry.clear(); // what a test suite does between tests
    assert.equal((await registry.getMetricsAsJSON()).length, 0);
    const again = registerPrometheusMetrics(client, { registry });
    const text = await registry.metrics();
    assert.match(text, /sidecarless_requests_total\{client="users",upstream_cluster="users"\} 0/);
    first.unregister(); // the old handle is inert: it must not remove the new registration's metrics
    assert.match(await registry.metrics(), /sidecarless_requests_total\{client="users"/);
    again.unregister();
    assert.equal((await registry.getMetricsAsJSON()).length, 0);
    await client.close();
  });

  it(
    'two clients, label values with quotes, newlines and backslashes: promtool finds nothing',
    { skip: promtoolMissing && 'promtool not installed (Debian prometheus)' },
    async () => {
      const registry = new Registry();
      const a = createClient({ name: 'a', target: 'static://127.0.0.1:1', retry: { maxAttempts: 1 } });
      const b = createClient({ name: 'b', target: 'static://127.0.0.1:2', retry: { maxAttempts: 1 } });
      registerPrometheusMetrics(a, { registry, client: 'odd "name"\nwith \\ slash', endpointMetrics: true });
      registerPrometheusMetrics(b, { registry, client: 'b', endpointMetrics: true });
      await a.fetch('http://a/').catch(() => {});
      await b.fetch('http://b/').catch(() => {});
      const run = spawnSync('promtool', ['check', 'metrics'], { input: await registry.metrics(), encoding: 'utf8' });
      assert.equal(`${run.stdout}${run.stderr}`.trim(), '');
      assert.equal(run.status, 0);
      await a.close();
      await b.close();
    },
  );
});
