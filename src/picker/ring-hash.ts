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
import { type HashKeyOption, parseHashKey, type RequestHasher } from './hash-key.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { rejectUnknownKeys } from './picker.js';
import { completeResults, indexOf, numberSetting, sortedByKey } from './util.js';

/** The largest ring allowed (Envoy's limit, 8M entries; about 64 MiB at build time, 32 MiB kept). */
export const MAX_RING_SIZE = 8 * 1024 * 1024;

/** Settings of the `ring-hash` policy. */
export interface RingHashConfig {
  /** Where each request's hash key comes from. Required. */
  readonly hashKey: RequestHasher;
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

/** What users pass for `ring-hash` (besides `name`). */
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
  readonly #hasher: RequestHasher;
  readonly #random: () => number;

  /** @internal Built by the policy. */
  constructor(
    targets: readonly T[],
    hashes: Uint32Array,
    owners: Int32Array,
    hasher: RequestHasher,
    random: () => number,
  ) {
    this.targets = targets;
    const size = hashes.length;
    this.#size = size;
    const ring = new Uint32Array(size * 2);
    for (let i = 0; i < size; i++) {
      ring[2 * i] = hashes[i] as number;
      ring[2 * i + 1] = owners[i] as number;
    }
    this.#ring = ring;
    this.#results = completeResults(targets);
    this.#hasher = hasher;
    this.#random = random;
    // buckets[b] = first ring index whose position's top bits are >= b; buckets[2^16] = ring size.
    const buckets = new Uint32Array((1 << BUCKET_BITS) + 1);
    let i = 0;
    for (let b = 0; b <= 1 << BUCKET_BITS; b++) {
      while (i < size && (hashes[i] as number) >>> (32 - BUCKET_BITS) < b) i++;
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
    const h = this.#hasher(context);
    if (h < 0) return this.#results[this.ownerAt(indexOf(this.#random(), this.#size))] as PickResult<T>;
    return this.pickHash(h);
  }

  /** The target for a key already hashed with XXH32 (seed 0) of its UTF-8 bytes: `hashString(key)`. */
  pickHash(hash: number): PickResult<T> {
    return this.#results[this.#ring[2 * this.indexOfHash(hash) + 1] as number] as PickResult<T>;
  }

  /** The ring index serving `hash`: the first position at or after it, wrapping to 0. */
  indexOfHash(hash: number): number {
    const ring = this.#ring;
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

/** Builds the sorted ring (positions and owners) for `keys` with `counts` entries each. */
export function buildRing(keys: readonly string[], counts: Uint32Array): { hashes: Uint32Array; owners: Int32Array } {
  let size = 0;
  for (const c of counts) size += c;
  const hashes = new Uint32Array(size);
  const owners = new Int32Array(size);
  // Encode each key once, then append `_n` in place and hash: no string is built per virtual node.
  const encoder = new TextEncoder();
  let buf = new Uint8Array(64);
  let o = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = encoder.encode(keys[i] as string);
    if (key.length + 12 > buf.length) buf = new Uint8Array(key.length + 64);
    buf.set(key);
    buf[key.length] = 0x5f; // '_'
    const digitsAt = key.length + 1;
    const count = counts[i] as number;
    for (let n = 0; n < count; n++) {
      let digits = 1;
      for (let v = n; v >= 10; v = (v / 10) | 0) digits++;
      let v = n;
      for (let d = digitsAt + digits - 1; d >= digitsAt; d--) {
        buf[d] = 0x30 + (v % 10);
        v = (v / 10) | 0;
      }
      hashes[o] = xxh32(buf, 0, 0, digitsAt + digits);
      owners[o] = i;
      o++;
    }
  }
  // LSD radix sort, two 16-bit passes: O(size) and stable, so equal positions stay in (key order, n) order.
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

/** The `ring-hash` policy. */
export const ringHashPolicy: PickerPolicy<RingHashConfig> = {
  name: 'ring-hash',
  parseConfig(raw) {
    rejectUnknownKeys(raw, ['hashKey', 'minRingSize', 'maxRingSize', 'vnodesPerEndpoint']);
    const hashKey = parseHashKey(raw.hashKey);
    const maxRingSize = numberSetting(raw, 'maxRingSize', MAX_RING_SIZE, { min: 1, max: MAX_RING_SIZE, integer: true });
    const minRingSize = numberSetting(raw, 'minRingSize', Math.min(1024, maxRingSize), {
      min: 1,
      max: maxRingSize,
      integer: true,
    });
    const vnodesPerEndpoint = numberSetting(raw, 'vnodesPerEndpoint', Math.min(1024, maxRingSize), {
      min: 1,
      max: maxRingSize,
      integer: true,
    });
    return { hashKey, minRingSize, maxRingSize, vnodesPerEndpoint };
  },
  build(targets, config, env) {
    const sorted = sortedByKey(targets);
    const weights = new Float64Array(sorted.map((t) => t.endpoint.weight));
    const counts = ringVnodeCounts(weights, config);
    const { hashes, owners } = buildRing(
      sorted.map((t) => t.key),
      counts,
    );
    return new RingHashPicker(sorted, hashes, owners, config.hashKey, env.random);
  },
};
