import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { HealthChecker, resolveHealthCheckOptions } from '../../../src/health/health-check.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

/** Lets the mock dispatcher's replies and the checker's promise chain run (no timers involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

function setup(options: Parameters<typeof resolveHealthCheckOptions>[0] = {}) {
  const clock = new FakeClock();
  const agent = new MockAgent();
  agent.disableNetConnect();
  let status = 200;
  const seen: Array<{ path: string; host: unknown }> = [];
  agent
    .get('http://h1.test')
    .intercept({ path: /.*/, method: 'GET' })
    .reply((req) => {
      seen.push({ path: req.path, host: (req.headers as Record<string, string>).host });
      return { statusCode: status, data: 'x' };
    })
    .persist();
  const events: string[] = [];
  const checker = new HealthChecker<string>(
    resolveHealthCheckOptions({ intervalMs: 1000, intervalJitterPercent: 0, timeoutMs: 500, ...(options as object) })!,
    {
      clock,
      random: seededRandom(1),
      origin: () => 'http://h1.test',
      serviceName: 'users',
      dispatcher: agent,
      onHealthy: (h) => events.push(`healthy ${h}`),
      onUnhealthy: (h) => events.push(`unhealthy ${h}`),
    },
  );
  const tick = async (ms: number) => {
    clock.advance(ms);
    await settle();
  };
  return {
    clock,
    agent,
    checker,
    events,
    seen,
    tick,
    setStatus: (s: number) => {
      status = s;
    },
  };
}

describe('health checker (fake clock, mock dispatcher)', () => {
  it('checks a new host at once, then every interval; thresholds 3 down and 2 up', async () => {
    const t = setup();
    t.checker.setHosts(['h1']);
    assert.equal(t.seen.length, 0, 'never synchronously with setHosts');
    await t.tick(0);
    assert.deepEqual(t.seen, [{ path: '/health', host: 'users' }]);
    t.setStatus(503);
    await t.tick(1000);
    await t.tick(1000);
    assert.equal(t.checker.isHealthy('h1'), true, 'two failures are not enough');
    await t.tick(1000);
    assert.equal(t.checker.isHealthy('h1'), false);
    t.setStatus(200);
    await t.tick(1000);
    assert.equal(t.checker.isHealthy('h1'), false, 'one pass is not enough');
    await t.tick(1000);
    assert.equal(t.checker.isHealthy('h1'), true);
    assert.deepEqual(t.events, ['unhealthy h1', 'healthy h1']);
    assert.equal(t.seen.length, 6);
    await t.checker.close();
    assert.equal(t.clock.pending, 0, 'close clears every timer');
    await t.agent.close();
  });

  it('never overlaps checks of one host: the next is scheduled when the previous ends', async () => {
    const t = setup();
    t.checker.setHosts(['h1']);
    t.clock.advance(0); // the check starts; its reply has not been delivered yet
    t.clock.advance(400);
    assert.equal(t.clock.pending, 1, 'only the timeout timer while a check is in flight');
    await settle();
    assert.equal(t.seen.length, 1);
    await t.tick(999);
    assert.equal(t.seen.length, 1);
    await t.tick(1);
    assert.equal(t.seen.length, 2);
    await t.checker.close();
    await t.agent.close();
  });

  it("sends every check to the endpoint's own origin, whatever the path (regression: //host paths changed the host)", async () => {
    // Validation refuses `//` and `/\\` paths; the URL is also built so that a path can never name another host, so
    // even settings that bypass validation check h1.test (the mock refuses any other host).
    const t = setup();
    await t.checker.close();
    for (const path of ['//evil.test/x', '/\\evil.test/x', '/@evil.test/x?a=1']) {
      const options = { ...resolveHealthCheckOptions({ intervalMs: 1000, intervalJitterPercent: 0 })!, path };
      const checker = new HealthChecker<string>(options, {
        clock: t.clock,
        random: seededRandom(1),
        origin: () => 'http://h1.test',
        serviceName: 'users',
        dispatcher: t.agent,
      });
      checker.setHosts(['h1']);
      await t.tick(0);
      await checker.close();
    }
    assert.deepEqual(
      t.seen.map((s) => s.path),
      ['//evil.test/x', '//evil.test/x', '/@evil.test/x?a=1'],
    );
    await t.agent.close();
  });

  it('adds interval jitter from the random source', async () => {
    const t = setup({ intervalJitterPercent: 50, jitterMs: 100 });
    t.checker.setHosts(['h1']);
    await t.tick(0);
    await t.tick(1000);
    assert.equal(t.seen.length, 1, 'jitter delays the next check past the bare interval');
    await t.tick(650);
    assert.equal(t.seen.length, 2);
    await t.checker.close();
    await t.agent.close();
  });
});

describe('health checker: the next check is never scheduled past the longest Node timer', () => {
  it('intervalMs 2147483647 plus the default 10 % jitter and jitterMs waits at most 2147483647 ms', async () => {
    const t = setup({ intervalMs: 2 ** 31 - 1, intervalJitterPercent: 10, jitterMs: 1000 });
    const delays: number[] = [];
    const setTimeout = t.clock.setTimeout.bind(t.clock);
    t.clock.setTimeout = (fn: () => void, ms: number) => {
      delays.push(ms);
      return setTimeout(fn, ms);
    };
    t.checker.setHosts(['h1']);
    await t.tick(0); // the first check, then its successor is scheduled
    await t.tick(600); // past the check's own timeout timer
    const next = delays.filter((ms) => ms > 1000);
    assert.ok(next.length >= 1, `a next check was scheduled (${delays.join(', ')})`);
    for (const ms of next) assert.ok(ms <= 2 ** 31 - 1, `delay ${ms} fits a Node timer`);
    await t.checker.close();
  });
});

describe('health checker: a dispatcher that never answers (probe 9)', () => {
  it('fails the check at timeoutMs even when the dispatcher does not act on the abort (a request still connecting)', async () => {
    const clock = new FakeClock();
    const events: string[] = [];
    // undici defers an abort until the request has a connection: this dispatcher never gets one.
    const stuck = { dispatch: () => true };
    const checker = new HealthChecker<string>(
      resolveHealthCheckOptions({ intervalMs: 1000, timeoutMs: 500, unhealthyThreshold: 1 })!,
      {
        clock,
        random: seededRandom(1),
        origin: () => 'http://h1.test',
        dispatcher: stuck as never,
        onUnhealthy: (h) => events.push(`unhealthy ${h}`),
      },
    );
    try {
      checker.setHosts(['h1']);
      clock.advance(0);
      await settle();
      clock.advance(499);
      await settle();
      assert.deepEqual(events, []);
      clock.advance(1);
      await settle();
      assert.deepEqual(events, ['unhealthy h1']);
    } finally {
      await checker.close();
    }
  });
});
