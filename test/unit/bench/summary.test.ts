import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram } from '../../../bench/e2e/histogram.js';
import type { LoadResult } from '../../../bench/e2e/load.js';
import { median, roundDifference, roundRatio, roundSpread, summarize } from '../../../bench/e2e/scenarios.js';

/** One round: `completed` requests in `elapsedMs`, every latency `latencyUs`, `cpuMs` of CPU. */
function round(completed: number, elapsedMs: number, latencyUs: number, cpuMs = completed / 100): LoadResult {
  const latency = new Histogram();
  latency.record(latencyUs, completed);
  return {
    mode: 'closed',
    sent: completed,
    completed,
    ok: completed,
    failed: 0,
    failures: {},
    elapsedMs,
    rps: (completed / elapsedMs) * 1000,
    latency,
    cpuUserMs: cpuMs,
    cpuSystemMs: 0,
    cpuPer1kMs: (cpuMs / completed) * 1000,
    allocatedBytes: completed * 1000,
    bytesPerRequest: 1000,
    timeline: undefined,
  };
}

describe('e2e summary: the median round', () => {
  it('median of odd and even counts, NaN for none', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('reports the median round, not the sum, so one disturbed round does not decide the figure', () => {
    // Five rounds of 1 s: four at 10,000 req/s and 1 ms, one disturbed at 2,000 req/s and 50 ms.
    const s = summarize('x', [
      round(10_000, 1000, 1000),
      round(10_000, 1000, 1000),
      round(2_000, 1000, 50_000, 200),
      round(10_000, 1000, 1000),
      round(10_000, 1000, 1000),
    ]);
    assert.equal(s.rps, 10_000);
    assert.ok(Math.abs(s.p99 - 1) < 0.05, `p99 ${s.p99}`);
    assert.ok(Math.abs(s.cpuPer1kMs - 10) < 1e-9);
    assert.equal(s.requests, 42_000);
    assert.ok(s.max >= 49, 'max is over every round');
    assert.equal(s.rounds.length, 5);
    assert.equal(s.rounds[2]?.rps, 2_000);
  });

  it('takes ratios round by round, so a slow stretch that hits both contenders of a round cancels out', () => {
    // The machine slows down over the run; b is 10 % faster than a in every round.
    const speeds = [1, 0.5, 0.8, 0.3, 0.9];
    const a = summarize(
      'a',
      speeds.map((v) => round(Math.round(10_000 * v), 1000, 1000)),
    );
    const b = summarize(
      'b',
      speeds.map((v) => round(Math.round(11_000 * v), 1000, 1000)),
    );
    assert.ok(Math.abs(roundRatio(a, b) - 10 / 11) < 1e-3, `${roundRatio(a, b)}`);
    assert.ok(Math.abs(roundRatio(a, b, (r) => r.p99) - 1) < 1e-9);
  });

  it('takes differences round by round too (client CPU), and gives the middle half of the rounds beside the median', () => {
    const speeds = [1, 0.5, 0.8, 0.3, 0.9];
    // a uses 2 ms more CPU per 1000 requests than b in every round, whatever the machine's speed that round.
    const a = summarize(
      'a',
      speeds.map((v) => round(10_000, 1000, 1000, (10 / v + 2) * 10)),
    );
    const b = summarize(
      'b',
      speeds.map((v) => round(10_000, 1000, 1000, (10 / v) * 10)),
    );
    assert.ok(Math.abs(roundDifference(a, b, (r) => r.cpuPer1kMs) - 2) < 1e-9);
    // The difference of the medians would mix rounds of different speeds.
    const q = roundSpread(a, b, (x, y) => x.cpuPer1kMs - y.cpuPer1kMs);
    assert.ok(q !== undefined && Math.abs(q[0] - 2) < 1e-9 && Math.abs(q[1] - 2) < 1e-9, `${q}`);
    const mixed = summarize(
      'm',
      [1, 2, 3, 4, 5].map((k) => round(10_000 * k, 1000, 1000)),
    );
    const one = summarize(
      'o',
      [1, 2, 3, 4, 5].map(() => round(10_000, 1000, 1000)),
    );
    assert.deepEqual(
      roundSpread(mixed, one, (x, y) => x.rps / y.rps),
      [2, 4],
    );
    assert.equal(
      roundSpread(summarize('s', [round(1, 1, 1)]), summarize('t', [round(1, 1, 1)]), () => 1),
      undefined,
    );
  });

  it('falls back to the ratio of the medians when the round counts differ', () => {
    const a = summarize('a', [round(10_000, 1000, 1000)]);
    const b = summarize('b', [round(5_000, 1000, 1000), round(5_000, 1000, 1000)]);
    assert.equal(roundRatio(a, b), 2);
  });
});

describe('e2e rounds: the order of the contenders', () => {
  it('puts every contender behind each of its neighbours over the rounds, not always behind the same one', async () => {
    const { roundOrder } = await import('../../../bench/e2e/scenarios.js');
    const names = ['a', 'b', 'c', 'd', 'e'];
    const behind = new Map<string, Set<string>>();
    for (let round = 0; round < 5; round++) {
      const order = roundOrder(names, round);
      assert.deepEqual([...order].sort(), names, 'each contender once a round');
      for (let i = 1; i < order.length; i++) {
        const set = behind.get(order[i] as string) ?? new Set<string>();
        set.add(order[i - 1] as string);
        behind.set(order[i] as string, set);
      }
    }
    // With rotation alone, 'e' ran behind 'd' in every round where it was not first.
    for (const name of names)
      assert.ok((behind.get(name)?.size ?? 0) >= 2, `${name} behind ${[...(behind.get(name) ?? [])]}`);
  });
});
