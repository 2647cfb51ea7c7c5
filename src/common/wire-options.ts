/**
 * Option readers for text sidecarless sends or hands to Node as it was configured: header values (a Host, a
 * token), header names and methods, TLS server names, TLS material and file paths. Each refuses, at construction,
 * text that could never work (see http-syntax.ts), with an {@link InvalidOptionError} naming the option and saying
 * what is expected; the same reader serves every option of a kind, so they are refused alike.
 *
 * @module
 */
import { InvalidOptionError } from './errors.js';
import { isAuthority, isDnsName, isFieldValue, isHttpToken, MAX_DNS_NAME_LENGTH } from './http-syntax.js';
import { array, describe, joinPath } from './options.js';

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

/** A TLS server name (SNI, and the name the certificate is checked against): a DNS name. */
export function serverName(value: unknown, name: string): string | undefined {
  return text(
    value,
    name,
    isDnsName,
    `a host name: ASCII letters, digits, "-", "_" and dots, at most ${MAX_DNS_NAME_LENGTH} characters (punycode for an internationalized name)`,
  );
}

/** A file path: a non-empty string without NUL (Node refuses one when the file is opened). */
export function filePath(value: unknown, name: string): string | undefined {
  return text(value, name, (t) => !t.includes('\0'), 'a file path (a non-empty string without NUL)');
}

const PEM_START = '-----BEGIN';

/**
 * Throws {@link InvalidOptionError} naming `path.ca`, `path.cert` or `path.key` (or the array entry) unless each is
 * PEM text, as a string or a Buffer, or a non-empty array of them. Checked before `tlsMaterial` parses them:
 * `createSecureContext` ignores a falsy `ca` and one without any PEM block, and the connection then trusts a CA set
 * other than the one asked for.
 */
export function tlsMaterialShape(tls: Readonly<Record<string, unknown>>, path: string): void {
  for (const field of ['ca', 'cert', 'key'] as const) {
    const value = tls[field];
    if (value === undefined) continue;
    const at = joinPath(path, field);
    const what = 'PEM text (a string or a Buffer holding "-----BEGIN ...") or a non-empty array of them';
    const entries = Array.isArray(value) ? array(value, at, what, 1) : [value];
    entries.forEach((entry, i) => {
      const entryAt = Array.isArray(value) ? joinPath(at, i) : at;
      const pem =
        (typeof entry === 'string' && entry.includes(PEM_START)) ||
        (Buffer.isBuffer(entry) && entry.includes(PEM_START));
      if (!pem) throw new InvalidOptionError(entryAt, `expected ${what}, got ${describeMaterial(entry)}`);
    });
  }
}

function describeMaterial(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.length === 0 ? 'an empty Buffer' : 'a Buffer without a PEM block';
  if (typeof value === 'string' && value.length > 0) return 'text without a PEM block';
  return describe(value);
}
