/**
 * Option readers for text sidecarless sends or hands to Node as it was configured: header values (a Host, a
 * token), header names and methods, TLS server names and file paths (TLS material: tls-options.ts). Each refuses,
 * at construction, text that could never work (see http-syntax.ts), with an {@link InvalidOptionError} naming the
 * option and saying what is expected; the same reader serves every option of a kind, so they are refused alike.
 *
 * @module
 */
import { isIP } from 'node:net';
import { InvalidOptionError } from './errors.js';
import { isAuthority, isDnsName, isFieldValue, isHttpToken, MAX_DNS_NAME_LENGTH } from './http-syntax.js';
import { describe } from './options.js';

/** `value` unless it is not a non-empty string passing `ok`; a `secret` one is not quoted in the message. */
function text(
  value: unknown,
  name: string,
  ok: (text: string) => boolean,
  what: string,
  secret = false,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || !ok(value)) {
    const got = secret && typeof value === 'string' && value.length > 0 ? 'text outside that set' : describe(value);
    throw new InvalidOptionError(name, `expected ${what}, got ${got}`);
  }
  return value;
}

/**
 * A header value sent as given: non-empty visible ASCII, spaces and tabs. A `secret` one (a token) is not quoted
 * in the error message.
 */
export function headerValue(value: unknown, name: string, secret = false): string | undefined {
  return text(
    value,
    name,
    isFieldValue,
    'a header value: non-empty visible ASCII, spaces and tabs (no control characters or non-ASCII text)',
    secret,
  );
}

/** A `Host` header value: `host` or `host:port` in ASCII (punycode for an internationalized name, `[v6]` for IPv6). */
export function hostHeader(value: unknown, name: string): string | undefined {
  return text(
    value,
    name,
    isAuthority,
    'a Host header value: host or host:port in ASCII (punycode for an internationalized name, [::1] for IPv6)',
  );
}

/** A header name: an RFC 9110 token (`x-user-id`). */
export function headerName(value: unknown, name: string): string | undefined {
  return text(value, name, isHttpToken, 'a header name (an RFC 9110 token, e.g. "x-user-id")');
}

/** An HTTP method: an RFC 9110 token (`GET`, `PURGE`). */
export function httpMethod(value: unknown, name: string): string | undefined {
  return text(value, name, isHttpToken, 'an HTTP method (an RFC 9110 token, e.g. "GET")');
}

/**
 * A TLS server name (SNI, and the name the certificate is checked against): a DNS name, or an IP address of either
 * family, which Node checks against the certificate's IP addresses (an IPv6 one without brackets: Node would check
 * `[::1]` as a DNS name, which no certificate holds).
 */
export function serverName(value: unknown, name: string): string | undefined {
  if (typeof value === 'string' && value.startsWith('[') && value.endsWith(']') && isIP(value.slice(1, -1)) === 6) {
    throw new InvalidOptionError(
      name,
      `expected an IPv6 address without brackets (${value.slice(1, -1)}), got ${describe(value)}`,
    );
  }
  return text(
    value,
    name,
    (t) => isDnsName(t) || isIP(t) !== 0,
    `a host name (ASCII letters, digits, "-", "_" and dots, at most ${MAX_DNS_NAME_LENGTH} characters: punycode for an internationalized name) or an IP address`,
  );
}

/** A file path: a non-empty string without NUL (Node refuses one when the file is opened). */
export function filePath(value: unknown, name: string): string | undefined {
  return text(value, name, (t) => !t.includes('\0'), 'a file path (a non-empty string without NUL)');
}
