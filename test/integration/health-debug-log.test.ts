// Regression: NODE_DEBUG=sidecarless:health logged `check failed: 503` with no endpoint or cluster, and no line for
// the healthy/unhealthy transitions, though Troubleshooting says these logs explain ejections. Every line now names
// the cluster and the endpoint, and each transition is logged. In a child process: debuglog reads NODE_DEBUG once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../fixtures/health-debug-child.ts', import.meta.url));

describe('NODE_DEBUG=sidecarless:health', () => {
  it('names the cluster and the endpoint on every check line, and logs the unhealthy transition', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, NODE_DEBUG: 'sidecarless:health' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, stderr);
    const [ok, bad] = stdout.split(' ');
    const lines = stderr.split('\n').filter((line) => line.startsWith('SIDECARLESS:HEALTH '));
    const text = lines.join('\n');
    const checks = lines.filter((line) => /: check \S+ (passed|failed): /.test(line));
    assert.ok(checks.length >= 3, text);
    for (const line of checks) {
      assert.match(line, /^SIDECARLESS:HEALTH \d+: users: check 127\.0\.0\.1:\d+ (passed|failed): /);
    }
    assert.ok(
      checks.some((line) => line.includes(`check ${ok} passed: 200`)),
      text,
    );
    assert.ok(
      checks.some((line) => line.includes(`check ${bad} failed: 503`)),
      text,
    );
    assert.ok(
      lines.some((line) => line.endsWith(`: users: unhealthy ${bad} (2 failed checks in a row)`)),
      text,
    );
  });
});
