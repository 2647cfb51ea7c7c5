import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveHealthCheckOptions } from '../../../src/health/health-check.js';

describe('health check options', () => {
  it('is off unless configured; {} and true give the defaults', () => {
    assert.equal(resolveHealthCheckOptions(undefined), undefined);
    assert.equal(resolveHealthCheckOptions(false), undefined);
    const defaults = {
      path: '/health',
      intervalMs: 5000,
      intervalJitterPercent: 10,
      jitterMs: 0,
      timeoutMs: 1000,
      expectedStatuses: [[200, 299]],
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      host: undefined,
      canReturnEjected: true,
      initialHealthy: true,
    };
    assert.deepEqual({ ...resolveHealthCheckOptions({}) }, defaults);
    assert.deepEqual({ ...resolveHealthCheckOptions(true) }, defaults);
  });

  it('accepts codes and inclusive ranges', () => {
    assert.deepEqual(resolveHealthCheckOptions({ expectedStatuses: [204, [300, 302]] })?.expectedStatuses, [
      [204, 204],
      [300, 302],
    ]);
  });

  it('accepts origin-relative paths, with a query, and keeps them as given', () => {
    for (const path of ['/', '/health', '/ready?full=1', '/a//b', '/a\\b', '/@evil.example']) {
      assert.equal(resolveHealthCheckOptions({ path })?.path, path);
    }
  });

  const bad: Array<[unknown, string]> = [
    [{ intervalMs: 0 }, 'healthCheck.intervalMs'],
    [{ intervalMs: -5 }, 'healthCheck.intervalMs'],
    [{ timeoutMs: 0 }, 'healthCheck.timeoutMs'],
    [{ jitterMs: -1 }, 'healthCheck.jitterMs'],
    [{ intervalJitterPercent: 120 }, 'healthCheck.intervalJitterPercent'],
    [{ healthyThreshold: 0 }, 'healthCheck.healthyThreshold'],
    [{ unhealthyThreshold: 1.5 }, 'healthCheck.unhealthyThreshold'],
    [{ path: 'health' }, 'healthCheck.path'],
    [{ path: '/a b' }, 'healthCheck.path'],
    // Scheme-relative: resolved against the endpoint's origin they would point the checks at another host.
    [{ path: '//evil.example/x' }, 'healthCheck.path'],
    [{ path: '/\\evil.example/x' }, 'healthCheck.path'],
    [{ path: '\\evil.example/x' }, 'healthCheck.path'],
    [{ host: '' }, 'healthCheck.host'],
    [{ host: 'a b' }, 'healthCheck.host'],
    // Probe 20: text undici refuses on every check (above U+00FF), or sends as other bytes (Latin-1).
    [{ host: '日本' }, 'healthCheck.host'],
    [{ host: 'bücher.example' }, 'healthCheck.host'],
    [{ host: 'a/b' }, 'healthCheck.host'],
    [{ path: '/日本' }, 'healthCheck.path'],
    [{ path: '/café' }, 'healthCheck.path'],
    [{ path: null }, 'healthCheck.path'],
    [{ expectedStatuses: [] }, 'healthCheck.expectedStatuses'],
    [{ expectedStatuses: 200 }, 'healthCheck.expectedStatuses'],
    [{ expectedStatuses: [700] }, 'healthCheck.expectedStatuses[0]'],
    [{ expectedStatuses: [200, [299, 200]] }, 'healthCheck.expectedStatuses[1]'],
    [{ expectedStatuses: [[200, 'x']] }, 'healthCheck.expectedStatuses[0][1]'],
    [{ canReturnEjected: 1 }, 'healthCheck.canReturnEjected'],
    [{ initialHealthy: 'no' }, 'healthCheck.initialHealthy'],
    [{ interval: 5 }, 'healthCheck.interval'],
    ['/health', 'healthCheck'],
  ];
  for (const [raw, option] of bad) {
    it(`rejects ${JSON.stringify(raw)} naming ${option}`, () => {
      assert.throws(() => resolveHealthCheckOptions(raw as never), { code: 'SIDECARLESS_INVALID_OPTION', option });
    });
  }

  it('refuses an unknown key in the toolkit wording, under the path it is given', () => {
    assert.throws(() => resolveHealthCheckOptions({ interval: 5 } as never), {
      option: 'healthCheck.interval',
      message: /healthCheck\.interval`: unknown option; did you mean "intervalMs"\? \(allowed: path, intervalMs,/,
    });
    assert.throws(() => resolveHealthCheckOptions({ timeout: 5 } as never, 'clusters.users.healthCheck'), {
      option: 'clusters.users.healthCheck.timeout',
      message: /renamed to "timeoutMs" in 0\.2\.0/,
    });
    assert.throws(() => resolveHealthCheckOptions({ path: 'health' }), {
      option: 'healthCheck.path',
      message: /expected an origin-relative path starting with a single "\/", without whitespace, got "health"/,
    });
  });
});
