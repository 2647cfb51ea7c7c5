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
