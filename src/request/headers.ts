/**
 * Header helpers for the dispatch path. undici accepts headers as an object, a flat `[k, v, k, v]` array, or an
 * iterable of pairs; these helpers keep whichever form they were given.
 */
import type { Dispatcher } from 'undici';

type Headers = Dispatcher.DispatchOptions['headers'];
type DefinedHeaders = NonNullable<Headers>;

function isHost(name: unknown): boolean {
  return typeof name === 'string' && name.length === 4 && name.toLowerCase() === 'host';
}

/** True when `headers` already carries a Host header. */
export function hasHostHeader(headers: Headers): boolean {
  if (headers == null) return false;
  if (Array.isArray(headers)) {
    if (headers.length === 0) return false;
    if (Array.isArray(headers[0])) return (headers as unknown as [string, unknown][]).some((p) => isHost(p[0]));
    for (let i = 0; i < headers.length; i += 2) if (isHost(headers[i])) return true;
    return false;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of headers as Iterable<[string, unknown]>) if (isHost(pair[0])) return true;
    return false;
  }
  for (const key in headers) if (isHost(key)) return true;
  return false;
}

/** `headers` with `host: value` added, unless a Host header is present already (the caller's wins). */
export function withHostHeader(headers: Headers, value: string): DefinedHeaders {
  if (headers != null && hasHostHeader(headers)) return headers;
  if (headers == null) return ['host', value];
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0]))
      return [...headers, ['host', value]] as unknown as DefinedHeaders;
    return [...(headers as string[]), 'host', value];
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return [...(headers as Iterable<[string, string]>), ['host', value]] as unknown as DefinedHeaders;
  }
  // Object.assign and a store, not a spread: on Node 20 (V8 11.3) `{ ...headers, host }` of fetch's header record
  // allocated ~400 bytes a request against ~100 for this copy (Node 24: ~100 both). Assign would call the
  // `__proto__` setter for an own `__proto__` key, which the spread copies as a header: that rare record is spread.
  if (Object.hasOwn(headers, '__proto__')) return { ...(headers as Record<string, string>), host: value };
  const copy = Object.assign({}, headers) as Record<string, string>;
  copy.host = value;
  return copy;
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
