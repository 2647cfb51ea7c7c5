/**
 * xxHash32 (XXH32), our own implementation, for the hashing policies (`ring-hash`, `maglev`) and their hash keys.
 *
 * Why XXH32 rather than XXH64 (which Envoy and gRPC A42 use): JavaScript has no 64-bit integer multiply outside
 * BigInt, and BigInt allocates, so XXH64 would cost either allocations on the hot path or a 16-bit-limb emulation
 * several times slower than XXH32, which runs entirely on `Math.imul` and 32-bit shifts. A 32-bit hash space is
 * enough for rings of up to 8M entries and Maglev tables of up to 5M slots: colliding positions are rare and broken
 * deterministically (see `ring-hash.ts`). The price: routes are not bit-compatible with an Envoy or gRPC ring over
 * the same endpoints.
 *
 * Algorithm and constants: the xxHash specification, "xxHash fast digest algorithm", XXH32 section
 * (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md). Strings are hashed as their UTF-8 bytes (lone
 * surrogates as U+FFFD, like `TextEncoder`), so a key hashes identically in every process and platform.
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { describe } from '../common/options.js';

const PRIME32_1 = 0x9e3779b1;
const PRIME32_2 = 0x85ebca77;
const PRIME32_3 = 0xc2b2ae3d;
const PRIME32_4 = 0x27d4eb2f;
const PRIME32_5 = 0x165667b1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl((acc + Math.imul(lane, PRIME32_2)) | 0, 13), PRIME32_1);
}

function readU32(b: Uint8Array, i: number): number {
  return (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
}

// Where `xxh32` and `hashString` take their result from. The hot path never returns a hash: V8 passes small
// integers unboxed (below 2^31 on Node's 64-bit builds, 2^30 with pointer compression), but a larger number
// returned from a call that is not inlined is a new 16-byte heap number, 8 bytes of garbage per keyed pick on
// average, so the `...Into` forms write into a typed array instead.
const result = new Uint32Array(1);

// A Symbol or BigInt seed, offset or length would throw a TypeError deep inside the hash.
function checkNumbers(seed: unknown, from: unknown, to: unknown): void {
  for (const [name, value] of [
    ['seed', seed],
    ['offset', from],
    ['length', to],
  ] as const) {
    if (typeof value !== 'number') throw new InvalidOptionError(name, `expected a number, got ${describe(value)}`);
  }
}

/**
 * XXH32 of `length` bytes of `bytes` starting at `offset`, with `seed`. Returns an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * xxh32(new TextEncoder().encode('abc')); // 0x32d153ff
 * ```
 *
 * @category Hashing
 */
export function xxh32(bytes: Uint8Array, seed = 0, offset = 0, length?: number): number {
  // The public entry (not the Into form the pickers call per request): a JavaScript caller's wrong type fails typed.
  if (!(bytes instanceof Uint8Array)) {
    throw new InvalidOptionError('bytes', `expected a Uint8Array, got ${describe(bytes)}`);
  }
  checkNumbers(seed, offset, length ?? 0);
  xxh32Into(result, bytes, seed, offset, length ?? bytes.length - offset);
  return result[0] as number;
}

/**
 * {@link xxh32}, writing the hash into `out[0]` rather than returning it, so that nothing is allocated.
 *
 * @category Hashing
 */
export function xxh32Into(out: Uint32Array, bytes: Uint8Array, seed: number, offset: number, length: number): void {
  let p = offset;
  const end = offset + length;
  let acc: number;
  if (length >= 16) {
    let v1 = (seed + PRIME32_1 + PRIME32_2) | 0;
    let v2 = (seed + PRIME32_2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - PRIME32_1) | 0;
    const limit = end - 16;
    while (p <= limit) {
      v1 = round(v1, readU32(bytes, p));
      v2 = round(v2, readU32(bytes, p + 4));
      v3 = round(v3, readU32(bytes, p + 8));
      v4 = round(v4, readU32(bytes, p + 12));
      p += 16;
    }
    acc = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    acc = (seed + PRIME32_5) | 0;
  }
  out[0] = finalize((acc + length) | 0, bytes, p, end);
}

/** XXH32's last steps: the input's remaining words and bytes from `p` to `end` into `acc`, then the avalanche. */
function finalize(acc: number, bytes: Uint8Array, p: number, end: number): number {
  while (p + 4 <= end) {
    acc = Math.imul(rotl((acc + Math.imul(readU32(bytes, p), PRIME32_3)) | 0, 17), PRIME32_4);
    p += 4;
  }
  while (p < end) {
    acc = Math.imul(rotl((acc + Math.imul(bytes[p] as number, PRIME32_5)) | 0, 11), PRIME32_1);
    p++;
  }
  acc ^= acc >>> 15;
  acc = Math.imul(acc, PRIME32_2);
  acc ^= acc >>> 13;
  acc = Math.imul(acc, PRIME32_3);
  acc ^= acc >>> 16;
  return acc;
}

/**
 * @internal For hashing many inputs that share a prefix (ring-hash virtual nodes `key_0`, `key_1`, ...): writes to
 * `lanes` XXH32's four lane accumulators after the first `stripes` 16-byte stripes of `bytes`, with `seed`.
 */
export function xxh32Lanes(lanes: Int32Array, bytes: Uint8Array, seed: number, stripes: number): void {
  let v1 = (seed + PRIME32_1 + PRIME32_2) | 0;
  let v2 = (seed + PRIME32_2) | 0;
  let v3 = seed | 0;
  let v4 = (seed - PRIME32_1) | 0;
  for (let p = 0; p < stripes * 16; p += 16) {
    v1 = round(v1, readU32(bytes, p));
    v2 = round(v2, readU32(bytes, p + 4));
    v3 = round(v3, readU32(bytes, p + 8));
    v4 = round(v4, readU32(bytes, p + 12));
  }
  lanes[0] = v1;
  lanes[1] = v2;
  lanes[2] = v3;
  lanes[3] = v4;
}

/**
 * @internal XXH32 of `bytes[0, length)` resumed from {@link xxh32Lanes}'s state after `stripes` stripes (at least
 * one, and `length >= 16 * stripes`), written into `out[0]`: equal to `xxh32Into(out, bytes, seed, 0, length)`.
 */
export function xxh32FromLanes(
  out: Uint32Array,
  bytes: Uint8Array,
  length: number,
  lanes: Int32Array,
  stripes: number,
): void {
  let v1 = lanes[0] as number;
  let v2 = lanes[1] as number;
  let v3 = lanes[2] as number;
  let v4 = lanes[3] as number;
  let p = stripes * 16;
  const limit = length - 16;
  while (p <= limit) {
    v1 = round(v1, readU32(bytes, p));
    v2 = round(v2, readU32(bytes, p + 4));
    v3 = round(v3, readU32(bytes, p + 8));
    v4 = round(v4, readU32(bytes, p + 12));
    p += 16;
  }
  const acc = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  out[0] = finalize((acc + length) | 0, bytes, p, length);
}

// Reused UTF-8 scratch buffer: hashing a string allocates nothing once the buffer has grown to the longest key seen.
let scratch = new Uint8Array(256);

/**
 * Writes the UTF-8 encoding of `s[start, end)` into the scratch buffer at `at` and returns the end offset.
 * Grows the buffer (the only allocation) when a longer key than ever before arrives.
 */
function encodeInto(s: string, start: number, end: number, at: number): number {
  const need = at + (end - start) * 3;
  if (need > scratch.length) {
    const bigger = new Uint8Array(Math.max(need, scratch.length * 2));
    bigger.set(scratch.subarray(0, at));
    scratch = bigger;
  }
  const b = scratch;
  let o = at;
  for (let i = start; i < end; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      b[o++] = c;
    } else if (c < 0x800) {
      b[o++] = 0xc0 | (c >> 6);
      b[o++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < end ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          i++;
          b[o++] = 0xf0 | (cp >> 18);
          b[o++] = 0x80 | ((cp >> 12) & 0x3f);
          b[o++] = 0x80 | ((cp >> 6) & 0x3f);
          b[o++] = 0x80 | (cp & 0x3f);
          continue;
        }
        c = 0xfffd; // lone surrogate
      }
      b[o++] = 0xe0 | (c >> 12);
      b[o++] = 0x80 | ((c >> 6) & 0x3f);
      b[o++] = 0x80 | (c & 0x3f);
    }
  }
  return o;
}

/**
 * XXH32 of the UTF-8 bytes of `s.slice(start, end)`, without allocating (no substring, no encoder output).
 *
 * @example
 * ```ts
 * hashString('abc'); // 0x32d153ff, same as xxh32 over the bytes
 * hashString('/users/42?x=1', 0, 0, 9); // hash of '/users/42'
 * ```
 *
 * @category Hashing
 */
export function hashString(s: string, seed = 0, start = 0, end?: number): number {
  if (typeof s !== 'string') throw new InvalidOptionError('s', `expected a string, got ${describe(s)}`);
  checkNumbers(seed, start, end ?? 0);
  hashStringInto(result, s, seed, start, end ?? s.length);
  return result[0] as number;
}

/**
 * {@link hashString}, writing the hash into `out[0]` rather than returning it: allocation-free (once the UTF-8
 * scratch buffer has grown to the longest non-ASCII key seen). What the hash keys of the hashing policies use.
 *
 * @category Hashing
 */
export function hashStringInto(out: Uint32Array, s: string, seed: number, start: number, end: number): void {
  if (hashAsciiInto(out, s, seed, start, end)) return;
  const length = encodeInto(s, start, end, 0);
  xxh32Into(out, scratch, seed, 0, length);
}

/**
 * XXH32 read straight from the char codes, for the common all-ASCII key (its UTF-8 bytes are its char codes): no
 * encoding pass, no buffer. Writes `out[0]` and returns true; returns false, writing nothing, when a char is not
 * ASCII (the OR of all char codes exceeds 0x7f); the caller then hashes the UTF-8 encoding.
 */
function hashAsciiInto(out: Uint32Array, s: string, seed: number, start: number, end: number): boolean {
  const length = end - start;
  let p = start;
  let seen = 0;
  let acc: number;
  let a: number;
  let b: number;
  let c: number;
  let d: number;
  if (length >= 16) {
    let v1 = (seed + PRIME32_1 + PRIME32_2) | 0;
    let v2 = (seed + PRIME32_2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - PRIME32_1) | 0;
    const limit = end - 16;
    while (p <= limit) {
      a = s.charCodeAt(p);
      b = s.charCodeAt(p + 1);
      c = s.charCodeAt(p + 2);
      d = s.charCodeAt(p + 3);
      seen |= a | b | c | d;
      v1 = round(v1, a | (b << 8) | (c << 16) | (d << 24));
      a = s.charCodeAt(p + 4);
      b = s.charCodeAt(p + 5);
      c = s.charCodeAt(p + 6);
      d = s.charCodeAt(p + 7);
      seen |= a | b | c | d;
      v2 = round(v2, a | (b << 8) | (c << 16) | (d << 24));
      a = s.charCodeAt(p + 8);
      b = s.charCodeAt(p + 9);
      c = s.charCodeAt(p + 10);
      d = s.charCodeAt(p + 11);
      seen |= a | b | c | d;
      v3 = round(v3, a | (b << 8) | (c << 16) | (d << 24));
      a = s.charCodeAt(p + 12);
      b = s.charCodeAt(p + 13);
      c = s.charCodeAt(p + 14);
      d = s.charCodeAt(p + 15);
      seen |= a | b | c | d;
      v4 = round(v4, a | (b << 8) | (c << 16) | (d << 24));
      p += 16;
    }
    acc = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    acc = (seed + PRIME32_5) | 0;
  }
  acc = (acc + length) | 0;
  while (p + 4 <= end) {
    a = s.charCodeAt(p);
    b = s.charCodeAt(p + 1);
    c = s.charCodeAt(p + 2);
    d = s.charCodeAt(p + 3);
    seen |= a | b | c | d;
    acc = Math.imul(rotl((acc + Math.imul(a | (b << 8) | (c << 16) | (d << 24), PRIME32_3)) | 0, 17), PRIME32_4);
    p += 4;
  }
  while (p < end) {
    a = s.charCodeAt(p);
    seen |= a;
    acc = Math.imul(rotl((acc + Math.imul(a, PRIME32_5)) | 0, 11), PRIME32_1);
    p++;
  }
  if (seen > 0x7f) return false;
  acc ^= acc >>> 15;
  acc = Math.imul(acc, PRIME32_2);
  acc ^= acc >>> 13;
  acc = Math.imul(acc, PRIME32_3);
  acc ^= acc >>> 16;
  out[0] = acc;
  return true;
}
