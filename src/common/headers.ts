/**
 * Reading request headers in every form undici accepts for dispatch (object, flat `[k, v, ...]` array, iterable of
 * `[k, v]` pairs, or null), without normalizing them first. Used by the hashing policies (a header or cookie as the
 * hash key) and by route matching.
 *
 * @module
 */
import { InvalidOptionError } from './errors.js';

/** True when `name` equals `lower` (already lower-case ASCII) ignoring ASCII case. */
function sameName(name: unknown, lower: string): boolean {
  if (typeof name !== 'string' || name.length !== lower.length) return false;
  if (name === lower) return true;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

function headerValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value))
    return value.length === 0 ? undefined : value.length === 1 ? String(value[0]) : value.join(', ');
  if (typeof value === 'number') return String(value);
  return undefined;
}

/**
 * The value of header `lower` (a lower-case name) in undici dispatch headers of any form: object, flat
 * `[k, v, ...]` array, iterable of `[k, v]` pairs, or null. Repeated headers are joined with `, ` (RFC 9110 5.3), as
 * fetch's `Headers` joins them: a request reads the same through `client.fetch` and the dispatcher.
 * Allocates only for the iterable form and for repeated or non-string values.
 */
export function findHeader(headers: unknown, lower: string): string | undefined {
  if (typeof lower !== 'string') throw new InvalidOptionError('lower', 'expected a lower-case header name (a string)');
  if (headers == null || typeof headers !== 'object') return undefined;
  if (Array.isArray(headers)) {
    if (headers.length === 0) return undefined;
    let found: string | undefined;
    if (Array.isArray(headers[0])) {
      for (const pair of headers as unknown[][]) {
        if (sameName(pair[0], lower)) found = join(found, headerValue(pair[1]));
      }
      return found;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (sameName(headers[i], lower)) found = join(found, headerValue(headers[i + 1]));
    }
    return found;
  }
  if (iteratesPairs(headers)) {
    let found: string | undefined;
    for (const pair of headers as Iterable<unknown>) {
      if (Array.isArray(pair) && sameName(pair[0], lower)) found = join(found, headerValue(pair[1]));
    }
    return found;
  }
  const record = headers as Record<string, unknown>;
  const direct = record[lower];
  if (direct !== undefined) return headerValue(direct);
  for (const key in record) if (sameName(key, lower)) return headerValue(record[key]);
  return undefined;
}

/**
 * The request's Host, lower case: its own `Host` header when it carries a non-empty one (that is what the endpoint
 * receives: a caller's Host wins over the default), else its URL's `authority` (`host[:port]`). Why not the header
 * alone: undici writes the Host line from the origin, so a request written as a URL (`client.fetch(url)`,
 * `undici.request(url)`) has no Host among its dispatch headers, and a rule on `host` would never see it. `''` when
 * there is neither. Allocates only to lower-case a header value that is not lower case already.
 */
export function requestHost(headers: unknown, authority: string): string {
  const value = findHeader(headers, 'host');
  if (value === undefined || value.length === 0) return authority;
  return value.toLowerCase();
}

/**
 * True when undici reads `headers` (an object that is not an array) as an iterable of `[name, value]` pairs (a `Map`,
 * a `Headers`, a generator of pairs) rather than as a record of names: it has its own `Symbol.iterator`, or one from a
 * prototype other than `Object.prototype` (undici's `hasSafeIterator`, core/util.js).
 */
export function iteratesPairs(headers: object): boolean {
  if (Object.hasOwn(headers, Symbol.iterator)) return true;
  const proto: unknown = Object.getPrototypeOf(headers);
  return (
    proto !== null &&
    proto !== Object.prototype &&
    typeof (headers as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function'
  );
}

function join(a: string | undefined, b: string | undefined): string | undefined {
  if (b === undefined) return a;
  return a === undefined ? b : `${a}, ${b}`;
}
