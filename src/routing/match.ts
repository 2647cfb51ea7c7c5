/**
 * Route matching: host, path (exact, prefix, regex), method, headers and query parameters. Rules are compiled once
 * (validated, regexes built, names lower-cased) so matching a request does no parsing beyond the query string.
 *
 * @module
 */
import { isIP } from 'node:net';
import { InvalidOptionError } from '../common/errors.js';
import {
  array,
  boolean,
  checkObject,
  describe,
  isRecord,
  joinPath,
  rejectUnknownKeys,
  required,
  string,
} from '../common/options.js';
import { findHeader, requestHost } from '../common/headers.js';
import { headerName, httpMethod } from '../common/wire-options.js';

/** How a path is matched. Regexes must match the whole path (without the query). @category Routing */
export type PathMatch =
  | {
      /** The whole path (query excluded) equals this; starts with `/`. */
      readonly exact: string;
    }
  | {
      /** The path starts with this string (a plain string prefix: `/api` also matches `/apiv2`); starts with `/`. */
      readonly prefix: string;
    }
  | {
      /** A JavaScript regular expression source that must match the whole path, query excluded. */
      readonly regex: string;
    };

/**
 * How one header or query parameter is matched: `exact` value, `regex` over the whole value, or `present`
 * (`true`: present with any value; `false`: absent). Exactly one of the three.
 *
 * @category Routing
 */
export type ValueMatch =
  | {
      /** Header name (case-insensitive) or query parameter name (case-sensitive). */
      readonly name: string;
      /** The value equals this string, case-sensitively. */
      readonly exact: string;
    }
  | {
      /** Header name (case-insensitive) or query parameter name (case-sensitive). */
      readonly name: string;
      /** A JavaScript regular expression source that must match the whole value. */
      readonly regex: string;
    }
  | {
      /** Header name (case-insensitive) or query parameter name (case-sensitive). */
      readonly name: string;
      /** `true`: present with any value; `false`: absent. */
      readonly present: boolean;
    };

/** What a route matches. Every given condition must hold; an empty match matches every request. @category Routing */
export interface RouteMatch {
  /**
   * The request URL's host (without port), case-insensitive: exact names, or `*.suffix` wildcards (`*.svc.local`
   * matches `a.svc.local`, not `svc.local`). Compared as the request's host is: a trailing dot is ignored and a Unicode
   * name is matched as its punycode; a pattern with a port, a scheme, a path or a `*` other than a leading `*.` is
   * refused (`SIDECARLESS_INVALID_OPTION`).
   */
  readonly host?: string | readonly string[];
  /** The request path. */
  readonly path?: PathMatch;
  /** HTTP methods, case-insensitive. */
  readonly method?: string | readonly string[];
  /**
   * Header conditions, all of which must hold; a repeated header's values are joined with `, ` (as fetch's `Headers`
   * does). A rule on `host` sees the request's Host: its own `Host` header, else its URL's authority (`host[:port]`),
   * lower case.
   */
  readonly headers?: readonly ValueMatch[];
  /** Query parameter conditions, all of which must hold; a parameter's first (decoded) value is matched. */
  readonly query?: readonly ValueMatch[];
}

/** The request as route matching sees it. */
export interface RouteRequest {
  /** Lower-case host without port. */
  readonly host: string;
  /** The URL's authority (`host[:port]`): what a `host` header rule sees when the request carries no Host header. */
  readonly authority: string;
  /** Path and query, as dispatched. */
  readonly path: string;
  /** Upper-case method. */
  readonly method: string;
  /** Dispatch headers in any undici form. */
  readonly headers: unknown;
}

/** A compiled matcher. */
export type Matcher = (request: RouteRequest) => boolean;

const MATCH_KEYS = ['host', 'path', 'method', 'headers', 'query'];
const PATH_KEYS = ['exact', 'prefix', 'regex'];

function fullRegex(source: unknown, option: string): RegExp {
  if (typeof source !== 'string' || source.length === 0) {
    throw new InvalidOptionError(option, `expected a non-empty regular expression string, got ${describe(source)}`);
  }
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (cause) {
    throw new InvalidOptionError(option, `invalid regular expression ${describe(source)}`, { cause });
  }
}

function list(value: unknown, option: string): string[] {
  const what = 'a non-empty string or array of non-empty strings';
  const values = typeof value === 'string' ? [value] : array(value, option, what, 1);
  if (!values.every((v) => typeof v === 'string' && v.length > 0)) {
    throw new InvalidOptionError(option, `expected ${what}, got ${describe(value)}`);
  }
  return values as string[];
}

/**
 * A route's host pattern as the request's host is compared with it (`origin.ts`, `hostOf`): lower case, through the
 * URL parser (punycode, IPv6 and IPv4 forms as a request URL gives them), without a trailing dot; `*.suffix` keeps its
 * wildcard. A pattern no request host can equal (a port, a scheme, a path, spaces, a `*` elsewhere) is refused.
 *
 * With `domain` set, a discovery domain instead (the client's `discovery.domain`, whose subdomains are the hosts it
 * covers): the same checks and form, but no wildcard (it would be one twice over) and no IP literal (a name under one
 * is no URL host).
 */
export function hostPattern(raw: string, option: string, domain = false): string {
  const wildcard = !domain && raw.startsWith('*.');
  const name = wildcard ? raw.slice(2) : raw;
  let url: URL | undefined;
  try {
    url =
      /[\s/?#@*\\]/.test(name) || (name.includes(':') && !(name.startsWith('[') && name.endsWith(']')))
        ? undefined
        : new URL(`http://${name}/`);
  } catch {
    url = undefined;
  }
  const host = url === undefined || url.port !== '' ? '' : url.hostname.replace(/\.$/, '');
  // `*.` over an IP literal names no host (`x.1.2.3.4` is no URL host).
  if (host.length === 0 || ((wildcard || domain) && (host.startsWith('[') || isIP(host) !== 0))) {
    throw new InvalidOptionError(
      option,
      domain
        ? `expected a domain name such as "service.consul", without "*.", scheme, port or path (it covers every host under it), got ${describe(raw)}`
        : `expected a host name (exact, or "*.suffix") without scheme, port or path, got ${describe(raw)}`,
    );
  }
  return wildcard ? `*.${host}` : host;
}

/**
 * A cluster's name as the client keeps it: a name a request host can equal is normalized as that host is (lower case,
 * without a trailing dot, a Unicode name as its punycode: `Users.` is `users`, `bücher` is `xn--bcher-kva`), so that
 * the request reaches it; any other name (`users:8080`, `*.x`, a name only routes use) is only lower-cased.
 */
export function clusterName(raw: string): string {
  if (raw.startsWith('*')) return raw.toLowerCase();
  try {
    return hostPattern(raw, '');
  } catch {
    return raw.toLowerCase();
  }
}

const VALUE_MATCH_KEYS = ['name', 'exact', 'regex', 'present'];

/**
 * Validates one {@link ValueMatch}: its name (as written; a header's must be a token, or no request could carry it)
 * and the test of a value.
 */
function valueMatcher(
  raw: unknown,
  option: string,
  header: boolean,
): [name: string, test: (value: string | undefined) => boolean] {
  const r = checkObject(raw, VALUE_MATCH_KEYS, option);
  const at = joinPath(option, 'name');
  const given = required(r.name, at, 'the header or query parameter name');
  const name = header ? (headerName(given, at) as string) : string(given, at, '', undefined, 'a non-empty name');
  const kinds = ['exact', 'regex', 'present'].filter((k) => r[k] !== undefined);
  if (kinds.length !== 1) throw new InvalidOptionError(option, 'expected exactly one of exact, regex, present');
  if (r.exact !== undefined) {
    const exact = r.exact;
    if (typeof exact !== 'string') {
      throw new InvalidOptionError(joinPath(option, 'exact'), `expected a string, got ${describe(exact)}`);
    }
    return [name, (v) => v === exact];
  }
  if (r.regex !== undefined) {
    const re = fullRegex(r.regex, joinPath(option, 'regex'));
    return [name, (v) => v !== undefined && re.test(v)];
  }
  const present = boolean(r.present, joinPath(option, 'present'), false);
  return [name, (v) => (v !== undefined) === present];
}

function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const value = new URLSearchParams(path.slice(q + 1)).get(name);
  return value ?? undefined;
}

/**
 * Compiles a {@link RouteMatch}. Throws {@link InvalidOptionError} naming the bad field under `option`. The host
 * patterns it matches (lower case) are appended to `hostsOut` when given.
 */
export function compileMatch(raw: unknown, option: string, hostsOut?: string[]): Matcher {
  if (raw === undefined) return () => true;
  const m = checkObject(raw, MATCH_KEYS, option);
  const checks: Matcher[] = [];
  if (m.host !== undefined) {
    const at = joinPath(option, 'host');
    const hosts = list(m.host, at).map((h) => hostPattern(h, at));
    hostsOut?.push(...hosts);
    const exact = new Set(hosts.filter((h) => !h.startsWith('*.')));
    const suffixes = hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
    checks.push((r) => exact.has(r.host) || suffixes.some((s) => r.host.endsWith(s) && r.host.length > s.length));
  }
  if (m.path !== undefined) {
    const at = joinPath(option, 'path');
    const p = m.path;
    if (isRecord(p)) rejectUnknownKeys(p, at, PATH_KEYS);
    const kinds = isRecord(p) ? Object.keys(p) : [];
    if (!isRecord(p) || kinds.length !== 1) {
      throw new InvalidOptionError(at, 'expected exactly one of { exact }, { prefix }, { regex }');
    }
    const pathOnly = (path: string) => {
      const q = path.indexOf('?');
      return q < 0 ? path : path.slice(0, q);
    };
    if (p.regex !== undefined) {
      const re = fullRegex(p.regex, joinPath(at, 'regex'));
      checks.push((r) => re.test(pathOnly(r.path)));
    } else {
      const kind = joinPath(at, kinds[0] as string);
      const value = string(required(p.exact ?? p.prefix, kind), kind, '', /^\//, 'a path starting with "/"');
      checks.push(p.exact !== undefined ? (r) => pathOnly(r.path) === value : (r) => r.path.startsWith(value));
    }
  }
  if (m.method !== undefined) {
    const at = joinPath(option, 'method');
    const given = list(m.method, at);
    // A method that is no token can never match: no request carries one.
    given.forEach((x, i) => httpMethod(x, typeof m.method === 'string' ? at : joinPath(at, i)));
    const methods = new Set(given.map((x) => x.toUpperCase()));
    checks.push((r) => methods.has(r.method));
  }
  for (const [field, get] of [
    [
      'headers',
      (r: RouteRequest, name: string) =>
        name === 'host' ? requestHost(r.headers, r.authority) || undefined : findHeader(r.headers, name),
    ],
    ['query', (r: RouteRequest, name: string) => queryValue(r.path, name)],
  ] as const) {
    const rules = m[field];
    if (rules === undefined) continue;
    array(rules, joinPath(option, field)).forEach((rule: unknown, i) => {
      const [name, test] = valueMatcher(rule, joinPath(joinPath(option, field), i), field === 'headers');
      const key = field === 'headers' ? name.toLowerCase() : name;
      checks.push((r) => test(get(r, key)));
    });
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0] as Matcher;
  return (r) => {
    for (const check of checks) if (!check(r)) return false;
    return true;
  };
}
