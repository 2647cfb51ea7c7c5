/**
 * Options of the etcd resolver: their types, their validation (through the options toolkit, common/options.ts) and
 * their reading from an `etcd:` target.
 *
 * @module
 */
import type { ResolvedBackoffOptions } from '../../common/backoff.js';
import { InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import {
  array,
  describe,
  duration,
  integer,
  isRecord,
  joinPath,
  MAX_TIMER_MS,
  readOptions,
  rejectUnknownKeys,
  string,
} from '../../common/options.js';
import type { Clock, RandomSource } from '../../common/runtime.js';
import {
  parseHttpOrigin,
  type RemoteResolverOptions,
  resolveRemoteResolverOptions,
  resolveResolverTls,
  type ResolverTlsOptions,
} from '../options.js';
import type { Target } from '../resolver.js';
import { hasUserinfo, redactTarget, unknownParameter } from '../target.js';
import { etcdPrefixRangeEnd } from './parse.js';

/**
 * TLS settings for `https://` etcd members.
 * @deprecated use {@link ResolverTlsOptions} (the same fields).
 * @category Resolvers
 */
export type EtcdTlsOptions = ResolverTlsOptions;

/** Options of {@link EtcdResolver}. */
export interface EtcdResolverOptions extends RemoteResolverOptions {
  /** The key prefix; every key under it holds one endpoint (see the module documentation for the value format). */
  readonly prefix: string;
  /**
   * etcd members, tried in turn: `host:port`, `http://host:port` or `https://host:port`.
   * @defaultValue ['http://127.0.0.1:2379']
   */
  readonly endpoints?: readonly string[] | undefined;
  /** User for etcd auth (`/v3/auth/authenticate`); needs `password`. @defaultValue none (no auth) */
  readonly username?: string | undefined;
  /**
   * Password for `username`. Never logged or put in an error message. Refused when `endpoints` mixes `http://` and
   * `https://` members (it would go in clear to the `http://` ones). @defaultValue none
   */
  readonly password?: string | undefined;
  /**
   * TLS settings for `https://` members (the client certificate is etcd's client-certificate auth). Refused when no
   * member of `endpoints` is `https://`.
   * @defaultValue system CAs, verification on, SNI the member's host
   */
  readonly tls?: ResolverTlsOptions | undefined;
  /**
   * Timeout of a range or auth request and of the watch's response headers, whole ms, at most 2147482647.
   * @defaultValue 10000
   */
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
  'maxEndpoints',
] as const;

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
  /** The most endpoints held from the registry. */
  readonly maxEndpoints: number;
}

function memberOrigin(member: unknown, name: string): { origin: string; tls: boolean } {
  if (typeof member !== 'string' || member.length === 0) {
    throw new InvalidOptionError(name, `expected a string, got ${describe(member)}`);
  }
  return parseHttpOrigin(member, name);
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
  const members = array(
    o.endpoints ?? ['http://127.0.0.1:2379'],
    at('endpoints'),
    'a non-empty array of etcd member addresses',
    1,
  );
  const parsed = members.map((m, i) => memberOrigin(m, joinPath(at('endpoints'), i)));
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
  const tls = resolveResolverTls(o.tls, at('tls'));
  // With no https:// member the settings apply to nothing, and the password would go in clear to one who believes
  // the link encrypted (the client refuses a `tls` cluster of http: URLs likewise).
  if (tls !== undefined && !parsed.some((m) => m.tls)) {
    throw new InvalidOptionError(at('tls'), 'TLS options need at least one https:// member in `endpoints`');
  }
  // A member list mixing schemes would send the password encrypted to some members and in clear to the others: one
  // list that looks secured because it names https:// members. etcd members of one cluster share one scheme.
  if (password !== undefined && parsed.some((m) => m.tls) && parsed.some((m) => !m.tls)) {
    throw new InvalidOptionError(
      at('endpoints'),
      'with `username`/`password`, every member must use https:// (some are http://, the password would go in clear to them)',
    );
  }
  const connect: Record<string, unknown> | undefined = tls === undefined ? undefined : { ...tls };
  const key = Buffer.from(prefix, 'utf8');
  return {
    prefix,
    key64: key.toString('base64'),
    rangeEnd64: etcdPrefixRangeEnd(key).toString('base64'),
    origins: parsed.map((m) => m.origin),
    username,
    password,
    connect,
    // Whole ms: undici (headersTimeout, 1 s above it) refuses a fraction when the pool is built, after construction.
    requestTimeoutMs: duration(o.requestTimeoutMs, at('requestTimeoutMs'), 10_000, false, MAX_TIMER_MS - 1000, true),
    minRelistIntervalMs: duration(o.minRelistIntervalMs, at('minRelistIntervalMs'), 1000, true),
    refreshIntervalMs: duration(o.refreshIntervalMs, at('refreshIntervalMs'), 5000, true),
    watchIdleTimeoutMs: duration(o.watchIdleTimeoutMs, at('watchIdleTimeoutMs'), 720_000),
    maxValueBytes: integer(o.maxValueBytes, at('maxValueBytes'), 65_536, 1),
    maxResponseBytes: integer(o.maxResponseBytes, at('maxResponseBytes'), 64 * 1024 * 1024, 1),
    ...resolveRemoteResolverOptions(options, path),
  };
}

const ETCD_TARGET_PARAMS: ReadonlySet<string> = new Set(['tls']);

/** Builds {@link EtcdResolverOptions} from a parsed `etcd:` target (see the module documentation). */
export function etcdOptionsFromTarget(target: Target): EtcdResolverOptions {
  // Values of parameters other than `tls`, and any userinfo, blanked: a credential may be there under any name.
  const raw = redactTarget(target.raw, ETCD_TARGET_PARAMS);
  if (hasUserinfo(target.raw)) throw new InvalidTargetError(raw, 'credentials are not accepted in the target');
  for (const key of target.query.keys()) {
    if (key !== 'tls') {
      const hint = key === 'password' || key === 'username' ? ' (credentials go in the options object)' : '';
      throw new InvalidTargetError(raw, `${unknownParameter(target.query, key)}${hint}`);
    }
  }

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
