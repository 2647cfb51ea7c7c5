// examples/prometheus-metrics.ts runs as a user would run it, and its /metrics reports real numbers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runExample } from '../helpers/run-example.js';

/** The value of the one sample of `name` with exactly `labels`. */
function sample(text: string, name: string, labels: string): number {
  const match = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  assert.ok(match, `no ${name}{${labels}} in:\n${text}`);
  return Number(match[1]);
}

/** Sum of every sample of `name`, whatever its labels. */
function sum(text: string, name: string): number {
  return [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
}

it('the Prometheus example serves /metrics with the numbers of the traffic it sent', async () => {
  const out = await runExample('prometheus-metrics.ts');
  // 30 requests went through the service; each is one request to the inventory cluster.
  assert.match(out, /^sidecarless_requests_total\{client="inventory",upstream_cluster="inventory"\} 30$/m);
  assert.match(
    out,
    /^sidecarless_request_duration_seconds_count\{client="inventory",upstream_cluster="inventory"\} 30$/m,
  );
  assert.match(out, /^sidecarless_endpoints\{client="inventory",upstream_cluster="inventory"\} 3$/m);
  assert.match(
    out,
    /^sidecarless_responses_total\{client="inventory",upstream_cluster="inventory",code_class="2xx"\} 30$/m,
  );
  // Every fifth answer of the third backend is a 503, retried elsewhere: retries happened, callers saw none.
  const retries = Number(
    /^sidecarless_retries_total\{client="inventory",upstream_cluster="inventory"\} (\d+)$/m.exec(out)?.[1],
  );
  assert.ok(retries >= 1, out);
  const attempts = [...out.matchAll(/^sidecarless_endpoint_attempts_total\{[^}]*\} (\d+)$/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
  assert.equal(attempts, 30 + retries);
});

it('with --serve, the running service exposes /metrics that counts the traffic it serves, scraped over HTTP', async () => {
  const script = fileURLToPath(new URL('../../examples/prometheus-metrics.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const match = /^serving http:\/\/([\d.]+:\d+)\/metrics$/m.exec(out);
        if (match) resolve(match[1] as string);
      });
      exited.then(() => reject(new Error(`the example exited before serving: ${out}`)), reject);
    });
    const scrape = async () => (await fetch(`http://${address}/metrics`)).text();
    const labels = 'client="inventory",upstream_cluster="inventory"';
    const first = await scrape();
    assert.equal(sample(first, 'sidecarless_requests_total', labels), 30);
    assert.equal(sample(first, 'sidecarless_responses_total', `${labels},code_class="2xx"`), 30);
    assert.equal(sample(first, 'sidecarless_request_duration_seconds_count', labels), 30);
    assert.equal(sample(first, 'sidecarless_requests_in_flight', labels), 0);
    const retries = sample(first, 'sidecarless_retries_total', labels);
    assert.ok(retries >= 1, 'the 503s of the third backend were retried');
    assert.equal(sum(first, 'sidecarless_endpoint_retries_total'), retries, 'each retry is counted on one endpoint');
    assert.equal(sum(first, 'sidecarless_endpoint_attempts_total'), 30 + retries);
    // Per-endpoint series, asked for in the example: one per endpoint, labelled upstream_endpoint.
    assert.equal([...first.matchAll(/^sidecarless_endpoint_attempts_total\{[^}]*upstream_endpoint="/gm)].length, 3);
    // A scraper that asks for OpenMetrics gets it, each counter named with `_total` once.
    const om = await (
      await fetch(`http://${address}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } })
    ).text();
    assert.match(om, /^# TYPE sidecarless_requests counter$/m);
    assert.equal(sample(om, 'sidecarless_requests_total', labels), 30);
    assert.doesNotMatch(om, /_total_total/);

    for (let i = 0; i < 5; i++) assert.equal((await fetch(`http://${address}/buy`)).status, 200);
    const second = await scrape();
    assert.equal(sample(second, 'sidecarless_requests_total', labels), 35);
    assert.equal(sample(second, 'sidecarless_request_duration_seconds_count', labels), 35);
  } finally {
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    clearTimeout(killer);
    assert.deepEqual([code, signal], [0, null], `the example closes and exits on SIGTERM: ${out}`);
  }
});
