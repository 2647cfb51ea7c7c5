// examples/prometheus-metrics.ts runs as a user would run it, and its /metrics reports real numbers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

it('the Prometheus example serves /metrics with the numbers of the traffic it sent', async () => {
  const script = fileURLToPath(new URL('../../examples/prometheus-metrics.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, out);
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
