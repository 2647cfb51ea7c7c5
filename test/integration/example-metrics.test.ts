// examples/prometheus-metrics.ts runs as a user would run it, and its /metrics reports real numbers.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runExample } from '../helpers/run-example.js';

it('the Prometheus example serves /metrics with the numbers of the traffic it sent', async () => {
  const out = await runExample('prometheus-metrics.ts');
  // 30 requests went through the service; each is one request to the inventory cluster.
  assert.match(out, /^sidecarless_requests_total\{service="shop",cluster="inventory"\} 30$/m);
  assert.match(out, /^sidecarless_request_duration_seconds_count\{service="shop",cluster="inventory"\} 30$/m);
  assert.match(out, /^sidecarless_endpoints\{service="shop",cluster="inventory"\} 3$/m);
  assert.match(out, /^sidecarless_responses_total\{service="shop",cluster="inventory",code_class="2xx"\} 30$/m);
  // Every fifth answer of the third backend is a 503, retried elsewhere: retries happened, callers saw none.
  const retries = Number(/^sidecarless_retries_total\{service="shop",cluster="inventory"\} (\d+)$/m.exec(out)?.[1]);
  assert.ok(retries >= 1, out);
  const attempts = [...out.matchAll(/^sidecarless_endpoint_attempts_total\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
  assert.equal(attempts, 30 + retries);
});
