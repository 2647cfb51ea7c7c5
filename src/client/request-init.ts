/**
 * The `RequestInit` a caller hands to `client.fetch`, read the way fetch reads it.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import { InvalidOptionError } from '../common/errors.js';

/**
 * The platform's fetch, taken when this module loads: after `globalThis.fetch = client.fetch` (which the client's
 * docs allow), looking `fetch` up at call time would find the client's own and call it again.
 */
export const platformFetch: typeof fetch = globalThis.fetch;

/** Every `RequestInit` member fetch reads (undici's `dispatcher` apart). */
const REQUEST_INIT_MEMBERS = [
  'method',
  'headers',
  'body',
  'signal',
  'redirect',
  'referrer',
  'referrerPolicy',
  'mode',
  'credentials',
  'cache',
  'integrity',
  'keepalive',
  'window',
  'duplex',
  'priority',
] as const;

/**
 * `init` as fetch reads it: each member by property access (so inherited members, getters and a `Request` given as
 * `init` count, where a spread would drop them). A `dispatcher` other than the client's own is refused.
 */
export function readRequestInit(init: unknown, own: Dispatcher): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (init === undefined || init === null) return out;
  if (typeof init !== 'object' && typeof init !== 'function') {
    throw new TypeError(`fetch: the init argument must be an object, got ${typeof init}`);
  }
  const source = init as Record<string, unknown>;
  for (const key of REQUEST_INIT_MEMBERS) {
    const value = source[key];
    if (value !== undefined) out[key] = value;
  }
  const dispatcher = source.dispatcher;
  if (dispatcher !== undefined && dispatcher !== own) {
    throw new InvalidOptionError(
      'dispatcher',
      "client.fetch always sends through the client's own dispatcher; call the platform's fetch to use another",
    );
  }
  return out;
}
