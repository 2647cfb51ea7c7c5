/**
 * The HTTP syntax of text sidecarless sends as it was configured (a header value, a Host, a header name, a method):
 * what undici and the peer accept. undici checks it only when a request carries it, long after construction, and
 * then refuses every request (a CR, LF or NUL, a character above U+00FF) or sends something else (a character from
 * U+0080 to U+00FF goes out as one Latin-1 byte). The option readers refuse such text at construction instead.
 *
 * Nothing from the options toolkit is imported: options.ts uses these, and so do the readers built on it
 * (wire-options.ts).
 *
 * @module
 */
import { isIPv6 } from 'node:net';

/** An RFC 9110 token (§5.6.2): what a header field name and a method are. */
export const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A field value as sidecarless sends it (RFC 9110 §5.5): visible ASCII, space and tab. Text outside ASCII is
 * refused rather than encoded: nothing in HTTP/1.1 says how a peer decodes it.
 */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/** An authority's host (RFC 3986 §3.2.2): a bracketed IPv6 literal, or a reg-name (which covers IPv4). */
const AUTHORITY = /^(?:\[([0-9A-Fa-f:.]+)\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d{1,5}))?$/;

/** A DNS name: labels of letters, digits, `-` and `_` (service names), at most 63 characters each. */
const DNS_NAME =
  /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** The longest DNS name, in characters (RFC 1035 §2.3.4, without the final root label's length byte). */
export const MAX_DNS_NAME_LENGTH = 253;

/** True when `value` is an RFC 9110 token: a header name or a method. */
export function isHttpToken(value: string): boolean {
  return HTTP_TOKEN.test(value);
}

/** True when `value` is a field value sidecarless can send as given: visible ASCII, space and tab only. */
export function isFieldValue(value: string): boolean {
  return FIELD_VALUE.test(value);
}

/** True when `value` is an authority a `Host` header can carry: `host` or `host:port`, `[v6]` or `[v6]:port`. */
export function isAuthority(value: string): boolean {
  const match = AUTHORITY.exec(value);
  if (match === null) return false;
  if (match[1] !== undefined && !isIPv6(match[1])) return false;
  return match[2] === undefined || Number(match[2]) <= 65535;
}

/** True when `value` is a DNS name of at most {@link MAX_DNS_NAME_LENGTH} characters (ASCII: punycode for IDNs). */
export function isDnsName(value: string): boolean {
  return value.length <= MAX_DNS_NAME_LENGTH && DNS_NAME.test(value);
}
