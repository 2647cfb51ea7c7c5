/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
 * NSDI 2016, section 3.4), with weights as in Envoy's `MAGLEV` load balancer.
 *
 * Each endpoint gets a permutation of the `M` table slots from two hashes of its key (section 3.4, "Pseudocode 1"):
 * `offset = h1(key) mod M`, `skip = h2(key) mod (M - 1) + 1`, `permutation[j] = (offset + j * skip) mod M`, where
 * `M` is prime so every permutation visits every slot. Endpoints then take turns claiming their next free
 * preferred slot until the table is full. A request goes to `table[xxh32(key) mod M]`: one hash, one modulo, one
 * load; O(1).
 *
 * Weights: with equal weights the turns are plain round robin (the paper's algorithm), so every endpoint gets
 * `floor(M / N)` or `ceil(M / N)` slots and max/mean share is at most `1 + N / M`. With unequal weights an endpoint
 * of weight `w` takes its `k`-th turn at time `k / w`, earliest first (ties by key order): the continuous form of
 * Envoy's "a host of weight max/3 is picked every third iteration", run on a heap so a build is O(M log N) however
 * skewed the weights.
 *
 * `h1` and `h2` are XXH32 with two different seeds. Endpoints are ordered by key before the turns start, so two
 * processes given the same endpoint set in any order build the same table. Keyless requests go to a random slot
 * (gRPC A76), i.e. at random by weight.
 *
 * Limits, decided at build time rather than thrown (every valid endpoint set must build): an endpoint whose weight
 * share is below `1 / M` may get no slot at all, and with more endpoints than slots only `M` of them do. Pick
 * `tableSize` well above the endpoint count (the paper suggests M > 100 N).
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { describe, joinPath, rejectUnknownKeys } from '../common/options.js';
import { hashString } from './hash.js';
import { type HashKeyOption, type KeyHasher, parseKeyHasher } from './hash-key.js';
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { allEqual, completeResults, indexOf, sortedByKey } from './util.js';

/** The largest Maglev table allowed (Envoy's limit). */
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

const OFFSET_SEED = 0x4d41474c; // 'MAGL'
const SKIP_SEED = 0x45560000; // 'EV'

/** Settings of the `maglev` policy. @category Built-in policies */
export interface MaglevConfig {
  /** Where each request's hash key comes from. Required. */
  readonly hashKey: KeyHasher;
  /**
   * Lookup table size `M`: a prime from 2 to 5000011 (Envoy's bounds). Larger tables balance better (max/mean share
   * at most `1 + N / M` with equal weights) and take longer to build.
   * @defaultValue 65537
   */
  readonly tableSize: number;
}

/** What users pass for `maglev` (besides `name`). @category Options */
export interface MaglevOptions {
  /** See {@link HashKeyOption}. Required. */
  readonly hashKey: HashKeyOption;
  /** @defaultValue 65537 */
  readonly tableSize?: number;
}

/** True when `n` is a prime (trial division; `n` is at most a few million). */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The picker built by {@link maglevPolicy}. */
export class MaglevPicker<T extends Pickable> implements Picker<T> {
  /** Endpoints in key order; `table` indexes into this. */
  readonly targets: readonly T[];
  /** The lookup table: endpoint index per slot. */
  readonly table: Int32Array;
  readonly #slots: PickResult<T>[];
  readonly #size: number;
  readonly #hasher: KeyHasher;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  // Written by the hasher, read by the lookup: a hash of 2^31 or more returned as a number would be a heap number.
  readonly #hash = new Uint32Array(1);

  /** @internal Built by the policy. */
  constructor(targets: readonly T[], table: Int32Array, hasher: KeyHasher, random: () => number) {
    this.targets = targets;
    this.table = table;
    this.#size = table.length;
    const results = completeResults(targets);
    // One result reference per slot: a pick is a single array load after the modulo.
    this.#slots = Array.from(table, (i) => results[i] as PickResult<T>);
    this.#hasher = hasher;
    this.#fill = randomFill(random);
  }

  /**
   * Looks up the request's hash key in the table; a request without a key gets a random slot. Always `complete`.
   */
  pick(context: PickContext): PickResult<T> {
    const out = this.#hash;
    if (!this.#hasher(context, out)) {
      this.#fill(this.#draw);
      return this.#slots[indexOf(this.#draw[0] as number, this.#size)] as PickResult<T>;
    }
    return this.#slots[(out[0] as number) % this.#size] as PickResult<T>;
  }

  /** The target for a key already hashed with XXH32 (seed 0) of its UTF-8 bytes: `hashString(key)`. */
  pickHash(hash: number): PickResult<T> {
    return this.#slots[hash % this.#size] as PickResult<T>;
  }
}

/**
 * Fills a Maglev table of prime size `m` for endpoints `keys` (already in key order) with `weights`. Returns the
 * endpoint index per slot.
 */
export function buildMaglevTable(keys: readonly string[], weights: Float64Array, m: number): Int32Array {
  const n = keys.length;
  const table = new Int32Array(m).fill(-1);
  const next = new Int32Array(n); // next preferred slot of each endpoint (offset + j * skip mod m)
  const skip = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    next[i] = hashString(key, OFFSET_SEED) % m;
    skip[i] = m === 2 ? 1 : (hashString(key, SKIP_SEED) % (m - 1)) + 1;
  }
  let filled = 0;
  if (allEqual(weights)) {
    while (filled < m) {
      for (let i = 0; i < n && filled < m; i++) {
        filled++;
        // Claim the next free preferred slot; `pos += skip mod m` walks the permutation without multiplying.
        let pos = next[i] as number;
        const s = skip[i] as number;
        while ((table[pos] as number) >= 0) {
          pos += s;
          if (pos >= m) pos -= m;
        }
        table[pos] = i;
        pos += s;
        next[i] = pos >= m ? pos - m : pos;
      }
    }
    return table;
  }
  // Weighted turns: endpoint i's k-th turn at k / w_i, earliest first, ties by index. A binary heap keyed that way.
  let max = 0;
  for (const w of weights) max = Math.max(max, w);
  const rate = weights.map((w) => w / max);
  const turns = new Float64Array(n);
  const due = new Float64Array(n); // all 0: first round in key order
  const heap = Int32Array.from({ length: n }, (_, i) => i);
  while (filled < m) {
    const i = heap[0] as number;
    filled++;
    let pos = next[i] as number;
    const s = skip[i] as number;
    while ((table[pos] as number) >= 0) {
      pos += s;
      if (pos >= m) pos -= m;
    }
    table[pos] = i;
    pos += s;
    next[i] = pos >= m ? pos - m : pos;
    turns[i] = (turns[i] as number) + 1;
    due[i] = (turns[i] as number) / (rate[i] as number);
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
  return table;
}

/** The `maglev` policy. @category Built-in policies */
export const maglevPolicy: PickerPolicy<MaglevConfig> = {
  name: 'maglev',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, ['hashKey', 'tableSize']);
    const hashKey = parseKeyHasher(raw.hashKey, joinPath(path, 'hashKey'));
    const tableSize = raw.tableSize ?? 65537;
    if (
      typeof tableSize !== 'number' ||
      !Number.isInteger(tableSize) ||
      tableSize < 2 ||
      tableSize > MAX_MAGLEV_TABLE_SIZE ||
      !isPrime(tableSize)
    ) {
      throw new InvalidOptionError(
        joinPath(path, 'tableSize'),
        `expected a prime from 2 to ${MAX_MAGLEV_TABLE_SIZE} (e.g. 65537 or 655373), got ${describe(tableSize)}`,
      );
    }
    return { hashKey, tableSize };
  },
  build(targets, config, env) {
    const sorted = sortedByKey(targets);
    const table = buildMaglevTable(
      sorted.map((t) => t.key),
      new Float64Array(sorted.map((t) => t.endpoint.weight)),
      config.tableSize,
    );
    return new MaglevPicker(sorted, table, config.hashKey, env.random);
  },
};
