/**
 * Helpers shared by the built-in policies: result precomputation and deterministic ordering (settings
 * are validated by the options toolkit, common/options.ts).
 * Policies depend on this and on the contract, never on each other.
 *
 * @module
 */
import type { Pickable, PickResult } from './picker.js';

/**
 * A prepared `complete` result per target, so `pick` returns existing objects and allocates nothing.
 *
 * @category Pickers
 */
export function completeResults<T extends Pickable>(targets: readonly T[]): PickResult<T>[] {
  const out = new Array<PickResult<T>>(targets.length);
  for (let i = 0; i < targets.length; i++) out[i] = { type: 'complete', target: targets[i] as T };
  return out;
}

/**
 * `targets` sorted by endpoint key (keys are unique in a set). Hashing policies build from this order so that two
 * processes given the same endpoints in any order build identical tables.
 *
 * @category Pickers
 */
export function sortedByKey<T extends Pickable>(targets: readonly T[]): T[] {
  return [...targets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * The weights load-aware and weighted policies use, in target order: the target's effective `weight` (the endpoint
 * weight ramped by slow start) when it has one, else the endpoint's weight. The hashing policies use the endpoint
 * weight instead, so a ramp does not move keys.
 *
 * @category Pickers
 */
export function weightsOf(targets: readonly Pickable[]): Float64Array {
  const w = new Float64Array(targets.length);
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i] as Pickable;
    w[i] = t.weight ?? t.endpoint.weight;
  }
  return w;
}

/** True when every weight equals the first (the unweighted fast paths apply). @category Pickers */
export function allEqual(weights: Float64Array): boolean {
  for (let i = 1; i < weights.length; i++) if (weights[i] !== weights[0]) return false;
  return true;
}

/** A uniform index in [0, n) from `r` in [0, 1), clamped in case a random source returns 1. @category Pickers */
export function indexOf(r: number, n: number): number {
  const i = (r * n) | 0;
  return i < n ? i : n - 1;
}

/**
 * Walker's alias table for drawing index `i` with probability `p[i] / sum(p)` in O(1), built in O(n) with Vose's
 * stable variant (M. D. Vose, "A linear algorithm for generating random numbers with a given distribution", IEEE TSE
 * 1991). A draw `x = r * n` (r uniform in [0, 1)) takes column `c = floor(x)`, then `table[2c]` (the column's own
 * index) when the fraction `x - c` is below `threshold[c]`, else `table[2c + 1]` (its alias): one random number per
 * draw, and the choice between the two an index rather than a branch. Shared by `weighted-random` and
 * `least-request`.
 *
 * @category Pickers
 */
export function aliasTable(p: Float64Array): { threshold: Float64Array; table: Int32Array } {
  const n = p.length;
  const threshold = new Float64Array(n);
  const alias = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += p[i] as number;
  // Scaled probabilities: mean 1. Columns under 1 are topped up by an alias from a column over 1.
  const scaled = new Float64Array(n);
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < n; i++) {
    scaled[i] = ((p[i] as number) * n) / total;
    alias[i] = i;
    if ((scaled[i] as number) < 1) small.push(i);
    else large.push(i);
  }
  while (small.length > 0 && large.length > 0) {
    const s = small.pop() as number;
    const l = large[large.length - 1] as number;
    threshold[s] = scaled[s] as number;
    alias[s] = l;
    scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1;
    if ((scaled[l] as number) < 1) {
      large.pop();
      small.push(l);
    }
  }
  // Leftovers are 1 up to rounding error.
  for (const i of large) threshold[i] = 1;
  for (const i of small) threshold[i] = 1;
  const table = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    table[2 * i] = i;
    table[2 * i + 1] = alias[i] as number;
  }
  return { threshold, table };
}
