// Regression: NODE_DEBUG=sidecarless:health logged `check failed: 503` with no endpoint or cluster, and no line for
// the healthy/unhealthy transitions, though Troubleshooting says these logs explain ejections. Every line now names
// the cluster and the endpoint, and each transition is logged. In a child process: debuglog reads NODE_DEBUG once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../fixtures/health-debug-child.ts', import.meta.url));
const outlierScript = fileURLToPath(new URL('../fixtures/outlier-debug-child.ts', import.meta.url));

/** Runs `fixture` with `NODE_DEBUG=debug` and resolves with what it printed. */
async function runWithDebug(fixture: string, debug: string): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, NODE_DEBUG: debug },
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
  return { stdout, stderr };
}

describe('NODE_DEBUG=sidecarless:health', () => {
  it('names the cluster and the endpoint on every check line, and logs the unhealthy transition', async () => {
    const { stdout, stderr } = await runWithDebug(script, 'sidecarless:health');
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

// Regression (probe 17, defect 2): NODE_DEBUG=sidecarless:outlier lines named neither the cluster nor the endpoint,
// and a rule that is off (consecutive-gateway-failure by default) was logged as held back by the max ejection percent.
describe('NODE_DEBUG=sidecarless:outlier', () => {
  it('names the cluster and the endpoint on every line, and why a detection did not eject', async () => {
    const { stdout, stderr } = await runWithDebug(outlierScript, 'sidecarless:outlier');
    const bad = stdout.split(' ');
    const lines = stderr.split('\n').filter((line) => line.startsWith('SIDECARLESS:OUTLIER '));
    const text = lines.join('\n');
    assert.ok(lines.length >= 4, text);
    for (const line of lines) {
      assert.match(line, /^SIDECARLESS:OUTLIER \d+: users: /);
      // Every line but the success-rate sweep's, which is about all hosts, is about one endpoint.
      if (!line.includes(': success rate of ')) assert.ok(/: users: 127\.0\.0\.1:\d+ /.test(line), line);
    }
    const about = (what: string) => bad.some((key) => lines.some((line) => line.includes(`: users: ${key} ${what}`)));
    assert.ok(about('ejected (consecutive-5xx) for 100 ms, multiplier 1'), text);
    assert.ok(about('consecutive-5xx detected but not ejected: max ejection percent reached'), text);
    assert.ok(about('consecutive-gateway-failure detected but not ejected: the rule is off (enforcing 0%)'), text);
    assert.ok(!lines.some((line) => line.includes('consecutive-gateway-failure detected but not ejected: max')), text);
    assert.ok(about('returned (elapsed) after '), text);
  });
});
