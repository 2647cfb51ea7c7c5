/**
 * Ordering targets by key in bounded steps, for builds that run one step per turn of the event loop (ring hash):
 * the same order as `sortedByKey` (`util.ts`), sorting runs of {@link RUN} targets, then merging them pairwise
 * (bottom-up merge sort, stable), each step stopping after its budget and resuming where it stopped. Sorting 200,000
 * keys at once is about 100 ms of CPU.
 *
 * @module
 */
import type { Pickable } from './picker.js';

/**
 * What one key-level operation (a comparison of keys, a map lookup or insertion by key) counts for in a build's
 * budget, whose unit is a ring entry: such an operation costs several times a ring entry's filtering or hashing.
 */
export const KEY = 8;

/** Targets sorted at once per run, before the merges. */
const RUN = 256;

const byKey = (a: Pickable, b: Pickable): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** `sortedByKey(targets)`, in steps. */
export class KeySort<T extends Pickable> {
  #a: T[];
  #b: T[];
  readonly #n: number;
  #sortedUpTo = 0; // runs sorted so far (phase 1)
  #width = RUN; // merged runs' width (phase 2)
  #lo = 0; // the pair being merged
  #p = -1;
  #q = 0;
  #o = 0;
  done = false;

  constructor(targets: readonly T[]) {
    this.#a = [...targets];
    this.#b = [];
    this.#n = targets.length;
    if (this.#n <= 1) this.done = true;
  }

  /** The sorted targets (once done). */
  get sorted(): T[] {
    return this.#a;
  }

  /** Sorts on for about `budget` units (at least one run or one merged target); returns the units used. */
  step(budget: number): number {
    let used = 0;
    const n = this.#n;
    while (!this.done && used < budget) {
      if (this.#sortedUpTo < n) {
        const from = this.#sortedUpTo;
        const to = Math.min(n, from + RUN);
        const run = this.#a.slice(from, to).sort(byKey);
        for (let i = 0; i < run.length; i++) this.#a[from + i] = run[i] as T;
        this.#sortedUpTo = to;
        used += (to - from) * KEY * 2;
        if (to === n && n <= RUN) this.done = true;
        continue;
      }
      used += this.#merge(budget - used);
    }
    return used;
  }

  /** Merges on for about `budget` units; ends a pass (and the sort) when its last pair is merged. */
  #merge(budget: number): number {
    const n = this.#n;
    const a = this.#a;
    if (this.#b.length !== n) this.#b = new Array<T>(n);
    const b = this.#b;
    const width = this.#width;
    const lo = this.#lo;
    const mid = Math.min(lo + width, n);
    const hi = Math.min(lo + 2 * width, n);
    if (this.#p < 0) {
      this.#p = lo;
      this.#q = mid;
      this.#o = lo;
    }
    let p = this.#p;
    let q = this.#q;
    let o = this.#o;
    const end = Math.min(hi, o + Math.max(1, Math.floor(budget / KEY)));
    while (o < end) {
      if (q >= hi || (p < mid && byKey(a[p] as T, a[q] as T) <= 0)) b[o++] = a[p++] as T;
      else b[o++] = a[q++] as T;
    }
    const used = (o - this.#o) * KEY;
    this.#p = p;
    this.#q = q;
    this.#o = o;
    if (o < hi) return used;
    // The pair is merged: the next one, or the next pass.
    this.#p = -1;
    this.#lo = hi;
    if (hi === n) {
      this.#a = b;
      this.#b = a;
      this.#lo = 0;
      this.#width = width * 2;
      if (this.#width >= n) {
        this.done = true;
        this.#b = [];
      }
    }
    return used;
  }
}
