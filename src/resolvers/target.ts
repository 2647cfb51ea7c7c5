/**
 * Target parsing: `scheme:[//authority]/path[?query]`, following gRPC's naming.
 *
 * @module
 */
import { InvalidTargetError, isSidecarlessError } from '../common/errors.js';
import type { Target } from './resolver.js';

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s;

/**
 * Parses a target string. Throws {@link InvalidTargetError} when it has no scheme or contains whitespace.
 *
 * @example
 * ```ts
 * parseTarget('dns://127.0.0.1:53/users.internal:8080?ttl=5');
 * // { scheme: 'dns', authority: '127.0.0.1:53', path: 'users.internal:8080', query: ttl=5 }
 * ```
 */
export function parseTarget(raw: string): Target {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InvalidTargetError(String(raw), 'a target must be a non-empty string');
  }
  if (/\s/.test(raw)) throw new InvalidTargetError(raw, 'a target must not contain whitespace');
  const match = SCHEME.exec(raw);
  if (match === null) throw new InvalidTargetError(raw, 'expected "scheme:..." (e.g. "static://10.0.0.1:8080")');
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
 * Runs `build` (a resolver factory constructing its resolver from a target's options) and turns an option error
 * into an {@link InvalidTargetError} for the target, named by `raw` (a target with a credential passes it redacted).
 * @internal
 */
export function asTargetError<T>(target: Target, build: () => T, raw: string = target.raw): T {
  try {
    return build();
  } catch (err) {
    if (isSidecarlessError(err) && err.code !== 'SIDECARLESS_INVALID_TARGET') {
      throw new InvalidTargetError(raw, err.message, { cause: err });
    }
    throw err;
  }
}
