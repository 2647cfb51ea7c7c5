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
import { xxh32 } from './hash.js';
import { type HashKeyOption, type KeyHasher, parseKeyHasher } from './hash-key.js';
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, indexOf, sortedByKey } from './util.js';
import { integer, joinPath, rejectUnknownKeys } from '../common/options.js';

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

/** What users pass for `ring-hash` (besides `name`). @category Options */
export interface RingHashOptions {
  /** See {@link HashKeyOption}. Required. */
  readonly hashKey: HashKeyOption;
  /** @defaultValue 1024 */
  readonly minRingSize?: number;
  /** @defaultValue 8388608 */
  readonly maxRingSize?: number;
  /** @defaultValue 1024 */
  readonly vnodesPerEndpoint?: number;
}

const BUCKET_BITS = 16;

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
   * indexing `targets`; the picker takes ownership of it.
   */
  constructor(targets: readonly T[], ring: Uint32Array, hasher: KeyHasher, random: () => number) {
    this.targets = targets;
    const size = ring.length >>> 1;
    this.#size = size;
    this.#ring = ring;
    this.#results = completeResults(targets);
    this.#hasher = hasher;
    this.#fill = randomFill(random);
    // buckets[b] = first ring index whose position's top bits are >= b; buckets[2^16] = ring size.
    const buckets = new Uint32Array((1 << BUCKET_BITS) + 1);
    let i = 0;
    for (let b = 0; b <= 1 << BUCKET_BITS; b++) {
      while (i < size && (ring[2 * i] as number) >>> (32 - BUCKET_BITS) < b) i++;
      buckets[b] = i;
    }
    this.#buckets = buckets;
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
 * Appends the ring positions of `count` virtual nodes of `key` (`xxh32(key + '_' + n)`, n = 0 .. count - 1) to
 * `hashes` from `at`, each with `owner` in `owners`. Encodes the key once and writes the digits in place: no string
 * is built per virtual node.
 */
function hashVnodes(key: string, count: number, owner: number, hashes: Uint32Array, owners: Int32Array, at: number) {
  const bytes = new TextEncoder().encode(key);
  const buf = new Uint8Array(bytes.length + 12);
  buf.set(bytes);
  buf[bytes.length] = 0x5f; // '_'
  const digitsAt = bytes.length + 1;
  let o = at;
  for (let n = 0; n < count; n++) {
    let digits = 1;
    for (let v = n; v >= 10; v = (v / 10) | 0) digits++;
    let v = n;
    for (let d = digitsAt + digits - 1; d >= digitsAt; d--) {
      buf[d] = 0x30 + (v % 10);
      v = (v / 10) | 0;
    }
    hashes[o] = xxh32(buf, 0, 0, digitsAt + digits);
    owners[o] = owner;
    o++;
  }
}

/**
 * Builds the ring for `keys` (in key order) with `counts` entries each: positions sorted ascending, equal positions
 * in key order (so two processes agree on collisions), owners indexing `keys`.
 */
export function buildRing(keys: readonly string[], counts: Uint32Array): { hashes: Uint32Array; owners: Int32Array } {
  let size = 0;
  for (const c of counts) size += c;
  const hashes = new Uint32Array(size);
  const owners = new Int32Array(size);
  let o = 0;
  for (let i = 0; i < keys.length; i++) {
    hashVnodes(keys[i] as string, counts[i] as number, i, hashes, owners, o);
    o += counts[i] as number;
  }
  // LSD radix sort, two 16-bit passes: O(size) and stable, so equal positions stay in key order.
  const tmpH = new Uint32Array(size);
  const tmpO = new Int32Array(size);
  const count = new Uint32Array(65536);
  radixPass(hashes, owners, tmpH, tmpO, count, 0);
  radixPass(tmpH, tmpO, hashes, owners, count, 16);
  return { hashes, owners };
}

function radixPass(
  srcH: Uint32Array,
  srcO: Int32Array,
  dstH: Uint32Array,
  dstO: Int32Array,
  count: Uint32Array,
  shift: number,
): void {
  count.fill(0);
  const n = srcH.length;
  for (let i = 0; i < n; i++) {
    const b = ((srcH[i] as number) >>> shift) & 0xffff;
    count[b] = (count[b] as number) + 1;
  }
  let sum = 0;
  for (let b = 0; b < 65536; b++) {
    const c = count[b] as number;
    count[b] = sum;
    sum += c;
  }
  for (let i = 0; i < n; i++) {
    const h = srcH[i] as number;
    const b = (h >>> shift) & 0xffff;
    const slot = count[b] as number;
    count[b] = slot + 1;
    dstH[slot] = h;
    dstO[slot] = srcO[i] as number;
  }
}

/**
 * The sorted virtual nodes of every endpoint a cluster's ring has recently held, so that a rebuild hashes only
 * endpoints it has not seen (or whose virtual-node count changed) and otherwise filters.
 *
 * Why: the cluster rebuilds its picker whenever eligibility changes (an ejection, a return, a connection failure),
 * and hashing and sorting a ring from scratch blocks the event loop for ~200 ms at N = 1000 (1M entries) on the
 * development machine. Positions depend only on an endpoint's key and count, so an ejection is a filter of this
 * cache (one pass, no hashing) and a new endpoint is its own virtual nodes merged in. Ejected endpoints stay cached
 * until the cache holds more than twice the entries the current ring needs, so their return is a filter too.
 *
 * One cache per parsed configuration (a cluster's), held weakly: it goes when the cluster does. Memory: 8 bytes
 * per cached entry, beside the picker's own 8 bytes per ring entry.
 */
export class VnodeCache {
  readonly #ids = new Map<string, number>();
  #keys: string[] = [];
  #counts: number[] = [];
  // Sorted by position, equal positions in key order; owners are cache ids.
  #hashes = new Uint32Array(0);
  #owners = new Int32Array(0);

  /** Entries held (for tests and diagnostics). */
  get size(): number {
    return this.#hashes.length;
  }

  /**
   * The ring for `keys` (in key order) with `counts` entries each, as interleaved `[position, owner]` pairs, owners
   * indexing `keys`; identical to {@link buildRing}'s.
   */
  ring(keys: readonly string[], counts: Uint32Array): Uint32Array {
    let size = 0;
    const fresh: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      size += counts[i] as number;
      const id = this.#ids.get(keys[i] as string);
      if (id === undefined || this.#counts[id] !== counts[i]) fresh.push(i);
    }
    if (fresh.length > 0) this.#add(keys, counts, fresh, size);
    const indexOfId = new Int32Array(this.#keys.length).fill(-1);
    for (let i = 0; i < keys.length; i++) indexOfId[this.#ids.get(keys[i] as string) as number] = i;
    const ring = new Uint32Array(size * 2);
    const hashes = this.#hashes;
    const owners = this.#owners;
    let o = 0;
    for (let j = 0; j < hashes.length; j++) {
      const t = indexOfId[owners[j] as number] as number;
      if (t >= 0) {
        ring[o++] = hashes[j] as number;
        ring[o++] = t;
      }
    }
    return ring;
  }

  /** Hashes the `fresh` targets' virtual nodes and merges them in, dropping stale and (if over budget) unused ones. */
  #add(keys: readonly string[], counts: Uint32Array, fresh: readonly number[], size: number): void {
    let freshSize = 0;
    for (const i of fresh) freshSize += counts[i] as number;
    const wanted = new Set(keys);
    const replaced = new Set<string>();
    for (const i of fresh) replaced.add(keys[i] as string);
    // Keep an unused endpoint's entries while the cache stays within twice the ring (plus slack for small rings).
    const keepUnused = this.#hashes.length + freshSize <= 2 * size + 65536;
    const oldKeys = this.#keys;
    const newId = new Int32Array(oldKeys.length).fill(-1);
    const keysOut: string[] = [];
    const countsOut: number[] = [];
    this.#ids.clear();
    for (let id = 0; id < oldKeys.length; id++) {
      const key = oldKeys[id] as string;
      if (replaced.has(key) || (!keepUnused && !wanted.has(key))) continue;
      newId[id] = keysOut.length;
      this.#ids.set(key, keysOut.length);
      keysOut.push(key);
      countsOut.push(this.#counts[id] as number);
    }
    // The fresh endpoints' entries, sorted by position; equal positions in key order (fresh is in key order and the
    // radix sort is stable).
    const fh = new Uint32Array(freshSize);
    const fo = new Int32Array(freshSize);
    let o = 0;
    for (const i of fresh) {
      const id = keysOut.length;
      this.#ids.set(keys[i] as string, id);
      keysOut.push(keys[i] as string);
      countsOut.push(counts[i] as number);
      hashVnodes(keys[i] as string, counts[i] as number, id, fh, fo, o);
      o += counts[i] as number;
    }
    const count = new Uint32Array(65536);
    const th = new Uint32Array(freshSize);
    const to = new Int32Array(freshSize);
    radixPass(fh, fo, th, to, count, 0);
    radixPass(th, to, fh, fo, count, 16);
    // Merge the kept old entries (already sorted) with the fresh ones.
    const oh = this.#hashes;
    const oo = this.#owners;
    let kept = 0;
    for (let j = 0; j < oo.length; j++) if ((newId[oo[j] as number] as number) >= 0) kept++;
    const mh = new Uint32Array(kept + freshSize);
    const mo = new Int32Array(kept + freshSize);
    let a = 0;
    let b = 0;
    let m = 0;
    for (;;) {
      while (a < oh.length && (newId[oo[a] as number] as number) < 0) a++;
      if (a === oh.length || b === freshSize) break;
      const ha = oh[a] as number;
      const hb = fh[b] as number;
      const ida = newId[oo[a] as number] as number;
      const idb = fo[b] as number;
      if (ha < hb || (ha === hb && (keysOut[ida] as string) < (keysOut[idb] as string))) {
        mh[m] = ha;
        mo[m++] = ida;
        a++;
      } else {
        mh[m] = hb;
        mo[m++] = idb;
        b++;
      }
    }
    for (; a < oh.length; a++) {
      const id = newId[oo[a] as number] as number;
      if (id >= 0) {
        mh[m] = oh[a] as number;
        mo[m++] = id;
      }
    }
    for (; b < freshSize; b++) {
      mh[m] = fh[b] as number;
      mo[m++] = fo[b] as number;
    }
    this.#keys = keysOut;
    this.#counts = countsOut;
    this.#hashes = mh;
    this.#owners = mo;
  }
}

const caches = new WeakMap<RingHashConfig, VnodeCache>();

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
    const sorted = sortedByKey(targets);
    const weights = new Float64Array(sorted.map((t) => t.endpoint.weight));
    const counts = ringVnodeCounts(weights, config);
    let cache = caches.get(config);
    if (cache === undefined) {
      cache = new VnodeCache();
      caches.set(config, cache);
    }
    const ring = cache.ring(
      sorted.map((t) => t.key),
      counts,
    );
    return new RingHashPicker(sorted, ring, config.hashKey, env.random);
  },
};
