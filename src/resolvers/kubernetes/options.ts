/**
 * Options of the Kubernetes resolver: their types, their validation (through the options toolkit,
 * common/options.ts) and their reading from a `kubernetes:` target.
 *
 * @module
 */
import type { ResolvedBackoffOptions } from '../../common/backoff.js';
import { InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import {
  describe,
  duration,
  durationSum,
  integer,
  isObject,
  isRecord,
  joinPath,
  MAX_TIMER_MS,
  readOptions,
  rejectUnknownKeys,
  string,
} from '../../common/options.js';
import type { Clock, RandomSource } from '../../common/runtime.js';
import {
  type RemoteResolverOptions,
  resolveRemoteResolverOptions,
  resolveResolverTls,
  type ResolverTlsOptions,
} from '../options.js';
import type { Target } from '../resolver.js';
import { redactTarget, unknownParameter } from '../target.js';
import { filePath, headerValue } from '../../common/wire-options.js';
import { type ApiServerConfig, resolveApiServer } from './credentials.js';
import type { PortSpec } from './parse.js';

/**
 * TLS settings of the API server connection; they override what the pod or the kubeconfig provides.
 * @deprecated use {@link ResolverTlsOptions} (the same fields).
 * @category Resolvers
 */
export type KubernetesTlsOptions = ResolverTlsOptions;

/** Options of {@link KubernetesResolver}. */
export interface KubernetesResolverOptions extends RemoteResolverOptions {
  /** The Service whose EndpointSlices are watched (label `kubernetes.io/service-name`). */
  readonly service: string;
  /**
   * The Service's namespace.
   * @defaultValue the pod's own (the service account's namespace file), else the kubeconfig context's, else `default`
   */
  readonly namespace?: string | undefined;
  /**
   * The port: a name (`"http"`), resolved in each slice separately (two slices may map a name to different numbers),
   * or a number, used as is on every endpoint. When omitted, each slice's only port (a slice with several is skipped).
   * @defaultValue the slice's only port
   */
  readonly port?: string | number | undefined;
  /**
   * The zone this process runs in (the node's `topology.kubernetes.io/zone` label, e.g. passed in through the
   * downward API or an environment variable). With it, `hints.forZones` (topology-aware routing) is honoured. For
   * zone-aware routing give the client the same zone (`zoneAware: { localZone }`): every endpoint carries its
   * slice's `zone`. @defaultValue unknown (hints are ignored)
   */
  readonly zone?: string | undefined;
  /** The API server, `https://host:port`. @defaultValue from the pod's environment, else the kubeconfig */
  readonly apiServer?: string | undefined;
  /** A bearer token. Never logged or put in an error message. @defaultValue read from `tokenFile` */
  readonly token?: string | undefined;
  /**
   * A file holding the bearer token, read again before every list and watch (the kubelet rotates it).
   * @defaultValue `/var/run/secrets/kubernetes.io/serviceaccount/token` in a pod; the kubeconfig's otherwise
   */
  readonly tokenFile?: string | undefined;
  /** The CA file of the API server. @defaultValue `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt` in a pod */
  readonly caFile?: string | undefined;
  /** The pod's namespace file. @defaultValue `/var/run/secrets/kubernetes.io/serviceaccount/namespace` */
  readonly namespaceFile?: string | undefined;
  /** The kubeconfig read outside a pod. @defaultValue the first file of `$KUBECONFIG`, else `~/.kube/config` */
  readonly kubeconfig?: string | undefined;
  /** The kubeconfig context. @defaultValue its `current-context` */
  readonly context?: string | undefined;
  /**
   * TLS settings, each field overriding the pod's or the kubeconfig's: by default the CA is the service account's
   * `ca.crt` or the kubeconfig's, the client certificate and key the kubeconfig user's (if any), verification is on
   * unless the kubeconfig says `insecure-skip-tls-verify`, and the certificate is checked against the API server's
   * host (or the kubeconfig's `tls-server-name`).
   */
  readonly tls?: ResolverTlsOptions | undefined;
  /** Environment read for `KUBERNETES_SERVICE_HOST`/`_PORT`, `KUBECONFIG` and `HOME`. @defaultValue process.env */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * Timeout of a list request (body included) and of a watch's response headers, whole ms; with `watchTimeoutMs`
   * at most 2147483647 (the longest timer) in all. @defaultValue 10000
   */
  readonly requestTimeoutMs?: number | undefined;
  /**
   * How long the API server keeps one watch open before ending it (sent as `timeoutSeconds`, rounded up to whole
   * seconds), ms; the resolver then resumes from the last resourceVersion. A watch on which nothing arrives for this
   * long plus `requestTimeoutMs` is presumed dead and aborted (`timeout`). @defaultValue 300000 (5 minutes)
   */
  readonly watchTimeoutMs?: number | undefined;
  /**
   * Minimum time between the starts of two list-and-watch cycles (the hot-loop guard), ms. A cycle is a list, when
   * one is needed, and the watch sent right after it; a watch that the server ends or expires (410) early is
   * resumed after a backoff of its own (the `backoff` settings, reset by a watch that lasts half `watchTimeoutMs`).
   * @defaultValue 1000
   */
  readonly minRelistIntervalMs?: number | undefined;
  /** Minimum time between two `refresh()`-triggered restarts of the watch, ms. @defaultValue 5000 */
  readonly refreshIntervalMs?: number | undefined;
  /** Largest list answer (each page) or watch event accepted, bytes. @defaultValue 16777216 */
  readonly maxResponseBytes?: number | undefined;
  /**
   * Items per list page (`limit`; the rest follows with `continue`). A list takes at most max(1,000,
   * `maxEndpoints / pageSize`) pages: past that (a server that never stops paging) it fails with a `bad-response`.
   * @defaultValue 500
   */
  readonly pageSize?: number | undefined;
}

const OPTION_KEYS = [
  'service',
  'namespace',
  'port',
  'zone',
  'apiServer',
  'token',
  'tokenFile',
  'caFile',
  'namespaceFile',
  'kubeconfig',
  'context',
  'tls',
  'env',
  'requestTimeoutMs',
  'watchTimeoutMs',
  'minRelistIntervalMs',
  'refreshIntervalMs',
  'maxResponseBytes',
  'pageSize',
  'backoff',
  'clock',
  'random',
  'maxEndpoints',
] as const;

/** A DNS-1123 label (namespaces, Service names, port names). */
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Validated {@link KubernetesResolverOptions}. @internal */
export interface ResolvedKubernetesOptions {
  readonly service: string;
  readonly namespace: string;
  readonly port: PortSpec;
  readonly zone: string | undefined;
  readonly server: ApiServerConfig;
  readonly requestTimeoutMs: number;
  readonly watchTimeoutMs: number;
  readonly minRelistIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly maxResponseBytes: number;
  readonly pageSize: number;
  readonly backoff: ResolvedBackoffOptions;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** The most endpoints held from the registry. */
  readonly maxEndpoints: number;
}

/** The options naming a file, read at construction or (the token file) before every request. */
const FILES: ReadonlySet<string> = new Set(['tokenFile', 'caFile', 'namespaceFile', 'kubeconfig']);

/** The variables credentials.ts reads from `env`. */
const ENV_KEYS = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBECONFIG', 'HOME'] as const;

/**
 * The `env` option's variables, each read once here, so that a getter (or `Proxy` trap) that throws, or a value that
 * is not a string, is reported under its own path (`env.KUBECONFIG`) rather than as the whole options object.
 */
function readEnv(raw: unknown, name: string): Readonly<Record<string, string | undefined>> {
  if (raw === undefined) return process.env;
  // Any object: `process.env` (the default, and a natural value to pass) is not a plain one.
  if (!isObject(raw)) throw new InvalidOptionError(name, `expected an object, got ${describe(raw)}`);
  const env: Record<string, string | undefined> = {};
  for (const key of ENV_KEYS) {
    const at = joinPath(name, key);
    const value = readOptions(at, () => raw[key]);
    if (value !== undefined && typeof value !== 'string') {
      throw new InvalidOptionError(at, `expected a string, got ${describe(value)}`);
    }
    env[key] = value;
  }
  return env;
}

function validPort(value: unknown, name: string): PortSpec {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return integer(value, name, 0, 1, 65535);
  return string(value, name, undefined, LABEL, 'a port name (a DNS label such as "http") or a number');
}

/**
 * Validates {@link KubernetesResolverOptions} and reads the credentials (files included: see `credentials.ts`).
 * Throws {@link InvalidOptionError} naming the option. @internal
 */
export function resolveKubernetesOptions(options: KubernetesResolverOptions, path = ''): ResolvedKubernetesOptions {
  return readOptions(path || 'options', () => resolveKubernetesOptionsUnguarded(options, path));
}

function resolveKubernetesOptionsUnguarded(options: KubernetesResolverOptions, path = ''): ResolvedKubernetesOptions {
  if (!isRecord(options)) throw new InvalidOptionError(path || 'options', 'expected an object with at least `service`');
  rejectUnknownKeys(options, path, OPTION_KEYS);
  const o = options as Record<string, unknown>;
  const at = (key: string) => joinPath(path, key);
  const service = string(o.service, at('service'), undefined, LABEL, 'a Service name (a DNS label)');
  if (service === undefined) throw new InvalidOptionError(at('service'), 'required: the Service name');
  const namespace = string(o.namespace, at('namespace'), undefined, LABEL, 'a namespace name (a DNS label)');
  const port = validPort(o.port, at('port'));
  const zone = string(o.zone, at('zone'), undefined);
  const texts = ['apiServer', 'token', 'tokenFile', 'caFile', 'namespaceFile', 'kubeconfig', 'context'] as const;
  const text: Partial<Record<(typeof texts)[number], string>> = {};
  for (const key of texts) {
    const value = FILES.has(key) ? filePath(o[key], at(key)) : string(o[key], at(key), undefined);
    if (value !== undefined) text[key] = value;
  }
  // Sent as a header: text undici refuses would fail every request, reported as a connection failure.
  headerValue(text.token, at('token'), true);
  const tls = resolveResolverTls(o.tls, at('tls'), true); // a passphrase may be for the kubeconfig's key
  const env = readEnv(o.env, at('env'));
  // Whole ms: undici (headersTimeout, 1 s above it) refuses a fraction when the connection is built.
  const requestTimeoutMs = duration(
    o.requestTimeoutMs,
    at('requestTimeoutMs'),
    10_000,
    false,
    MAX_TIMER_MS - 1000,
    true,
  );
  const watchTimeoutMs = duration(o.watchTimeoutMs, at('watchTimeoutMs'), 300_000);
  // A watch silent for this long is presumed dead (resolver.ts): one timer, which must not overflow.
  durationSum(watchTimeoutMs + requestTimeoutMs, at('requestTimeoutMs'), 'watchTimeoutMs + requestTimeoutMs');
  const minRelistIntervalMs = duration(o.minRelistIntervalMs, at('minRelistIntervalMs'), 1000, true);
  const refreshIntervalMs = duration(o.refreshIntervalMs, at('refreshIntervalMs'), 5000, true);
  const maxResponseBytes = integer(o.maxResponseBytes, at('maxResponseBytes'), 16 * 1024 * 1024, 1);
  const pageSize = integer(o.pageSize, at('pageSize'), 500, 1);
  const remote = resolveRemoteResolverOptions(options, path);
  const server = resolveApiServer({
    apiServer: text.apiServer,
    token: text.token,
    tokenFile: text.tokenFile,
    caFile: text.caFile,
    namespaceFile: text.namespaceFile,
    kubeconfig: text.kubeconfig,
    context: text.context,
    tls,
    env,
  });
  return {
    service,
    namespace: namespace ?? server.namespace ?? 'default',
    port,
    zone,
    server,
    requestTimeoutMs,
    watchTimeoutMs,
    minRelistIntervalMs,
    refreshIntervalMs,
    maxResponseBytes,
    pageSize,
    ...remote,
  };
}

/**
 * Reads a `kubernetes:` target: `kubernetes:///service[.namespace][:port]`, e.g. `kubernetes:///users.shop:http`
 * (Service `users` in namespace `shop`, port named `http`) or `kubernetes:///users:8080`. The only query parameter
 * is `zone` (the caller's zone, see {@link KubernetesResolverOptions.zone}). The API server and credentials come from
 * the pod or the kubeconfig, never from the target.
 */
export function kubernetesOptionsFromTarget(target: Target): KubernetesResolverOptions {
  const raw = redactTarget(target.raw, new Set(['zone']));
  if (target.authority !== '') {
    throw new InvalidTargetError(raw, 'expected kubernetes:///service.namespace:port (three slashes: no authority)');
  }
  for (const key of target.query.keys()) {
    if (key !== 'zone') throw new InvalidTargetError(raw, unknownParameter(target.query, key));
  }
  const match = /^([^.:/]+)(?:\.([^.:/]+))?(?:\.svc(?:\.[^:/]+)?)?(?::([^:/]+))?$/.exec(target.path);
  if (match === null) throw new InvalidTargetError(raw, 'expected kubernetes:///service[.namespace][:port]');
  const [, service, namespace, port] = match as unknown as [string, string, string | undefined, string | undefined];
  const zone = target.query.get('zone');
  return {
    service,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(port !== undefined ? { port: /^\d+$/.test(port) ? Number(port) : port } : {}),
    ...(zone !== null ? { zone } : {}),
  };
}
