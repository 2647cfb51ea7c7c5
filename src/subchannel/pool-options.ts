/**
 * Validation of the undici `Pool` options a cluster applies to every endpoint's pool (`pool: {...}`).
 *
 * undici checks some of these only when a pool is built, which happens lazily, after construction, in a later
 * microtask: a bad value there crashed the process (`connections: -1`, `connect: 5`), made every request fail and
 * count against a healthy endpoint (a negative `headersTimeout`), or made requests hang (`pipelining: -1`). So every
 * option undici documents is checked here, at construction, with the options toolkit's wording, and any other key is
 * refused as in every other option group.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { Pool } from 'undici';
import { InvalidOptionError } from '../common/errors.js';
import {
  array,
  boolean,
  checkObject,
  describe,
  duration,
  integer,
  isRecord,
  joinPath,
  readOptions,
  refuseNulls,
} from '../common/options.js';
import { tlsMaterial } from '../common/tls-options.js';

const INTEGERS: Readonly<Record<string, readonly [min: number, max?: number]>> = {
  // `connections: null` (undici: unlimited) is allowed: POOL_NULLABLE.
  connections: [1],
  pipelining: [0, 1_000],
  maxHeaderSize: [1],
  maxRequestsPerClient: [1],
  maxResponseSize: [-1],
  maxCachedSessions: [0],
  maxConcurrentStreams: [1],
  initialWindowSize: [1],
  connectionWindowSize: [1],
};

/** Timeouts where 0 means "none" in undici; it refuses a fraction of the first two and of `pingInterval`. */
const DURATIONS_ZERO_OK = [
  'headersTimeout',
  'bodyTimeout',
  'connectTimeout',
  'keepAliveTimeoutThreshold',
  'pingInterval',
];
/** Timeouts that must be above 0. */
const DURATIONS = ['keepAliveTimeout', 'keepAliveMaxTimeout', 'autoSelectFamilyAttemptTimeout', 'clientTtl'];
const BOOLEANS = ['strictContentLength', 'autoSelectFamily', 'allowH2'];
const OTHERS = ['connect', 'localAddress', 'interceptors'];
const ALLOWED = [...Object.keys(INTEGERS), ...DURATIONS_ZERO_OK, ...DURATIONS, ...BOOLEANS, ...OTHERS];
/** The duration options undici requires to be integers (a fraction makes it throw at every request). */
const WHOLE = new Set(['headersTimeout', 'bodyTimeout', 'pingInterval', 'autoSelectFamilyAttemptTimeout']);

/**
 * `pool` and `pool.connect` fields undici gives a meaning to `null`: no limit, or undici's default. Its types allow
 * `null` on a few more, where it means nothing or breaks: `connect.keepAliveInitialDelay` (net.connect throws on it
 * at every connection), `connect.typeOfService` and `connect.socketPath`. Any other `null` is refused, as
 * everywhere in the options.
 */
const POOL_NULLABLE = ['connections', 'clientTtl'];
const CONNECT_NULLABLE = ['timeout', 'maxCachedSessions', 'keepAlive'];

/** `pool.connect` booleans, and its fields that would connect elsewhere than the endpoint. */
const CONNECT_BOOLEANS = ['keepAlive', 'allowH2', 'useH2c', 'autoSelectFamily'];
const CONNECT_ELSEWHERE = ['socketPath', 'path'];
/**
 * `pool.connect` fields the cluster's own TLS settings always override (each attempt sends the URL's host, or
 * `tls.servername`, as its name; `tls` always sets `rejectUnauthorized`): accepted, they would silently do nothing.
 */
const CONNECT_OVERRIDDEN = ['servername', 'rejectUnauthorized'];
/** `tls.connect()` fields that only mean something on a TLS connection. */
const CONNECT_TLS_ONLY = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'crl',
  'ciphers',
  'minVersion',
  'maxVersion',
  'secureContext',
  'checkServerIdentity',
];

/**
 * Reads `pool.connect` (connector options: undici's own and `tls.connect()`/`net.connect()`'s) once into a new
 * object, validating what undici reads when it builds a pool (lazily, at an endpoint's first request, where a bad
 * value failed every request instead of the construction).
 */
function readConnect(raw: unknown, at: string, tls: PoolTls | undefined): Record<string, unknown> {
  if (!isRecord(raw)) {
    throw new InvalidOptionError(
      at,
      `expected connector options (an object) or a connector function, got ${describe(raw)}`,
    );
  }
  const keys = readOptions(at, () => Object.keys(raw));
  const connect: Record<string, unknown> = {};
  for (const key of keys) {
    const value = readOptions(joinPath(at, key), () => raw[key]);
    if (value !== undefined) connect[key] = value;
  }
  refuseNulls(connect, at, CONNECT_NULLABLE);
  for (const key of CONNECT_ELSEWHERE) {
    if (key in connect) {
      throw new InvalidOptionError(
        joinPath(at, key),
        "the cluster connects to each endpoint's own address; a socket path would bypass balancing",
      );
    }
  }
  for (const key of CONNECT_OVERRIDDEN) {
    if (key in connect) {
      throw new InvalidOptionError(
        joinPath(at, key),
        `not used: the cluster's TLS settings always set it; use tls.${key} (the tls option) instead`,
      );
    }
  }
  if ('localAddress' in connect) {
    throw new InvalidOptionError(
      joinPath(at, 'localAddress'),
      "not used: undici sets each connection's local address from pool.localAddress; use that",
    );
  }
  if (tls === undefined) {
    const key = CONNECT_TLS_ONLY.find((name) => name in connect);
    if (key !== undefined) {
      throw new InvalidOptionError(
        joinPath(at, key),
        'not used: without the tls option the cluster speaks plain HTTP; to connect with TLS, set it in ' +
          'tls: {...} (ca, cert, key, passphrase, servername, rejectUnauthorized) or set tls: true',
      );
    }
  }
  if ('passphrase' in connect) {
    // One place for it: the cluster's tls wins over connect field by field, so a second one would be ignored.
    throw new InvalidOptionError(
      joinPath(at, 'passphrase'),
      'set it as tls.passphrase, which decrypts the key given in tls or in pool.connect',
    );
  }
  // `null` where undici gives it a meaning (CONNECT_NULLABLE), refused above otherwise.
  const given = (key: string) => (connect[key] === null ? undefined : connect[key]);
  duration(given('timeout'), joinPath(at, 'timeout'), 0, true);
  integer(given('maxCachedSessions'), joinPath(at, 'maxCachedSessions'), 0, 0);
  duration(connect.keepAliveInitialDelay, joinPath(at, 'keepAliveInitialDelay'), 0, true, undefined, true);
  for (const key of CONNECT_BOOLEANS) boolean(given(key), joinPath(at, key), false);
  if (tls !== undefined && (connect.ca !== undefined || connect.cert !== undefined || connect.key !== undefined)) {
    tlsMaterial(connect, at, tls.passphrase, tls.passphraseAt);
  }
  return connect;
}

/** What the pool's checks need of the cluster's `tls` option, when TLS is on: the key's passphrase, and its path. */
export interface PoolTls {
  readonly passphrase: string | undefined;
  readonly passphraseAt: string;
}

/** `pool.interceptors`: an object of interceptor lists (arrays of functions), copied. */
function readInterceptors(raw: unknown, at: string): Record<string, unknown[]> {
  if (!isRecord(raw)) throw new InvalidOptionError(at, `expected an object, got ${describe(raw)}`);
  const keys = readOptions(at, () => Object.keys(raw));
  const out: Record<string, unknown[]> = {};
  for (const key of keys) {
    const list = array(
      readOptions(joinPath(at, key), () => raw[key]),
      joinPath(at, key),
      'an array of interceptor functions',
    );
    list.forEach((fn, i) => {
      if (typeof fn !== 'function') {
        throw new InvalidOptionError(joinPath(joinPath(at, key), i), `expected a function, got ${describe(fn)}`);
      }
    });
    out[key] = list;
  }
  return out;
}

/**
 * Throws {@link InvalidOptionError} (naming `path.key`) unless `raw` is a plain object of undici `Pool` options with
 * values undici accepts, and returns them read once into a new object (`connect` and `interceptors` copied too): the
 * pools are built from that, never from the user's object. `factory` (the cluster builds its own pools) and
 * `socketPath`, `connect.socketPath` and `connect.path` (they would send every endpoint's connections to one
 * socket) are refused; so are keys undici does not document for `Pool`, and `connect` fields the cluster would
 * ignore: `servername`, `rejectUnauthorized` and `passphrase` (the `tls` option's), `localAddress` (undici takes
 * `pool.localAddress`), and TLS material when `tls` is off (`undefined`). `null` only where undici gives it a
 * meaning ({@link POOL_NULLABLE}, {@link CONNECT_NULLABLE}).
 */
export function validatePoolOptions(raw: unknown, path: string, tls: PoolTls | undefined): Pool.Options {
  if (isRecord(raw) && 'factory' in raw) {
    throw new InvalidOptionError(joinPath(path, 'factory'), 'the cluster creates its own pools');
  }
  if (isRecord(raw) && 'socketPath' in raw) {
    throw new InvalidOptionError(
      joinPath(path, 'socketPath'),
      "the cluster connects to each endpoint's own address; a socket path would bypass balancing",
    );
  }
  const pool = checkObject(raw, ALLOWED, path, POOL_NULLABLE);
  for (const [key, [min, max]] of Object.entries(INTEGERS)) {
    const value = pool[key];
    if (value === undefined || value === null) continue; // null: a POOL_NULLABLE one, the others refused
    integer(value, joinPath(path, key), 0, min, max);
  }
  for (const key of DURATIONS_ZERO_OK) {
    if (pool[key] !== undefined) duration(pool[key], joinPath(path, key), 0, true, undefined, WHOLE.has(key));
  }
  for (const key of DURATIONS) {
    if (pool[key] !== undefined && pool[key] !== null) {
      duration(pool[key], joinPath(path, key), 0, false, undefined, WHOLE.has(key));
    }
  }
  for (const key of BOOLEANS) {
    const value = pool[key];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new InvalidOptionError(joinPath(path, key), `expected a boolean, got ${describe(value)}`);
    }
  }
  const { connect, localAddress, interceptors } = pool;
  // The cluster's TLS settings go into connector options; a connector function of the caller's would be dropped,
  // and never called (probe 22).
  if (typeof connect === 'function' && tls !== undefined) {
    throw new InvalidOptionError(
      joinPath(path, 'connect'),
      'a connector function cannot be combined with tls (the TLS settings go into connector options): make the TLS connection in the connector, or give connector options',
    );
  }
  if (connect !== undefined && typeof connect !== 'function')
    pool.connect = readConnect(connect, joinPath(path, 'connect'), tls);
  if (localAddress !== undefined && (typeof localAddress !== 'string' || isIP(localAddress) === 0)) {
    throw new InvalidOptionError(
      joinPath(path, 'localAddress'),
      `expected an IP address, got ${describe(localAddress)}`,
    );
  }
  if (interceptors !== undefined) pool.interceptors = readInterceptors(interceptors, joinPath(path, 'interceptors'));
  return pool as Pool.Options;
}
