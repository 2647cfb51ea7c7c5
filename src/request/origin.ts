/**
 * Parses dispatch origins (`http://users`, `new URL(...)`) into protocol and authority, caching the last few: the
 * same handful of origins recur on every request, and `new URL` is the most expensive step of the dispatch path.
 */
import { isIP } from 'node:net';
import { InvalidOptionError } from '../common/errors.js';
import { describe } from '../common/options.js';

/** Protocol (`http:`), authority (`users:8080`) and host (`users`) of a dispatch origin. */
export interface ParsedOrigin {
  readonly protocol: string;
  readonly authority: string;
  /**
   * The authority's host, lower case, without the port (an IPv6 literal keeps its brackets): what clusters and
   * routes are named by. Kept with the parse, so a request makes no string of its own for it (issue 14).
   */
  readonly host: string;
}

const MAX_CACHED = 256;
const cache = new Map<string, ParsedOrigin>();
let lastText: string | undefined;
let lastParsed: ParsedOrigin | undefined;

export function parseOrigin(origin: unknown): ParsedOrigin {
  // The same origin string as the last request (the common case: one service, one origin string): no map lookup,
  // and a function small enough for V8 to inline into the dispatch path (issue 14).
  if (origin === lastText && lastText !== undefined) return lastParsed as ParsedOrigin;
  return parseAnew(origin);
}

function parseAnew(origin: unknown): ParsedOrigin {
  const text = typeof origin === 'string' ? origin : origin instanceof URL ? origin.origin : undefined;
  if (text === undefined) throw new InvalidOptionError('origin', 'a request needs an absolute URL (origin)');
  if (text === lastText) return lastParsed as ParsedOrigin;
  let parsed = cache.get(text);
  if (parsed === undefined) {
    let url: URL;
    try {
      url = new URL(text);
    } catch (cause) {
      throw new InvalidOptionError('origin', `invalid origin ${JSON.stringify(text)}`, { cause });
    }
    // The two protocols a cluster speaks as the same (internalized) strings it compares them with: a pointer
    // comparison on every request rather than a string comparison.
    const protocol = url.protocol === 'http:' ? 'http:' : url.protocol === 'https:' ? 'https:' : undefined;
    // Not HTTP at all (`ftp:`, `ws:`, `file:`): an invalid request, as an unparsable origin is, whatever the
    // client's shape; not a protocol mismatch (which says the request would go out unencrypted), nor no route.
    if (protocol === undefined) {
      throw new InvalidOptionError('origin', `expected an http: or https: origin, got ${describe(text)}`);
    }
    parsed = { protocol, authority: url.host, host: hostOf(url.host) };
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(text, parsed);
  }
  lastText = text;
  lastParsed = parsed;
  return parsed;
}

/**
 * The host of an authority (`users:8080` -> `users`, `[::1]:80` -> `[::1]`), lower case, without the trailing dot of
 * a fully qualified name (`users.svc.test.` names `users.svc.test`: routed, discovered and sent as SNI as it).
 */
function hostOf(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1).toLowerCase();
  const colon = authority.lastIndexOf(':');
  const host = (colon < 0 ? authority : authority.slice(0, colon)).toLowerCase();
  return host.length > 1 && host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * The TLS name health checks take from their Host name (`healthCheck.host`, else the `host` option): its host
 * without the port, as a request's URL gives its own; `undefined` for none, `false` or an IP literal.
 */
export function hostTlsName(host: string | false | undefined): string | undefined {
  return typeof host === 'string' ? tlsServerName(undefined, {}, host) : undefined;
}

/**
 * The name a TLS attempt checks the endpoint's certificate against and sends as SNI: the cluster's `tls.servername`
 * (`configured`), else the dispatch's own `servername` option, else the host of the request's URL (`authority`,
 * without port). Never the Host header, which is what undici reads otherwise: a forwarded Host would choose the
 * certificate name accepted (and, failing the check, take healthy endpoints out), and the `host` option would change
 * it. `undefined` for an IP literal, which has no SNI.
 */
export function tlsServerName(configured: string | undefined, options: object, authority: string): string | undefined {
  if (configured !== undefined) return configured;
  const own = (options as { servername?: unknown }).servername;
  if (typeof own === 'string' && own !== '') return own;
  const host = hostOf(authority);
  return host.startsWith('[') || isIP(host) !== 0 ? undefined : host;
}
