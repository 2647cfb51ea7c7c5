/**
 * OpenTelemetry metrics for a sidecarless client, through `@opentelemetry/api` (an optional peer dependency: this
 * entry point, `sidecarless/opentelemetry`, is the only one that imports it).
 *
 * - `http.client.request.duration` (semantic conventions, seconds): a histogram recorded as each request ends,
 *   with `http.request.method`, `server.address`, `server.port`, `http.response.status_code`, `error.type` and
 *   `sidecarless.cluster`.
 * - Observable instruments read from `client.stats()` at collection time: `sidecarless.requests`,
 *   `sidecarless.requests.active`, `sidecarless.retries`, `sidecarless.hedges`, `sidecarless.endpoints`,
 *   `sidecarless.ejections`, `sidecarless.endpoint.attempts`, `sidecarless.endpoint.errors` (by `error.type`),
 *   `sidecarless.endpoint.active`, `sidecarless.endpoint.ejected`, `sidecarless.resolver.updates`,
 *   `sidecarless.resolver.errors`.
 *
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api';
 * import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
 *
 * const registration = registerOpenTelemetryMetrics(client, { meter: metrics.getMeter('checkout') });
 * // later: registration.unregister();
 * ```
 *
 * @module
 */
import diagnostics from 'node:diagnostics_channel';
import { type Attributes, type Meter, metrics, ValueType } from '@opentelemetry/api';
import type { Client } from '../client.js';
import type { RequestEndMessage } from './events.js';

/** Options of {@link registerOpenTelemetryMetrics}. */
export interface OpenTelemetryOptions {
  /** The meter to create instruments on. @defaultValue `metrics.getMeter('sidecarless')` */
  readonly meter?: Meter;
  /** Attributes added to every measurement. */
  readonly attributes?: Attributes;
}

/** The registration; `unregister()` stops recording and observing. */
export interface OpenTelemetryRegistration {
  /**
   * Stops recording request durations (unsubscribes from `sidecarless:request:end`) and removes the observable
   * callback; the instruments themselves stay on the meter.
   */
  unregister(): void;
}

// Semantic-convention bucket boundaries for http.client.request.duration, seconds.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

function splitAuthority(authority: string): { address: string; port: number | undefined } {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  if (match === null) return { address: authority, port: undefined };
  return { address: match[1] as string, port: match[2] === undefined ? undefined : Number(match[2]) };
}

/**
 * Creates the instruments and starts recording. Requests of every client are published on one diagnostics
 * channel; the histogram records only those of `client`'s clusters.
 */
export function registerOpenTelemetryMetrics(
  client: Client,
  options: OpenTelemetryOptions = {},
): OpenTelemetryRegistration {
  const meter = options.meter ?? metrics.getMeter('sidecarless');
  const base = options.attributes ?? {};
  const duration = meter.createHistogram('http.client.request.duration', {
    description: 'Duration of HTTP client requests, to response headers, across attempts.',
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  // By cluster id, not name: another client's cluster may share the name. Clusters appear lazily (transparent
  // mode), so an id is looked up in the client's stats the first time it is seen, then remembered either way (a
  // cluster exists before its first request, and never changes client).
  const known = new Set<number>();
  const foreign = new Set<number>();
  const onEnd = (message: unknown) => {
    const m = message as RequestEndMessage;
    if (!known.has(m.clusterId)) {
      if (foreign.has(m.clusterId)) return;
      if (!client.stats().clusters.some((c) => c.id === m.clusterId)) {
        if (foreign.size >= 10_000) foreign.clear();
        foreign.add(m.clusterId);
        return;
      }
      known.add(m.clusterId);
    }
    const { address, port } = splitAuthority(m.authority);
    const attributes: Attributes = {
      ...base,
      'http.request.method': m.method,
      'server.address': address,
      'sidecarless.cluster': m.cluster,
    };
    if (port !== undefined) attributes['server.port'] = port;
    if (m.statusCode > 0) attributes['http.response.status_code'] = m.statusCode;
    if (m.error !== undefined) {
      const code = (m.error as { code?: unknown }).code;
      attributes['error.type'] = typeof code === 'string' ? code : m.error.name;
    } else if (m.statusCode >= 500) {
      attributes['error.type'] = String(m.statusCode);
    }
    duration.record(m.durationMs / 1000, attributes);
  };
  diagnostics.subscribe('sidecarless:request:end', onEnd);

  const counter = (name: string, description: string) => meter.createObservableCounter(name, { description });
  const gauge = (name: string, description: string) => meter.createObservableGauge(name, { description });
  const upDown = (name: string, description: string) => meter.createObservableUpDownCounter(name, { description });
  const requests = counter('sidecarless.requests', 'Requests accepted by the cluster.');
  const active = upDown('sidecarless.requests.active', 'Requests accepted and not yet ended.');
  const retries = counter('sidecarless.retries', 'Attempts that retried a failure.');
  const hedges = counter('sidecarless.hedges', 'Hedged attempts.');
  const endpoints = gauge('sidecarless.endpoints', 'Endpoints in the current set.');
  const ejections = counter('sidecarless.ejections', 'Outlier ejections.');
  const updates = counter('sidecarless.resolver.updates', 'Endpoint sets delivered by the resolver.');
  const resolverErrors = counter('sidecarless.resolver.errors', 'Resolver failures.');
  const attempts = counter('sidecarless.endpoint.attempts', 'Attempts sent to the endpoint.');
  const endpointErrors = counter('sidecarless.endpoint.errors', 'Attempt errors on the endpoint, by kind.');
  const endpointActive = upDown('sidecarless.endpoint.active', 'Attempts in flight on the endpoint.');
  const ejected = gauge('sidecarless.endpoint.ejected', '1 while the endpoint is ejected.');
  const observables = [
    requests,
    active,
    retries,
    hedges,
    endpoints,
    ejections,
    updates,
    resolverErrors,
    attempts,
    endpointErrors,
    endpointActive,
    ejected,
  ];
  const callback = (observer: { observe: (o: never, v: number, a?: Attributes) => void }) => {
    const observe = (o: unknown, value: number, attributes: Attributes) =>
      observer.observe(o as never, value, { ...base, ...attributes });
    for (const c of client.stats().clusters) {
      const a = { 'sidecarless.cluster': c.name };
      observe(requests, c.requests.total, a);
      observe(active, c.inFlight, a);
      observe(retries, c.requests.retries, a);
      observe(hedges, c.requests.hedges, a);
      observe(endpoints, c.endpoints.length, a);
      observe(ejections, c.ejections, a);
      observe(updates, c.resolver.updates, a);
      observe(resolverErrors, c.resolver.errors, a);
      for (const e of c.endpoints) {
        const ea = { ...a, 'sidecarless.endpoint': e.key };
        observe(attempts, e.attempts, ea);
        observe(endpointActive, e.inFlight, ea);
        observe(ejected, e.ejected ? 1 : 0, ea);
        for (const [kind, n] of Object.entries(e.errorsByKind))
          observe(endpointErrors, n, { ...ea, 'error.type': kind });
      }
    }
  };
  meter.addBatchObservableCallback(callback as never, observables);
  return {
    unregister() {
      diagnostics.unsubscribe('sidecarless:request:end', onEnd);
      meter.removeBatchObservableCallback(callback as never, observables);
    },
  };
}
