import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planPriorities, priorityLoads } from '../../../src/balancer/priority.js';

describe('priority and zone arithmetic (Envoy overprovisioning factor 1.4)', () => {
  it('keeps all traffic on a healthy first level', () => {
    assert.deepEqual(
      priorityLoads([
        { total: 4, healthy: 4 },
        { total: 4, healthy: 4 },
      ]),
      [1, 0],
    );
  });
  it('spills over in proportion as the first level degrades', () => {
    // 5 of 10 healthy: 70 % stays (5/10 × 1.4), 30 % spills to the next level.
    const [p0, p1] = priorityLoads([
      { total: 10, healthy: 5 },
      { total: 10, healthy: 10 },
    ]);
    assert.ok(Math.abs((p0 as number) - 0.7) < 1e-9 && Math.abs((p1 as number) - 0.3) < 1e-9);
    // 8 of 10 healthy: 1.4 × 80 % ≥ 100 %: nothing spills.
    assert.deepEqual(
      priorityLoads([
        { total: 10, healthy: 8 },
        { total: 10, healthy: 10 },
      ]),
      [1, 0],
    );
  });
  it('scales up when the levels together are less than fully healthy', () => {
    // 2/10 and 2/10: 28 % each, normalised to 50/50.
    const loads = priorityLoads([
      { total: 10, healthy: 2 },
      { total: 10, healthy: 2 },
    ]);
    assert.ok(loads.every((l) => Math.abs(l - 0.5) < 1e-9));
  });
  it('sends everything to the first level when nothing is healthy', () => {
    assert.deepEqual(
      priorityLoads([
        { total: 3, healthy: 0 },
        { total: 3, healthy: 0 },
      ]),
      [1, 0],
    );
  });
  // Envoy docs, "Priority levels": each row is the healthy % of each level (100 endpoints each) and the traffic
  // % Envoy sends to each (its table rounds to whole percent).
  const envoyRows: Array<[number[], number[]]> = [
    [
      [100, 100],
      [100, 0],
    ],
    [
      [72, 100],
      [100, 0],
    ],
    [
      [71, 100],
      [99, 1],
    ],
    [
      [50, 100],
      [70, 30],
    ],
    [
      [25, 100],
      [35, 65],
    ],
    [
      [0, 100],
      [0, 100],
    ],
    [
      [100, 100, 100],
      [100, 0, 0],
    ],
    [
      [72, 72, 100],
      [100, 0, 0],
    ],
    [
      [71, 71, 100],
      [99, 1, 0],
    ],
    [
      [50, 50, 100],
      [70, 30, 0],
    ],
    [
      [25, 25, 100],
      [35, 35, 30],
    ],
    [
      [25, 25, 20],
      [36, 36, 28],
    ],
  ];
  for (const [healthy, traffic] of envoyRows) {
    it(`Envoy priority table: ${healthy.join('/')} % healthy -> ${traffic.join('/')} % traffic`, () => {
      const loads = priorityLoads(healthy.map((h) => ({ total: 100, healthy: h })));
      assert.equal(loads.length, traffic.length);
      loads.forEach((load, i) =>
        assert.ok(Math.abs(load * 100 - (traffic[i] as number)) < 1, `level ${i}: ${load * 100} vs ${traffic[i]}`),
      );
      assert.ok(Math.abs(loads.reduce((a, b) => a + b, 0) - 1) < 1e-9, 'loads sum to 1');
    });
  }
  it('the 71 % row is exact: 1.4 x 71 = 99.4 % stays on P0', () => {
    const [p0, p1] = priorityLoads([
      { total: 100, healthy: 71 },
      { total: 100, healthy: 100 },
    ]);
    assert.ok(Math.abs((p0 as number) - 0.994) < 1e-9 && Math.abs((p1 as number) - 0.006) < 1e-9, `${p0} ${p1}`);
  });
});

describe('per-level panic (Envoy panic threshold with priorities)', () => {
  // Envoy docs, "Panic threshold": healthy % of P0 and P1 (equal sizes), traffic % to each and whether each is in
  // panic, at the default threshold of 50 %.
  const rows: Array<[number, number, number, boolean, number, boolean]> = [
    [72, 72, 100, false, 0, false],
    [71, 71, 99, false, 1, false],
    [50, 60, 70, false, 30, false],
    [25, 100, 35, false, 65, false],
    [25, 25, 50, true, 50, true],
    [5, 65, 7, true, 93, false],
  ];
  for (const [h0, h1, t0, panic0, t1, panic1] of rows) {
    it(`${h0}/${h1} % healthy: ${t0}/${t1} % traffic, panic ${panic0}/${panic1}`, () => {
      const plan = planPriorities(
        [
          { total: 100, healthy: h0 },
          { total: 100, healthy: h1 },
        ],
        50,
      );
      assert.ok(Math.abs((plan.loads[0] as number) * 100 - t0) < 1, `P0 ${plan.loads[0]}`);
      assert.ok(Math.abs((plan.loads[1] as number) * 100 - t1) < 1, `P1 ${plan.loads[1]}`);
      assert.deepEqual(plan.panic, [panic0, panic1]);
    });
  }
  it('ignores panic while the levels together are 100 % available (B1: P0 all ejected, P1 healthy)', () => {
    const plan = planPriorities(
      [
        { total: 4, healthy: 0 },
        { total: 2, healthy: 2 },
      ],
      50,
    );
    assert.deepEqual(plan, { loads: [0, 1], panic: [false, false] });
  });
  it('a single level keeps the plain threshold: 4 of 10 is panic, 5 of 10 is not', () => {
    assert.deepEqual(planPriorities([{ total: 10, healthy: 4 }], 50), { loads: [1], panic: [true] });
    assert.deepEqual(planPriorities([{ total: 10, healthy: 5 }], 50), { loads: [1], panic: [false] });
  });
  it('every level in panic: loads follow the endpoint counts', () => {
    const plan = planPriorities(
      [
        { total: 6, healthy: 1 },
        { total: 2, healthy: 0 },
      ],
      50,
    );
    assert.deepEqual(plan, { loads: [0.75, 0.25], panic: [true, true] });
  });
  it('threshold 0: never in panic', () => {
    const plan = planPriorities(
      [
        { total: 4, healthy: 0 },
        { total: 4, healthy: 0 },
      ],
      0,
    );
    assert.deepEqual(plan, { loads: [1, 0], panic: [false, false] });
  });
});
