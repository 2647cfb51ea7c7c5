/**
 * Target parsing: `scheme:[//authority]/path[?query]`, following gRPC's naming.
 *
 * @module
 */
import { InvalidTargetError, isSidecarlessError } from '../common/errors.js';
import { describe } from '../common/options.js';
import type { Target } from './resolver.js';

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s;

/**
 * Parses a target string. Throws {@link InvalidTargetError} when it has no scheme, contains whitespace, or has a
 * `#fragment`: a target is `scheme:[//authority]/path[?query]`, and a fragment (RFC 3986 §3.5) is no part of the
 * resource it names, so one is refused rather than kept in the path or query (a `#` in a path or query value is
 * written `%23`). The scheme is lower-cased (schemes are case-insensitive, RFC 3986 §3.1).
 *
 * @example
 * ```ts
 * parseTarget('dns://127.0.0.1:53/users.internal:8080?ttl=5');
 * // { scheme: 'dns', authority: '127.0.0.1:53', path: 'users.internal:8080', query: ttl=5 }
 * ```
 */
export function parseTarget(raw: string): Target {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InvalidTargetError(typeof raw === 'string' ? raw : describe(raw), 'a target must be a non-empty string');
  }
  // A refused target is named with its query's values hidden: a query may carry a credential (an etcd password, a
  // Consul token).
  if (/\s/.test(raw)) throw new InvalidTargetError(redactTarget(raw), 'a target must not contain whitespace');
  if (raw.includes('#')) {
    throw new InvalidTargetError(
      redactTarget(raw),
      'a target takes no #fragment (write a "#" in a path or query value as %23)',
    );
  }
  const match = SCHEME.exec(raw);
  if (match === null) {
    throw new InvalidTargetError(redactTarget(raw), 'expected "scheme:..." (e.g. "static://10.0.0.1:8080")');
  }
  const scheme = (match[1] as string).toLowerCase();
  let rest = match[2] as string;
  let queryText = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    queryText = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let authority = '';
  let path: string;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    path = slash < 0 ? '' : rest.slice(slash + 1);
  } else {
    path = rest.startsWith('/') ? rest.slice(1) : rest;
  }
  return { scheme, authority, path, query: new URLSearchParams(queryText), raw };
}

/**
 * `raw` as an error message may show it: its userinfo (`user:secret@`) hidden, its `#fragment` cut, and the value of
 * every query parameter whose name (percent-decoded, lower case) is not in `shown` (all of them without `shown`), and
 * a parameter without a value (a pasted token) whole. A credential can then not come out through a name the resolver
 * does not know (`?tok%65n=`, `?X-Consul-Token=`), through the authority, or past a `/`, `?` or `#` inside it (the
 * userinfo runs to the last `@`, probe 24). @internal
 */
export function redactTarget(raw: string, shown?: ReadonlySet<string>): string {
  let text = raw;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(text);
  const at = text.lastIndexOf('@');
  if (scheme !== null && at >= scheme[0].length) text = `${scheme[0]}<redacted>${text.slice(at)}`;
  const hash = text.indexOf('#');
  if (hash >= 0) text = `${text.slice(0, hash)}#<redacted>`;
  const q = text.indexOf('?');
  if (q < 0) return text;
  const end = hash >= 0 ? text.indexOf('#', q) : -1;
  const query = end < 0 ? text.slice(q + 1) : text.slice(q + 1, end);
  const parts = query.split('&').map((part) => {
    const eq = part.indexOf('=');
    if (eq < 0) return part === '' || shown?.has(decodedName(part)) === true ? part : '<redacted>';
    const key = part.slice(0, eq);
    return shown !== undefined && shown.has(decodedName(key)) ? part : `${key}=<redacted>`;
  });
  return `${text.slice(0, q + 1)}${parts.join('&')}${end < 0 ? '' : text.slice(end)}`;
}

/**
 * How an error names a query parameter the target does not take: by name when it has a value (`?tagg=web`, a
 * typo worth showing), not at all when it has none (`?s3cret`, a pasted credential). @internal
 */
export function unknownParameter(query: URLSearchParams, key: string): string {
  return query.get(key) === '' ? 'unknown query parameter (one without a value)' : `unknown query parameter "${key}"`;
}

/**
 * True when `raw` has an `@` before its query or fragment: userinfo, which no registry target takes (an `@` in a
 * path is written `%40`). Checked on the raw text, not the parsed authority: a `/` inside a password ends the
 * authority before the `@`, and the password's start would then be read, and named in errors, as the host. A `?` or
 * `#` inside one puts the rest in the query or fragment, which {@link redactTarget} hides. @internal
 */
export function hasUserinfo(raw: string): boolean {
  const end = raw.search(/[?#]/);
  return (end < 0 ? raw : raw.slice(0, end)).includes('@');
}

function decodedName(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return key.toLowerCase();
  }
}

/**
 * Runs `build` (a resolver factory constructing its resolver from a target's options) and turns an option error
 * into an {@link InvalidTargetError} for the target, named by `raw` (by default the target with its query values,
 * userinfo and fragment hidden: see {@link redactTarget}).
 * @internal
 */
export function asTargetError<T>(target: Target, build: () => T, raw: string = redactTarget(target.raw)): T {
  try {
    return build();
  } catch (err) {
    if (isSidecarlessError(err) && err.code !== 'SIDECARLESS_INVALID_TARGET') {
      throw new InvalidTargetError(raw, err.message, { cause: err });
    }
    throw err;
  }
}
