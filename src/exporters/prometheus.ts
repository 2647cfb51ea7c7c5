/**
 * Prometheus metrics for a sidecarless client, through `prom-client` (an optional peer dependency: this entry point,
 * `sidecarless/prometheus`, is the only one that imports it).
 *
 * The metrics are prom-client's own `Counter`, `Gauge` and `Histogram` objects, created once per registry (and
 * prefix) and shared by every client registered there: each client adds its series, told apart by the `client`
 * label. Counters and gauges are filled from `client.stats()` by their `collect()` callbacks when the registry is
 * read; the two histograms observe request and attempt durations as they end (from the `sidecarless:request:end` and
 * `sidecarless:attempt:end` diagnostics channels), from registration on. Durations are in seconds. Every registry
 * operation works on them: `metrics()` in the Prometheus text and OpenMetrics formats, `getMetricsAsJSON()`,
 * `resetMetrics()`, `removeSingleMetric()`, `clear()`.
 *
 * Label names avoid those Prometheus and the Prometheus Operator attach when scraping (`job`, `instance`,
 * `namespace`, `pod`, `service`, `endpoint`, `container`, `cluster`), which would rename ours to `exported_*`:
 * `client`, `upstream_cluster`, `upstream_endpoint`.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { createClient } from 'sidecarless';
 * import { registerPrometheusMetrics } from 'sidecarless/prometheus';
 *
 * const users = createClient({ target: 'srv:///_http._tcp.users', name: 'users' });
 * const registry = new Registry();
 * registerPrometheusMetrics(users, { registry, client: 'users' });
 * // GET /metrics: res.end(await registry.metrics())
 * ```
 *
 * @module sidecarless/prometheus
 */
import diagnostics from 'node:diagnostics_channel';
import { Counter, register as defaultRegistry, Gauge, Histogram, type Metric } from 'prom-client';
import type { Client, ClientStats } from '../client/client.js';
import { InvalidOptionError } from '../common/errors.js';
import { boolean, checkObject, describe, integer, isRecord, readOptions, string } from '../common/options.js';
import { setAside } from '../common/outcome.js';
import type { AttemptEndMessage, RequestEndMessage } from '../metrics/events.js';
import { LATENCY_BUCKETS_MS } from '../metrics/histogram.js';
import { clusterMembership, CLUSTERS_ONLY } from './membership.js';
import { ClientSeries, shownEndpoints } from './prometheus-histograms.js';
import { CLUSTER_METRICS, type ClusterStats, type Emit, ENDPOINT_METRICS } from './prometheus-series.js';

/**
 * What the exporter uses of a prom-client `Registry`, typed by shape rather than as prom-client's class: a `Registry`
 * of every prom-client version the peer range allows (14, whose class is not generic, and 15, generic in its content
 * type) is one, in either exposition format.
 *
 * @category Observability
 */
export interface PrometheusRegistry {
  /** prom-client's `Registry.registerMetric`. */
  registerMetric(metric: Metric): void;
  /** prom-client's `Registry.getSingleMetric`. */
  getSingleMetric(name: string): Metric | undefined;
  /** prom-client's `Registry.removeSingleMetric`. */
  removeSingleMetric(name: string): void;
}

/** Options of {@link registerPrometheusMetrics}. @category Observability */
export interface PrometheusOptions {
  /**
   * The registry to add the metrics to, in the Prometheus text or the OpenMetrics format.
   * @defaultValue prom-client's global registry
   */
  readonly registry?: PrometheusRegistry;
  /** Prefix of every metric name. @defaultValue 'sidecarless_' */
  readonly prefix?: string;
  /**
   * Value of the `client` label, which tells apart the clients registered on one registry (two clients may not
   * share a value). For constant labels on every series, use prom-client's `registry.setDefaultLabels()`.
   * @defaultValue the cluster's name for a client with exactly one cluster at registration, else `'default'`
   */
  readonly client?: string;
  /**
   * Per-endpoint series (`sidecarless_endpoint_*`, labelled `upstream_endpoint="host:port"`): up to 9 gauges and
   * counters, one counter per status class and error kind seen, and a 17-series latency histogram per endpoint.
   * Endpoint addresses change on every deploy, so they are off by default; series of an endpoint that leaves the
   * set are dropped.
   * @defaultValue false
   */
  readonly endpointMetrics?: boolean;
  /**
   * With `endpointMetrics`, the most endpoints per cluster that get series (the first in resolver order); the
   * others are counted in the cluster's series only.
   * @defaultValue 20
   */
  readonly maxEndpointsPerCluster?: number;
}

/**
 * The registration; `unregister()` removes this client's series. It ends by itself when the client closes.
 * @category Observability
 */
export interface PrometheusRegistration {
  /** Metric names this client's series appear under. */
  readonly names: readonly string[];
  /**
   * Stops reading the client and removes its series; the metric objects leave the registry with the last client
   * registered there. Called by itself when the client has closed (`close()` or `destroy()` finished, before its
   * promise resolves), so a closed client's series never outlive it; calling it again does nothing.
   */
  unregister(): void;
}

const BUCKETS = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);
const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const CLUSTER_LABELS = ['client', 'upstream_cluster'];
const ENDPOINT_LABELS = [...CLUSTER_LABELS, 'upstream_endpoint'];

/** One registered client. */
interface Source {
  readonly label: string;
  readonly client: Client;
  readonly endpointMetrics: boolean;
  readonly maxEndpoints: number;
  /** Histogram series this client observed. */
  readonly series: ClientSeries;
  stats(): ClientStats;
  /** Ends this registration (its `unregister()`). */
  dispose?: (() => void) | undefined;
}

/** The metric objects of one registry and prefix, and the clients that fill them. */
interface Shared {
  /** The metric objects with the names they were registered under (prom-client renames counters in place while it
   * writes OpenMetrics). */
  readonly metrics: { readonly name: string; readonly metric: Metric }[];
  readonly sources: Map<string, Source>;
  requestDuration?: Histogram;
  endpointLatency?: Histogram;
  endpointMetrics: boolean;
}

const registries = new WeakMap<PrometheusRegistry, Map<string, Shared>>();

/** A prom-client counter or gauge whose `collect()` refills it from every source's stats. */
function collected(
  shared: Shared,
  name: string,
  type: 'counter' | 'gauge',
  help: string,
  labelNames: string[],
  fill: (source: Source, emit: Emit) => void,
): { name: string; metric: Metric } {
  const collect = function (this: Counter | Gauge) {
    this.reset();
    for (const source of shared.sources.values()) {
      fill(source, (labels, value) => {
        const all = { client: source.label, ...labels };
        if (this instanceof Counter) this.inc(all, value);
        else this.set(all, value);
      });
    }
  };
  const config = { name, help, labelNames, registers: [], collect };
  const metric = type === 'counter' ? new Counter(config) : new Gauge(config);
  return { name, metric };
}

function histogram(shared: Shared, name: string, help: string, labelNames: string[]): Histogram {
  return new Histogram({
    name,
    help,
    labelNames,
    buckets: BUCKETS,
    registers: [],
    collect() {
      for (const source of shared.sources.values()) source.series.sync();
    },
  });
}

/**
 * Registers `metric` under `name`. prom-client keys its registry by `metric.name`, which it rewrites in place (drops
 * `_total`) while writing OpenMetrics: the name is restored for the call.
 */
function registerAs(registry: PrometheusRegistry, name: string, metric: Metric): void {
  const writable = metric as unknown as { name: string };
  const current = writable.name;
  writable.name = name;
  try {
    registry.registerMetric(metric);
  } finally {
    writable.name = current;
  }
}

function createShared(prefix: string): Shared {
  const shared: Shared = { metrics: [], sources: new Map(), endpointMetrics: false };
  for (const [name, type, help, extra, fill] of CLUSTER_METRICS) {
    const labels = extra === undefined ? CLUSTER_LABELS : [...CLUSTER_LABELS, extra];
    shared.metrics.push(
      collected(shared, `${prefix}${name}`, type, help, labels, (source, emit) => {
        for (const c of source.stats().clusters) {
          fill(c, (l, v) => emit({ upstream_cluster: c.name, ...l }, v));
        }
      }),
    );
  }
  shared.requestDuration = histogram(
    shared,
    `${prefix}request_duration_seconds`,
    'Time to response headers, across attempts and backoffs, from registration on.',
    CLUSTER_LABELS,
  );
  shared.metrics.push({ name: `${prefix}request_duration_seconds`, metric: shared.requestDuration });
  return shared;
}

/** Adds the per-endpoint metric objects, the first time a client on this registry asks for them. */
function addEndpointMetrics(shared: Shared, prefix: string): void {
  if (shared.endpointMetrics) return;
  shared.endpointMetrics = true;
  for (const [name, type, help, extra, fill] of ENDPOINT_METRICS) {
    const labels = extra === undefined ? ENDPOINT_LABELS : [...ENDPOINT_LABELS, extra];
    shared.metrics.push(
      collected(shared, `${prefix}${name}`, type, help, labels, (source, emit) => {
        if (!source.endpointMetrics) return;
        for (const c of source.stats().clusters) {
          for (const e of shownEndpoints(c, source.maxEndpoints)) {
            fill(e, (l, v) => emit({ upstream_cluster: c.name, upstream_endpoint: e.key, ...l }, v));
          }
        }
      }),
    );
  }
  shared.endpointLatency = histogram(
    shared,
    `${prefix}endpoint_latency_seconds`,
    'Attempt latency on the endpoint, to response headers or to the error, from registration on.',
    ENDPOINT_LABELS,
  );
  shared.metrics.push({ name: `${prefix}endpoint_latency_seconds`, metric: shared.endpointLatency });
}

/**
 * Adds the client's series to a prom-client registry. Any number of clients can be registered on one registry, each
 * with its own `client` label value; registering two clients under the same value throws
 * `SIDECARLESS_INVALID_OPTION`. The metric objects are registered once per registry and prefix; a metric of the same
 * name registered there by someone else makes this throw prom-client's error, as prom-client threw it, and leaves the
 * registry as it was (none of the exporter's metrics stay behind).
 *
 * @example
 * ```ts
 * import http from 'node:http';
 * import { Registry } from 'prom-client';
 * import { registerPrometheusMetrics } from 'sidecarless/prometheus';
 *
 * const registry = new Registry();
 * const users = registerPrometheusMetrics(usersClient, { registry, client: 'users' });
 * const orders = registerPrometheusMetrics(ordersClient, { registry, client: 'orders' });
 * http.createServer(async (req, res) => {
 *   if (req.url === '/metrics') {
 *     res.setHeader('content-type', registry.contentType);
 *     res.end(await registry.metrics());
 *   }
 * });
 * // a client's series go when it closes; to remove them earlier: users.unregister();
 * ```
 *
 * @category Observability
 */
export function registerPrometheusMetrics(client: Client, options: PrometheusOptions = {}): PrometheusRegistration {
  // Only reading the options is guarded: prom-client's own errors (a name taken on the registry) reach the caller as
  // they are, as documented above.
  const settings = readOptions('options', () => readSettings(client, options));
  return registerWith(client, settings);
}

/** The options of one registration, read and checked. */
interface Settings {
  readonly registry: PrometheusRegistry;
  readonly prefix: string;
  readonly endpointMetrics: boolean;
  readonly maxEndpoints: number;
  readonly label: string;
}

function readSettings(client: Client, options: PrometheusOptions): Settings {
  if (typeof (client as Partial<Client> | null)?.stats !== 'function') {
    throw new InvalidOptionError('client argument', `expected a sidecarless Client, got ${describe(client)}`);
  }
  const raw = options as Record<string, unknown>;
  if (isRecord(raw) && raw.labels !== undefined) {
    throw new InvalidOptionError(
      'labels',
      'removed: the `client` label tells clients apart; for constant labels use registry.setDefaultLabels()',
    );
  }
  checkObject(raw, ['registry', 'prefix', 'client', 'endpointMetrics', 'maxEndpointsPerCluster'], '');
  const registry: PrometheusRegistry = options.registry ?? defaultRegistry;
  if (
    typeof registry?.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function' ||
    typeof registry.removeSingleMetric !== 'function'
  ) {
    throw new InvalidOptionError('registry', `expected a prom-client Registry, got ${describe(registry)}`);
  }
  const prefix = raw.prefix === '' ? '' : string(raw.prefix, 'prefix', 'sidecarless_', PREFIX, 'a metric name prefix');
  const endpointMetrics = boolean(raw.endpointMetrics, 'endpointMetrics', false);
  const maxEndpoints = integer(raw.maxEndpointsPerCluster, 'maxEndpointsPerCluster', 20, 1);
  const clusters = client.stats(CLUSTERS_ONLY).clusters;
  const fallback = clusters.length === 1 ? (clusters[0] as ClusterStats).name : 'default';
  const label = string(raw.client, 'client', fallback);
  return { registry, prefix, endpointMetrics, maxEndpoints, label };
}

function registerWith(client: Client, settings: Settings): PrometheusRegistration {
  const { registry, prefix, endpointMetrics, maxEndpoints, label } = settings;
  const byPrefix = registries.get(registry) ?? new Map<string, Shared>();
  registries.set(registry, byPrefix);
  let shared = byPrefix.get(prefix);
  // The registry was cleared (clear(), or each metric removed): the registrations made before went with it.
  if (shared !== undefined && shared.metrics.every(({ name, metric }) => registry.getSingleMetric(name) !== metric)) {
    for (const stale of [...shared.sources.values()]) stale.dispose?.();
    byPrefix.delete(prefix);
    shared = undefined;
  }
  if (shared === undefined) byPrefix.set(prefix, (shared = createShared(prefix)));
  if (shared.sources.has(label)) {
    throw new InvalidOptionError(
      'client',
      `a client is already registered on this registry as "${label}"; give each client its own \`client\` label`,
    );
  }
  const before = { endpointMetrics: shared.endpointMetrics, metrics: shared.metrics.length };
  if (endpointMetrics) addEndpointMetrics(shared, prefix);
  // Registered once per registry: again only if someone removed them (removeSingleMetric, clear).
  const added: Shared['metrics'] = [];
  try {
    for (const entry of shared.metrics) {
      if (registry.getSingleMetric(entry.name) === entry.metric) continue;
      if (registry.getSingleMetric(entry.name) !== undefined) {
        throw new InvalidOptionError(
          'prefix',
          `the registry already holds a metric named "${entry.name}" that is not this exporter's; ` +
            'give sidecarless another `prefix`',
        );
      }
      registerAs(registry, entry.name, entry.metric);
      added.push(entry);
    }
  } catch (err) {
    // Nothing half done: the metrics this call added leave the registry again, so a failed registration (a name
    // someone else registered there) leaves it as it found it.
    for (const { name, metric } of added) {
      if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name);
    }
    // The endpoint metrics this call added to the shared set go too: kept, every later registration on the
    // registry (endpoint metrics or not) would try to register them and meet the same clash.
    if (!before.endpointMetrics && shared.endpointMetrics) {
      shared.metrics.length = before.metrics;
      shared.endpointMetrics = false;
      delete shared.endpointLatency;
    }
    if (shared.sources.size === 0) byPrefix.delete(prefix);
    throw err;
  }

  let cached: ClientStats | undefined;
  // prom-client collects every metric in one pass per scrape: read the stats once for that pass (not once per metric),
  // and drop them when it ends, so the next scrape, however soon, sees fresh numbers. Without endpoint metrics, no
  // endpoint's figures are built: at 10,000 endpoints they made a scrape of a few cluster series a 20-50 ms stall.
  const stats = () => {
    if (cached === undefined) {
      cached = client.stats(endpointMetrics ? undefined : CLUSTERS_ONLY);
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached;
  };
  const current = shared;
  const source: Source = {
    label,
    client,
    endpointMetrics,
    maxEndpoints,
    series: new ClientSeries(label, maxEndpoints, current, stats),
    stats,
  };
  shared.sources.set(label, source);

  const ours = clusterMembership(client);
  const onRequestEnd = (message: unknown) => {
    const m = message as RequestEndMessage;
    // As the stats' request latency: time to response headers, so a failed request is not observed.
    if (m.statusCode === 0 || !ours(m.clusterId)) return;
    current.requestDuration?.observe(source.series.cluster(m.clusterId, m.cluster), m.durationMs / 1000);
  };
  const onAttemptEnd = (message: unknown) => {
    const m = message as AttemptEndMessage;
    // As the endpoint's own histogram (stats().endpoints[].latency): an attempt the client itself stopped (caller
    // abort, lost hedge) or one an HTTP/2 endpoint turned away unprocessed (GOAWAY, refused stream) says nothing
    // about the endpoint's latency.
    if ((m.statusCode === 0 && setAside(m.errorKind)) || !ours(m.clusterId)) return;
    const labels = source.series.endpoint(m.clusterId, m.cluster, m.endpoint);
    if (labels !== undefined) current.endpointLatency?.observe(labels, m.durationMs / 1000);
  };
  diagnostics.subscribe('sidecarless:request:end', onRequestEnd);
  if (endpointMetrics) diagnostics.subscribe('sidecarless:attempt:end', onAttemptEnd);

  const names = current.metrics
    .map((m) => m.name)
    .filter((name) => endpointMetrics || !name.startsWith(`${prefix}endpoint_`));
  let registered = true;
  // The client's end ends the registration: a service making and closing clients (per tenant, per test) would
  // otherwise keep every closed client's series, and its channel subscriptions, until unregister().
  let closeSubscription: { dispose(): void } | undefined;
  const registration = {
    names,
    unregister() {
      if (!registered) return;
      registered = false;
      closeSubscription?.dispose();
      diagnostics.unsubscribe('sidecarless:request:end', onRequestEnd);
      if (endpointMetrics) diagnostics.unsubscribe('sidecarless:attempt:end', onAttemptEnd);
      source.series.clear();
      current.sources.delete(label);
      if (current.sources.size > 0) return;
      for (const { name, metric } of current.metrics) {
        if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name);
      }
      byPrefix.delete(prefix);
    },
  };
  source.dispose = () => registration.unregister();
  if (typeof client.onClose === 'function') closeSubscription = client.onClose(() => registration.unregister());
  return registration;
}
