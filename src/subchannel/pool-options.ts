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
import { InvalidOptionError } from '../common/errors.js';
import { checkObject, describe, duration, integer, isRecord, joinPath } from '../common/options.js';

const INTEGERS: Readonly<Record<string, readonly [min: number, max?: number]>> = {
  // `connections: null` (undici: unlimited) is allowed below.
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

/** Timeouts where 0 means "none" in undici. */
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

/**
 * Throws {@link InvalidOptionError} (naming `path.key`) unless `raw` is a plain object of undici `Pool` options with
 * values undici accepts. `factory` (the cluster builds its own pools) and `socketPath` (it would send every endpoint's
 * connections to one socket) are refused; so are keys undici does not document for `Pool`.
 */
export function validatePoolOptions(raw: unknown, path: string): void {
  if (isRecord(raw) && 'factory' in raw) {
    throw new InvalidOptionError(joinPath(path, 'factory'), 'the cluster creates its own pools');
  }
  if (isRecord(raw) && 'socketPath' in raw) {
    throw new InvalidOptionError(
      joinPath(path, 'socketPath'),
      "the cluster connects to each endpoint's own address; a socket path would bypass balancing",
    );
  }
  const pool = checkObject(raw, ALLOWED, path);
  for (const [key, [min, max]] of Object.entries(INTEGERS)) {
    const value = pool[key];
    if (value === undefined || (key === 'connections' && value === null)) continue;
    integer(value, joinPath(path, key), 0, min, max);
  }
  for (const key of DURATIONS_ZERO_OK) {
    if (pool[key] !== undefined) duration(pool[key], joinPath(path, key), 0, true);
  }
  for (const key of DURATIONS) {
    if (pool[key] !== undefined && !(key === 'clientTtl' && pool[key] === null)) {
      duration(pool[key], joinPath(path, key), 0);
    }
  }
  for (const key of BOOLEANS) {
    const value = pool[key];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new InvalidOptionError(joinPath(path, key), `expected a boolean, got ${describe(value)}`);
    }
  }
  const { connect, localAddress, interceptors } = pool;
  if (connect !== undefined && typeof connect !== 'function') {
    if (!isRecord(connect)) {
      throw new InvalidOptionError(
        joinPath(path, 'connect'),
        `expected connector options (an object) or a connector function, got ${describe(connect)}`,
      );
    }
    // The rest are tls.connect()/net.connect() options, passed through as undici does.
    if (connect.timeout !== undefined && connect.timeout !== null) {
      duration(connect.timeout, joinPath(joinPath(path, 'connect'), 'timeout'), 0, true);
    }
  }
  if (localAddress !== undefined && (typeof localAddress !== 'string' || isIP(localAddress) === 0)) {
    throw new InvalidOptionError(
      joinPath(path, 'localAddress'),
      `expected an IP address, got ${describe(localAddress)}`,
    );
  }
  if (interceptors !== undefined && !isRecord(interceptors)) {
    throw new InvalidOptionError(joinPath(path, 'interceptors'), `expected an object, got ${describe(interceptors)}`);
  }
}
