/**
 * Header helpers for the dispatch path. undici accepts headers as an object (a record of names), a flat
 * `[k, v, k, v]` array, or an iterable of `[k, v]` pairs (a `Map`, a `Headers`); these helpers keep the first two
 * forms and hand over an iterable as a flat array (undici reads any array as a flat list).
 */
import type { Dispatcher } from 'undici';
import { findHeader, iteratesPairs } from '../common/headers.js';

type Headers = Dispatcher.DispatchOptions['headers'];
type DefinedHeaders = NonNullable<Headers>;

function isHost(name: unknown): boolean {
  return typeof name === 'string' && name.length === 4 && name.toLowerCase() === 'host';
}

/** True when `headers` already carries a Host header (read as undici reads it). */
export function hasHostHeader(headers: Headers): boolean {
  if (headers == null) return false;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) if (isHost(headers[i])) return true;
    return false;
  }
  if (iteratesPairs(headers)) {
    for (const pair of headers as Iterable<unknown>) if (Array.isArray(pair) && isHost(pair[0])) return true;
    return false;
  }
  for (const key in headers) if (isHost(key)) return true;
  return false;
}

/**
 * `headers` with `host: value` added, unless a Host header is present already (the caller's wins). Headers undici
 * would refuse (an array of pairs, which it reads as a flat list; an iterable with an entry that is not a pair) are
 * returned as they are, for undici to refuse them as it would without sidecarless: the caller's error.
 */
export function withHostHeader(headers: Headers, value: string): DefinedHeaders {
  if (headers == null) return ['host', value];
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0]) || hasHostHeader(headers)) return headers;
    return [...(headers as string[]), 'host', value];
  }
  if (iteratesPairs(headers)) return flatWithHost(headers as Iterable<unknown>, value);
  if (hasHostHeader(headers)) return headers;
  // Object.assign and a store, not a spread: on Node 20 (V8 11.3) `{ ...headers, host }` of fetch's header record
  // allocated ~400 bytes a request against ~100 for this copy (Node 24: ~100 both). Assign would call the
  // `__proto__` setter for an own `__proto__` key, which the spread copies as a header: that rare record is spread.
  if (Object.hasOwn(headers, '__proto__')) return { ...(headers as Record<string, string>), host: value };
  const copy = Object.assign({}, headers) as Record<string, string>;
  copy.host = value;
  return copy;
}

/**
 * `headers` with `name: value` added (`name` lower case), unless a header of that name is present already (the
 * caller's wins), as a new object or flat array. Headers undici would refuse are returned as they are, as by
 * {@link withHostHeader}.
 */
export function withHeader(headers: Headers, name: string, value: string): DefinedHeaders {
  if (headers == null) return [name, value];
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0]) || findHeader(headers, name) !== undefined) return headers;
    return [...(headers as string[]), name, value];
  }
  if (iteratesPairs(headers)) {
    // Read once: a generator of pairs gives them only once.
    const flat = flatPairs(headers as Iterable<unknown>);
    return Array.isArray(flat) ? withHeader(flat, name, value) : flat;
  }
  if (findHeader(headers, name) !== undefined) return headers;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(headers)) {
    // A store to `__proto__` would set the prototype: a caller's own `__proto__` header stays a header.
    Object.defineProperty(copy, key, {
      value: (headers as Record<string, unknown>)[key],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  copy[name] = value;
  return copy as DefinedHeaders;
}

/**
 * `headers` with its Host header (every one) replaced by `host: value`, as a new object or flat array: the caller's
 * headers are left as they are. What a mirrored copy is sent with, whose Host must name the shadow whatever the
 * caller's was. Headers undici would refuse are returned as they are, as by {@link withHostHeader}.
 */
export function replaceHostHeader(headers: Headers, value: string): DefinedHeaders {
  if (headers == null) return ['host', value];
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0]) || headers.length % 2 !== 0) return headers;
    const flat: unknown[] = [];
    for (let i = 0; i < headers.length; i += 2) if (!isHost(headers[i])) flat.push(headers[i], headers[i + 1]);
    flat.push('host', value);
    return flat as DefinedHeaders;
  }
  if (iteratesPairs(headers)) {
    const flat = flatPairs(headers as Iterable<unknown>);
    return Array.isArray(flat) ? replaceHostHeader(flat, value) : flat;
  }
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(headers)) {
    if (isHost(key)) continue;
    const header = (headers as Record<string, unknown>)[key];
    // A store to `__proto__` would set the prototype: a caller's own `__proto__` header stays a header.
    if (key === '__proto__')
      Object.defineProperty(copy, key, { value: header, enumerable: true, writable: true, configurable: true });
    else copy[key] = header;
  }
  copy.host = value;
  return copy as DefinedHeaders;
}

/**
 * An iterable of pairs (a `Map`, a `Headers`, a generator) as a flat `[k, v, ...]` array, read once: what is read
 * more than once (a mirrored request and its copy) must not be a generator, which gives its pairs only once. One
 * undici would refuse, or whose iteration throws, is returned as it is (the caller's error, where undici reads it).
 */
export function flatPairs(pairs: Iterable<unknown>): DefinedHeaders {
  const flat: unknown[] = [];
  try {
    for (const pair of pairs) {
      if (!Array.isArray(pair) || pair.length !== 2) return pairs as DefinedHeaders;
      flat.push(pair[0], pair[1]);
    }
  } catch {
    return pairs as DefinedHeaders;
  }
  return flat as DefinedHeaders;
}

/**
 * An iterable of pairs as a flat `[k, v, ...]` array, with `host: value` unless it has a Host header. Read once: a
 * generator of pairs can be iterated only once. One undici would refuse, or whose iteration throws, is returned as
 * it is (undici then refuses it, or its iteration throws there: the caller's error either way).
 */
function flatWithHost(pairs: Iterable<unknown>, value: string): DefinedHeaders {
  const flat: unknown[] = [];
  let host = false;
  try {
    for (const pair of pairs) {
      if (!Array.isArray(pair) || pair.length !== 2) return pairs as DefinedHeaders;
      host ||= isHost(pair[0]);
      flat.push(pair[0], pair[1]);
    }
  } catch {
    return pairs as DefinedHeaders;
  }
  if (!host) flat.push('host', value);
  return flat as DefinedHeaders;
}

/**
 * `headers` with the Host header added (see {@link withHostHeader}); for a request without headers, one `[host,
 * value]` array kept for the last value (undici reads headers, never writes them), so no new array per request.
 */
export class HostHeaders {
  #hostOnly: [string, string] | undefined;

  add(headers: Headers, value: string): DefinedHeaders {
    if (headers != null) return withHostHeader(headers, value);
    const cached = this.#hostOnly;
    if (cached !== undefined && cached[1] === value) return cached;
    this.#hostOnly = ['host', value];
    return this.#hostOnly;
  }
}
