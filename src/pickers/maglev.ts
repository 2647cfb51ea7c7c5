/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
 * NSDI 2016, section 3.4), with weights as in Envoy's `MAGLEV` load balancer.
 *
 * Each endpoint gets a permutation of the `M` table slots from two hashes of its key (section 3.4, "Pseudocode 1"):
 * `offset = h1(key) mod M`, `skip = h2(key) mod (M - 1) + 1`, `permutation[j] = (offset + j * skip) mod M`, where
 * `M` is prime so every permutation visits every slot. Endpoints then take turns claiming their next free
 * preferred slot until the table is full. A request goes to `table[xxh32(key) mod M]`: one hash, one modulo, two
 * loads (the slot, then the endpoint's prepared result); O(1).
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
import { type KeyHasher, parseKeyHasher } from './hash-key.js';
import { type RandomFill, type RandomSource, randomFill } from '../common/runtime.js';
import type {
  Pickable,
  PickContext,
  Picker,
  PickerBuild,
  PickerEnvironment,
  PickerPolicy,
  PickResult,
} from './picker.js';
import { completeResults, indexOf, sortedByKey } from './util.js';
import { MaglevTableBuild } from './maglev-table.js';

export { buildMaglevTable, MaglevTableBuild } from './maglev-table.js';

/** The largest Maglev table allowed (Envoy's limit). */
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

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
  readonly #results: PickResult<T>[];
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
    // A pick loads the slot's endpoint index, then that endpoint's prepared result (N entries, cached). A result
    // reference per slot saved that second load but cost more than it saved at build time: filling M references
    // took longer than the table itself, and a 512 KiB array of pointers is work for the garbage collector (a build
    // at N = 1000, M = 65537 measured 10-19 ms in the picker benchmark with it, 2.5 ms without).
    this.#results = completeResults(targets);
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
      return this.#results[this.table[indexOf(this.#draw[0] as number, this.#size)] as number] as PickResult<T>;
    }
    return this.#results[this.table[(out[0] as number) % this.#size] as number] as PickResult<T>;
  }

  /** @internal The request's key hash into `out[0]`; false without a key (see `RingHashPicker.keyHash`). */
  keyHash(context: PickContext, out: Uint32Array): boolean {
    return this.#hasher(context, out);
  }

  /** The target for a key already hashed with XXH32 (seed 0) of its UTF-8 bytes: `hashString(key)`. */
  pickHash(hash: number): PickResult<T> {
    return this.#results[this.table[hash % this.#size] as number] as PickResult<T>;
  }
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
    return new MaglevBuild(targets, config, env).finish();
  },
  startBuild(targets, config, env) {
    return new MaglevBuild(targets, config, env);
  },
};

/**
 * Walk steps a unit of the balancer's step budget is worth. The unit is ring hash's (a ring entry hashed, sorted and
 * merged: tens of ns); a step of a walk is a few ns. So the default table (M = 65537, about 420,000 steps) is built
 * at once, in the balancer's first step, and a table of millions of slots in turns of a few ms.
 */
const WALK_STEPS_PER_UNIT = 16;

/**
 * A Maglev build in steps (`PickerBuild`): ordering the endpoints when it starts (O(N log N)), then their hashes and
 * the table's claims in steps. No interim picker: a first build is served at random by the balancer until it lands (a
 * coarser table would route keys elsewhere anyway: a Maglev table of another size is another mapping).
 */
class MaglevBuild<T extends Pickable> implements PickerBuild<T> {
  readonly #sorted: T[];
  readonly #table: MaglevTableBuild;
  readonly #hasher: KeyHasher;
  readonly #random: RandomSource;
  #started = false;

  constructor(targets: readonly T[], config: MaglevConfig, env: PickerEnvironment) {
    const sorted = sortedByKey(targets);
    this.#sorted = sorted;
    this.#table = new MaglevTableBuild(
      sorted.map((t) => t.key),
      new Float64Array(sorted.map((t) => t.endpoint.weight)),
      config.tableSize,
    );
    this.#hasher = config.hashKey;
    this.#random = env.random;
  }

  step(budget: number): Picker<T> | undefined {
    const steps = budget * WALK_STEPS_PER_UNIT;
    // The balancer's first step runs within the update, with its full budget even in a process whose code V8 has
    // not optimized yet: a build that does not fit it whole is left to the next turns, whose budgets start small
    // (as ring hash does with a large ring).
    if (!this.#started) {
      this.#started = true;
      if (this.#table.estimatedSteps > steps) return undefined;
    }
    if (!this.#table.run(steps)) return undefined;
    return this.#picker();
  }

  /** The whole build at once: what `build` returns. */
  finish(): MaglevPicker<T> {
    this.#started = true;
    this.#table.finish();
    return this.#picker();
  }

  #picker(): MaglevPicker<T> {
    return new MaglevPicker(this.#sorted, this.#table.table, this.#hasher, this.#random);
  }
}
