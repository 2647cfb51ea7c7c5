/**
 * The options of one cluster (one logical service): their types, defaults and validation.
 *
 * {@link resolveClusterOptions} is pure: it validates every option (the request policy, health and picker settings
 * included) and builds nothing, so the client can check a template (discovery) without creating a cluster, and every
 * error names the option by its full path (`clusters.users.retry.maxAttempts`).
 *
 * @module
 */
import type { Pool } from 'undici';
import type { Endpoint, EndpointInit } from '../common/endpoint.js';
import { InvalidOptionError } from '../common/errors.js';
import { type BackoffOptions, type ResolvedBackoffOptions, resolveBackoffOptions } from '../common/backoff.js';
import {
  array,
  checkObject,
  clock as readClock,
  describe,
  duration,
  integer,
  isRecord,
  joinPath,
  MAX_SHARE_WEIGHT,
  MAX_TIMER_MS,
  number,
  toggle,
  readOptions,
  rejectUnknownKeys,
} from '../common/options.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../common/runtime.js';
import type { ZoneAwareOptions } from '../balancer/snapshot.js';
import { type HealthOptions, type ResolvedHealthOptions, resolveHealthOptions } from '../health/endpoint-health.js';
import { createPickerRegistry } from '../pickers/registry.js';
import type { ConfiguredPolicy, PickerOption, PickerRegistry } from '../pickers/picker.js';
import { type RequestPolicy, type RequestPolicyOptions, resolveRequestPolicy } from '../request/policy.js';
import type { Resolver } from '../resolvers/resolver.js';
import { createResolverRegistry, type ResolverRegistry } from '../resolvers/registry.js';
import { StaticResolver } from '../resolvers/static.js';
import type { ResolvedHttp2Options } from '../subchannel/http2.js';
import { validatePoolOptions } from '../subchannel/pool-options.js';
import { passphraseOption, tlsMaterial, tlsMaterialShape } from '../common/tls-options.js';
import { headerName, hostHeader, serverName } from '../common/wire-options.js';

/** Where a cluster's endpoints come from. */
export type TargetOption = string | Resolver | ReadonlyArray<string | EndpointInit | Endpoint>;

/**
 * TLS to the endpoints. Certificates are verified by default, against the logical service name (the request
 * URL's host, which is also sent as SNI), unless `servername` says otherwise.
 */
export interface TlsOptions {
  /**
   * Trusted CA certificates (PEM text, or a non-empty array of them); the system's when omitted. PEM text is a
   * string or its bytes: a `Buffer`, or a `Uint8Array` (what a Buffer becomes through `structuredClone` or a
   * worker's message) or any other `ArrayBufferView`, as Node's TLS takes it.
   */
  readonly ca?: string | ArrayBufferView | ReadonlyArray<string | ArrayBufferView>;
  /** Client certificate (PEM, as for `ca`), for mutual TLS. */
  readonly cert?: string | ArrayBufferView;
  /** Client private key (PEM, as for `ca`), for mutual TLS; an encrypted one needs {@link TlsOptions.passphrase}. */
  readonly key?: string | ArrayBufferView;
  /**
   * The passphrase of an encrypted private key (`key`, or `pool.connect.key`). A wrong one is refused at
   * construction (naming `tls.passphrase`); it is ignored for a key that is not encrypted.
   */
  readonly passphrase?: string;
  /** Verify the endpoint's certificate. Turning this off is for tests only. @defaultValue true */
  readonly rejectUnauthorized?: boolean;
  /**
   * The name to send as SNI and check the certificate against instead of the request URL's host: an ASCII host
   * name (punycode for an IDN), or an IP address of either family (IPv6 without brackets), checked against the
   * certificate's IP addresses (Node then sends it as SNI too, with its DEP0123 warning).
   */
  readonly servername?: string;
}

/**
 * HTTP/2 to the endpoints (`http2: true` for these defaults). Over TLS the connection offers `h2` by ALPN and falls
 * back to HTTP/1.1 where the endpoint does not offer it; in clear text it is h2c with prior knowledge (the endpoint
 * must speak HTTP/2: there is no fallback, and no `Upgrade: h2c`). Least-request and peak-EWMA count requests
 * (streams) in flight per endpoint, whatever the connections. A `GOAWAY` is a drain: attempts the endpoint did not
 * process (above the frame's last-stream-id) are retried on another endpoint whatever their method, and count
 * against no endpoint.
 *
 * @category Options
 */
export interface Http2Options {
  /** Connections per endpoint. @defaultValue 1 */
  readonly connections?: number | undefined;
  /**
   * Streams at once on one connection; more wait for a stream to finish. An endpoint's own
   * `SETTINGS_MAX_CONCURRENT_STREAMS`, when lower, is respected once the connection has it.
   * @defaultValue 100
   */
  readonly maxConcurrentStreams?: number | undefined;
}

/** Options of one cluster (one logical service). */
export interface ClusterOptions extends RequestPolicyOptions, HealthOptions {
  /**
   * Where the endpoints come from: a target string parsed by the resolver registry (`static://h1:p1,h2:p2`), a
   * {@link Resolver} object (the cluster takes ownership, starts it and closes it), or a fixed list of `host:port`
   * strings or endpoint objects. A resolver object serves one cluster, once: one another cluster has taken (of this
   * client or another, running or closed) is refused with `SIDECARLESS_INVALID_OPTION` naming this option. When the
   * client's creation fails, a resolver object of yours is handed back untouched (neither started nor closed), and
   * may be given again.
   */
  readonly target: TargetOption;
  /** The load-balancing policy: a registered name or `{ name, ...settings }`. @defaultValue 'round-robin' */
  readonly picker?: PickerOption | undefined;
  /**
   * The `Host` header sent to endpoints. By default the request URL's authority (the logical service name, e.g.
   * `users` for `http://users/list`); a string (`host` or `host:port`, in ASCII) sends that value; `false` sends the
   * endpoint's own `host:port`.
   * A Host header the caller set explicitly always wins.
   */
  readonly host?: string | false | undefined;
  /**
   * Names a response header that sidecarless adds to every response an endpoint produced, holding that endpoint's
   * key (`host:port`): which endpoint answered, for debugging, tests and affinity checks. With retries or hedging it
   * is the endpoint whose response the caller got. Responses sidecarless makes itself (a breaker fallback) do not
   * carry it. Off by default: it tells callers your topology. An RFC 9110 token, e.g. `x-sidecarless-endpoint`.
   * @defaultValue none
   */
  readonly endpointHeader?: string | undefined;
  /**
   * How long a request waits for an endpoint (before the first resolution, or while the set is empty) before it
   * fails with `SIDECARLESS_NO_ENDPOINTS`, ms. 0 fails at once.
   * @defaultValue 10000
   */
  readonly waitForReadyTimeoutMs?: number | undefined;
  /**
   * How long a removed endpoint may take to finish its in-flight requests before its connections are destroyed, ms.
   * @defaultValue 30000
   */
  readonly drainTimeoutMs?: number | undefined;
  /**
   * undici `Pool` options applied to every endpoint's pool (connections, pipelining, keep-alive, timeouts...).
   * `factory` is not allowed: the cluster owns pool creation. Neither are `connect.servername` and
   * `connect.rejectUnauthorized` (the {@link ClusterOptions.tls} option sets them on every connection: use
   * `tls.servername` and `tls.rejectUnauthorized`), `connect.passphrase` (use `tls.passphrase`, which decrypts a key
   * in `tls` or in `connect`), nor TLS material in `connect` (`ca`, `cert`, `key`, `pfx`, ...) without `tls`, since
   * the cluster then speaks plain HTTP; nor `connect.localAddress` (undici takes `localAddress`). `null` is accepted
   * only where undici gives it a meaning: `connections` and `clientTtl` (no limit), `connect.timeout`,
   * `connect.maxCachedSessions` and `connect.keepAlive` (undici's default).
   */
  readonly pool?: Omit<Pool.Options, 'factory'> | undefined;
  /**
   * Speak TLS to the endpoints (`https:` request URLs); `true` for the defaults. Plain HTTP when omitted, and then
   * `https:` URLs are refused with `SIDECARLESS_PROTOCOL_MISMATCH` rather than sent in clear text.
   */
  readonly tls?: TlsOptions | boolean | undefined;
  /**
   * Speak HTTP/2 to the endpoints: `true` for the defaults, or {@link Http2Options}. Over TLS by ALPN, falling back
   * to HTTP/1.1 per endpoint; without `tls`, h2c with prior knowledge. A client's `http2` is the default of its
   * clusters. Off (HTTP/1.1) unless set.
   */
  readonly http2?: Http2Options | boolean | undefined;
  /**
   * Prefer endpoints in the local zone while it has enough healthy capacity for its callers, spilling the rest over
   * to other zones by their spare capacity (Envoy's zone aware routing, applied within each priority level; see
   * {@link ZoneAwareOptions}). Off within a level in panic. Off unless set.
   */
  readonly zoneAware?: ZoneAwareOptions | undefined;
  /** Backoff after an endpoint refuses connections. Defaults: 1 s, x1.6, jitter 0.2, max 120 s. */
  readonly connectBackoff?: BackoffOptions | undefined;
  /** Resolver registry for target strings. @defaultValue createResolverRegistry() */
  readonly resolvers?: ResolverRegistry | undefined;
  /** Picker registry for policy names. @defaultValue createPickerRegistry() */
  readonly pickers?: PickerRegistry | undefined;
  /** Clock for every timer and measurement (tests inject a fake). @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for every random choice (tests inject a seeded one, e.g. {@link seededRandom}). @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
}

// The option keys of a cluster. `satisfies` checks the list against the option type both ways: a new option the
// list misses fails the typecheck, so they cannot drift, and anything else a caller passes (a typo such as
// `waitForReadyTimout`) is refused at construction instead of being silently ignored.
const CLUSTER_KEY_RECORD = {
  target: true,
  picker: true,
  host: true,
  endpointHeader: true,
  waitForReadyTimeoutMs: true,
  drainTimeoutMs: true,
  pool: true,
  tls: true,
  http2: true,
  zoneAware: true,
  connectBackoff: true,
  resolvers: true,
  pickers: true,
  clock: true,
  random: true,
  retry: true,
  retryBudget: true,
  hedge: true,
  timeoutMs: true,
  limits: true,
  breaker: true,
  outlierDetection: true,
  healthCheck: true,
  slowStart: true,
  panicThreshold: true,
} satisfies Record<keyof ClusterOptions, true>;

/** The keys of one cluster's options (`clusters.<name>`). */
export const CLUSTER_KEYS: readonly string[] = Object.keys(CLUSTER_KEY_RECORD);

const TLS_KEYS = ['ca', 'cert', 'key', 'passphrase', 'rejectUnauthorized', 'servername'] as const;
const ZONE_AWARE_KEYS = ['localZone', 'minClusterSize', 'callers'] as const;

/** Cluster options after validation, with every default filled in. */
export interface ResolvedClusterOptions {
  readonly protocol: 'http:' | 'https:';
  readonly servername: string | undefined;
  /** The TLS settings of the endpoints' connections (and of active health checks), when TLS is on. */
  readonly tls: (TlsOptions & { readonly rejectUnauthorized: boolean }) | undefined;
  readonly policy: ConfiguredPolicy;
  readonly host: string | false | undefined;
  readonly endpointHeader: Buffer | undefined;
  readonly waitForReadyTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly poolOptions: Pool.Options;
  readonly http2: ResolvedHttp2Options | undefined;
  readonly connectBackoff: ResolvedBackoffOptions;
  readonly zoneAware: ZoneAwareOptions | undefined;
  readonly request: RequestPolicy;
  /** The health options, validated (the cluster's health is built from these: no option is read twice). */
  readonly health: ResolvedHealthOptions;
  /** Where the endpoints come from (checked to be a string, a Resolver or an array). */
  readonly target: TargetOption;
  /** The resolver registry for a target string, when one was given. */
  readonly resolvers: ResolverRegistry | undefined;
  readonly clock: Clock;
  readonly random: RandomSource;
}

function resolveTls(tls: ClusterOptions['tls'], path: string): ResolvedClusterOptions['tls'] {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return { rejectUnauthorized: true };
  const at = joinPath(path, 'tls');
  if (!isRecord(tls)) throw new InvalidOptionError(at, `expected true, false or an object, got ${describe(tls)}`);
  const t = checkObject(tls, TLS_KEYS, at);
  if (t.rejectUnauthorized !== undefined && typeof t.rejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError(joinPath(at, 'rejectUnauthorized'), 'expected true or false');
  }
  serverName(t.servername, joinPath(at, 'servername'));
  if ((t.cert === undefined) !== (t.key === undefined)) {
    throw new InvalidOptionError(joinPath(at, t.cert === undefined ? 'cert' : 'key'), 'cert and key go together');
  }
  const passphrase = passphraseOption(t.passphrase, joinPath(at, 'passphrase'));
  const material = tlsMaterialShape(t, at);
  tlsMaterial(material, at, passphrase, joinPath(at, 'passphrase'));
  const rejectUnauthorized = (t.rejectUnauthorized as boolean | undefined) ?? true;
  return { ...t, ...material, rejectUnauthorized } as NonNullable<ResolvedClusterOptions['tls']>;
}

/** Refuses `tls.passphrase` when there is no key for it to decrypt, in `tls` or in `pool.connect`. */
function passphraseWithKey(tls: ResolvedClusterOptions['tls'], pool: Pool.Options, path: string): void {
  if (tls?.passphrase === undefined || tls.key !== undefined) return;
  if (isRecord(pool.connect) && (pool.connect as { key?: unknown }).key !== undefined) return;
  throw new InvalidOptionError(
    joinPath(joinPath(path, 'tls'), 'passphrase'),
    'decrypts a private key, and there is none: set tls.key (and tls.cert)',
  );
}

function resolveHttp2(raw: unknown, pool: Pool.Options, path: string): ResolvedHttp2Options | undefined {
  const at = joinPath(path, 'http2');
  const http2 = toggle(raw, at, ['connections', 'maxConcurrentStreams']);
  if (http2 === undefined) return undefined;
  // The HTTP/2 settings are http2's; a connector function would bypass the ALPN and prior-knowledge connector.
  for (const key of ['allowH2', 'maxConcurrentStreams', 'connect'] as const) {
    if (pool[key] !== undefined && (key !== 'connect' || typeof pool.connect === 'function')) {
      const what = key === 'connect' ? 'a connector function' : `pool.${key}`;
      throw new InvalidOptionError(joinPath(joinPath(path, 'pool'), key), `${what} cannot be combined with http2`);
    }
  }
  return {
    connections: integer(http2.connections, joinPath(at, 'connections'), 1, 1, 1_000),
    maxConcurrentStreams: integer(
      http2.maxConcurrentStreams,
      joinPath(at, 'maxConcurrentStreams'),
      100,
      1,
      2 ** 31 - 1,
    ),
  };
}

function resolveZoneAware(raw: unknown, path: string): ZoneAwareOptions | undefined {
  if (raw === undefined) return undefined;
  const at = joinPath(path, 'zoneAware');
  const { localZone, minClusterSize, callers } = checkObject(raw, ZONE_AWARE_KEYS, at);
  if (typeof localZone !== 'string' || localZone.length === 0) {
    throw new InvalidOptionError(joinPath(at, 'localZone'), 'expected a non-empty zone name');
  }
  if (
    minClusterSize !== undefined &&
    (typeof minClusterSize !== 'number' || !Number.isInteger(minClusterSize) || minClusterSize < 1)
  ) {
    throw new InvalidOptionError(joinPath(at, 'minClusterSize'), 'expected an integer >= 1');
  }
  if (callers === undefined) return { localZone, minClusterSize: (minClusterSize as number | undefined) ?? 6 };
  if (!isRecord(callers)) {
    throw new InvalidOptionError(joinPath(at, 'callers'), 'expected an object of zone names to caller counts');
  }
  const counts: Record<string, number> = {};
  for (const [zone, n] of Object.entries(callers)) {
    counts[zone] = number(n, joinPath(joinPath(at, 'callers'), zone), 0, 0, false, MAX_SHARE_WEIGHT);
  }
  const local = Object.hasOwn(counts, localZone) ? counts[localZone] : undefined;
  if (typeof local !== 'number' || !(local > 0)) {
    throw new InvalidOptionError(
      joinPath(joinPath(at, 'callers'), localZone),
      'the local zone must have callers (a number > 0)',
    );
  }
  return {
    localZone,
    minClusterSize: (minClusterSize as number | undefined) ?? 6,
    callers: Object.freeze(counts),
  };
}

/** True for a {@link Resolver} object (as opposed to a target string or an endpoint list). */
export function isResolver(value: unknown): value is Resolver {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Resolver).start === 'function' &&
    typeof (value as Resolver).close === 'function'
  );
}

/** The resolver of validated options' target: the registry's for a string, a static one for a list. */
export function createClusterResolver(options: ResolvedClusterOptions, cluster: string): Resolver {
  const { target, clock, random } = options;
  if (typeof target === 'string') {
    return (options.resolvers ?? createResolverRegistry()).create(target, { clock, random, cluster });
  }
  return isResolver(target) ? target : new StaticResolver(target);
}

/** Options made by {@link resolveClusterOptions} or {@link withTarget}: a cluster built from one reads nothing again. */
const resolvedOptions = new WeakSet<object>();

/** True for options {@link resolveClusterOptions} (or {@link withTarget}) returned. */
export function isResolvedClusterOptions(value: unknown): value is ResolvedClusterOptions {
  return typeof value === 'object' && value !== null && resolvedOptions.has(value);
}

/** The keys of an endpoint object in a target list: an {@link EndpointInit}'s, and an {@link Endpoint}'s `key`. */
const ENDPOINT_KEYS: readonly string[] = Object.keys({
  host: true,
  port: true,
  weight: true,
  priority: true,
  zone: true,
  metadata: true,
  key: true,
} satisfies Record<keyof Endpoint | keyof EndpointInit, true>);

/**
 * The target option, checked: a string, a {@link Resolver}, or an endpoint list without holes (copied), whose
 * endpoint objects have no key but an endpoint's (a misspelled `wieght` would be dropped, and the endpoint run with
 * the default). A getter or `Proxy` trap that throws while a Resolver's `start` and `close` or an entry's keys are
 * read is reported under `target` or the entry's path.
 */
function readTarget(target: unknown, path: string): TargetOption {
  const at = joinPath(path, 'target');
  if (typeof target === 'string' || readOptions(at, () => isResolver(target))) return target as TargetOption;
  if (Array.isArray(target)) {
    const entries = array(target, at, 'an array of endpoints');
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (typeof entry !== 'object' || entry === null) continue; // a string, or a bad value the resolver refuses
      const entryPath = joinPath(at, i);
      readOptions(entryPath, () => rejectUnknownKeys(entry, entryPath, ENDPOINT_KEYS));
    }
    return entries as TargetOption;
  }
  throw new InvalidOptionError(
    joinPath(path, 'target'),
    'expected a target string, a Resolver, or an array of endpoints',
  );
}

/**
 * `resolved` (validated options, such as a discovery template's) with another target, checked (naming
 * `path.target`). Nothing else is read again.
 */
export function withTarget(resolved: ResolvedClusterOptions, target: unknown, path: string): ResolvedClusterOptions {
  const options = { ...resolved, target: readTarget(target, path) };
  resolvedOptions.add(options);
  return options;
}

/**
 * Validates a cluster's options and fills in the defaults. Pure: creates no resolver, pool or timer. `path` is
 * where these options sit in what the user wrote (`''` for a single-service client, `clusters.users`, or
 * `discovery.cluster`), and prefixes every error's option name.
 *
 * @throws InvalidOptionError naming the first bad option by its full path.
 */
export function resolveClusterOptions(options: ClusterOptions, path = ''): ResolvedClusterOptions {
  const resolved = readOptions(path || 'options', () => readClusterOptions(options, path));
  resolvedOptions.add(resolved);
  return resolved;
}

function readClusterOptions(raw: ClusterOptions, path: string): ResolvedClusterOptions {
  if (!isRecord(raw)) throw new InvalidOptionError(path || 'options', `expected an object, got ${describe(raw)}`);
  // Read once, here: everything below validates and keeps this snapshot, never the user's object again.
  const options = checkObject(raw, CLUSTER_KEYS, path) as unknown as ClusterOptions;
  const clock = readClock(options.clock, joinPath(path, 'clock'), systemClock);
  const random = options.random ?? systemRandom;
  if (typeof random !== 'function') {
    throw new InvalidOptionError(joinPath(path, 'random'), 'expected a function returning [0, 1)');
  }
  const target = readTarget(options.target, path);
  const pickers = options.pickers ?? createPickerRegistry();
  if (typeof pickers !== 'object' || pickers === null || typeof pickers.configure !== 'function') {
    throw new InvalidOptionError(
      joinPath(path, 'pickers'),
      `expected a PickerRegistry (createPickerRegistry()), got ${describe(options.pickers)}`,
    );
  }
  const resolvers: unknown = options.resolvers;
  if (
    resolvers !== undefined &&
    (typeof resolvers !== 'object' ||
      resolvers === null ||
      typeof (resolvers as ResolverRegistry).create !== 'function')
  ) {
    throw new InvalidOptionError(
      joinPath(path, 'resolvers'),
      `expected a ResolverRegistry (createResolverRegistry()), got ${describe(resolvers)}`,
    );
  }
  const host = options.host;
  if (host !== undefined && host !== false && typeof host !== 'string') {
    throw new InvalidOptionError(
      joinPath(path, 'host'),
      `expected a Host header value or false, got ${describe(host)}`,
    );
  }
  if (host !== undefined && host !== false) hostHeader(host, joinPath(path, 'host'));
  const endpointHeader = headerName(options.endpointHeader, joinPath(path, 'endpointHeader'));
  const tls = resolveTls(options.tls, path);
  const pool = validatePoolOptions(
    options.pool ?? {},
    joinPath(path, 'pool'),
    tls && { passphrase: tls.passphrase, passphraseAt: joinPath(joinPath(path, 'tls'), 'passphrase') },
  );
  passphraseWithKey(tls, pool, path);
  // The health families are validated here, so that a template is checked without building anything and errors
  // carry the full path; the cluster builds its health from the result.
  const health = resolveHealthOptions(options, path);
  return {
    protocol: tls === undefined ? 'http:' : 'https:',
    servername: tls?.servername,
    tls,
    policy: pickers.configure(options.picker ?? 'round-robin', joinPath(path, 'picker')),
    host,
    endpointHeader: endpointHeader === undefined ? undefined : Buffer.from(endpointHeader.toLowerCase(), 'latin1'),
    waitForReadyTimeoutMs: duration(
      options.waitForReadyTimeoutMs,
      joinPath(path, 'waitForReadyTimeoutMs'),
      10_000,
      true,
      MAX_TIMER_MS,
    ),
    drainTimeoutMs: duration(options.drainTimeoutMs, joinPath(path, 'drainTimeoutMs'), 30_000, true, MAX_TIMER_MS),
    poolOptions: (tls === undefined
      ? pool
      : { ...pool, connect: { ...(pool.connect as object), ...tls } }) as Pool.Options,
    http2: resolveHttp2(options.http2, pool, path),
    connectBackoff: resolveBackoffOptions(options.connectBackoff, joinPath(path, 'connectBackoff')),
    zoneAware: resolveZoneAware(options.zoneAware, path),
    request: resolveRequestPolicy(options, path),
    health,
    target,
    resolvers: resolvers as ResolverRegistry | undefined,
    clock,
    random,
  };
}
