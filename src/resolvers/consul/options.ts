/**
 * Options of the Consul resolver: their types, their validation (through the options toolkit,
 * common/options.ts) and their reading from a `consul:` target.
 *
 * @module
 */
import type { ResolvedBackoffOptions } from '../../common/backoff.js';
import { InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import {
  array,
  describe,
  duration,
  durationSum,
  integer,
  isRecord,
  joinPath,
  oneOf,
  rejectUnknownKeys,
  string,
  readOptions,
} from '../../common/options.js';
import type { Clock, RandomSource } from '../../common/runtime.js';
import {
  parseHttpOrigin,
  type RemoteResolverOptions,
  resolveRemoteResolverOptions,
  resolveResolverTls,
  type ResolverTlsOptions,
} from '../options.js';
import { headerValue } from '../../common/wire-options.js';
import type { Target } from '../resolver.js';
import { hasUserinfo, redactTarget, unknownParameter } from '../target.js';
import { type ConsulHealthFilter, parseConsulDuration } from './parse.js';

export type { ConsulHealthFilter } from './parse.js';

/**
 * TLS settings for an `https://` Consul address.
 * @deprecated use {@link ResolverTlsOptions} (the same fields).
 * @category Resolvers
 */
export type ConsulTlsOptions = ResolverTlsOptions;

/** Options of {@link ConsulResolver}. */
export interface ConsulResolverOptions extends RemoteResolverOptions {
  /** The service name, as registered in Consul. */
  readonly service: string;
  /**
   * The Consul agent or server: `host:port`, `http://host:port` or `https://host:port`.
   * @defaultValue `CONSUL_HTTP_ADDR` from the environment, else `'http://127.0.0.1:8500'`
   */
  readonly address?: string | undefined;
  /**
   * ACL token, sent only in the `X-Consul-Token` header (never in a URL, log line or error message).
   * @defaultValue `CONSUL_HTTP_TOKEN` from the environment, else none
   */
  readonly token?: string | undefined;
  /** Datacenter to query (`dc`). @defaultValue the agent's datacenter */
  readonly datacenter?: string | undefined;
  /** Namespace (`ns`, Consul Enterprise). @defaultValue the token's namespace */
  readonly namespace?: string | undefined;
  /** Admin partition (`partition`, Consul Enterprise). @defaultValue the token's partition */
  readonly partition?: string | undefined;
  /** Only instances carrying every one of these tags (`tag=` repeated). @defaultValue [] */
  readonly tags?: readonly string[] | undefined;
  /** A Consul filter expression (`filter`), e.g. `Service.Meta.version == "2"`. @defaultValue none */
  readonly filter?: string | undefined;
  /** Which instances to keep by health. @defaultValue 'passing' */
  readonly health?: ConsulHealthFilter | undefined;
  /** Blocking-query wait (Consul's `wait` parameter), ms, from 1 to 600000 (Consul caps it at 10 minutes). @defaultValue 300000 */
  readonly waitMs?: number | undefined;
  /**
   * Added to `waitMs × 17/16` to form the client timeout of one query, whole ms; that timeout plus 1000 (undici's
   * own, above it) must stay within the longest timer, 2147483647 ms. @defaultValue 5000
   */
  readonly timeoutMarginMs?: number | undefined;
  /** Minimum time between the starts of two queries, ms (the hot-loop guard). @defaultValue 1000 */
  readonly minRequestIntervalMs?: number | undefined;
  /** Minimum time between two `refresh()`-triggered early re-queries, ms. @defaultValue 5000 */
  readonly refreshIntervalMs?: number | undefined;
  /** The `Service.Meta` (then `Node.Meta`) key whose value becomes the endpoint zone. @defaultValue 'zone' */
  readonly zoneKey?: string | undefined;
  /** Largest response body accepted, bytes. @defaultValue 16777216 */
  readonly maxResponseBytes?: number | undefined;
  /** TLS settings for an `https://` address. @defaultValue system CAs, verification on, SNI the address host */
  readonly tls?: ResolverTlsOptions | undefined;
  /** Environment read for `CONSUL_HTTP_ADDR` and `CONSUL_HTTP_TOKEN`. @defaultValue process.env */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
}

const OPTION_KEYS = [
  'service',
  'address',
  'token',
  'datacenter',
  'namespace',
  'partition',
  'tags',
  'filter',
  'health',
  'waitMs',
  'timeoutMarginMs',
  'minRequestIntervalMs',
  'refreshIntervalMs',
  'zoneKey',
  'maxResponseBytes',
  'backoff',
  'tls',
  'clock',
  'random',
  'maxEndpoints',
  'env',
] as const;

/** Validated {@link ConsulResolverOptions}. @internal */
export interface ResolvedConsulOptions {
  readonly service: string;
  /** `http(s)://host:port`. */
  readonly origin: string;
  readonly token: string | undefined;
  /** The query string every request carries (`passing`, `tag`, `filter`, `dc`, `ns`, `partition`). */
  readonly query: string;
  readonly health: ConsulHealthFilter;
  readonly waitMs: number;
  /** Client timeout of one query: `waitMs × 17/16 + timeoutMarginMs`, ms. */
  readonly timeoutMs: number;
  readonly minRequestIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly zoneKey: string;
  readonly maxResponseBytes: number;
  readonly backoff: ResolvedBackoffOptions;
  /** undici `connect` options built from `tls`, when any was given. */
  readonly connect: Record<string, unknown> | undefined;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** The most endpoints held from the registry. */
  readonly maxEndpoints: number;
}

/**
 * Validates {@link ConsulResolverOptions}, naming a bad option by its path under `path` (`''` at the top level).
 * Throws {@link InvalidOptionError}. @internal
 */
export function resolveConsulOptions(options: ConsulResolverOptions, path = ''): ResolvedConsulOptions {
  return readOptions(path || 'options', () => resolveConsulOptionsUnguarded(options, path));
}

function resolveConsulOptionsUnguarded(options: ConsulResolverOptions, path = ''): ResolvedConsulOptions {
  if (!isRecord(options)) {
    throw new InvalidOptionError(path || 'options', 'expected an object with at least `service`');
  }
  rejectUnknownKeys(options, path, OPTION_KEYS);
  const o = options as Record<string, unknown>;
  const at = (key: string) => joinPath(path, key);
  const env = (options.env ?? process.env) as Readonly<Record<string, string | undefined>>;
  const service = string(o.service, at('service'), undefined);
  if (service === undefined) throw new InvalidOptionError(at('service'), 'is required');
  if (/[\s/?#]/.test(service)) {
    throw new InvalidOptionError(at('service'), 'must not contain whitespace, "/", "?" or "#"');
  }
  const address = string(o.address, at('address'), undefined) ?? env.CONSUL_HTTP_ADDR ?? 'http://127.0.0.1:8500';
  const { origin, tls } = parseHttpOrigin(address, at('address'));
  const token = o.token === undefined ? env.CONSUL_HTTP_TOKEN || undefined : o.token;
  // Sent as a header: a control character (NUL, CR, LF) would make undici refuse every query.
  if (token !== undefined && typeof token !== 'string') {
    throw new InvalidOptionError(at('token'), `expected a string, got ${describe(token)}`);
  }
  // An empty token is sent as an empty header (Consul's anonymous token): it works, so it stays allowed.
  if (token !== undefined && token !== '') headerValue(token, at('token'), true);
  const health = oneOf<ConsulHealthFilter>(o.health, at('health'), 'passing', ['passing', 'warning', 'any']);
  const tags = array(o.tags ?? [], at('tags'), 'an array of non-empty strings');
  if (!tags.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new InvalidOptionError(at('tags'), `expected an array of non-empty strings, got ${describe(o.tags)}`);
  }
  const waitMs = duration(o.waitMs, at('waitMs'), 300_000, false, 600_000);
  if (waitMs < 1) throw new InvalidOptionError(at('waitMs'), `expected at least 1 ms, got ${describe(waitMs)}`);
  const timeoutMarginMs = duration(o.timeoutMarginMs, at('timeoutMarginMs'), 5000, true, undefined, true);
  const timeoutMs = Math.ceil((waitMs * 17) / 16) + timeoutMarginMs;
  // undici's own timeouts sit 1 s above this one (resolver.ts).
  durationSum(timeoutMs + 1000, at('timeoutMarginMs'), 'waitMs × 17/16 + timeoutMarginMs + 1000');
  const params = new URLSearchParams();
  if (health === 'passing') params.set('passing', 'true');
  for (const tag of tags as string[]) params.append('tag', tag);
  const single: Array<[string, string]> = [
    ['filter', 'filter'],
    ['datacenter', 'dc'],
    ['namespace', 'ns'],
    ['partition', 'partition'],
  ];
  for (const [option, param] of single) {
    const value = string(o[option], at(option), undefined);
    if (value !== undefined) params.set(param, value);
  }
  const tlsOptions = resolveResolverTls(o.tls, at('tls'));
  if (tlsOptions !== undefined && !tls) throw new InvalidOptionError(at('tls'), 'TLS options need an https:// address');
  // An empty `tls: {}` is no TLS option at all: undici's defaults.
  const connect = tlsOptions === undefined || Object.keys(tlsOptions).length === 0 ? undefined : { ...tlsOptions };
  return {
    service,
    origin,
    token,
    query: params.toString(),
    health,
    waitMs,
    timeoutMs,
    minRequestIntervalMs: duration(o.minRequestIntervalMs, at('minRequestIntervalMs'), 1000, true),
    refreshIntervalMs: duration(o.refreshIntervalMs, at('refreshIntervalMs'), 5000, true),
    zoneKey: string(o.zoneKey, at('zoneKey'), 'zone'),
    maxResponseBytes: integer(o.maxResponseBytes, at('maxResponseBytes'), 16 * 1024 * 1024, 1),
    connect,
    ...resolveRemoteResolverOptions(options, path),
  };
}

const TARGET_PARAMS = new Set([
  'dc',
  'ns',
  'partition',
  'filter',
  'tag',
  'health',
  'passing',
  'wait',
  'tls',
  'zone-key',
]);

/**
 * The target for error messages: the values of parameters other than the known ones, and any userinfo, blanked (a
 * token may be there under any name, probe 23). @internal
 */
export function redactConsulTarget(raw: string): string {
  return redactTarget(raw, TARGET_PARAMS);
}

export function consulOptionsFromTarget(target: Target): ConsulResolverOptions {
  const raw = redactConsulTarget(target.raw);
  const q = target.query;
  if (hasUserinfo(target.raw)) throw new InvalidTargetError(raw, 'credentials are not accepted in the target');
  if (q.has('token')) {
    throw new InvalidTargetError(
      raw,
      'the ACL token must not be in the target; use the token option or CONSUL_HTTP_TOKEN',
    );
  }
  for (const key of q.keys()) {
    if (!TARGET_PARAMS.has(key)) throw new InvalidTargetError(raw, unknownParameter(q, key));
  }
  let service: string;
  try {
    service = decodeURIComponent(target.path);
  } catch {
    throw new InvalidTargetError(raw, 'the service name is not valid percent-encoding');
  }
  if (service.length === 0 || /[\s/?#]/.test(service)) {
    throw new InvalidTargetError(raw, 'expected consul://host:port/service-name with a single-segment service name');
  }
  let health: ConsulHealthFilter | undefined;
  const healthText = q.get('health');
  const passing = q.get('passing');
  if (healthText !== null) {
    if (healthText !== 'passing' && healthText !== 'warning' && healthText !== 'any') {
      throw new InvalidTargetError(raw, 'health must be passing, warning or any');
    }
    health = healthText;
  } else if (passing !== null) {
    if (passing !== 'true' && passing !== 'false') throw new InvalidTargetError(raw, 'passing must be true or false');
    health = passing === 'true' ? 'passing' : 'warning';
  }
  let wait: number | undefined;
  const waitText = q.get('wait');
  if (waitText !== null) {
    wait = parseConsulDuration(waitText);
    if (wait === undefined || wait < 1 || wait > 600_000) {
      throw new InvalidTargetError(raw, 'wait must be a duration like 30s or 5m, at most 10m');
    }
  }
  const tls = q.get('tls');
  if (tls !== null && tls !== 'true' && tls !== 'false') throw new InvalidTargetError(raw, 'tls must be true or false');
  const options: Record<string, unknown> = { service };
  if (target.authority !== '') options.address = `${tls === 'true' ? 'https' : 'http'}://${target.authority}`;
  else if (tls === 'true') throw new InvalidTargetError(raw, 'tls=true needs an explicit host:port');
  const single: Array<[string, string]> = [
    ['dc', 'datacenter'],
    ['ns', 'namespace'],
    ['partition', 'partition'],
    ['filter', 'filter'],
    ['zone-key', 'zoneKey'],
  ];
  for (const [param, option] of single) {
    const value = q.get(param);
    if (value !== null) options[option] = value;
  }
  const tags = q.getAll('tag');
  if (tags.length > 0) options.tags = tags;
  if (health !== undefined) options.health = health;
  if (wait !== undefined) options.waitMs = wait;
  return options as unknown as ConsulResolverOptions;
}
