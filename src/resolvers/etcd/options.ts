/**
 * Options of the etcd resolver: their types, their validation (through the options toolkit, common/options.ts) and
 * their reading from an `etcd:` target.
 *
 * @module
 */
import { type BackoffOptions, type ResolvedBackoffOptions, resolveBackoffOptions } from '../../common/backoff.js';
import { InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import {
  boolean,
  checkObject,
  describe,
  duration,
  func,
  integer,
  isRecord,
  joinPath,
  rejectUnknownKeys,
  string,
  tlsMaterial,
  readOptions,
} from '../../common/options.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../../common/runtime.js';
import type { Target } from '../resolver.js';
import { etcdPrefixRangeEnd } from './parse.js';

/** TLS settings for `https://` etcd members (undici `connect` options). */
export interface EtcdTlsOptions {
  /** CA certificate(s) to trust instead of the system store. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer> | undefined;
  /** Client certificate (PEM), for etcd's client-certificate auth. */
  readonly cert?: string | Buffer | undefined;
  /** Client private key (PEM). */
  readonly key?: string | Buffer | undefined;
  /** Verify the server certificate. @defaultValue true */
  readonly rejectUnauthorized?: boolean | undefined;
  /** SNI server name and the name the certificate is checked against. @defaultValue the member's host */
  readonly servername?: string | undefined;
}

/** Options of {@link EtcdResolver}. */
export interface EtcdResolverOptions {
  /** The key prefix; every key under it holds one endpoint (see the module documentation for the value format). */
  readonly prefix: string;
  /**
   * etcd members, tried in turn: `host:port`, `http://host:port` or `https://host:port`.
   * @defaultValue ['http://127.0.0.1:2379']
   */
  readonly endpoints?: readonly string[] | undefined;
  /** User for etcd auth (`/v3/auth/authenticate`); needs `password`. @defaultValue none (no auth) */
  readonly username?: string | undefined;
  /** Password for `username`. Never logged or put in an error message. @defaultValue none */
  readonly password?: string | undefined;
  /** TLS settings for `https://` members. @defaultValue system CAs, verification on */
  readonly tls?: EtcdTlsOptions | undefined;
  /** Timeout of a range or auth request and of the watch's response headers, ms. @defaultValue 10000 */
  readonly requestTimeoutMs?: number | undefined;
  /** Minimum time between two listings (the hot-loop guard after compactions or quick stream breaks), ms. @defaultValue 1000 */
  readonly minRelistIntervalMs?: number | undefined;
  /** Minimum time between two `refresh()`-triggered restarts, ms. @defaultValue 5000 */
  readonly refreshIntervalMs?: number | undefined;
  /**
   * Longest silence accepted on the watch stream, ms: when no message at all (event, progress notification) arrives
   * for this long, the connection is presumed dead, the watch is aborted (`timeout`) and the prefix is listed again.
   * Keep it above etcd's progress-notification interval (10 minutes, not configurable per watch), or quiet
   * prefixes are re-listed needlessly.
   * @defaultValue 720000 (12 minutes)
   */
  readonly watchIdleTimeoutMs?: number | undefined;
  /** Largest value accepted, bytes; larger ones are skipped as malformed. @defaultValue 65536 */
  readonly maxValueBytes?: number | undefined;
  /** Largest range response or watch message accepted, bytes. @defaultValue 67108864 */
  readonly maxResponseBytes?: number | undefined;
  /** Backoff between failed cycles. @defaultValue 1 s, ×1.6, jitter 0.2, max 120 s */
  readonly backoff?: BackoffOptions | undefined;
  /** Clock for timers. @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
}

const OPTION_KEYS = [
  'prefix',
  'endpoints',
  'username',
  'password',
  'tls',
  'requestTimeoutMs',
  'minRelistIntervalMs',
  'refreshIntervalMs',
  'watchIdleTimeoutMs',
  'maxValueBytes',
  'maxResponseBytes',
  'backoff',
  'clock',
  'random',
] as const;

const TLS_KEYS = ['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'] as const;

/** Validated {@link EtcdResolverOptions}. @internal */
export interface ResolvedEtcdOptions {
  readonly prefix: string;
  /** The prefix, base64 (the gateway's encoding of bytes). */
  readonly key64: string;
  /** The exclusive end of the prefix range, base64. */
  readonly rangeEnd64: string;
  /** The members' origins (`http(s)://host:port`), tried in turn. */
  readonly origins: readonly string[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** undici `connect` options built from `tls`, when given. */
  readonly connect: Record<string, unknown> | undefined;
  readonly requestTimeoutMs: number;
  readonly minRelistIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly watchIdleTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly maxResponseBytes: number;
  readonly backoff: ResolvedBackoffOptions;
  readonly clock: Clock;
  readonly random: RandomSource;
}

function memberOrigin(member: unknown, name: string): string {
  if (typeof member !== 'string' || member.length === 0) {
    throw new InvalidOptionError(name, `expected a string, got ${describe(member)}`);
  }
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(member) ? member : `http://${member}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidOptionError(name, `expected host:port or http(s)://host:port, got ${describe(member)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidOptionError(name, `expected an http: or https: address, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new InvalidOptionError(name, 'expected only scheme, host and port (no credentials, path or query)');
  }
  return url.origin;
}

/**
 * Validates {@link EtcdResolverOptions}, naming a bad option by its path under `path` (`''` at the top level).
 * Throws {@link InvalidOptionError}. @internal
 */
export function resolveEtcdOptions(options: EtcdResolverOptions, path = ''): ResolvedEtcdOptions {
  return readOptions(path || 'options', () => resolveEtcdOptionsUnguarded(options, path));
}

function resolveEtcdOptionsUnguarded(options: EtcdResolverOptions, path = ''): ResolvedEtcdOptions {
  if (!isRecord(options)) throw new InvalidOptionError(path || 'options', 'expected an object with at least `prefix`');
  rejectUnknownKeys(options, path, OPTION_KEYS);
  const o = options as Record<string, unknown>;
  const at = (key: string) => joinPath(path, key);
  const prefix = string(
    o.prefix,
    at('prefix'),
    undefined,
    undefined,
    'a non-empty key prefix, e.g. "/services/users/"',
  );
  if (prefix === undefined) {
    throw new InvalidOptionError(at('prefix'), 'expected a non-empty key prefix, e.g. "/services/users/"');
  }
  const members = o.endpoints ?? ['http://127.0.0.1:2379'];
  if (!Array.isArray(members) || members.length === 0) {
    throw new InvalidOptionError(at('endpoints'), 'expected a non-empty array of etcd member addresses');
  }
  const origins = members.map((m, i) => memberOrigin(m, joinPath(at('endpoints'), i)));
  const username = string(o.username, at('username'), undefined);
  const password = o.password;
  if (password !== undefined && typeof password !== 'string') {
    throw new InvalidOptionError(at('password'), 'expected a string');
  }
  if ((username === undefined) !== (password === undefined)) {
    throw new InvalidOptionError(
      at(username === undefined ? 'username' : 'password'),
      'username and password go together',
    );
  }
  let connect: Record<string, unknown> | undefined;
  if (o.tls !== undefined) {
    const t = checkObject(o.tls, TLS_KEYS, at('tls'));
    boolean(t.rejectUnauthorized, joinPath(at('tls'), 'rejectUnauthorized'), true);
    string(t.servername, joinPath(at('tls'), 'servername'), undefined);
    tlsMaterial(t, at('tls'));
    connect = {};
    for (const field of TLS_KEYS) if (t[field] !== undefined) connect[field] = t[field];
  }
  const key = Buffer.from(prefix, 'utf8');
  return {
    prefix,
    key64: key.toString('base64'),
    rangeEnd64: etcdPrefixRangeEnd(key).toString('base64'),
    origins,
    username,
    password,
    connect,
    requestTimeoutMs: duration(o.requestTimeoutMs, at('requestTimeoutMs'), 10_000),
    minRelistIntervalMs: duration(o.minRelistIntervalMs, at('minRelistIntervalMs'), 1000, true),
    refreshIntervalMs: duration(o.refreshIntervalMs, at('refreshIntervalMs'), 5000, true),
    watchIdleTimeoutMs: duration(o.watchIdleTimeoutMs, at('watchIdleTimeoutMs'), 720_000),
    maxValueBytes: integer(o.maxValueBytes, at('maxValueBytes'), 65_536, 1),
    maxResponseBytes: integer(o.maxResponseBytes, at('maxResponseBytes'), 64 * 1024 * 1024, 1),
    backoff: resolveBackoffOptions(options.backoff, at('backoff')),
    clock: (o.clock as Clock | undefined) ?? systemClock,
    random: func<RandomSource>(o.random, at('random')) ?? systemRandom,
  };
}

/** Builds {@link EtcdResolverOptions} from a parsed `etcd:` target (see the module documentation). */
export function etcdOptionsFromTarget(target: Target): EtcdResolverOptions {
  const raw = target.raw.replace(/([?&](?:password|token)=)[^&#]*/gi, '$1<redacted>');
  for (const key of target.query.keys()) {
    if (key !== 'tls') {
      const hint = key === 'password' || key === 'username' ? ' (credentials go in the options object)' : '';
      throw new InvalidTargetError(raw, `unknown query parameter "${key}"${hint}`);
    }
  }
  if (target.authority.includes('@')) throw new InvalidTargetError(raw, 'credentials are not accepted in the target');
  const tls = target.query.get('tls');
  if (tls !== null && tls !== 'true' && tls !== 'false') throw new InvalidTargetError(raw, 'tls must be true or false');
  let prefix: string;
  try {
    prefix = `/${decodeURIComponent(target.path)}`;
  } catch {
    throw new InvalidTargetError(raw, 'the key prefix is not valid percent-encoding');
  }
  if (prefix === '/')
    throw new InvalidTargetError(raw, 'expected etcd://host:port/key/prefix/ with a non-empty prefix');
  const scheme = tls === 'true' ? 'https' : 'http';
  const members = target.authority === '' ? ['127.0.0.1:2379'] : target.authority.split(',');
  if (members.some((m) => m.length === 0)) throw new InvalidTargetError(raw, 'empty entry in the member list');
  return { prefix, endpoints: members.map((m) => `${scheme}://${m}`) };
}
