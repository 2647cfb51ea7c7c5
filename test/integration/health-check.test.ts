/**
 * Active health checks against real fault-injecting backends on 127.0.0.1: 503s, connection resets, connection
 * refused (stopped backend) and stalls past the timeout. Real time with small intervals; every wait polls the
 * checker's state against a deadline, and nothing asserts a duration.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HealthChecker, resolveHealthCheckOptions } from '../../src/health/health-check.js';
import { systemClock } from '../../src/common/runtime.js';
import { type Backend, startBackend } from '../helpers/backends.js';

type Mode = 'ok' | '503' | 'reset' | 'stall';

interface Faulty {
  backend: Backend;
  mode: Mode;
  /**
   * Checks answered in a fault mode, and in 'ok' mode, counted when the server handled them: a check already in
   * flight when the test switches modes counts as what it was answered with (counting raw hits around the switch
   * made the threshold assertions flaky on a loaded machine).
   */
  faultsServed: number;
  oksServed: number;
}

async function startFaulty(id: string): Promise<Faulty> {
  const faulty: Faulty = { backend: undefined as unknown as Backend, mode: 'ok', faultsServed: 0, oksServed: 0 };
  faulty.backend = await startBackend(id, (req, res) => {
    if (faulty.mode === 'ok') faulty.oksServed++;
    else faulty.faultsServed++;
    switch (faulty.mode) {
      case 'ok':
        res.end('ok');
        return;
      case '503':
        res.statusCode = 503;
        res.end('unavailable');
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'stall':
        return; // never answers; the checker's timeout must abort
    }
  });
  return faulty;
}

async function until(condition: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Transition {
  host: Faulty;
  healthy: boolean;
  /** Backend hits when the transition happened. */
  hits: number;
  /** The host's faultsServed and oksServed when the transition happened. */
  faults: number;
  oks: number;
}

function makeChecker(hosts: Faulty[], options: Parameters<typeof resolveHealthCheckOptions>[0] = {}) {
  const transitions: Transition[] = [];
  const unejected: Faulty[] = [];
  const ejected = new Set<Faulty>();
  const checker = new HealthChecker<Faulty>(
    resolveHealthCheckOptions({
      intervalMs: 15,
      intervalJitterPercent: 0,
      timeoutMs: 150,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      ...(typeof options === 'object' ? options : {}),
    })!,
    {
      clock: systemClock,
      random: Math.random,
      origin: (f) => `http://${f.backend.address}`,
      serviceName: 'users',
      onHealthy: (host) =>
        transitions.push({
          host,
          healthy: true,
          hits: host.backend.hits,
          faults: host.faultsServed,
          oks: host.oksServed,
        }),
      onUnhealthy: (host) =>
        transitions.push({
          host,
          healthy: false,
          hits: host.backend.hits,
          faults: host.faultsServed,
          oks: host.oksServed,
        }),
      outlierDetector: {
        isEjected: (h) => ejected.has(h),
        uneject: (h, reason) => {
          assert.equal(reason, 'health-check');
          ejected.delete(h);
          unejected.push(h);
          return true;
        },
      },
    },
  );
  checker.setHosts(hosts);
  return { checker, transitions, ejected, unejected };
}

describe('active health checks over real backends', () => {
  let a: Faulty;
  let b: Faulty;
  before(async () => {
    a = await startFaulty('a');
    b = await startFaulty('b');
  });
  after(async () => {
    await a.backend.stop().catch(() => {});
    await b.backend.stop().catch(() => {});
  });

  const faults: Array<[Mode | 'refused', string]> = [
    ['503', 'a 503'],
    ['reset', 'a connection reset'],
    ['refused', 'a refused connection (stopped backend)'],
    ['stall', 'a stall past the timeout'],
  ];
  for (const [fault, label] of faults) {
    it(`marks a host unhealthy after unhealthyThreshold checks failing with ${label}, healthy again after healthyThreshold passes`, async () => {
      a.mode = 'ok';
      b.mode = 'ok';
      const { checker, transitions } = makeChecker([a, b]);
      try {
        await until(() => a.backend.hits > 0 && b.backend.hits > 0, 'first checks');
        assert.equal(checker.isHealthy(a), true);
        const faultsBefore = a.faultsServed;
        if (fault === 'refused') await a.backend.stop();
        else a.mode = fault;
        await until(() => !checker.isHealthy(a), `${label} to make a unhealthy`);
        const down = transitions.find((t) => t.host === a && !t.healthy);
        assert.ok(down);
        if (fault !== 'refused') {
          assert.ok(
            down.faults - faultsBefore >= 3,
            `unhealthy only after 3 failed checks (saw ${down.faults - faultsBefore})`,
          );
        }
        assert.equal(checker.isHealthy(b), true, 'the healthy backend stays healthy');

        const oksAtRecovery = a.oksServed;
        if (fault === 'refused') await a.backend.restart();
        a.mode = 'ok';
        await until(() => checker.isHealthy(a), 'a to recover');
        const up = transitions.find((t) => t.host === a && t.healthy);
        assert.ok(up);
        assert.ok(up.oks - oksAtRecovery >= 2, `healthy only after 2 passing checks (saw ${up.oks - oksAtRecovery})`);
        assert.deepEqual(
          transitions.map((t) => [t.host.backend.id, t.healthy]),
          [
            ['a', false],
            ['a', true],
          ],
          'exactly one transition each way, none for b',
        );
      } finally {
        await checker.close();
      }
    });
  }

  it('sends the logical service name as Host, or the configured host', async () => {
    a.mode = 'ok';
    const start = a.backend.hosts.length;
    const { checker } = makeChecker([a]);
    await until(() => a.backend.hosts.length > start, 'a check');
    assert.equal(a.backend.hosts[start], 'users');
    await checker.close();
    const custom = makeChecker([a], { host: 'health.internal' });
    const next = a.backend.hosts.length;
    await until(() => a.backend.hosts.length > next, 'a check');
    assert.equal(a.backend.hosts[next], 'health.internal');
    await custom.checker.close();
  });

  it('treats unexpected statuses as failures and configured ones as passes', async () => {
    a.mode = '503';
    const strict = makeChecker([a], { expectedStatuses: [200] });
    await until(() => !strict.checker.isHealthy(a), 'a 503 to fail');
    await strict.checker.close();
    const lenient = makeChecker([a], { expectedStatuses: [[200, 299], 503], initialHealthy: false });
    await until(() => lenient.checker.isHealthy(a), 'a 503 to pass');
    await lenient.checker.close();
  });

  it('with initialHealthy: false, a new host is unhealthy until its first check passes', async () => {
    a.mode = 'ok';
    const { checker, transitions } = makeChecker([a], { initialHealthy: false });
    assert.equal(checker.isHealthy(a), false);
    await until(() => checker.isHealthy(a), 'the first pass');
    assert.equal(transitions.length, 1);
    assert.equal(transitions[0]?.healthy, true);
    await checker.close();
  });

  it('a passing check returns a host ejected by outlier detection, unless canReturnEjected is false', async () => {
    a.mode = 'ok';
    const on = makeChecker([a]);
    on.ejected.add(a);
    await until(() => on.unejected.length > 0, 'the uneject');
    assert.deepEqual(on.unejected, [a]);
    await on.checker.close();

    const off = makeChecker([a], { canReturnEjected: false });
    off.ejected.add(a);
    const start = a.backend.hits;
    await until(() => a.backend.hits >= start + 3, 'three passing checks');
    assert.deepEqual(off.unejected, []);
    await off.checker.close();
  });

  it('stops checking removed hosts and everything on close', async () => {
    a.mode = 'ok';
    b.mode = 'stall';
    const { checker } = makeChecker([a, b]);
    await until(() => a.backend.hits > 0 && b.backend.hits > 0, 'first checks');
    checker.setHosts([a]);
    assert.equal(checker.isHealthy(b), true, 'a removed host is unknown, hence healthy');
    await checker.close();
    await checker.close();
    checker.setHosts([a, b]); // ignored after close
  });
});
