/**
 * Health state follows membership in place (issue 14, "Scale": no map of every host per update): the outlier
 * detector's `setHosts` and `updateHosts` (given what joined and left), the health checker's and slow start's, keep
 * what a rebuild from the new set keeps. The detector's sweep visits hosts in the order of the latest set, as a map
 * rebuilt in that order did: that order decides which outliers `maxEjectionPercent` spares.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MockAgent } from 'undici';
import type { AttemptOutcome } from '../../../src/common/outcome.js';
import { HealthChecker, resolveHealthCheckOptions } from '../../../src/health/health-check.js';
import { OutlierDetector, resolveOutlierDetectionOptions } from '../../../src/health/outlier-detector.js';
import { resolveSlowStartOptions, SlowStartTracker } from '../../../src/health/slow-start.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const FAIL: AttemptOutcome = { statusCode: 500, errorKind: undefined, error: undefined, latencyMs: 1 };
const UNIVERSE = Array.from({ length: 20 }, (_, i) => `h${i}`);

// Failure percentage the only rule, enforced; the consecutive rule out of reach.
const OPTIONS = resolveOutlierDetectionOptions({
  consecutive5xx: 1_000_000,
  enforcingSuccessRate: 0,
  enforcingFailurePercentage: 100,
  failurePercentageRequestVolume: 3,
  failurePercentageMinimumHosts: 1,
  maxEjectionPercent: 30,
})!;

function detector(clock: FakeClock, seed: number): OutlierDetector<string> {
  return new OutlierDetector<string>(OPTIONS, { clock, random: seededRandom(seed) });
}

/** A step: the next set (a subset of the universe in some order), and hosts ejected by hand before it. */
const stepArb = fc.record({
  set: fc.shuffledSubarray(UNIVERSE, { minLength: 1 }),
  eject: fc.subarray(UNIVERSE, { maxLength: 3 }),
  fail: fc.subarray(UNIVERSE, { maxLength: 5 }),
  duplicate: fc.boolean(),
});

describe('outlier detector: the host set updated in place', () => {
  it('setHosts and updateHosts keep what a rebuild keeps, and the sweep follows the latest order', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 10 }), (steps) => {
        const clock = new FakeClock();
        const full = detector(clock, 1);
        const diff = detector(clock, 1);
        let previous: string[] = [];
        for (const step of steps) {
          for (const h of step.eject) assert.equal(full.eject(h), diff.eject(h));
          for (const h of step.fail) {
            full.record(h, FAIL);
            diff.record(h, FAIL);
          }
          const set = step.set;
          // setHosts ignores a repeated host (its first place counts); updateHosts is given a set without.
          full.setHosts(step.duplicate ? [...set, set[0]!] : set);
          diff.updateHosts(
            set,
            set.filter((h) => !previous.includes(h)),
            previous.filter((h) => !set.includes(h)),
          );
          previous = set;
          assert.equal(full.size, set.length);
          assert.equal(diff.size, set.length);
          assert.equal(full.ejectedCount, diff.ejectedCount);
          for (const h of UNIVERSE) {
            assert.deepEqual(full.snapshot(h), diff.snapshot(h), h);
            if (!set.includes(h)) assert.equal(full.snapshot(h), undefined, `${h} forgotten`);
          }
          assert.equal(full.ejectedCount, set.filter((h) => full.isEjected(h)).length);
        }
        // Every host of the last set now fails alike, recorded in reverse order; the sweep ejects as many as the
        // cap allows, the first ones of the set's order that are not ejected yet.
        const last = previous;
        for (const d of [full, diff]) {
          for (const h of [...last].reverse()) for (let i = 0; i < 5; i++) d.record(h, FAIL);
        }
        const before = last.filter((h) => full.isEjected(h)).length;
        let room = Math.max(0, Math.floor((OPTIONS.maxEjectionPercent * last.length) / 100) - before);
        if (before === 0) room = Math.max(room, 1);
        const expected = new Set(last.filter((h) => full.isEjected(h)));
        for (const h of last) {
          if (room === 0) break;
          if (!expected.has(h)) {
            expected.add(h);
            room--;
          }
        }
        clock.advance(OPTIONS.intervalMs);
        for (const d of [full, diff]) {
          assert.deepEqual(new Set(last.filter((h) => d.isEjected(h))), expected);
        }
        full.close();
        diff.close();
      }),
      { numRuns: 300, seed: 14 },
    );
  });

  it('spares the hosts last in the set order when the cap is reached, whatever order they joined in', () => {
    const clock = new FakeClock();
    const d = detector(clock, 1);
    // h0..h9 join first, h10..h19 later; the set then puts the late joiners first.
    const early = UNIVERSE.slice(0, 10);
    const late = UNIVERSE.slice(10);
    d.setHosts(early);
    d.updateHosts([...late, ...early], late, []);
    for (const h of UNIVERSE) for (let i = 0; i < 5; i++) d.record(h, FAIL);
    clock.advance(OPTIONS.intervalMs);
    // 30 % of 20: six ejected, the first six of the set's order.
    assert.deepEqual(
      UNIVERSE.filter((h) => d.isEjected(h)),
      late.slice(0, 6),
    );
    d.close();
  });

  it('keeps the hosts that joined with no outcome apart: one fails, the others stay clean through sweeps', () => {
    // Hosts added by updateHosts share one all-zero state until their first outcome or ejection (no object per idle
    // endpoint); a write through one host must never show on another.
    const clock = new FakeClock();
    const d = detector(clock, 1);
    d.updateHosts(UNIVERSE, UNIVERSE, []);
    const clean = d.snapshot('h1');
    d.record('h0', FAIL);
    assert.equal(d.snapshot('h0')?.requests, 1);
    assert.deepEqual(d.snapshot('h1'), clean);
    assert.equal(d.eject('h2'), true);
    assert.equal(d.isEjected('h2'), true);
    assert.equal(d.isEjected('h3'), false);
    for (let i = 0; i < 3; i++) clock.advance(OPTIONS.intervalMs);
    assert.deepEqual(d.snapshot('h1'), clean);
    assert.equal(d.snapshot('h2')?.timesEjected, 1);
    assert.equal(d.snapshot('h3')?.timesEjected, 0);
    d.close();
  });
});

describe('slow start: the host set updated in place', () => {
  it('starts only new hosts ramping, forgets removed ones, with setHosts and updateHosts alike', () => {
    const clock = new FakeClock();
    const options = resolveSlowStartOptions({ windowMs: 1000 })!;
    const full = new SlowStartTracker<string>(options, clock);
    const diff = new SlowStartTracker<string>(options, clock);
    full.setHosts(['a', 'b']);
    diff.updateHosts(['a', 'b'], []);
    clock.advance(500);
    full.setHosts(['b', 'c']);
    diff.updateHosts(['c'], ['a']);
    for (const t of [full, diff]) {
      assert.equal(t.factor('b'), 1, 'the first set does not ramp');
      assert.ok(t.factor('c') < 1, 'a new host ramps');
      assert.equal(t.factor('a'), 1, 'a removed host is forgotten');
      assert.equal(t.rampingCount, 1);
    }
    clock.advance(200);
    full.setHosts(['a', 'b', 'c']);
    diff.updateHosts(['a'], []);
    for (const t of [full, diff]) {
      assert.ok(t.factor('a') < t.factor('c'), 'a host that comes back ramps from its return');
      assert.equal(t.rampingCount, 2);
    }
  });
});

describe('health checker: the host set updated in place', () => {
  it('checks new hosts at once, stops removed ones, keeps the rest on schedule, with setHosts and updateHosts alike', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent.get('http://h1.test').intercept({ path: /.*/, method: 'GET' }).reply(200, 'x').persist();
    const clock = new FakeClock();
    const make = (checked: string[]) =>
      new HealthChecker<string>(
        resolveHealthCheckOptions({ intervalMs: 1000, intervalJitterPercent: 0, timeoutMs: 500 })!,
        {
          clock,
          random: seededRandom(1),
          origin: (h) => {
            checked.push(h);
            return 'http://h1.test';
          },
          serviceName: 'users',
          dispatcher: agent,
        },
      );
    const settle = async (ms: number) => {
      clock.advance(ms);
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    const fullChecks: string[] = [];
    const diffChecks: string[] = [];
    const full = make(fullChecks);
    const diff = make(diffChecks);
    full.setHosts(['a', 'b']);
    diff.updateHosts(['a', 'b'], []);
    await settle(0);
    full.setHosts(['b', 'c', 'b']);
    diff.updateHosts(['c'], ['a']);
    await settle(0);
    await settle(1000);
    for (const checked of [fullChecks, diffChecks]) {
      assert.deepEqual(
        checked.sort(),
        ['a', 'b', 'b', 'c', 'c'],
        'a stopped; b on its interval; c at once, then on it',
      );
    }
    await full.close();
    await diff.close();
    await agent.close();
  });
});
