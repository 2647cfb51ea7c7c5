import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom, systemRandom, xoshiro128ss } from '../../../src/common/runtime.js';

describe('random sources', () => {
  it('xoshiro128** follows the reference: state 1, 2, 3, 4 gives 11520, 0, 5927040', () => {
    const next = xoshiro128ss(Uint32Array.of(1, 2, 3, 4));
    assert.deepEqual(
      [next(), next(), next()].map((x) => x * 2 ** 32),
      [11520, 0, 5927040],
    );
  });

  it('seededRandom replays exactly; different seeds differ', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const xs = Array.from({ length: 100 }, () => a());
    assert.deepEqual(
      Array.from({ length: 100 }, () => b()),
      xs,
    );
    assert.notDeepEqual(
      Array.from({ length: 100 }, () => c()),
      xs,
    );
  });

  for (const [name, random] of [
    ['systemRandom', systemRandom],
    ['seededRandom(0)', seededRandom(0)],
  ] as const) {
    it(`${name} stays in [0, 1) and is uniform over 64 buckets (chi-square, p > 1e-6)`, () => {
      const buckets = new Array<number>(64).fill(0);
      const n = 640_000;
      for (let i = 0; i < n; i++) {
        const x = random();
        assert.ok(x >= 0 && x < 1, String(x));
        buckets[Math.floor(x * 64)]!++;
      }
      const expected = n / 64;
      const chi2 = buckets.reduce((sum, o) => sum + (o - expected) ** 2 / expected, 0);
      // 63 degrees of freedom: P(chi2 > 130) is about 1e-6.
      assert.ok(chi2 < 130, `chi2 ${chi2}`);
    });
  }
});
