/**
 * Option readers for TLS material (`ca`, `cert`, `key` and the key's `passphrase`), shared by the cluster's `tls`,
 * its `pool.connect` and the resolvers' `tls`, so that each is refused alike and by its own name. Material is checked
 * at construction: a bad one would otherwise fail every connection, long after, as a refused endpoint.
 *
 * @module
 */
import { createSecureContext } from 'node:tls';
import { InvalidOptionError } from './errors.js';
import { array, describe, joinPath } from './options.js';
import { thrownMessage } from './thrown.js';

const PEM_START = '-----BEGIN';
const FIELDS = ['ca', 'cert', 'key'] as const;

/** `ca`, `cert` and `key` as {@link tlsMaterialShape} returns them: strings and Buffers only. */
export type PemMaterial = Partial<Record<(typeof FIELDS)[number], string | Buffer | Array<string | Buffer>>>;

/**
 * `entry` as a Buffer viewing the same memory (no copy) when it is an `ArrayBufferView`: a Buffer read from a file
 * comes back as a plain `Uint8Array` from `structuredClone` or a worker's message, which Node's TLS takes as well.
 */
function bytes(entry: unknown): Buffer | undefined {
  if (!ArrayBuffer.isView(entry)) return undefined;
  return Buffer.isBuffer(entry) ? entry : Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
}

/**
 * Throws {@link InvalidOptionError} naming `path.ca`, `path.cert` or `path.key` (or the array entry) unless each is
 * PEM text, as a string or bytes (an `ArrayBufferView`), or a non-empty array of them; returns them with bytes as
 * Buffers (views, not copies), for Node and undici. Checked before {@link tlsMaterial} parses them:
 * `createSecureContext` ignores a falsy `ca` and one without any PEM block, and the connection then trusts a CA set
 * other than the one asked for.
 */
export function tlsMaterialShape(tls: Readonly<Record<string, unknown>>, path: string): PemMaterial {
  const material: PemMaterial = {};
  for (const field of FIELDS) {
    const value = tls[field];
    if (value === undefined) continue;
    const at = joinPath(path, field);
    const what = 'PEM text (a string, a Buffer or a Uint8Array holding "-----BEGIN ...") or a non-empty array of them';
    const entries = Array.isArray(value) ? array(value, at, what, 1) : [value];
    const read = entries.map((entry, i) => {
      const view = bytes(entry);
      const pem = typeof entry === 'string' ? entry : view;
      if (pem === undefined || !pem.includes(PEM_START)) {
        const entryAt = Array.isArray(value) ? joinPath(at, i) : at;
        throw new InvalidOptionError(entryAt, `expected ${what}, got ${describeMaterial(entry, view)}`);
      }
      return pem;
    });
    material[field] = Array.isArray(value) ? read : (read[0] as string | Buffer);
  }
  return material;
}

function describeMaterial(value: unknown, view: Buffer | undefined): string {
  if (view !== undefined) return view.length === 0 ? 'empty bytes' : 'bytes without a PEM block';
  if (typeof value === 'string' && value.length > 0) return 'text without a PEM block';
  return describe(value);
}

/**
 * A key's passphrase: a string (or `undefined`). Never quoted in a message.
 */
export function passphraseOption(value: unknown, name: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new InvalidOptionError(name, `expected a string, got ${value === null ? 'null' : typeof value}`);
}

/** True when a key entry is PEM text of an encrypted key (PKCS #8 `ENCRYPTED PRIVATE KEY`, or a legacy `Proc-Type`). */
function encrypted(key: unknown): boolean {
  const entries: unknown[] = Array.isArray(key) ? key : [key];
  return entries.some((entry) => {
    const pem = typeof entry === 'string' ? entry : bytes(entry);
    return pem !== undefined && pem.includes('ENCRYPTED');
  });
}

/**
 * Throws {@link InvalidOptionError} unless the TLS material of `tls` is what `tls.connect()` accepts: strings or
 * bytes (or arrays of them), PEM that parses, a key that loads (decrypted with `passphrase`, by default
 * `tls.passphrase`) and matches its certificate. The error names `path.ca`, `path.cert` or `path.key`, or
 * `passphraseAt` (by default `path.passphrase`) when the key is encrypted and the passphrase does not decrypt it;
 * OpenSSL's reason is quoted, never the material or the passphrase. Checked once here, so a bad one fails at
 * construction rather than on every connection.
 */
export function tlsMaterial(
  tls: Readonly<Record<string, unknown>>,
  path: string,
  passphrase: string | undefined = typeof tls.passphrase === 'string' ? tls.passphrase : undefined,
  passphraseAt: string = joinPath(path, 'passphrase'),
): void {
  const { ca, cert, key } = tls;
  try {
    createSecureContext({ ca, cert, key, passphrase } as Parameters<typeof createSecureContext>[0]);
  } catch (err) {
    const text = thrownMessage(err);
    const named = FIELDS.find((name) => text.includes(`options.${name}`));
    if (named !== undefined) throw unusable(joinPath(path, named), text, err);
    if (key !== undefined && !loads(key, passphrase)) {
      if (encrypted(key) && passphrase === undefined) {
        throw new InvalidOptionError(
          joinPath(path, 'key'),
          `an encrypted private key: set ${passphraseAt} to decrypt it (${text})`,
          { cause: err },
        );
      }
      if (encrypted(key)) {
        throw new InvalidOptionError(passphraseAt, `does not decrypt ${joinPath(path, 'key')}: ${text}`, {
          cause: err,
        });
      }
      throw unusable(joinPath(path, 'key'), text, err);
    }
    throw unusable(joinPath(path, ca !== undefined && cert === undefined ? 'ca' : 'cert'), text, err);
  }
}

/** True when `key` loads on its own (decrypted with `passphrase`): what failed was then elsewhere. */
function loads(key: unknown, passphrase: string | undefined): boolean {
  try {
    createSecureContext({ key, passphrase } as Parameters<typeof createSecureContext>[0]);
    return true;
  } catch {
    return false;
  }
}

function unusable(name: string, text: string, cause: unknown): InvalidOptionError {
  return new InvalidOptionError(name, `not usable as TLS material: ${text}`, { cause });
}
