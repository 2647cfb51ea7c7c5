/**
 * A small log-linear latency histogram in the manner of HdrHistogram: values are non-negative integers (the e2e
 * harness records microseconds); each power-of-two range ("octave") is split into 2^subBits equal sub-buckets, so
 * every recorded value is kept with a relative error below 2^-subBits (0.8 % at the default 7 bits) whatever its
 * magnitude, in a fixed, small array. Values below 2^subBits are exact.
 *
 * Percentiles use the nearest-rank definition (the smallest recorded value with at least p % of the values at or
 * below it) and report the highest value equivalent to the bucket found, clamped to the recorded maximum, as
 * HdrHistogram does.
 *
 * @module
 */

/** One point of a cumulative distribution: `fraction` of the values are at or below `value`. */
export interface CdfPoint {
  readonly value: number;
  readonly fraction: number;
}

/** Options of {@link Histogram}. */
export interface HistogramOptions {
  /** Sub-buckets per octave as a power of two, 1 to 12. @defaultValue 7 */
  readonly subBits?: number;
  /** Largest trackable value; larger values are clamped to it (and counted in `clamped`). @defaultValue 2^40 */
  readonly highest?: number;
}

export class Histogram {
  readonly subBits: number;
  readonly highest: number;
  readonly #subCount: number;
  readonly #counts: Float64Array;
  #total = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = 0;
  #sum = 0;
  #clamped = 0;

  constructor(options: HistogramOptions = {}) {
    const subBits = options.subBits ?? 7;
    if (!Number.isInteger(subBits) || subBits < 1 || subBits > 12) {
      throw new RangeError('Expected `subBits` to be an integer from 1 to 12.');
    }
    const highest = options.highest ?? 2 ** 40;
    if (!Number.isInteger(highest) || highest < 2 ** (subBits + 1) || highest > Number.MAX_SAFE_INTEGER) {
      throw new RangeError('Expected `highest` to be a safe integer of at least 2^(subBits + 1).');
    }
    this.subBits = subBits;
    this.highest = highest;
    this.#subCount = 2 ** subBits;
    this.#counts = new Float64Array(this.#indexOf(highest) + 1);
  }

  /** Values recorded. */
  get count(): number {
    return this.#total;
  }
  /** Smallest value recorded (exact), or 0 when empty. */
  get min(): number {
    return this.#total === 0 ? 0 : this.#min;
  }
  /** Largest value recorded (exact, after clamping), or 0 when empty. */
  get max(): number {
    return this.#max;
  }
  /** Mean of the recorded values (exact), or 0 when empty. */
  get mean(): number {
    return this.#total === 0 ? 0 : this.#sum / this.#total;
  }
  /** Values above `highest`, recorded as `highest`. */
  get clamped(): number {
    return this.#clamped;
  }

  /** Records `value` (rounded to an integer, negative values as 0) `times` times. */
  record(value: number, times = 1): void {
    let v = Number.isFinite(value) ? Math.round(value) : this.highest;
    if (v < 0) v = 0;
    if (v > this.highest) {
      v = this.highest;
      this.#clamped += times;
    }
    const i = this.#indexOf(v);
    this.#counts[i] = (this.#counts[i] ?? 0) + times;
    this.#total += times;
    this.#sum += v * times;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /** Adds every value of `other` (which must have the same `subBits` and `highest`). */
  add(other: Histogram): void {
    if (other.subBits !== this.subBits || other.highest !== this.highest) {
      throw new RangeError('Histograms of different shapes cannot be added.');
    }
    const src = other.#counts;
    for (let i = 0; i < src.length; i++) {
      const c = src[i] ?? 0;
      if (c !== 0) this.#counts[i] = (this.#counts[i] ?? 0) + c;
    }
    if (other.#total === 0) return;
    this.#total += other.#total;
    this.#sum += other.#sum;
    this.#clamped += other.#clamped;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /** The value at percentile `p` (0 to 100), nearest rank; 0 when empty. */
  percentile(p: number): number {
    if (this.#total === 0) return 0;
    if (!(p >= 0 && p <= 100)) throw new RangeError('Expected `p` to be a number from 0 to 100.');
    if (p === 0) return this.min;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#total));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i] ?? 0;
      if (seen >= rank) return Math.max(this.min, Math.min(this.#highestEquivalent(i), this.#max));
    }
    return this.#max;
  }

  /** The cumulative distribution: one point per non-empty bucket, at the bucket's highest equivalent value. */
  cdf(): CdfPoint[] {
    const out: CdfPoint[] = [];
    if (this.#total === 0) return out;
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      const c = this.#counts[i] ?? 0;
      if (c === 0) continue;
      seen += c;
      out.push({ value: Math.min(this.#highestEquivalent(i), this.#max), fraction: seen / this.#total });
    }
    return out;
  }

  /** A compact JSON form: summary figures and the non-empty buckets as `[highestEquivalentValue, count]`. */
  toJSON(): { count: number; min: number; max: number; mean: number; buckets: Array<[number, number]> } {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < this.#counts.length; i++) {
      const c = this.#counts[i] ?? 0;
      if (c !== 0) buckets.push([this.#highestEquivalent(i), c]);
    }
    return { count: this.#total, min: this.min, max: this.#max, mean: this.mean, buckets };
  }

  #indexOf(v: number): number {
    const s = this.#subCount;
    if (v < s) return v;
    const e = v < 2 ** 31 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v));
    const shift = e - this.subBits;
    const top = Math.floor(v / 2 ** shift); // in [s, 2s)
    return (shift + 1) * s + (top - s);
  }

  #highestEquivalent(i: number): number {
    const s = this.#subCount;
    if (i < s) return i;
    const shift = Math.floor(i / s) - 1;
    const top = s + (i % s);
    return (top + 1) * 2 ** shift - 1;
  }
}
