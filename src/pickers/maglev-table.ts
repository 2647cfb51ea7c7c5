/**
 * Filling a Maglev lookup table (see `maglev.ts` for the picker, the policy and the algorithm's description): the
 * endpoints' permutations from two hashes of their keys, then the claims, in bounded steps when the policy builds
 * in steps.
 *
 * @module
 */
import { hashString } from './hash.js';
import { allEqual } from './util.js';

const OFFSET_SEED = 0x4d41474c; // 'MAGL'
const SKIP_SEED = 0x45560000; // 'EV'

/**
 * Fills a Maglev table of prime size `m` for endpoints `keys` (already in key order) with `weights`. Returns the
 * endpoint index per slot. The same table as {@link MaglevTableBuild} run to the end, which it is.
 */
export function buildMaglevTable(keys: readonly string[], weights: Float64Array, m: number): Int32Array {
  return new MaglevTableBuild(keys, weights, m).finish();
}

/**
 * A synchronous build's budget: more steps than a table takes (about `m ln m` for `m` up to 5,000,011, under 2^27,
 * plus 64 an endpoint), and a small integer (a Smi), so that the count of steps left stays one in the loop.
 */
const ALL_STEPS = 2 ** 30 - 1;

/** What hashing one endpoint (two XXH32 of its key) counts for in steps: about as long as that many steps of a walk. */
const HASH_STEPS = 64;

/**
 * A Maglev table being filled, claim by claim, so that a large one can be built in bounded steps (the policy's
 * `startBuild`): {@link MaglevTableBuild.run} takes about as many steps as it is given, then stops where it is.
 *
 * A claim walks the endpoint's permutation from its next preferred slot to the first free one. The walks are short
 * while the table is mostly free and long at the end (about `m / F` steps with `F` slots free, `m ln m` steps in
 * all, most of them for the last few hundred slots). So the walk is kept cheap (which slots are taken is a bit set,
 * 8 KiB for the default `m`, that stays in the L1 cache however the permutations jump; the next slot is
 * `pos + skip`, minus `m` past the end, with no modulo), and the last `endgameSize(m)` claims do not walk: the
 * first free slot of the walk is the free slot `f` that is the fewest steps `j` away, where
 * `f = pos + j * skip (mod m)`, i.e. `j = (f - pos) * skip^-1 (mod m)`, computed for each of the `F` free slots.
 * The table is the same slot for slot; the tests compare it with the walk and with the paper's pseudocode.
 *
 * With equal weights the turns are the paper's round robin: endpoint i claims its next free preferred slot, for
 * i = 0, 1, ..., n - 1, again. With unequal ones, {@link WeightedTurns}.
 */
export class MaglevTableBuild {
  /** The endpoint index per slot; complete once {@link MaglevTableBuild.run} has returned true. */
  readonly table: Int32Array;
  readonly #m: number;
  readonly #n: number;
  /** Next preferred slot of each endpoint (offset + j * skip mod m). */
  readonly #next: Int32Array;
  readonly #skip: Int32Array;
  /** Which slots are taken, a bit each. */
  readonly #taken: Int32Array;
  /** Claims made by walking; the rest by the endgame. */
  readonly #walks: number;
  /** Whose turn it is with unequal weights; undefined with equal ones (round robin). */
  readonly #turns: WeightedTurns | undefined;
  #end: Endgame | undefined;
  /** Claims made so far. */
  #claim = 0;
  /** Whose turn it is with equal weights. */
  #i = 0;
  readonly #keys: readonly string[];
  /** Endpoints whose permutation (offset and skip) is computed. */
  #hashed = 0;

  constructor(keys: readonly string[], weights: Float64Array, m: number) {
    const n = keys.length;
    this.#m = m;
    this.#n = n;
    this.table = new Int32Array(m);
    this.#next = new Int32Array(n);
    this.#skip = new Int32Array(n);
    this.#taken = new Int32Array((m + 31) >>> 5);
    this.#walks = m - endgameSize(m);
    this.#keys = keys;
    if (n === 0) {
      this.table.fill(-1);
      this.#claim = m;
    }
    this.#turns = n === 0 || allEqual(weights) ? undefined : new WeightedTurns(weights);
  }

  /**
   * About how many steps the whole build takes (what {@link MaglevTableBuild.run} counts): the endpoints' hashes, the
   * walks (about `m ln(m / F)` slots visited, `F` the endgame's free slots) and the endgame (about `F^2 / 2`).
   */
  get estimatedSteps(): number {
    const m = this.#m;
    const f = endgameSize(m);
    return this.#n * HASH_STEPS + Math.round(m * Math.log(m / f) + (f * f) / 2);
  }

  /**
   * Makes claims until the table is full or about `steps` steps are spent (a walk's slots visited; an endgame
   * claim's free slots compared). Returns true when the table is full.
   */
  run(steps: number): boolean {
    const m = this.#m;
    const n = this.#n;
    const table = this.table;
    const taken = this.#taken;
    const next = this.#next;
    const skip = this.#skip;
    const walks = this.#walks;
    const turns = this.#turns;
    let left = steps;
    // The permutations first: two hashes an endpoint, slow while V8 has not optimized them (a process's first build
    // of 10,000 endpoints spent 34 ms on them), so counted and done in steps too.
    for (let h = this.#hashed; h < n; h++) {
      if (left <= 0) {
        this.#hashed = h;
        return false;
      }
      const key = this.#keys[h] as string;
      next[h] = hashString(key, OFFSET_SEED) % m;
      skip[h] = m === 2 ? 1 : (hashString(key, SKIP_SEED) % (m - 1)) + 1;
      left -= HASH_STEPS;
    }
    this.#hashed = n;
    let claim = this.#claim;
    let i = this.#i;
    // The walks, in a loop of their own for each kind of turn: most of the build is the first one's few instructions.
    if (turns === undefined) {
      while (claim < walks && left > 0) {
        left -= walk(i, table, taken, next, skip, m);
        claim++;
        if (++i === n) i = 0;
      }
    } else {
      while (claim < walks && left > 0) {
        const who = turns.head;
        left -= walk(who, table, taken, next, skip, m);
        claim++;
        turns.advance(who);
      }
    }
    while (claim < m && left > 0) {
      const who = turns === undefined ? i : turns.head;
      left -= (this.#end ??= new Endgame(table, taken, next, skip, m)).claim(who);
      claim++;
      if (turns !== undefined) turns.advance(who);
      else if (++i === n) i = 0;
    }
    this.#claim = claim;
    this.#i = i;
    return claim >= m;
  }

  /** Runs the build to the end (a synchronous build); returns the table. */
  finish(): Int32Array {
    while (!this.run(ALL_STEPS));
    return this.table;
  }
}

/**
 * Weighted turns: endpoint i's k-th turn at k / w_i, earliest first, ties by index (the continuous form of Envoy's
 * "a host of weight max/3 is picked every third iteration"). A binary heap keyed that way: O(log N) a claim, however
 * skewed the weights.
 */
class WeightedTurns {
  readonly #rate: Float64Array;
  readonly #turns: Float64Array;
  readonly #due: Float64Array; // all 0: the first round in key order
  readonly #heap: Int32Array;

  constructor(weights: Float64Array) {
    const n = weights.length;
    let max = 0;
    for (const w of weights) max = Math.max(max, w);
    this.#rate = weights.map((w) => w / max);
    this.#turns = new Float64Array(n);
    this.#due = new Float64Array(n);
    this.#heap = new Int32Array(n);
    for (let i = 0; i < n; i++) this.#heap[i] = i;
  }

  /** Whose turn it is. */
  get head(): number {
    return this.#heap[0] as number;
  }

  /** `i`, the head, has had its turn: its next one is due one period later; sift it down. */
  advance(i: number): void {
    const heap = this.#heap;
    const due = this.#due;
    const n = heap.length;
    this.#turns[i] = (this.#turns[i] as number) + 1;
    due[i] = (this.#turns[i] as number) / (this.#rate[i] as number);
    // Sift the root down: order by due time, then index.
    let at = 0;
    const di = due[i] as number;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= n) break;
      let c = heap[child] as number;
      let dc = due[c] as number;
      if (child + 1 < n) {
        const r = heap[child + 1] as number;
        const dr = due[r] as number;
        if (dr < dc || (dr === dc && r < c)) {
          child++;
          c = r;
          dc = dr;
        }
      }
      if (di < dc || (di === dc && i < c)) break;
      heap[at] = c;
      at = child;
    }
    heap[at] = i;
  }
}

/**
 * How many of the last claims compute their slot rather than walk: where a walk (about `m / F` cheap steps with `F`
 * slots free) starts to cost more than checking all `F` free slots (a multiplication and a reduction each), i.e.
 * `F` of the order of `sqrt(m)`. Measured (CPU time of a build at N = 1000): `sqrt(m) / 2` is about the best, 129 for
 * the default `m` (2.5 ms for the table walked to the end, 1.9 ms with this endgame) and 405 for 655373 (27 ms,
 * 20 ms).
 */
function endgameSize(m: number): number {
  return Math.min(m, Math.ceil(Math.sqrt(m) / 2));
}

/**
 * Endpoint `i` claims the first free slot of its permutation from `next[i]`, walking it. Returns the slots visited.
 */
function walk(i: number, table: Int32Array, taken: Int32Array, next: Int32Array, skip: Int32Array, m: number): number {
  let pos = next[i] as number;
  const s = skip[i] as number;
  let word = pos >>> 5;
  let bit = 1 << (pos & 31);
  let steps = 1;
  while (((taken[word] as number) & bit) !== 0) {
    pos += s;
    if (pos >= m) pos -= m;
    word = pos >>> 5;
    bit = 1 << (pos & 31);
    steps++;
  }
  taken[word] = (taken[word] as number) | bit;
  table[pos] = i;
  pos += s;
  next[i] = pos >= m ? pos - m : pos;
  return steps;
}

/** The last claims: over a list of the free slots, each claim computing how far each one is along the permutation. */
class Endgame {
  readonly #table: Int32Array;
  readonly #next: Int32Array;
  readonly #skip: Int32Array;
  readonly #m: number;
  /** skip^-1 mod m per endpoint, 0 until computed (a skip from 1 to m - 1 has an inverse from 1 to m - 1). */
  readonly #inverse: Float64Array;
  readonly #free: Int32Array;
  #count = 0;

  constructor(table: Int32Array, taken: Int32Array, next: Int32Array, skip: Int32Array, m: number) {
    this.#table = table;
    this.#next = next;
    this.#skip = skip;
    this.#m = m;
    this.#inverse = new Float64Array(next.length);
    this.#free = new Int32Array(endgameSize(m));
    // The free slots, a word of 32 at a time: nearly every word is full (-1).
    for (let w = 0; w < taken.length; w++) {
      const word = taken[w] as number;
      if (word === -1) continue;
      for (let bit = 0; bit < 32; bit++) {
        const pos = (w << 5) | bit;
        if (pos >= m) break;
        if ((word & (1 << bit)) === 0) this.#free[this.#count++] = pos;
      }
    }
  }

  /**
   * Endpoint `i` claims the free slot its walk would reach first: the fewest steps of `skip` from `next[i]`. Returns
   * the free slots compared.
   */
  claim(i: number): number {
    const m = this.#m;
    const free = this.#free;
    const pos = this.#next[i] as number;
    let inverse = this.#inverse[i] as number;
    if (inverse === 0) inverse = this.#inverse[i] = modularInverse(this.#skip[i] as number, m);
    let best = 0;
    let bestSteps = m;
    for (let k = 0; k < this.#count; k++) {
      let d = (free[k] as number) - pos;
      if (d < 0) d += m;
      // d * inverse mod m, exactly: the product is below m^2 < 2^53, and q * m differs from it by less than 2m.
      const x = d * inverse;
      let steps = x - Math.floor(x / m) * m;
      if (steps < 0) steps += m;
      else if (steps >= m) steps -= m;
      if (steps < bestSteps) {
        bestSteps = steps;
        best = k;
      }
    }
    const compared = this.#count;
    const slot = free[best] as number;
    free[best] = free[--this.#count] as number;
    this.#table[slot] = i;
    const after = slot + (this.#skip[i] as number);
    this.#next[i] = after >= m ? after - m : after;
    return compared;
  }
}

/** `a^-1 mod m` for `a` coprime to `m` (extended Euclid). */
function modularInverse(a: number, m: number): number {
  let t = 0;
  let t1 = 1;
  let r = m;
  let r1 = a;
  while (r1 !== 0) {
    const q = Math.floor(r / r1);
    const t2 = t - q * t1;
    t = t1;
    t1 = t2;
    const r2 = r - q * r1;
    r = r1;
    r1 = r2;
  }
  return t < 0 ? t + m : t;
}
