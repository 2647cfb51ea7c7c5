/**
 * Ring hash (consistent hashing, Karger et al. 1997), ketama-style as in Envoy's `RING_HASH` and gRPC A42
 * (https://github.com/grpc/proposal/blob/master/A42-xds-ring-hash-lb-policy.md).
 *
 * Each endpoint is placed on a 32-bit ring at `xxh32(key + '_' + n)` for `n` in `0 .. vnodes - 1` (A42 and Envoy
 * hash `address_n` the same way, with XXH64); a request goes to the first ring entry at or after the XXH32 of its
 * hash key, wrapping around. Weights are virtual-node counts: the lowest-weighted endpoint gets `vnodesPerEndpoint`
 * entries and the others proportionally more, the total kept within `[minRingSize, maxRingSize]` (A42 step 2,
 * with an extra per-endpoint floor so balance does not degrade as endpoints are added).
 *
 * Deterministic across processes: positions depend only on the endpoint keys and weights, endpoints are ordered by
 * key before building, and equal positions (32-bit collisions) are ordered by that key order then `n`, so two
 * instances given the same endpoint set in any order route every key identically.
 *
 * Lookups are O(log n) with a 65536-bucket index on the top 16 bits of the hash, leaving a binary search over a
 * handful of entries. A request without a hash key goes to a random ring entry (gRPC A76), which spreads keyless
 * requests by weight.
 *
 * Weights beyond what the ring can represent (a ratio so large that the lightest endpoint would need more than
 * `maxRingSize` entries in total) are not an error at build time, since every valid endpoint set must build: the
 * ring is capped at `maxRingSize` and every endpoint keeps at least one entry, so very light endpoints are
 * over-represented and the ring may exceed `maxRingSize` by at most the number of endpoints.
 *
 * @module
 */
import { type KeyHasher, parseKeyHasher } from './hash-key.js';
import { type RandomFill, randomFill } from '../common/runtime.js';
import type {
  Pickable,
  PickContext,
  Picker,
  PickerBuild,
  PickerEnvironment,
  PickerPolicy,
  PickResult,
} from './picker.js';
import { type RingFilter, UNBOUNDED, VnodeCache } from './ring-build.js';
import { KeySort } from './key-sort.js';
import { completeResults, indexOf } from './util.js';
import { integer, joinPath, rejectUnknownKeys } from '../common/options.js';

export { buildRing, VnodeCache } from './ring-build.js';

/** The largest ring allowed (Envoy's limit, 8M entries; about 64 MiB at build time, 32 MiB kept). */
export const MAX_RING_SIZE = 8 * 1024 * 1024;

/** Settings of the `ring-hash` policy. @category Built-in policies */
export interface RingHashConfig {
  /** Where each request's hash key comes from. Required. */
  readonly hashKey: KeyHasher;
  /** Smallest ring, entries; an integer from 1 to `maxRingSize`. @defaultValue 1024 */
  readonly minRingSize: number;
  /** Largest ring, entries; an integer from `minRingSize` to 8388608 (8M). @defaultValue 8388608 */
  readonly maxRingSize: number;
  /**
   * Ring entries of the lowest-weighted endpoint (others get proportionally more). More entries balance better:
   * the spread of shares falls as `1 / sqrt(vnodes)`; the default keeps max/mean share within 1.10 at 100
   * endpoints. An integer from 1 to `maxRingSize`.
   * @defaultValue 1024
   */
  readonly vnodesPerEndpoint: number;
}

const BUCKET_BITS = 16;

/**
 * Ring entries {@link RingHashPicker.pickAmong} looks at before it gives up: with a share `p` of the ring's entries
 * owned outside the set, it gives up with probability about `p^64` (entries' owners are spread at random).
 */
export const AMONG_STEPS = 64;

/** The picker built by {@link ringHashPolicy}. */
export class RingHashPicker<T extends Pickable> implements Picker<T> {
  /** Endpoints in ring order (sorted by key); owners index into this. */
  readonly targets: readonly T[];
  // Interleaved [position, owner] pairs: the binary search's last probe and the owner share a cache line, which
  // matters once the ring outgrows the CPU caches (1M entries at N = 1000).
  readonly #ring: Uint32Array;
  readonly #size: number;
  readonly #results: PickResult<T>[];
  readonly #buckets: Uint32Array;
  readonly #hasher: KeyHasher;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  // The hash being looked up: the hasher writes it here and the lookup reads it, so a hash of 2^31 or more never
  // crosses a call boundary as a (heap-allocated) number.
  readonly #hash = new Uint32Array(1);

  /**
   * @internal Built by the policy. `ring` holds interleaved `[position, owner]` pairs sorted by position, owners
   * indexing `targets`; the picker takes ownership of it. `buckets`, when given, is the lookup index already made
   * (`buckets[b]`: the first ring index whose position's top 16 bits are at least `b`; 65,537 entries).
   */
  constructor(
    targets: readonly T[],
    ring: Uint32Array,
    hasher: KeyHasher,
    random: () => number,
    buckets?: Uint32Array,
  ) {
    this.targets = targets;
    const size = ring.length >>> 1;
    this.#size = size;
    this.#ring = ring;
    this.#results = completeResults(targets);
    this.#hasher = hasher;
    this.#fill = randomFill(random);
    this.#buckets = buckets ?? bucketsOf(ring, size);
  }

  /** Sorted ring positions (a copy, for diagnostics and benchmarks). */
  get hashes(): Uint32Array {
    const out = new Uint32Array(this.#size);
    for (let i = 0; i < this.#size; i++) out[i] = this.#ring[2 * i] as number;
    return out;
  }

  /** Owner (index into `targets`) of each ring position (a copy, for diagnostics and benchmarks). */
  get owners(): Int32Array {
    const out = new Int32Array(this.#size);
    for (let i = 0; i < this.#size; i++) out[i] = this.#ring[2 * i + 1] as number;
    return out;
  }

  /** Owner (index into `targets`) of ring entry `index`. */
  ownerAt(index: number): number {
    return this.#ring[2 * index + 1] as number;
  }

  /**
   * Returns the owner of the first ring position at or after the request's key hash; a request without a key gets
   * a random ring position. Always `complete`.
   */
  pick(context: PickContext): PickResult<T> {
    if (!this.#hasher(context, this.#hash)) {
      this.#fill(this.#draw);
      return this.#results[this.ownerAt(indexOf(this.#draw[0] as number, this.#size))] as PickResult<T>;
    }
    return this.#results[this.#ring[2 * this.#lookup() + 1] as number] as PickResult<T>;
  }

  /**
   * @internal The request's key hash into `out[0]`; false for a request without a key. The balancer draws a
   * priority level or zone from it, so a key keeps to one endpoint when traffic spills over levels (as Envoy does).
   */
  keyHash(context: PickContext, out: Uint32Array): boolean {
    return this.#hasher(context, out);
  }

  /**
   * @internal Picks as {@link RingHashPicker.pick} would if only the targets in `among` were on the ring: the first
   * entry from the request's position on whose owner is in `among` (the consistent-hashing answer once the others
   * are gone), looking at most {@link AMONG_STEPS} entries; `undefined` past them. The balancer serves a rebuild's
   * picks with it while the new ring is built (`balancer/staged.ts`).
   */
  pickAmong(context: PickContext, among: ReadonlySet<T>): PickResult<T> | undefined {
    let i: number;
    if (this.#hasher(context, this.#hash)) {
      i = this.#lookup();
    } else {
      this.#fill(this.#draw);
      i = indexOf(this.#draw[0] as number, this.#size);
    }
    for (let n = 0; n < AMONG_STEPS; n++) {
      const result = this.#results[this.ownerAt(i)] as PickResult<T> & { readonly type: 'complete' };
      if (among.has(result.target)) return result;
      if (++i === this.#size) i = 0;
    }
    return undefined;
  }

  /** The target for a key already hashed with XXH32 (seed 0) of its UTF-8 bytes: `hashString(key)`. */
  pickHash(hash: number): PickResult<T> {
    this.#hash[0] = hash;
    return this.#results[this.#ring[2 * this.#lookup() + 1] as number] as PickResult<T>;
  }

  /** The ring index serving `hash`: the first position at or after it, wrapping to 0. */
  indexOfHash(hash: number): number {
    this.#hash[0] = hash;
    return this.#lookup();
  }

  /** The ring index serving the hash in `#hash` (returns an index, below 2^24, so nothing is boxed). */
  #lookup(): number {
    const ring = this.#ring;
    const hash = this.#hash[0] as number;
    const b = hash >>> (32 - BUCKET_BITS);
    let lo = this.#buckets[b] as number;
    let hi = this.#buckets[b + 1] as number;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ring[2 * mid] as number) < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.#size ? 0 : lo;
  }
}

/** buckets[b] = first ring index whose position's top bits are >= b; buckets[2^16] = ring size. */
function bucketsOf(ring: Uint32Array, size: number): Uint32Array {
  const buckets = new Uint32Array((1 << BUCKET_BITS) + 1);
  let i = 0;
  for (let b = 0; b <= 1 << BUCKET_BITS; b++) {
    while (i < size && (ring[2 * i] as number) >>> (32 - BUCKET_BITS) < b) i++;
    buckets[b] = i;
  }
  return buckets;
}

/**
 * Virtual-node count per endpoint (in `weights` order). The lowest weight gets `vnodes`; the total is scaled into
 * [minRingSize, maxRingSize]; every endpoint keeps at least one.
 */
export function ringVnodeCounts(weights: Float64Array, config: Omit<RingHashConfig, 'hashKey'>): Uint32Array {
  let min = Number.POSITIVE_INFINITY;
  let total = 0;
  for (const w of weights) {
    min = Math.min(min, w);
    total += w;
  }
  // Work in normalised weights (A42 step 1) so the arithmetic is the same whatever the weight units.
  const minNorm = min / total;
  const ideal = config.vnodesPerEndpoint / minNorm;
  const size = Math.min(Math.max(ideal, config.minRingSize), config.maxRingSize);
  const counts = new Uint32Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const norm = (weights[i] as number) / total;
    // When unclamped, size * norm = vnodes * w / min exactly up to rounding, so an endpoint's count does not
    // depend on the others (and adding or removing one moves only its own keys).
    counts[i] = Math.max(
      1,
      Math.round(size === ideal ? (config.vnodesPerEndpoint * (weights[i] as number)) / min : size * norm),
    );
  }
  return counts;
}

/**
 * Caches of virtual nodes by the environment a build is given, then by configuration: a cluster's balancer gives
 * its builds an environment object of its own (a new one when the cluster closes), so each cluster has its own cache
 * (discovered clusters share one parsed configuration) and a closed cluster's goes with that object.
 */
const caches = new WeakMap<PickerEnvironment, WeakMap<RingHashConfig, VnodeCache>>();

/** @internal The cache that builds over `env` and `config` share (made on first use). */
export function vnodeCacheOf(env: PickerEnvironment, config: RingHashConfig): VnodeCache {
  let byConfig = caches.get(env);
  if (byConfig === undefined) caches.set(env, (byConfig = new WeakMap()));
  let cache = byConfig.get(config);
  if (cache === undefined) byConfig.set(config, (cache = new VnodeCache()));
  return cache;
}

/** The `ring-hash` policy. @category Built-in policies */
export const ringHashPolicy: PickerPolicy<RingHashConfig> = {
  name: 'ring-hash',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, ['hashKey', 'minRingSize', 'maxRingSize', 'vnodesPerEndpoint']);
    const hashKey = parseKeyHasher(raw.hashKey, joinPath(path, 'hashKey'));
    const maxRingSize = integer(raw.maxRingSize, joinPath(path, 'maxRingSize'), MAX_RING_SIZE, 1, MAX_RING_SIZE);
    const fallback = Math.min(1024, maxRingSize);
    const minRingSize = integer(raw.minRingSize, joinPath(path, 'minRingSize'), fallback, 1, maxRingSize);
    const vnodesPerEndpoint = integer(
      raw.vnodesPerEndpoint,
      joinPath(path, 'vnodesPerEndpoint'),
      fallback,
      1,
      maxRingSize,
    );
    return { hashKey, minRingSize, maxRingSize, vnodesPerEndpoint };
  },
  build(targets, config, env) {
    return new RingBuild(targets, config, env).step(UNBOUNDED) as RingHashPicker<(typeof targets)[number]>;
  },
  startBuild(targets, config, env) {
    return new RingBuild(targets, config, env);
  },
};

/**
 * Entries of the coarse ring that serves while a cluster's first full ring is built (see {@link RingBuild.interim}):
 * about this many in all, at least one per endpoint.
 */
export const COARSE_RING_SIZE = 32_768;

/** Rings up to this many entries are built in one step, at once: a few ms, less than staging them would cost. */
export const AT_ONCE_RING_SIZE = 65_536;

/** What serves a first build: at random until the coarse ring is built, in the build's first steps. */
class InterimPicker<T extends Pickable> implements Picker<T> {
  inner: Picker<T>;
  constructor(inner: Picker<T>) {
    this.inner = inner;
  }
  pick(context: PickContext): PickResult<T> {
    return this.inner.pick(context);
  }
}

/** The ring of the build: its cache's filter (the ring being made), and the targets in ring order. */
interface Setup<T> {
  readonly sorted: T[];
  readonly keys: string[];
  readonly counts: Uint32Array;
  readonly filter: RingFilter;
}

/**
 * A ring-hash build in bounded steps (see `ring-build.ts`); `build` is the same run with an unbounded budget, so a
 * stepped build ends with exactly the picker `build` makes. The first step (in the balancer's rebuild) builds a
 * small ring at once and only sizes a large one; the next orders the endpoints by key and finds what the cache
 * lacks (O(N log N), in a step of its own), then the coarse ring (when asked for) and the ring take bounded steps.
 */
export class RingBuild<T extends Pickable> implements PickerBuild<T> {
  readonly #targets: readonly T[];
  readonly #config: RingHashConfig;
  readonly #env: PickerEnvironment;
  readonly #size: number = 0;
  #order: KeySort<T> | undefined;
  #setup: Setup<T> | undefined;
  #ring: Uint32Array | undefined;
  #interim: InterimPicker<T> | undefined;
  #coarse: RingFilter | undefined;
  /** Ring entries touched so far (hashed, sorted, merged, filtered), for tests that bound the work per step. */
  work = 0;

  constructor(targets: readonly T[], config: RingHashConfig, env: PickerEnvironment) {
    this.#targets = targets;
    this.#config = config;
    this.#env = env;
    const weights = new Float64Array(targets.length);
    for (let i = 0; i < targets.length; i++) weights[i] = (targets[i] as T).endpoint.weight;
    for (const c of ringVnodeCounts(weights, config)) this.#size += c;
  }

  step(budget: number): RingHashPicker<T> | undefined {
    if (this.#setup === undefined) {
      const large = this.#size > AT_ONCE_RING_SIZE && budget !== UNBOUNDED;
      if (large && this.work === 0) {
        this.work = 1;
        return undefined;
      }
      if (!large) budget = UNBOUNDED;
      // Ordering the endpoints by key: O(N log N), in steps of their own (100 ms at 200,000 endpoints at once).
      const order = (this.#order ??= new KeySort(this.#targets));
      if (!order.done) {
        const used = order.step(budget);
        this.work += used;
        if (large && (!order.done || used >= budget)) return undefined;
      }
      this.#setup = this.#prepare(order.sorted);
      // Passes over arrays of N numbers (counts, keys, comparing with recent rings): an eighth of an entry each.
      this.work += Math.ceil(this.#targets.length / 8);
      if (large && !this.#setup.filter.done) return undefined;
    }
    const { filter } = this.#setup;
    const coarse = this.#coarse;
    if (coarse !== undefined && !coarse.done && !filter.done) {
      this.work += coarse.step(budget);
      if (coarse.done) {
        const ring = coarse.ring as Uint32Array;
        (this.#interim as InterimPicker<T>).inner = this.#picker(ring, coarse.buckets);
      }
      return undefined;
    }
    // A build at once (budget UNBOUNDED) still takes a few calls: each large allocation ends a call.
    while (!filter.done) {
      this.work += filter.step(budget);
      if (budget !== UNBOUNDED) break;
    }
    if (!filter.done) return undefined;
    return this.#picker((this.#ring ??= filter.ring as Uint32Array), filter.buckets);
  }

  /**
   * What serves until the ring is built when nothing else can (a cluster's first build): requests at random at
   * first, then, once the next steps have built it, a coarse ring: each endpoint's first virtual nodes, about
   * {@link COARSE_RING_SIZE} entries in all, so the same hash family as the full ring (keys move once, to the full
   * ring, on a warm process; a key may also move once from the random start).
   */
  interim(): Picker<T> {
    if (this.#interim === undefined) {
      // A result per pick rather than one per endpoint up front: this is made within the update (for 10,000
      // endpoints, 10 ms in a process V8 has not warmed up), and serves only until the coarse ring is built.
      const targets = this.#targets;
      const random = this.#env.random;
      this.#interim = new InterimPicker<T>({
        pick: () => ({ type: 'complete', target: targets[indexOf(random(), targets.length)] as T }),
      });
      if (this.#setup !== undefined) this.#startCoarse(this.#setup);
    }
    return this.#interim;
  }

  #prepare(sorted: T[]): Setup<T> {
    const counts = ringVnodeCounts(new Float64Array(sorted.map((t) => t.endpoint.weight)), this.#config);
    const keys = sorted.map((t) => t.key);
    const filter = vnodeCacheOf(this.#env, this.#config).filterFor(keys, counts);
    this.#ring = filter.ring; // a finished ring is held weakly by the cache: hold it
    const setup = { sorted, keys, counts, filter };
    if (this.#interim !== undefined) this.#startCoarse(setup);
    return setup;
  }

  #startCoarse({ keys, counts }: Setup<T>): void {
    const coarse = new Uint32Array(counts.length);
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i] as number;
      coarse[i] = Math.min(c, Math.max(1, Math.floor((c * COARSE_RING_SIZE) / this.#size)));
    }
    // Its own cache: these few entries are not worth keeping beside the full ring's.
    this.#coarse = new VnodeCache().filterFor(keys, coarse);
  }

  #picker(ring: Uint32Array, buckets: Uint32Array): RingHashPicker<T> {
    const sorted = (this.#setup as Setup<T>).sorted;
    return new RingHashPicker(sorted, ring, this.#config.hashKey, this.#env.random, buckets);
  }
}
