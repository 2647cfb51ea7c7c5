import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveZoneAwareOptions, zoneShares } from '../../../src/balancer/zone.js';

describe('zone shares (Envoy zone aware routing)', () => {
  const near = (actual: readonly number[] | undefined, expected: readonly number[]) => {
    assert.ok(actual !== undefined, 'zone preference applies');
    assert.equal(actual.length, expected.length);
    actual.forEach((a, i) => assert.ok(Math.abs(a - (expected[i] as number)) < 1e-9, `${actual} vs ${expected}`));
  };
  it('keeps everything local while the local zone has at least its callers share of the healthy endpoints', () => {
    near(
      zoneShares(
        [
          { zone: 'a', total: 3, healthy: 3 },
          { zone: 'b', total: 3, healthy: 3 },
        ],
        'a',
      ),
      [1, 0],
    );
  });
  it('spills the local shortfall to the other zones by residual capacity', () => {
    // Upstream 1/3 local for 1/2 of the callers: 2/3 stays.
    near(
      zoneShares(
        [
          { zone: 'a', total: 2, healthy: 1 },
          { zone: 'b', total: 2, healthy: 2 },
        ],
        'a',
      ),
      [2 / 3, 1 / 3],
    );
    // Envoy's own example: callers 40/40/20 %, upstream 25/50/25 %: 62.5 % local, residual 10 and 5 points.
    near(
      zoneShares(
        [
          { zone: 'a', total: 1, healthy: 1 },
          { zone: 'b', total: 2, healthy: 2 },
          { zone: 'c', total: 1, healthy: 1 },
        ],
        'a',
        { a: 40, b: 40, c: 20 },
      ),
      [0.625, 0.375 * (2 / 3), 0.375 * (1 / 3)],
    );
  });
  it('with callers spread like the endpoints, one local endpoint of 7 keeps all its callers traffic', () => {
    const zones = [
      { zone: 'a', total: 1, healthy: 1 },
      { zone: 'b', total: 6, healthy: 6 },
    ];
    near(zoneShares(zones, 'a'), [1, 0]);
    // Callers spread evenly over the two zones: the one endpoint can only take 2/7 of this zone's traffic.
    near(zoneShares(zones, 'a', { a: 1, b: 1 }), [2 / 7, 5 / 7]);
  });
  it('does not apply without a healthy local endpoint', () => {
    assert.equal(
      zoneShares(
        [
          { zone: 'a', total: 2, healthy: 0 },
          { zone: 'b', total: 2, healthy: 2 },
        ],
        'a',
      ),
      undefined,
    );
    assert.equal(zoneShares([{ zone: 'b', total: 2, healthy: 2 }], 'a'), undefined);
  });
});

describe('zoneAware options (toolkit)', () => {
  it('resolveZoneAwareOptions validates through the toolkit, under the path it is given', () => {
    assert.equal(resolveZoneAwareOptions(undefined), undefined);
    assert.deepEqual(resolveZoneAwareOptions({ localZone: 'a' }), { localZone: 'a', minClusterSize: 6 });
    assert.deepEqual(resolveZoneAwareOptions({ localZone: 'a', minClusterSize: 1, callers: { a: 2, b: 0 } }), {
      localZone: 'a',
      minClusterSize: 1,
      callers: { a: 2, b: 0 },
    });
    const bad: Array<[unknown, string, RegExp]> = [
      [{ localZone: 'a', localShare: 0.5 }, 'zoneAware.localShare', /unknown option \(allowed: localZone,/],
      [{ localzone: 'a' }, 'zoneAware.localzone', /unknown option; did you mean "localZone"\?/],
      [{}, 'zoneAware.localZone', /required/],
      [{ localZone: '' }, 'zoneAware.localZone', /expected a non-empty string/],
      [{ localZone: 'a', minClusterSize: 0 }, 'zoneAware.minClusterSize', /expected an integer >= 1, got 0/],
      [{ localZone: 'a', callers: [] }, 'zoneAware.callers', /expected an object of zone names/],
      [{ localZone: 'a', callers: { a: 1, b: -1 } }, 'zoneAware.callers.b', /expected a number >= 0, got -1/],
      [{ localZone: 'a', callers: { a: 1, b: undefined } }, 'zoneAware.callers.b', /required/],
      [{ localZone: 'a', callers: { b: 1 } }, 'zoneAware.callers.a', /the local zone must have callers/],
      [{ localZone: 'a', callers: { a: 0 } }, 'zoneAware.callers.a', /the local zone must have callers/],
      ['a', 'zoneAware', /expected an object, got "a"/],
    ];
    for (const [raw, option, message] of bad) {
      assert.throws(() => resolveZoneAwareOptions(raw), { code: 'SIDECARLESS_INVALID_OPTION', option, message });
    }
    assert.throws(() => resolveZoneAwareOptions({ localZone: 'a', bogus: 1 }, 'clusters.users.zoneAware'), {
      option: 'clusters.users.zoneAware.bogus',
    });
    assert.ok(Object.isFrozen(resolveZoneAwareOptions({ localZone: 'a', callers: { a: 1 } })?.callers));
  });
});
