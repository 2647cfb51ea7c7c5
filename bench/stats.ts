/**
 * The benchmarks' summaries of repeated measurements (rounds): the median and the middle half.
 *
 * @module
 */

/** The median of `values` (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** The first and third quartiles of `values`, interpolated between neighbours; NaNs for none. */
export function middleHalf(values: readonly number[]): [number, number] {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return [Number.NaN, Number.NaN];
  const at = (q: number): number => {
    const pos = q * (v.length - 1);
    const lo = Math.floor(pos);
    return (v[lo] as number) + ((v[Math.min(lo + 1, v.length - 1)] as number) - (v[lo] as number)) * (pos - lo);
  };
  return [at(0.25), at(0.75)];
}
