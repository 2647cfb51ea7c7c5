import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram } from '../../../bench/e2e/histogram.js';

/** Nearest-rank percentile of a sorted array: the reference the histogram must match within its resolution. */
function reference(sorted: readonly number[], p: number): number {
  if (p === 0) return sorted[0] ?? 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? 0;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100];

describe('bench histogram (log-linear, HDR-style)', () => {
  it('matches a sorted-array reference within 2^-subBits relative error, on several distributions', () => {
    const random = mulberry32(42);
    const distributions: Record<string, () => number> = {
      'uniform 0..1000': () => Math.floor(random() * 1000),
      'log-normal around 5 ms in µs': () => Math.round(5000 * Math.exp(0.8 * (random() + random() + random() - 1.5))),
      'heavy tail (pareto) in µs': () => Math.round(200 / (1 - random()) ** 0.9),
      'bimodal 2 ms / 50 ms': () => (random() < 0.97 ? 2000 : 50_000) + Math.floor(random() * 300),
    };
    for (const [name, draw] of Object.entries(distributions)) {
      for (const subBits of [3, 7, 10]) {
        const h = new Histogram({ subBits });
        const values: number[] = [];
        for (let i = 0; i < 20_000; i++) {
          const v = draw();
          values.push(v);
          h.record(v);
        }
        values.sort((a, b) => a - b);
        assert.equal(h.count, values.length);
        assert.equal(h.min, values[0]);
        assert.equal(h.max, values.at(-1));
        for (const p of PERCENTILES) {
          const want = reference(values, p);
          const got = h.percentile(p);
          assert.ok(got >= want, `${name} subBits=${subBits} p${p}: ${got} below the reference ${want}`);
          assert.ok(
            got - want <= want * 2 ** -subBits,
            `${name} subBits=${subBits} p${p}: ${got} vs reference ${want} is beyond the bucket resolution`,
          );
        }
      }
    }
  });

  it('is exact below 2^subBits', () => {
    const h = new Histogram({ subBits: 7 });
    const values = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 127];
    for (const v of values) h.record(v);
    for (const p of PERCENTILES) assert.equal(h.percentile(p), reference(values, p), `p${p}`);
  });

  it('adds histograms and exports a monotone CDF that ends at 1', () => {
    const a = new Histogram();
    const b = new Histogram();
    const all: number[] = [];
    for (let i = 1; i <= 5000; i++) {
      const v = (i * 7919) % 100_003;
      (i % 2 === 0 ? a : b).record(v);
      all.push(v);
    }
    a.add(b);
    all.sort((x, y) => x - y);
    assert.equal(a.count, 5000);
    for (const p of [50, 99, 99.9]) {
      const want = reference(all, p);
      assert.ok(a.percentile(p) >= want && a.percentile(p) - want <= want / 128, `p${p}`);
    }
    const cdf = a.cdf();
    assert.equal(cdf.at(-1)?.fraction, 1);
    for (let i = 1; i < cdf.length; i++) {
      const prev = cdf[i - 1];
      const cur = cdf[i];
      assert.ok(prev !== undefined && cur !== undefined && cur.value > prev.value && cur.fraction > prev.fraction);
    }
  });

  it('clamps values above `highest`, rounds, and reports 0 when empty', () => {
    const h = new Histogram({ subBits: 4, highest: 1 << 20 });
    assert.equal(h.percentile(99), 0);
    h.record(2 ** 30);
    h.record(-3);
    h.record(10.4);
    assert.equal(h.clamped, 1);
    assert.equal(h.max, 1 << 20);
    assert.equal(h.min, 0);
    assert.equal(h.percentile(50), 10);
    assert.throws(() => h.percentile(101), RangeError);
    assert.throws(() => new Histogram({ subBits: 0 }), RangeError);
  });
});
