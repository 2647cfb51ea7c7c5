/**
 * The client's options: their types, the keys each shape takes, and {@link normalizeClientOptions}, which validates
 * them and turns both shapes into one: a single-service client is a client of one cluster that takes every request
 * (no route table, discovery or passthrough). The client then has one construction path for both.
 *
 * Every error names the option by its full path (docs/ARCHITECTURE.md, "Options"): the client validates its own keys
 * here, and passes each cluster's path (`clusters.users`, `discovery.cluster`) down to the cluster, whose validation
 * prefixes every option it checks with it.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { Dispatcher } from 'undici';
import {
  CLUSTER_KEYS,
  type ClusterOptions,
  type ResolvedClusterOptions,
  resolveClusterOptions,
  type TargetOption,
} from '../cluster/options.js';
import { parseHostPort } from '../common/endpoint.js';
import { InvalidOptionError } from '../common/errors.js';
import { clusterName, hostPattern } from '../routing/match.js';
import {
  checkObject,
  describe,
  func,
  integer,
  isObject,
  isRecord,
  joinPath,
  MAX_TIMER_MS,
  oneOf,
  string,
  readOptions,
  refuseNulls,
} from '../common/options.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import { systemRandom } from '../common/runtime.js';
import type { PickerRegistry } from '../pickers/picker.js';
import type { ResolverRegistry } from '../resolvers/registry.js';
import { parseTarget } from '../resolvers/target.js';
import type { RouteConfig } from '../routing/router.js';

/**
 * What `client.fetch` does with redirects (fetch's own `redirect: 'follow' | 'manual' | 'error'` still applies per
 * call). @category Options
 */
export interface RedirectOptions {
  /**
   * A redirect to another origin than the request's: `'follow'` it as fetch does (the request, a 307/308's body and
   * custom headers such as `x-api-key` included, go to that host), or `'refuse'` it: nothing is sent there and the
   * call rejects with `SIDECARLESS_REDIRECT_REFUSED` (`err.location`; through fetch, the `cause` of its
   * `TypeError`). @defaultValue 'follow'
   */
  readonly crossOrigin?: 'follow' | 'refuse' | undefined;
}

/** One service: the options of its single cluster, plus a name. */
export interface SingleServiceOptions extends ClusterOptions {
  /**
   * A name for the service, used in errors, stats and logs. A host name is kept as request hosts compare (case and a
   * trailing dot ignored, a Unicode name as its punycode), as a cluster name is; any other name as written.
   * @defaultValue the service the target names (the host of `dns:`, the SRV name of `srv:`, the service of `consul:`,
   * the key prefix of `etcd:`; `scheme:authority` for other schemes), or `'default'` for resolver objects and lists
   */
  readonly name?: string | undefined;
  /** Redirects `client.fetch` follows; see {@link RedirectOptions}. */
  readonly redirect?: RedirectOptions | undefined;
}

/** Lazily created clusters for hosts under a discovery domain (transparent mode). */
export interface DiscoveryOptions {
  /**
   * Hosts ending in `.<domain>` (e.g. `users.service.consul` for `service.consul`) get a cluster of their own on
   * first use. A domain name, case-insensitive, a Unicode one taken as its punycode (as request hosts are); one with a
   * `*.` (it already covers every host under it), a port, a scheme or a path, or an IP literal, is refused
   * (`SIDECARLESS_INVALID_OPTION`).
   */
  readonly domain: string;
  /**
   * The target for a host's cluster. A {@link Resolver} object it returns must be new to the library: one another
   * cluster has taken (the same object returned for two hosts) is refused, and the request for the host fails with
   * `SIDECARLESS_INVALID_OPTION` naming `discovery.target`. @defaultValue `(host) => 'srv:///' + host` (SRV records
   * under the name, as Consul's DNS interface serves them)
   */
  readonly target?: ((host: string) => ClusterOptions['target']) | undefined;
  /** Options for every discovered cluster (everything but `target`). */
  readonly cluster?: Omit<ClusterOptions, 'target'> | undefined;
  /** Discovered clusters kept at once; the least recently used is closed beyond it. @defaultValue 100 */
  readonly maxClusters?: number | undefined;
  /** A discovered cluster unused this long is closed, ms. @defaultValue 300000 */
  readonly idleTimeoutMs?: number | undefined;
}

/** Several services behind one client, with a route table. */
export interface MultiServiceOptions {
  /**
   * The clusters, by name. A request whose host equals a cluster's name goes there when no route matches. Names
   * compare as request hosts do (case and a trailing dot ignored, a Unicode name as its punycode, which stats report);
   * two names of one host (`users` and `users.`) are refused. May be empty or omitted when `discovery` is set (a
   * transparent client whose clusters are all discovered).
   */
  readonly clusters?: Readonly<Record<string, ClusterOptions>> | undefined;
  /** Route rules, first match wins; validated at construction and by {@link Client.setRoutes}. */
  readonly routes?: readonly RouteConfig[] | undefined;
  /** Lazily created clusters for hosts under a discovery domain. */
  readonly discovery?: DiscoveryOptions | undefined;
  /**
   * What to do with a request no route, cluster or discovery domain claims: `true` sends it as a plain request
   * (through an undici `Agent` the client owns), a `Dispatcher` sends it through that one, `false` fails it with
   * `SIDECARLESS_NO_ROUTE`. @defaultValue false
   */
  readonly passthrough?: boolean | Dispatcher | undefined;
  /** HTTP/2 to the endpoints of every cluster that does not set its own `http2` (see {@link ClusterOptions.http2}). */
  readonly http2?: ClusterOptions['http2'];
  /** Defaults for every cluster that does not set its own. */
  readonly resolvers?: ResolverRegistry | undefined;
  /** Defaults for every cluster that does not set its own. */
  readonly pickers?: PickerRegistry | undefined;
  /** Defaults for every cluster that does not set its own. */
  readonly clock?: Clock | undefined;
  /** Defaults for every cluster, and the random source of weighted splits and mirroring. */
  readonly random?: RandomSource | undefined;
  /** Redirects `client.fetch` follows; see {@link RedirectOptions}. */
  readonly redirect?: RedirectOptions | undefined;
}

/**
 * Options of {@link createClient}: one service (`target`), or several (`clusters` and/or `discovery`). Each shape
 * takes the other's own keys only as `undefined`, as `createClient` does: `{ target, discovery }`, or a cluster
 * option such as `timeoutMs` at the top level of a multi-service client (give it per cluster, or in
 * `discovery.cluster`), fails the type check as it fails at run time.
 */
export type ClientOptions =
  | (SingleServiceOptions & {
      readonly [K in Exclude<keyof MultiServiceOptions, keyof SingleServiceOptions>]?: undefined;
    })
  | (MultiServiceOptions & {
      readonly [K in Exclude<keyof SingleServiceOptions, keyof MultiServiceOptions>]?: undefined;
    });

// The option keys of each shape. `satisfies` checks the lists against the option types both ways (a cluster's in
// cluster/options.ts): a key the lists miss fails the typecheck, and anything else a caller passes is refused.
export { CLUSTER_KEYS };
/** The keys of a discovery template (`discovery.cluster`): a cluster's, but the target. */
export const DISCOVERY_TEMPLATE_KEYS: readonly string[] = CLUSTER_KEYS.filter((key) => key !== 'target');
/** The keys of a single-service client. */
export const SINGLE_SERVICE_KEYS: readonly string[] = [
  ...CLUSTER_KEYS,
  ...Object.keys({ name: true, redirect: true } satisfies Record<
    Exclude<keyof SingleServiceOptions, keyof ClusterOptions>,
    true
  >),
];
/** The keys of a multi-service client. */
export const MULTI_SERVICE_KEYS: readonly string[] = Object.keys({
  clusters: true,
  routes: true,
  discovery: true,
  passthrough: true,
  http2: true,
  resolvers: true,
  pickers: true,
  clock: true,
  random: true,
  redirect: true,
} satisfies Record<keyof MultiServiceOptions, true>);
/** The keys of `discovery`. */
export const DISCOVERY_KEYS: readonly string[] = Object.keys({
  domain: true,
  target: true,
  cluster: true,
  maxClusters: true,
  idleTimeoutMs: true,
} satisfies Record<keyof DiscoveryOptions, true>);

/** One cluster to build: its name, its options (client defaults applied) and where they sit in the options. */
export interface ClusterSpec {
  readonly name: string;
  readonly options: ClusterOptions;
  /** The option path of `options`, prefixing every error the cluster raises: `''` or `clusters.<name>`. */
  readonly path: string;
}

/** `discovery` after validation. */
export interface ResolvedDiscoveryOptions {
  /** `.<domain>`, lower case: a host ending in it (and longer) is discovered. */
  readonly suffix: string;
  /** The target of a host's cluster. */
  readonly target: (host: string) => TargetOption;
  /**
   * The options of every discovered cluster, client defaults applied, validated once (with an empty target):
   * each discovered cluster gets these with its own target ({@link withTarget}), nothing read again.
   */
  readonly template: ResolvedClusterOptions;
  readonly maxClusters: number;
  readonly idleTimeoutMs: number;
}

/** Both client shapes as one. */
export interface NormalizedClientOptions {
  /** The configured clusters, in order. */
  readonly clusters: readonly ClusterSpec[];
  /**
   * The cluster that takes every request, unrouted, when set (a single-service client: the URL's authority is only
   * the service's logical name). A client with one has no route table, discovery or passthrough.
   */
  readonly catchAll: string | undefined;
  readonly routes: readonly RouteConfig[];
  readonly discovery: ResolvedDiscoveryOptions | undefined;
  /** `true` for a plain undici Agent the client owns, a Dispatcher to use, or `false`. */
  readonly passthrough: boolean | Dispatcher;
  /** The random source of weighted splits and mirroring. */
  readonly random: RandomSource;
  /** `redirect.crossOrigin: 'refuse'`: `client.fetch` refuses redirects to another origin. */
  readonly refuseCrossOriginRedirects: boolean;
}

function refuseCrossOrigin(raw: unknown): boolean {
  const r = checkObject(raw ?? {}, ['crossOrigin'], 'redirect');
  return oneOf(r.crossOrigin, 'redirect.crossOrigin', 'follow', ['follow', 'refuse'] as const) === 'refuse';
}

/** The client-wide defaults a cluster inherits unless it sets its own. */
type ClusterDefaults = Pick<MultiServiceOptions, 'http2' | 'resolvers' | 'pickers' | 'clock' | 'random'>;

function withDefaults<T extends Omit<ClusterOptions, 'target'>>(options: T, defaults: ClusterDefaults): T {
  return {
    ...options,
    http2: options.http2 ?? defaults.http2,
    resolvers: options.resolvers ?? defaults.resolvers,
    pickers: options.pickers ?? defaults.pickers,
    clock: options.clock ?? defaults.clock,
    random: options.random ?? defaults.random,
  };
}

/**
 * A single-service client's name when none is given: the service the target names, not the registry's address (so
 * two services on one registry are told apart in errors, stats and logs): the host of `dns:`, the SRV name of
 * `srv:`, the service of `consul:`, the key prefix of `etcd:`; `scheme:rest` for other schemes.
 */
function defaultName(target: unknown): string {
  if (typeof target !== 'string') return 'default';
  try {
    const t = parseTarget(target);
    return (serviceOf(t.scheme, t.path) ?? `${t.scheme}:${t.authority || t.path}`).slice(0, 200);
  } catch {
    return 'default';
  }
}

function serviceOf(scheme: string, path: string): string | undefined {
  if (path.length === 0) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  switch (scheme) {
    case 'dns':
      return dnsHostOf(decoded);
    case 'srv':
    case 'consul':
      return decoded;
    case 'etcd':
      return `/${decoded}`;
    default:
      return undefined;
  }
}

/**
 * The host of a `dns:` path (`host[:port]`) as a URL writes it, so that a request to the name reaches the cluster:
 * an IPv6 literal in brackets, in canonical form (`::1`, `[::1]:8080` and `0:0::1` are all `[::1]`).
 */
function dnsHostOf(path: string): string | undefined {
  try {
    const host = parseHostPort(path, 80).host;
    return isIP(host) === 6 ? new URL(`http://[${host}]/`).hostname : host;
  } catch {
    return undefined;
  }
}

/**
 * The keys of the other shape that `raw` sets to `undefined`: absent, as an `undefined` option is everywhere else
 * (spreading a configuration gives `{ target, clusters: config.clusters }`), rather than refused as unknown options.
 * A key whose read throws is left out, to be reported by the checks.
 */
function undefinedOf(raw: Record<string, unknown>, keys: readonly string[], allowed: readonly string[]): string[] {
  return keys.filter((key) => {
    if (allowed.includes(key) || !Object.hasOwn(raw, key)) return false;
    try {
      return raw[key] === undefined;
    } catch {
      return false;
    }
  });
}

/**
 * A single-service client's name: a host name is normalized as a cluster name is ({@link clusterName}), so that
 * `users.internal.` (the default name of `dns:///users.internal.:8080`) and `bücher` are the hosts
 * `users.internal` and `xn--bcher-kva` that `globalDispatcher()` balances, in both client shapes. Any other name
 * (an etcd key prefix, `static:...`) names no host and is kept as written: it is only shown, and a key prefix is
 * case-sensitive.
 */
function singleName(given: string): string {
  if (given.startsWith('*')) return given;
  try {
    return hostPattern(given, 'name');
  } catch {
    return given;
  }
}

function normalizeSingle(raw: Record<string, unknown>): NormalizedClientOptions {
  const absent = undefinedOf(raw, MULTI_SERVICE_KEYS, SINGLE_SERVICE_KEYS);
  if (raw.target === undefined) {
    // `{ passthrough: true }` or `{ routes }` is a multi-service client missing its clusters, not one with an
    // unknown option: say what is missing.
    const multiKey = MULTI_SERVICE_KEYS.find(
      (key) => !SINGLE_SERVICE_KEYS.includes(key) && Object.hasOwn(raw, key) && !absent.includes(key),
    );
    if (multiKey !== undefined) {
      throw new InvalidOptionError(
        'clusters',
        `is required with \`${multiKey}\` (or \`discovery\`): a multi-service client needs clusters or a discovery domain (for one service, give \`target\`)`,
      );
    }
  }
  const options = checkObject(raw, [...SINGLE_SERVICE_KEYS, ...absent], '');
  if (options.target === undefined) {
    throw new InvalidOptionError('target', 'is required (or `clusters` or `discovery` for several services)');
  }
  const { name: rawName, redirect, ...cluster } = options as unknown as SingleServiceOptions;
  const name = singleName(string(rawName, 'name', defaultName(cluster.target)));
  return {
    clusters: [{ name, options: cluster, path: '' }],
    catchAll: name,
    routes: [],
    discovery: undefined,
    passthrough: false,
    random: cluster.random ?? systemRandom,
    refuseCrossOriginRedirects: refuseCrossOrigin(redirect),
  };
}

function normalizeDiscovery(raw: unknown, defaults: ClusterDefaults): ResolvedDiscoveryOptions | undefined {
  if (raw === undefined) return undefined;
  const options = checkObject(raw, DISCOVERY_KEYS, 'discovery') as unknown as DiscoveryOptions;
  if (typeof options.domain !== 'string') {
    throw new InvalidOptionError(
      'discovery.domain',
      `expected a domain such as "service.consul", got ${describe(options.domain)}`,
    );
  }
  // As route host patterns are checked and compared (punycode, lower case): a domain no request host can end in
  // (a port, a path, a `*.`) would discover nothing, every request failing at run time.
  const domain = hostPattern(options.domain.replace(/^\.+|\.+$/g, ''), 'discovery.domain', true);
  const target = func<(host: string) => TargetOption>(options.target, 'discovery.target');
  const maxClusters = integer(options.maxClusters, 'discovery.maxClusters', 100, 1);
  const idleTimeoutMs = integer(options.idleTimeoutMs, 'discovery.idleTimeoutMs', 300_000, 1, MAX_TIMER_MS);
  const path = 'discovery.cluster';
  const template = withDefaults(
    options.cluster === undefined ? {} : (checkObject(options.cluster, DISCOVERY_TEMPLATE_KEYS, path) as object),
    defaults,
  );
  // Validated once, with a placeholder target, so a bad option fails here; nothing is built.
  const resolved = resolveClusterOptions({ ...template, target: [] }, path);
  return {
    suffix: `.${domain}`,
    target: target ?? ((host) => `srv:///${host}`),
    template: resolved,
    maxClusters,
    idleTimeoutMs,
  };
}

function normalizeMulti(options: Record<string, unknown>): NormalizedClientOptions {
  if (options.target !== undefined) {
    // Named after what the caller gave with it.
    const other = options.clusters !== undefined ? 'clusters' : 'discovery';
    throw new InvalidOptionError('target', `give either \`target\` (one service) or \`${other}\`, not both`);
  }
  const configured = options.clusters ?? {};
  if (!isRecord(configured) || (Object.keys(configured).length === 0 && options.discovery === undefined)) {
    throw new InvalidOptionError('clusters', 'expected an object with at least one cluster (or `discovery`)');
  }
  const absent = undefinedOf(options, SINGLE_SERVICE_KEYS, MULTI_SERVICE_KEYS);
  const m = checkObject(options, [...MULTI_SERVICE_KEYS, ...absent], '') as MultiServiceOptions;
  const defaults: ClusterDefaults = {
    http2: m.http2,
    resolvers: m.resolvers,
    pickers: m.pickers,
    clock: m.clock,
    random: m.random,
  };
  const clusters: ClusterSpec[] = [];
  const written = new Map<string, string>();
  for (const [key, raw] of Object.entries(configured)) {
    if (key.length === 0) throw new InvalidOptionError('clusters', 'cluster names must be non-empty');
    const path = joinPath('clusters', key);
    // As the hosts requests are routed by: `Users.` and `bücher` are reached by `http://users/` and
    // `http://bücher/` (whose hosts are `users` and `xn--bcher-kva`), so two names that normalize alike are one host.
    const name = clusterName(key);
    const other = written.get(name);
    if (other !== undefined) {
      throw new InvalidOptionError(
        path,
        `cluster names compare as hosts do (case, a trailing dot, Unicode as punycode): ${JSON.stringify(key)} and ${JSON.stringify(other)} name the same cluster`,
      );
    }
    written.set(name, key);
    const cluster = checkObject(raw, CLUSTER_KEYS, path) as unknown as ClusterOptions;
    clusters.push({ name, options: withDefaults(cluster, defaults), path });
  }
  const discovery = normalizeDiscovery(m.discovery, defaults);
  const passthrough = m.passthrough ?? false;
  if (typeof passthrough !== 'boolean' && (!isObject(passthrough) || typeof passthrough.dispatch !== 'function')) {
    throw new InvalidOptionError(
      'passthrough',
      `expected true, false or an undici Dispatcher, got ${describe(passthrough)}`,
    );
  }
  return {
    clusters,
    catchAll: undefined,
    routes: m.routes ?? [],
    discovery,
    passthrough,
    random: m.random ?? systemRandom,
    refuseCrossOriginRedirects: refuseCrossOrigin(m.redirect),
  };
}

/**
 * Validates a client's own options (the clusters' are validated when each is built, under its path) and returns
 * both shapes as one: a single-service client is one cluster that takes every request.
 *
 * @throws InvalidOptionError naming the first bad option by its full path.
 */
export function normalizeClientOptions(options: unknown): NormalizedClientOptions {
  if (!isRecord(options)) {
    throw new InvalidOptionError(
      'options',
      `expected an object with \`target\` or \`clusters\`, got ${describe(options)}`,
    );
  }
  return readOptions('options', () => {
    refuseNulls(options, '');
    const multi = options.clusters !== undefined || options.discovery !== undefined;
    return multi ? normalizeMulti(options) : normalizeSingle(options);
  });
}
