// Regression (check storm): when thousands of endpoints joined at once, every first check fired in the same tick, so
// at 3,000-5,000 endpoints most timed out on the client's own stall and healthy endpoints were marked unhealthy. The
// first checks of more than 100 new hosts are now spread uniformly over the first interval; up to 100 still run at
// once. Counted on the fake clock: `origin` is read once, synchronously, as each check starts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HealthChecker, resolveHealthCheckOptions } from '../../../src/health/health-check.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const INTERVAL = 1000;

function setup() {
  const clock = new FakeClock();
  /** When each host's first check started. */
  const firstAt = new Map<string, number>();
  const checker = new HealthChecker<string>(
    resolveHealthCheckOptions({ intervalMs: INTERVAL, intervalJitterPercent: 0, timeoutMs: 500 })!,
    {
      clock,
      random: seededRandom(7),
      origin: (host) => {
        if (!firstAt.has(host)) firstAt.set(host, clock.now());
        // Fails the check at once, before any I/O: only the schedule is under test.
        throw new Error('no I/O in this test');
      },
    },
  );
  return { clock, firstAt, checker };
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** First checks per tenth of the interval, from `from`. */
function buckets(firstAt: Map<string, number>, hosts: readonly string[], from: number): number[] {
  const counts = Array.from({ length: 10 }, () => 0);
  for (const host of hosts) {
    const at = firstAt.get(host);
    assert.ok(at !== undefined, `${host} was checked within the first interval`);
    const i = Math.floor(((at - from) / INTERVAL) * 10);
    assert.ok(i >= 0 && i < 10, `${host} first checked at ${at}, within [${from}, ${from + INTERVAL})`);
    counts[i]!++;
  }
  return counts;
}

describe('first health checks of many new hosts', () => {
  it('spreads the first checks of 2,000 hosts joining at start uniformly over the first interval', async () => {
    const t = setup();
    const hosts = names('h', 2000);
    t.checker.setHosts(hosts);
    t.clock.advance(0);
    assert.ok(t.firstAt.size < 50, `${t.firstAt.size} first checks in the first tick`);
    t.clock.advance(INTERVAL);
    for (const n of buckets(t.firstAt, hosts, 0))
      assert.ok(n > 130 && n < 270, `${n} checks in a tenth (200 expected)`);
    await t.checker.close();
  });

  it('spreads the first checks of 1,000 hosts added by an update, and checks a few new hosts at once', async () => {
    const t = setup();
    const first = names('a', 100);
    t.checker.setHosts(first);
    t.clock.advance(0);
    assert.equal(t.firstAt.size, 100, 'up to 100 new hosts are checked at once');
    t.clock.advance(250);
    const added = names('b', 1000);
    t.checker.updateHosts(added, []);
    t.clock.advance(0);
    assert.ok(t.firstAt.size < 100 + 30);
    t.clock.advance(INTERVAL);
    for (const n of buckets(t.firstAt, added, 250))
      assert.ok(n > 60 && n < 140, `${n} checks in a tenth (100 expected)`);
    const few = names('c', 5);
    t.checker.updateHosts(few, []);
    t.clock.advance(0);
    assert.ok(few.every((h) => t.firstAt.get(h) === t.clock.now()));
    await t.checker.close();
  });
});
