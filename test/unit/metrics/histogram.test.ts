import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { histogramQuantile, LATENCY_BUCKETS_MS, LatencyHistogram } from '../../../src/metrics/histogram.js';
import { systemClock } from '../../../src/common/runtime.js';

describe('LatencyHistogram', () => {
  it('puts an observation in the first bucket whose upper bound it does not exceed, above the last in +Inf', () => {
    const h = new LatencyHistogram();
    const at = [0, 5, 5.000001, 10, 74.9, 10_000, 10_000.5, 1e9];
    for (const ms of at) h.observe(ms);
    const s = h.snapshot();
    assert.deepEqual(s.bounds, LATENCY_BUCKETS_MS);
    assert.equal(s.counts.length, LATENCY_BUCKETS_MS.length + 1);
    const expected = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    // 0 and 5 in (.., 5]; 5.000001 and 10 in (5, 10]; 74.9 in (50, 75]; 10,000 in (7,500, 10,000]; the rest +Inf.
    expected[0] = 2;
    expected[1] = 2;
    expected[4] = 1;
    expected[13] = 1;
    expected[14] = 2;
    assert.deepEqual(s.counts, expected);
    assert.equal(s.count, at.length);
    assert.equal(
      s.sum,
      at.reduce((a, b) => a + b, 0),
    );
  });

  it('answers quantiles by interpolating within the bucket', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 10; i++) h.observe(7);
    assert.equal(histogramQuantile(h.snapshot(), 0.5), 7.5); // halfway through (5, 10]
    assert.equal(histogramQuantile(new LatencyHistogram().snapshot(), 0.99), 0);
  });

  it('refuses a quantile outside 0-1 (a percentile passed as 99) with SIDECARLESS_INVALID_OPTION', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 10; i++) h.observe(7);
    assert.equal(histogramQuantile(h.snapshot(), 0), 5);
    assert.equal(histogramQuantile(h.snapshot(), 1), 10);
    for (const q of [-0.5, 1.01, 99, Number.NaN, Number.POSITIVE_INFINITY, '0.5' as unknown as number]) {
      for (const snapshot of [h.snapshot(), new LatencyHistogram().snapshot()]) {
        assert.throws(
          () => histogramQuantile(snapshot, q),
          (err: unknown) => (err as { code?: string; option?: string }).code === 'SIDECARLESS_INVALID_OPTION',
          String(q),
        );
      }
    }
  });
});

describe('systemClock', () => {
  it('reads the same monotonic clock as the global performance.now()', () => {
    const before = performance.now();
    const t = systemClock.now();
    const after = performance.now();
    assert.ok(t >= before && t <= after, `${before} <= ${t} <= ${after}`);
  });
});
