/**
 * A fixed-bucket latency histogram: cheap to record on every attempt (a short linear scan over 14 bounds, no
 * allocation), exact counts, and directly exportable to Prometheus and OpenTelemetry.
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { readOptions } from '../common/options.js';

/** Upper bounds of the buckets, ms (Prometheus' default buckets, in ms). The last bucket is +Inf. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
]);

/** A histogram's contents at one moment. @category Stats */
export interface HistogramSnapshot {
  /** Upper bounds, ms; `counts` has one more entry, for +Inf. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative). */
  readonly counts: readonly number[];
  /** Sum of all observations, ms. */
  readonly sum: number;
  /** Number of observations. */
  readonly count: number;
}

/**
 * The bounds the scan in `observe` compares with, as doubles in a typed array: optimized code reads a frozen array's
 * elements through a generic IC call (two histograms take an observation per request; issue 14).
 */
const BOUNDS = Float64Array.from(LATENCY_BUCKETS_MS);

/** A live histogram (internal: not exported from an entry point). */
export class LatencyHistogram {
  readonly #counts = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  #sum = 0;
  #count = 0;

  /** Records one observation, ms. */
  observe(ms: number): void {
    let i = 0;
    while (i < BOUNDS.length && ms > (BOUNDS[i] as number)) i++;
    this.#counts[i] = (this.#counts[i] as number) + 1;
    this.#sum += ms;
    this.#count++;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: LATENCY_BUCKETS_MS, counts: [...this.#counts], sum: this.#sum, count: this.#count };
  }
}

/**
 * The value below which `q` (0-1) of the observations fall, interpolated within its bucket.
 *
 * @throws {@link InvalidOptionError} (`SIDECARLESS_INVALID_OPTION`, option `q`) when `q` is not a number from 0 to
 * 1: a percentile passed as `99` would otherwise read as the top bucket's bound, a plausible latency.
 * @category Stats
 */
export function histogramQuantile(snapshot: HistogramSnapshot, q: number): number {
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) {
    throw new InvalidOptionError('q', `must be a number from 0 to 1 (0.99 for p99), got ${String(q)}`);
  }
  // Read once, typed: a JavaScript caller's wrong value (or a throwing getter) fails with a code, not a TypeError.
  const { count, counts, bounds } = readOptions('snapshot', () => {
    const { count, counts, bounds } = snapshot as Partial<HistogramSnapshot>;
    return { count, counts, bounds };
  });
  if (typeof count !== 'number' || !Array.isArray(counts) || !Array.isArray(bounds)) {
    throw new InvalidOptionError('snapshot', 'expected a histogram snapshot { count, counts, bounds }');
  }
  if (count === 0) return 0;
  const rank = q * count;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (seen + c >= rank && c > 0) {
      const lower = i === 0 ? 0 : (bounds[i - 1] as number);
      const upper = bounds[i] ?? lower;
      return lower + (upper - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return bounds[bounds.length - 1] as number;
}
