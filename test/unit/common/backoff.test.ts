import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, resolveBackoffOptions } from '../../../src/common/backoff.js';

describe('Backoff (gRPC connection backoff)', () => {
  it('grows by the multiplier up to the cap, jittered within ±jitter', () => {
    const opts = resolveBackoffOptions(undefined, 'connectBackoff');
    assert.deepEqual(opts, { initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 120_000 });
    const mid = new Backoff(opts, () => 0.5);
    const delays = Array.from({ length: 14 }, () => Math.round(mid.next()));
    assert.deepEqual(delays.slice(0, 4), [1000, 1600, 2560, 4096]);
    assert.equal(delays.at(-1), 120_000);
    const low = new Backoff(opts, () => 0);
    assert.equal(low.next(), 800);
    const high = new Backoff(opts, () => 0.999999);
    assert.ok(Math.abs(high.next() - 1200) < 0.01);
    mid.reset();
    assert.equal(mid.next(), 1000);
  });
});
