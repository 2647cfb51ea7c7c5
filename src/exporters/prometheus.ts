/**
 * Prometheus metrics for a sidecarless client, through `prom-client` (an optional peer dependency: this entry point,
 * `sidecarless/prometheus`, is the only one that imports it).
 *
 * Every figure is read from `client.stats()` when the registry is scraped, so recording costs nothing beyond the
 * client's own counters. Durations are in seconds, as Prometheus expects.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { createClient } from 'sidecarless';
 * import { registerPrometheusMetrics } from 'sidecarless/prometheus';
 *
 * const client = createClient({ target: 'srv:///_http._tcp.users' });
 * const registry = new Registry();
 * registerPrometheusMetrics(client, { registry });
 * // GET /metrics: res.end(await registry.metrics())
 * ```
 *
 * @module sidecarless/prometheus
 */
import { register as defaultRegistry, type Registry } from 'prom-client';
import type { Client, ClientStats } from '../client/client.js';
import type { HistogramSnapshot } from '../metrics/histogram.js';

/** Options of {@link registerPrometheusMetrics}. @category Observability */
export interface PrometheusOptions {
  /** The registry to add the metrics to. @defaultValue prom-client's global registry */
  readonly registry?: Registry;
  /** Prefix of every metric name. @defaultValue 'sidecarless_' */
  readonly prefix?: string;
  /** Labels added to every series (e.g. `{ service: 'frontend' }`). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The registration; `unregister()` removes the metrics from the registry. @category Observability */
export interface PrometheusRegistration {
  /** Metric names registered. */
  readonly names: readonly string[];
  /** Removes every metric in `names` from the registry; the client is no longer read on scrapes. */
  unregister(): void;
}

type Labels = Record<string, string | number>;
interface Value {
  value: number;
  labels: Labels;
  metricName?: string;
}
type MetricType = 'counter' | 'gauge' | 'histogram';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

function histogramValues(name: string, labels: Labels, h: HistogramSnapshot, out: Value[]): void {
  let cumulative = 0;
  h.bounds.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bound / 1000 }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
  out.push({ metricName: `${name}_sum`, labels, value: h.sum / 1000 });
  out.push({ metricName: `${name}_count`, labels, value: h.count });
}

/**
 * Adds the client's metrics to a prom-client registry. Throws if a metric of the same name is already registered
 * there: register each client once per registry, or give each its own `prefix`.
 *
 * @example
 * ```ts
 * import http from 'node:http';
 * import { Registry } from 'prom-client';
 * import { registerPrometheusMetrics } from 'sidecarless/prometheus';
 *
 * const registry = new Registry();
 * const registration = registerPrometheusMetrics(client, { registry, labels: { service: 'shop' } });
 * http.createServer(async (req, res) => {
 *   if (req.url === '/metrics') {
 *     res.setHeader('content-type', registry.contentType);
 *     res.end(await registry.metrics());
 *   }
 * });
 * // on shutdown: registration.unregister();
 * ```
 *
 * @category Observability
 */
export function registerPrometheusMetrics(client: Client, options: PrometheusOptions = {}): PrometheusRegistration {
  const registry = options.registry ?? defaultRegistry;
  const prefix = options.prefix ?? 'sidecarless_';
  const base = options.labels ?? {};
  let cached: ClientStats | undefined;
  // prom-client calls every metric's get() in one synchronous pass per scrape: read the stats once for that pass
  // (not once per metric), and drop them when it ends, so the next scrape, however soon, sees fresh numbers.
  const stats = (): ClientStats => {
    if (cached === undefined) {
      cached = client.stats();
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached;
  };
  const names: string[] = [];
  const define = (name: string, help: string, type: MetricType, collect: (s: ClientStats, out: Value[]) => void) => {
    const full = `${prefix}${name}`;
    const metric = {
      name: full,
      help,
      type,
      aggregator: 'sum',
      get: async () => {
        const values: Value[] = [];
        collect(stats(), values);
        for (const v of values) v.labels = { ...base, ...v.labels };
        return { name: full, help, type, values, aggregator: 'sum' };
      },
    };
    registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
    names.push(full);
  };
  const perCluster = (pick: (c: ClientStats['clusters'][number]) => number) => (s: ClientStats, out: Value[]) => {
    for (const c of s.clusters) out.push({ labels: { cluster: c.name }, value: pick(c) });
  };

  define(
    'requests_total',
    'Requests accepted by the cluster.',
    'counter',
    perCluster((c) => c.requests.total),
  );
  define(
    'requests_in_flight',
    'Requests accepted and not yet ended.',
    'gauge',
    perCluster((c) => c.inFlight),
  );
  define('responses_total', 'Responses delivered to callers, by status class.', 'counter', (s, out) => {
    for (const c of s.clusters) {
      for (const cls of CLASSES)
        out.push({ labels: { cluster: c.name, code_class: cls }, value: c.requests.statusClasses[cls] });
    }
  });
  define('request_errors_total', 'Requests that failed, by error code.', 'counter', (s, out) => {
    for (const c of s.clusters) {
      for (const [code, n] of Object.entries(c.requests.errors))
        out.push({ labels: { cluster: c.name, code }, value: n });
    }
  });
  define(
    'request_duration_seconds',
    'Time to response headers, across attempts and backoffs.',
    'histogram',
    (s, out) => {
      for (const c of s.clusters)
        histogramValues(`${prefix}request_duration_seconds`, { cluster: c.name }, c.requests.latency, out);
    },
  );
  define(
    'retries_total',
    'Attempts that retried a failure.',
    'counter',
    perCluster((c) => c.requests.retries),
  );
  define(
    'hedges_total',
    'Hedged attempts.',
    'counter',
    perCluster((c) => c.requests.hedges),
  );
  define(
    'overloaded_total',
    'Requests refused by a concurrency limit.',
    'counter',
    perCluster((c) => c.requests.overloaded),
  );
  define(
    'circuit_open_total',
    'Requests refused by an open circuit breaker.',
    'counter',
    perCluster((c) => c.requests.circuitOpen),
  );
  define('breaker_state', 'Circuit breaker state (1 for the current state).', 'gauge', (s, out) => {
    for (const c of s.clusters) {
      if (c.breaker === undefined) continue;
      for (const state of ['closed', 'open', 'half-open']) {
        out.push({ labels: { cluster: c.name, state }, value: c.breaker === state ? 1 : 0 });
      }
    }
  });
  define(
    'endpoints',
    'Endpoints in the current set.',
    'gauge',
    perCluster((c) => c.endpoints.length),
  );
  define(
    'ejections_total',
    'Outlier ejections.',
    'counter',
    perCluster((c) => c.ejections),
  );
  define(
    'ejection_returns_total',
    'Returns from outlier ejection.',
    'counter',
    perCluster((c) => c.returns),
  );
  define(
    'panic',
    '1 while the cluster is in panic mode (too few eligible endpoints).',
    'gauge',
    perCluster((c) => (c.panic ? 1 : 0)),
  );
  define(
    'resolver_updates_total',
    'Endpoint sets delivered by the resolver.',
    'counter',
    perCluster((c) => c.resolver.updates),
  );
  define(
    'resolver_errors_total',
    'Resolver failures (the last good set was kept).',
    'counter',
    perCluster((c) => c.resolver.errors),
  );

  const perEndpoint =
    (pick: (e: ClientStats['clusters'][number]['endpoints'][number]) => number) => (s: ClientStats, out: Value[]) => {
      for (const c of s.clusters)
        for (const e of c.endpoints) out.push({ labels: { cluster: c.name, endpoint: e.key }, value: pick(e) });
    };
  define(
    'endpoint_attempts_total',
    'Attempts sent to the endpoint.',
    'counter',
    perEndpoint((e) => e.attempts),
  );
  define(
    'endpoint_retries_total',
    'Attempts sent to the endpoint that retried a failure.',
    'counter',
    perEndpoint((e) => e.retries),
  );
  define(
    'endpoint_hedges_total',
    'Hedged attempts sent to the endpoint.',
    'counter',
    perEndpoint((e) => e.hedges),
  );
  define(
    'endpoint_ejections_total',
    'Outlier ejections of the endpoint.',
    'counter',
    perEndpoint((e) => e.timesEjected),
  );
  define(
    'endpoint_ejection_returns_total',
    'Returns of the endpoint from outlier ejection.',
    'counter',
    perEndpoint((e) => e.returns),
  );
  define(
    'endpoint_in_flight',
    'Attempts in flight on the endpoint.',
    'gauge',
    perEndpoint((e) => e.inFlight),
  );
  define('endpoint_responses_total', 'Responses from the endpoint, by status class.', 'counter', (s, out) => {
    for (const c of s.clusters) {
      for (const e of c.endpoints) {
        for (const cls of CLASSES) {
          out.push({ labels: { cluster: c.name, endpoint: e.key, code_class: cls }, value: e.statusClasses[cls] });
        }
      }
    }
  });
  define('endpoint_errors_total', 'Attempt errors on the endpoint, by kind.', 'counter', (s, out) => {
    for (const c of s.clusters) {
      for (const e of c.endpoints) {
        for (const [kind, n] of Object.entries(e.errorsByKind))
          out.push({ labels: { cluster: c.name, endpoint: e.key, kind }, value: n });
      }
    }
  });
  define('endpoint_latency_seconds', 'Attempt latency to response headers.', 'histogram', (s, out) => {
    for (const c of s.clusters) {
      for (const e of c.endpoints) {
        histogramValues(`${prefix}endpoint_latency_seconds`, { cluster: c.name, endpoint: e.key }, e.latency, out);
      }
    }
  });
  define(
    'endpoint_ejected',
    '1 while the endpoint is ejected by outlier detection.',
    'gauge',
    perEndpoint((e) => (e.ejected ? 1 : 0)),
  );
  define(
    'endpoint_healthy',
    '1 while the endpoint passes health checks.',
    'gauge',
    perEndpoint((e) => (e.healthy ? 1 : 0)),
  );
  define(
    'endpoint_weight',
    'Effective weight (slow start applied).',
    'gauge',
    perEndpoint((e) => e.effectiveWeight),
  );

  return {
    names,
    unregister() {
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
