/**
 * The path a dispatch sends. undici builds it from two options, `path` and `query`; everything that reads a request's
 * path before undici does (routing, hash keys and pick contexts, the HTTP/2 header-list size) reads it here, so a
 * query given as `query` counts as one written in the path (probe 20).
 *
 * @module
 */
import { type ParsedUrlQueryInput, stringify } from 'node:querystring';

/**
 * `path` with the `query` option serialized onto it as undici 7 and 8 do (`serializePathWithQuery`: node:querystring
 * after a `?`, for a truthy `query`). A path that has a query or fragment of its own beside `query` is undici's to
 * refuse: returned as it is.
 */
export function requestPath(options: { readonly path: string; readonly query?: unknown }): string {
  const { path, query } = options;
  if (!query || typeof path !== 'string' || path.includes('?') || path.includes('#')) return path;
  const serialized = stringify(query as ParsedUrlQueryInput);
  return serialized === '' ? path : `${path}?${serialized}`;
}
