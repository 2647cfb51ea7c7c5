/**
 * Hash keys for the hashing policies (`ring-hash`, `maglev`): where in the request the key comes from, and how it
 * is hashed.
 *
 * A request that carries no key is not hashed to a fixed point (which would pile every keyless request onto one
 * endpoint); the policy picks at random instead, as gRPC A76 specifies for ring hash when the request hash header
 * is missing.
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { describe, isRecord, joinPath, readOptions, rejectUnknownKeys, required, string } from '../common/options.js';
import { findHeader, requestHost } from '../common/headers.js';
import { hashStringInto } from './hash.js';
import type { PickContext } from './picker.js';

/**
 * Computes the hash of a request's key: an unsigned 32-bit XXH32, or -1 when the request has no key. Built by
 * {@link parseHashKey}. Convenient where a pick is not the hot path; a hash of 2^31 or more is returned as a heap
 * number (a small allocation), so the hashing pickers use a {@link KeyHasher} instead.
 *
 * @category Hashing
 */
export type RequestHasher = (context: PickContext) => number;

/**
 * Computes the hash of a request's key without allocating: writes the unsigned 32-bit XXH32 of the key's UTF-8 bytes
 * (seed 0, the same value {@link RequestHasher} returns) into `out[0]` and returns true, or returns false and leaves
 * `out` alone when the request has no key. Built by {@link parseKeyHasher}; the `ring-hash` and `maglev` pickers call
 * it on every pick with a one-element array they own. Allocation-free for the header, cookie and path forms (a
 * function form allocates whatever the function does).
 *
 * Why an out-parameter: V8 passes small integers unboxed (below 2^31 on Node's 64-bit builds, 2^30 where pointer
 * compression is on), but a larger number returned from a call that is not inlined becomes a new heap number, and
 * half of all 32-bit hashes are that large.
 *
 * @category Hashing
 */
export type KeyHasher = (context: PickContext, out: Uint32Array) => boolean;

// Moved to common/headers.ts (routing reads headers too); re-exported so existing imports keep working.
export { findHeader } from '../common/headers.js';

// RFC 9110 token: header field names and cookie names.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The keys of the object forms of {@link HashKeyOption}, exactly one of which is given. */
const SOURCES = ['header', 'cookie', 'path'];

/**
 * Validates the `hashKey` setting and returns the hasher for it. Throws {@link InvalidOptionError} naming `option`.
 *
 * @example
 * ```ts
 * const hasher = parseHashKey({ header: 'x-user' });
 * hasher({ method: 'GET', path: '/', authority: 'svc', headers: { 'X-User': 'ada' } }); // a uint32
 * ```
 *
 * @category Hashing
 */
export function parseHashKey(raw: unknown, option = 'picker.hashKey'): RequestHasher {
  const hasher = parseKeyHasher(raw, option);
  const out = new Uint32Array(1);
  return (context) => (hasher(context, out) ? (out[0] as number) : -1);
}

/**
 * Validates the `hashKey` setting and returns the allocation-free hasher for it (see {@link KeyHasher}). Throws
 * {@link InvalidOptionError} naming `option`, exactly as {@link parseHashKey}.
 *
 * @example
 * ```ts
 * const hasher = parseKeyHasher({ cookie: 'session' });
 * const out = new Uint32Array(1);
 * const context = { method: 'GET', path: '/', authority: 'svc', headers: { cookie: 'session=ab' } };
 * if (hasher(context, out)) console.log(out[0]); // the uint32 hash of 'ab'
 * ```
 *
 * @category Hashing
 */
export function parseKeyHasher(raw: unknown, option = 'picker.hashKey'): KeyHasher {
  // A getter or Proxy trap that throws is reported as an invalid option, never escapes raw (a public helper).
  return readOptions(option, () => parseUnguarded(raw, option));
}

function parseUnguarded(raw: unknown, option: string): KeyHasher {
  if (raw === undefined) {
    throw new InvalidOptionError(
      option,
      'required: where the hash key comes from ({ header: name }, { cookie: name }, { path: true } or a function)',
    );
  }
  if (typeof raw === 'function') {
    const fn = raw as (context: PickContext) => unknown;
    return (context, out) => {
      let key: unknown;
      try {
        key = fn(context);
      } catch {
        return false;
      }
      if (typeof key !== 'string' || key.length === 0) return false;
      hashStringInto(out, key, 0, 0, key.length);
      return true;
    };
  }
  if (!isRecord(raw)) {
    throw new InvalidOptionError(
      option,
      `expected { header: name }, { cookie: name }, { path: true } or a function, got ${describe(raw)}`,
    );
  }
  rejectUnknownKeys(raw, option, SOURCES);
  const keys = Object.keys(raw);
  if (keys.length !== 1) {
    throw new InvalidOptionError(
      option,
      `expected exactly one of header, cookie, path; got ${keys.length === 0 ? 'none' : keys.join(', ')}`,
    );
  }
  const record = raw;
  if ('header' in record) {
    const at = joinPath(option, 'header');
    const lower = string(required(record.header, at), at, '', TOKEN, 'a header name (an RFC 9110 token)').toLowerCase();
    if (lower === 'cookie') throw new InvalidOptionError(at, 'use { cookie: name } to hash on one cookie');
    // A request written as a URL carries its Host as the authority, not as a header: read both, so the same
    // request hashes alike through client.fetch and the dispatcher (probe 14).
    if (lower === 'host') {
      return (context, out) => {
        const host = requestHost(context.headers, context.authority);
        if (host.length === 0) return false;
        hashStringInto(out, host, 0, 0, host.length);
        return true;
      };
    }
    return (context, out) => {
      const value = findHeader(context.headers, lower);
      if (value === undefined || value.length === 0) return false;
      hashStringInto(out, value, 0, 0, value.length);
      return true;
    };
  }
  if ('cookie' in record) {
    const at = joinPath(option, 'cookie');
    const name = string(required(record.cookie, at), at, '', TOKEN, 'a cookie name (an RFC 6265 token)');
    return (context, out) => hashCookie(context.headers, name, out);
  }
  // The one key left is `path`.
  if (record.path !== true) {
    throw new InvalidOptionError(joinPath(option, 'path'), `expected true, got ${describe(record.path)}`);
  }
  return (context, out) => {
    const path = context.path;
    if (typeof path !== 'string' || path.length === 0) return false;
    const q = path.indexOf('?');
    hashStringInto(out, path, 0, 0, q < 0 ? path.length : q);
    return true;
  };
}

function hashCookie(headers: unknown, name: string, out: Uint32Array): boolean {
  const cookie = findHeader(headers, 'cookie');
  if (cookie === undefined) return false;
  // RFC 6265 5.4: `name=value` pairs separated by `; `. Headers joined from several Cookie lines use `,`, which a
  // cookie value may not contain (RFC 6265 4.1.1), so treat it as a separator too. Scan in place: no split, no
  // substring.
  let i = 0;
  const n = cookie.length;
  while (i < n) {
    while (i < n && (cookie.charCodeAt(i) === 32 || cookie.charCodeAt(i) === 59 || cookie.charCodeAt(i) === 44)) i++;
    const start = i;
    while (i < n && cookie.charCodeAt(i) !== 59 && cookie.charCodeAt(i) !== 44) i++;
    const eq = cookie.indexOf('=', start);
    if (eq > start && eq < i && eq - start === name.length && cookie.startsWith(name, start)) {
      let vs = eq + 1;
      let ve = i;
      while (ve > vs && cookie.charCodeAt(ve - 1) === 32) ve--;
      if (ve - vs >= 2 && cookie.charCodeAt(vs) === 34 && cookie.charCodeAt(ve - 1) === 34) {
        vs++;
        ve--;
      }
      if (ve <= vs) return false;
      hashStringInto(out, cookie, 0, vs, ve);
      return true;
    }
  }
  return false;
}
