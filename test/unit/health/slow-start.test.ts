import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ResolvedSlowStartOptions,
  resolveSlowStartOptions,
  SlowStartTracker,
  slowStartFactor,
} from '../../../src/health/slow-start.js';
import { createEndpoint, type Pickable } from '../../../src/index.js';
import { roundRobinPolicy } from '../../../src/pickers/round-robin.js';
import { weightedRoundRobinPolicy } from '../../../src/pickers/weighted-round-robin.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const linear: ResolvedSlowStartOptions = { windowMs: 60_000, aggression: 1, minWeightPercent: 10 };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≈ ${b}`);

describe('slow start curve (Envoy: max(min%, (max(t, 1) / window) ^ (1 / aggression)))', () => {
  it('is linear with aggression 1, floored at minWeightPercent', () => {
    close(slowStartFactor(0, linear), 0.1);
    close(slowStartFactor(3_000, linear), 0.1);
    close(slowStartFactor(6_000, linear), 0.1);
    close(slowStartFactor(15_000, linear), 0.25);
    close(slowStartFactor(30_000, linear), 0.5);
    close(slowStartFactor(45_000, linear), 0.75);
    close(slowStartFactor(59_999, linear), 59_999 / 60_000);
  });

  it('is 1 from the end of the window on', () => {
    assert.equal(slowStartFactor(60_000, linear), 1);
    assert.equal(slowStartFactor(1e12, linear), 1);
  });

  it('ramps faster early with aggression above 1 and slower below', () => {
    close(slowStartFactor(15_000, { ...linear, aggression: 2 }), 0.5); // 0.25 ^ (1/2)
    close(slowStartFactor(30_000, { ...linear, aggression: 0.5 }), 0.25); // 0.5 ^ 2
    close(slowStartFactor(6_000, { ...linear, aggression: 0.5 }), 0.1); // 0.01, floored
  });

  it('uses a 1 ms floor on elapsed time when the minimum weight is 0', () => {
    close(slowStartFactor(0, { ...linear, minWeightPercent: 0 }), 1 / 60_000);
  });

  it('tracks when hosts joined or returned; the first set starts at full weight', () => {
    const clock = new FakeClock();
    const tracker = new SlowStartTracker<string>(linear, clock);
    tracker.setHosts(['a', 'b']);
    assert.equal(tracker.factor('a'), 1);
    assert.equal(tracker.rampingCount, 0);
    clock.advance(1000);
    tracker.setHosts(['a', 'b', 'c']);
    close(tracker.factor('c'), 0.1);
    assert.equal(tracker.rampingCount, 1);
    clock.advance(30_000);
    close(tracker.factor('c'), 0.5);
    tracker.restart('a');
    close(tracker.factor('a'), 0.1);
    assert.equal(tracker.rampingCount, 2);
    clock.advance(30_000);
    assert.equal(tracker.factor('c'), 1);
    close(tracker.factor('a'), 0.5);
    tracker.setHosts(['b']);
    assert.equal(tracker.factor('a'), 1, 'unknown hosts are at full weight');
    assert.equal(tracker.rampingCount, 0);
  });

  it('is off unless configured; validates its settings', () => {
    assert.equal(resolveSlowStartOptions(undefined), undefined);
    assert.equal(resolveSlowStartOptions(false), undefined);
    assert.deepEqual(
      { ...resolveSlowStartOptions({ windowMs: 30_000 }) },
      {
        windowMs: 30_000,
        aggression: 1,
        minWeightPercent: 10,
      },
    );
    const bad: Array<[unknown, string]> = [
      [{}, 'slowStart.windowMs'],
      [{ windowMs: 0 }, 'slowStart.windowMs'],
      [{ windowMs: -1 }, 'slowStart.windowMs'],
      [{ windowMs: 1000, aggression: 0 }, 'slowStart.aggression'],
      [{ windowMs: 1000, aggression: -2 }, 'slowStart.aggression'],
      [{ windowMs: 1000, minWeightPercent: 101 }, 'slowStart.minWeightPercent'],
      [{ windowMs: 1000, minWeightPercent: -1 }, 'slowStart.minWeightPercent'],
      [{ windowMs: 1000, window: 5 }, 'slowStart.window'],
      [42, 'slowStart'],
    ];
    for (const [raw, option] of bad) {
      assert.throws(() => resolveSlowStartOptions(raw as never), { code: 'SIDECARLESS_INVALID_OPTION', option });
    }
    assert.throws(() => resolveSlowStartOptions({} as never), {
      option: 'slowStart.windowMs',
      message: /slowStart\.windowMs`: required: the ramp length/,
    });
    assert.throws(() => resolveSlowStartOptions({ windowMs: 1000, window: 5 } as never), {
      option: 'slowStart.window',
      message: /slowStart\.window.*unknown option; did you mean "windowMs"\?/,
    });
    assert.throws(() => resolveSlowStartOptions({ windowMs: 0 }, 'clusters.users.slowStart'), {
      option: 'clusters.users.slowStart.windowMs',
    });
  });
});

describe('slow start under the default round-robin picker (regression: round robin ignored weights)', () => {
  const target = (port: number, weight?: number, endpointWeight = 1): Pickable => {
    const endpoint = createEndpoint({ host: '127.0.0.1', port, weight: endpointWeight });
    return { key: endpoint.key, endpoint, inFlight: 0, ...(weight === undefined ? {} : { weight }) };
  };
  const ctx = { method: 'GET', path: '/', authority: 'svc', headers: null };
  const env = (seed: number) => ({ random: seededRandom(seed), clock: new FakeClock() });
  const share = (targets: Pickable[], picks: number, key: string) => {
    const picker = roundRobinPolicy.build(targets, {}, env(3));
    let n = 0;
    for (let i = 0; i < picks; i++) {
      const r = picker.pick(ctx);
      if (r.type === 'complete' && r.target.key === key) n++;
    }
    return n / picks;
  };

  it('gives a ramping endpoint its ramped share, not an equal one', () => {
    const ramping = target(2, slowStartFactor(0, linear));
    close(share([target(1), ramping], 1100, ramping.key), 0.1 / 1.1);
    const halfway = target(2, slowStartFactor(30_000, linear));
    close(share([target(1), halfway], 1500, halfway.key), 0.5 / 1.5);
    assert.equal(share([target(1), target(2, 1)], 1000, '127.0.0.1:2'), 0.5);
  });

  it('serves unequal endpoint weights in proportion, in the weighted-round-robin order', () => {
    const targets = [target(1, undefined, 3), target(2, undefined, 1), target(3, undefined, 2)];
    const rr = roundRobinPolicy.build(targets, {}, env(9));
    const wrr = weightedRoundRobinPolicy.build(targets, {}, env(9));
    const keys = (p: typeof rr) =>
      Array.from({ length: 60 }, () => {
        const r = p.pick(ctx);
        return r.type === 'complete' ? r.target.key : r.type;
      });
    const order = keys(rr);
    assert.deepEqual(order, keys(wrr));
    assert.equal(order.filter((k) => k === '127.0.0.1:1').length, 30);
    assert.equal(order.filter((k) => k === '127.0.0.1:2').length, 10);
  });
});
