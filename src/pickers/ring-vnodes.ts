/**
 * The ring's raw material, for `ring-build.ts`: virtual-node positions (`xxh32(key + '_' + n)`, the key's prefix
 * hashed once) and the LSD radix sort of positions with their owners, both resumable so that a build can stop after
 * a bounded number of entries; {@link buildRing}, the ring built at once from scratch (the reference the cached and
 * stepped builds are tested against).
 *
 * @module
 */
import { xxh32FromLanes, xxh32Into, xxh32Lanes } from './hash.js';

/** Appends virtual-node positions `xxh32(key + '_' + n)`: the key encoded once, `n` kept as decimal digits in place. */
export class VnodeHasher {
  #buf = new Uint8Array(64);
  #digitsAt = 0;
  #length = 0;
  readonly #out = new Uint32Array(1);
  // XXH32's lanes after the 16-byte stripes that lie within `key_` (the same for every virtual node of the key).
  readonly #lanes = new Int32Array(4);
  #stripes = 0;

  /** Prepares `key` and sets the counter to `n`. */
  reset(key: string, n: number): void {
    const need = key.length * 3 + 16;
    if (need > this.#buf.length) this.#buf = new Uint8Array(need);
    const { written } = encoder.encodeInto(key, this.#buf);
    this.#buf[written] = 0x5f; // '_'
    this.#digitsAt = written + 1;
    const digits = String(n);
    for (let d = 0; d < digits.length; d++) this.#buf[this.#digitsAt + d] = digits.charCodeAt(d);
    this.#length = this.#digitsAt + digits.length;
    this.#stripes = this.#digitsAt >>> 4;
    if (this.#stripes > 0) xxh32Lanes(this.#lanes, this.#buf, 0, this.#stripes);
  }

  /** Writes `count` positions (the counter's next ones) to `hashes` from `at`, each with `owner`. */
  hash(count: number, owner: number, hashes: Uint32Array, owners: Int32Array, at: number): void {
    const buf = this.#buf;
    const out = this.#out;
    const lanes = this.#lanes;
    const stripes = this.#stripes;
    for (let k = 0; k < count; k++) {
      if (stripes > 0) xxh32FromLanes(out, buf, this.#length, lanes, stripes);
      else xxh32Into(out, buf, 0, 0, this.#length);
      hashes[at + k] = out[0] as number;
      owners[at + k] = owner;
      // Increment the decimal counter in place; a carry out of the first digit makes it one digit longer.
      let d = this.#length - 1;
      while (d >= this.#digitsAt && buf[d] === 0x39) buf[d--] = 0x30;
      if (d >= this.#digitsAt) {
        buf[d] = (buf[d] as number) + 1;
      } else {
        buf[this.#digitsAt] = 0x31;
        buf[this.#length++] = 0x30;
      }
    }
  }
}

const encoder = new TextEncoder();
export const RADIX = 65536;
/**
 * What a large allocation counts for: a step's default budget, so that each one ends a step (making and zeroing up
 * to 32 MiB is a few ms, and may start a collection).
 */
export const ALLOCATION = 65_536;
/** The budget of a build done at once: finite, so that budget arithmetic stays exact. */
export const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/**
 * LSD radix sort of `(hashes, owners)` pairs by hash, two 16-bit passes, in bounded steps: O(n) and stable, so
 * equal positions keep their input order (key order).
 */
export class RadixSort {
  readonly #h: Uint32Array;
  readonly #o: Int32Array;
  #th: Uint32Array | undefined;
  #to: Int32Array | undefined;
  readonly #count = new Uint32Array(RADIX);
  // 0: counting for pass 0 (the low 16 bits), 1: scattering it, 2 and 3: the same for pass 1 (the high bits), 4: done.
  #phase = 0;
  #i = 0;
  #touched = 0;

  constructor(hashes: Uint32Array, owners: Int32Array) {
    this.#h = hashes;
    this.#o = owners;
  }

  get done(): boolean {
    return this.#phase === 4;
  }

  /** Sorts on, touching at most `budget` entries (plus the 65,536-entry prefix sum, counted); returns how many. */
  step(budget: number): number {
    const n = this.#h.length;
    if (this.#th === undefined) {
      this.#th = new Uint32Array(n);
      return ALLOCATION;
    }
    if (this.#to === undefined) {
      this.#to = new Int32Array(n);
      return ALLOCATION;
    }
    // The first scatter writes all over both new arrays: fault their pages in first, a bounded run at a time
    // (writing zeros is about a tenth of the cost of an entry's other work: 8 entries a unit).
    if (this.#touched < n) {
      const end = Math.min(n, this.#touched + budget * 8);
      this.#th.fill(0, this.#touched, end);
      this.#to.fill(0, this.#touched, end);
      const used = Math.ceil((end - this.#touched) / 8);
      this.#touched = end;
      return used;
    }
    const count = this.#count;
    const shift = this.#phase < 2 ? 0 : 16;
    const [srcH, srcO, dstH, dstO] =
      this.#phase < 2 ? [this.#h, this.#o, this.#th, this.#to] : [this.#th, this.#to, this.#h, this.#o];
    const end = Math.min(n, this.#i + budget);
    if ((this.#phase & 1) === 0) {
      if (this.#i === 0) count.fill(0);
      for (let i = this.#i; i < end; i++) {
        const b = ((srcH[i] as number) >>> shift) & 0xffff;
        count[b] = (count[b] as number) + 1;
      }
      const used = end - this.#i;
      this.#i = end;
      if (end < n) return used;
      let sum = 0;
      for (let b = 0; b < RADIX; b++) {
        const c = count[b] as number;
        count[b] = sum;
        sum += c;
      }
      this.#phase++;
      this.#i = 0;
      return used + RADIX;
    }
    for (let i = this.#i; i < end; i++) {
      const h = srcH[i] as number;
      const b = (h >>> shift) & 0xffff;
      const slot = count[b] as number;
      count[b] = slot + 1;
      dstH[slot] = h;
      dstO[slot] = srcO[i] as number;
    }
    const used = end - this.#i;
    this.#i = end;
    if (end === n) {
      this.#phase = this.#phase === 1 ? 2 : 4;
      this.#i = 0;
      if (this.#phase === 4) this.#th = this.#to = undefined;
    }
    return used;
  }
}

/**
 * Builds the ring for `keys` (in key order) with `counts` entries each, from scratch and at once: positions sorted
 * ascending, equal positions in key order (so two processes agree on collisions), owners indexing `keys`. The
 * reference the cached and stepped builds are tested against, and the coarse ring's builder.
 */
export function buildRing(keys: readonly string[], counts: Uint32Array): { hashes: Uint32Array; owners: Int32Array } {
  let size = 0;
  for (const c of counts) size += c;
  const hashes = new Uint32Array(size);
  const owners = new Int32Array(size);
  const hasher = new VnodeHasher();
  let o = 0;
  for (let i = 0; i < keys.length; i++) {
    hasher.reset(keys[i] as string, 0);
    hasher.hash(counts[i] as number, i, hashes, owners, o);
    o += counts[i] as number;
  }
  const sort = new RadixSort(hashes, owners);
  while (!sort.done) sort.step(UNBOUNDED);
  return { hashes, owners };
}
