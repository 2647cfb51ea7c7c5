/**
 * OpenTelemetry metrics for a sidecarless client, through `@opentelemetry/api` (an optional peer dependency: this
 * entry point, `sidecarless/opentelemetry`, is the only one that imports it).
 *
 * Every attempt sidecarless makes is an undici request, so `@opentelemetry/instrumentation-undici` (part of the usual
 * auto-instrumentation) already records the HTTP semantic conventions' `http.client.request.duration` for each of
 * them. This module does not record that metric again: it records what only sidecarless knows, under names of its
 * own, with the conventions' attribute names where they apply.
 *
 * - `sidecarless.request.duration` (s): a histogram recorded as each logical request ends, across its attempts,
 *   retries, hedges and backoffs, with `http.request.method` (`_OTHER` for a method the conventions do not list),
 *   `server.address` and `server.port` (the logical service, 80 or 443 by scheme when the URL has no port),
 *   `http.response.status_code`, `error.type` (the status code for 4xx and 5xx, for failures the error's code as in
 *   `stats().requests.errors`: `_CALLER` or `_OTHER` for a code not from sidecarless, undici or Node, at most 64
 *   distinct) and `sidecarless.cluster`.
 * - `sidecarless.request.attempts` (`{attempt}`): a histogram of the attempts each logical request took.
 * - Observable instruments read from `client.stats()` at collection time, per cluster: `sidecarless.requests`,
 *   `sidecarless.retries`, `sidecarless.hedges`, `sidecarless.ejections`, `sidecarless.ejection_returns`,
 *   `sidecarless.resolver.updates`, `sidecarless.resolver.errors` (counters); `sidecarless.requests.active`,
 *   `sidecarless.endpoints`, `sidecarless.endpoints.ejected` (up-down counters); `sidecarless.breaker.state` (a
 *   gauge, 1 for the current `sidecarless.breaker.state`).
 * - With `endpointMetrics`, per endpoint (`sidecarless.endpoint`): `sidecarless.endpoint.attempt.duration` (s, a
 *   histogram of the attempts the endpoint was picked for), `sidecarless.endpoint.attempts`,
 *   `sidecarless.endpoint.retries`, `sidecarless.endpoint.hedges`, `sidecarless.endpoint.responses` (by
 *   `sidecarless.status_class`), `sidecarless.endpoint.errors` (by `error.type`), `sidecarless.endpoint.ejections`,
 *   `sidecarless.endpoint.ejection_returns` (counters), `sidecarless.endpoint.active` (up-down counter),
 *   `sidecarless.endpoint.ejected` (gauge).
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
 * @module sidecarless/opentelemetry
 */
import diagnostics from 'node:diagnostics_channel';
import { type Attributes, type Meter, metrics, ValueType } from '@opentelemetry/api';
import type { Client } from '../client/client.js';
import { clusterMembership, CLUSTERS_ONLY } from './membership.js';
import { InvalidOptionError } from '../common/errors.js';
import { boolean, checkObject, describe, integer, isRecord, readOptions } from '../common/options.js';
import { ErrorCodes } from '../metrics/error-codes.js';

/** What the exporter calls on a Meter. */
const METER_METHODS = [
  'createHistogram',
  'createObservableCounter',
  'createObservableGauge',
  'createObservableUpDownCounter',
  'addBatchObservableCallback',
  'removeBatchObservableCallback',
] as const;
import { setAside } from '../common/outcome.js';
import type { AttemptEndMessage, RequestEndMessage } from '../metrics/events.js';

/** Options of {@link registerOpenTelemetryMetrics}. @category Observability */
export interface OpenTelemetryOptions {
  /** The meter to create instruments on. @defaultValue `metrics.getMeter('sidecarless')` */
  readonly meter?: Meter;
  /** Attributes added to every measurement. */
  readonly attributes?: Attributes;
  /**
   * Per-endpoint instruments (`sidecarless.endpoint.*`, by `sidecarless.endpoint="host:port"`). Endpoint addresses
   * change on every deploy, so they are off by default.
   * @defaultValue false
   */
  readonly endpointMetrics?: boolean;
  /**
   * With `endpointMetrics`, the most endpoints per cluster that are reported (the first in resolver order).
   * @defaultValue 20
   */
  readonly maxEndpointsPerCluster?: number;
}

/**
 * The registration; `unregister()` stops recording and observing. It ends by itself when the client closes.
 * @category Observability
 */
export interface OpenTelemetryRegistration {
  /**
   * Stops recording (unsubscribes from the diagnostics channels) and removes the observable callback; the
   * instruments themselves stay on the meter. Called by itself when the client has closed (`close()` or
   * `destroy()` finished, before its promise resolves), so a closed client is observed no more; calling it again
   * does nothing.
   */
  unregister(): void;
}

// The semantic conventions' bucket boundaries for HTTP durations, seconds.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

// The methods the HTTP semantic conventions call "known": RFC 9110's and PATCH (RFC 5789). Any other becomes
// `_OTHER`, which keeps the attribute's cardinality bounded whatever method tokens callers send. The original is
// not added back as `http.request.method_original`: the conventions define that for spans only, and on a metric
// it would bring back the unbounded cardinality `_OTHER` exists to prevent.
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

const ATTEMPT_BUCKETS = [1, 2, 3, 4, 5, 10];
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;

/** `server.address` and `server.port` of an authority, the port from the scheme when the authority has none. */
function splitAuthority(authority: string, scheme: 'http' | 'https'): { address: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(authority);
  if (match === null) return { address: authority, port: DEFAULT_PORTS[scheme] };
  return {
    address: (match[1] ?? match[2]) as string,
    port: match[3] === undefined ? DEFAULT_PORTS[scheme] : Number(match[3]),
  };
}

/**
 * `error.type` of a request end, per the conventions: the error's code or name, else the status of a 4xx/5xx. Codes
 * are those of `stats().requests.errors`, bounded the same way (`_CALLER`, `_OTHER`, at most 64 distinct).
 */
function errorType(m: RequestEndMessage, codes: ErrorCodes): string | undefined {
  if (m.error !== undefined) return codes.of(m.error);
  return m.statusCode >= 400 ? String(m.statusCode) : undefined;
}

/** The live registrations on each meter: a client, or a cluster name, is registered once per meter. */
const meters = new WeakMap<Meter, Set<{ readonly client: Client }>>();

/**
 * Refuses a registration that would merge or double count series on `meter`: `client` registered there already, or
 * another client registered there with a cluster of the same name (the series of both would be one).
 */
function checkMeter(meter: Meter, client: Client): void {
  const live = meters.get(meter);
  if (live === undefined) return;
  const names = new Set(client.stats(CLUSTERS_ONLY).clusters.map((c) => c.name));
  for (const other of live) {
    if (other.client === client) {
      throw new InvalidOptionError(
        'meter',
        'this client is already registered on this meter (its series would be counted twice); unregister it first',
      );
    }
    const shared = other.client.stats(CLUSTERS_ONLY).clusters.find((c) => names.has(c.name));
    if (shared !== undefined) {
      throw new InvalidOptionError(
        'meter',
        `another client registered on this meter has a cluster named "${shared.name}" (the series of both would ` +
          'be one); give the clusters distinct names, or each client its own meter',
      );
    }
  }
}

/**
 * Creates the instruments and starts recording. Requests of every client are published on one diagnostics
 * channel; the histograms record only those of `client`'s clusters.
 *
 * Series are told apart by `sidecarless.cluster` (and the meter's scope), not by client: registering a client on a
 * meter it is registered on already, or a client with a cluster named as one of another client registered there, throws
 * `SIDECARLESS_INVALID_OPTION` (option `meter`), as the series of both would be one. Give each such client a meter of
 * its own (`provider.getMeter('users')`). The check sees the clusters the clients have when called: clusters made later
 * by discovery are not checked, so clients sharing a meter should not discover hosts under the same domain.
 *
 * @example
 * ```ts
 * import { metrics } from '@opentelemetry/api';
 * import { createClient } from 'sidecarless';
 * import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
 *
 * const client = createClient({ target: 'dns:///users.internal:8080' });
 * const registration = registerOpenTelemetryMetrics(client, {
 *   meter: metrics.getMeter('checkout'),
 *   attributes: { 'service.name': 'checkout' },
 * });
 * // on shutdown: closing the client ends the registration too
 * await client.close();
 * ```
 *
 * @category Observability
 */
export function registerOpenTelemetryMetrics(
  client: Client,
  options: OpenTelemetryOptions = {},
): OpenTelemetryRegistration {
  return readOptions('options', () => registerUnguarded(client, options));
}

function registerUnguarded(client: Client, options: OpenTelemetryOptions): OpenTelemetryRegistration {
  if (typeof (client as Partial<Client> | null)?.stats !== 'function') {
    throw new InvalidOptionError('client argument', `expected a sidecarless Client, got ${describe(client)}`);
  }
  checkObject(options, ['meter', 'attributes', 'endpointMetrics', 'maxEndpointsPerCluster'], '');
  if (options.meter !== undefined) {
    const missing = METER_METHODS.find(
      (name) => typeof (options.meter as unknown as Record<string, unknown>)[name] !== 'function',
    );
    if (missing !== undefined) {
      throw new InvalidOptionError('meter', `expected an OpenTelemetry Meter (${missing} is not a function)`);
    }
  }
  if (options.attributes !== undefined) {
    if (!isRecord(options.attributes)) {
      throw new InvalidOptionError('attributes', `expected an object, got ${describe(options.attributes)}`);
    }
    for (const [key, value] of Object.entries(options.attributes)) {
      if (!['string', 'number', 'boolean'].includes(typeof value) && !Array.isArray(value)) {
        throw new InvalidOptionError(
          `attributes.${key}`,
          `expected a string, number, boolean or array, got ${describe(value)}`,
        );
      }
    }
  }
  const perEndpoint = boolean(options.endpointMetrics, 'endpointMetrics', false);
  const maxEndpoints = integer(options.maxEndpointsPerCluster, 'maxEndpointsPerCluster', 20, 1);
  const meter = options.meter ?? metrics.getMeter('sidecarless');
  checkMeter(meter, client);
  const codes = new ErrorCodes();
  const base = options.attributes ?? {};
  const duration = meter.createHistogram('sidecarless.request.duration', {
    description:
      'Duration of logical requests, to response headers or to the failure, across attempts, retries, hedges and backoffs.',
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const attemptsPerRequest = meter.createHistogram('sidecarless.request.attempts', {
    description: 'Attempts each logical request took (1: neither retried nor hedged).',
    unit: '{attempt}',
    valueType: ValueType.INT,
    advice: { explicitBucketBoundaries: ATTEMPT_BUCKETS },
  });
  const attemptDuration = perEndpoint
    ? meter.createHistogram('sidecarless.endpoint.attempt.duration', {
        description: 'Duration of attempts on the endpoint, to response headers or to the error.',
        unit: 's',
        valueType: ValueType.DOUBLE,
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      })
    : undefined;
  // By cluster id, not name: another client's cluster may share the name.
  const ours = clusterMembership(client);
  const onEnd = (message: unknown) => {
    const m = message as RequestEndMessage;
    if (!ours(m.clusterId)) return;
    const { address, port } = splitAuthority(m.authority, m.scheme);
    const attributes: Attributes = {
      ...base,
      'http.request.method': KNOWN_METHODS.has(m.method) ? m.method : '_OTHER',
      'server.address': address,
      'server.port': port,
      'sidecarless.cluster': m.cluster,
    };
    if (m.statusCode > 0) attributes['http.response.status_code'] = m.statusCode;
    const type = errorType(m, codes);
    if (type !== undefined) attributes['error.type'] = type;
    duration.record(m.durationMs / 1000, attributes);
    attemptsPerRequest.record(m.attempts, { ...base, 'sidecarless.cluster': m.cluster });
  };
  // Endpoints reported per cluster id: the first `maxEndpoints` in resolver order (the bound holds from the first
  // attempt: the SDK keeps every series it was given). Refreshed at each collection, and read from the stats again
  // for an endpoint not in them, which may have joined the set since (as the Prometheus exporter does); one found
  // outside the bound is not looked up again until the next collection.
  const shown = new Map<number, { keys: Set<string>; outside: Set<string> }>();
  const firstEndpoints = <E>(endpoints: readonly E[]): readonly E[] =>
    endpoints.length > maxEndpoints ? endpoints.slice(0, maxEndpoints) : endpoints;
  const isShown = (clusterId: number, endpoint: string): boolean => {
    let entry = shown.get(clusterId);
    if (entry?.keys.has(endpoint) === true) return true;
    if (entry?.outside.has(endpoint) === true) return false;
    const clusters = client.stats().clusters;
    const endpoints = clusters.find((c) => c.id === clusterId)?.endpoints ?? [];
    const keys = new Set(firstEndpoints(endpoints).map((e) => e.key));
    if (entry === undefined) {
      // A cluster not seen since the last collection: forget those that left meanwhile, so that discovered clusters
      // coming and going do not pile up here when nothing collects.
      const live = new Set(clusters.map((c) => c.id));
      for (const id of shown.keys()) if (!live.has(id)) shown.delete(id);
      shown.set(clusterId, (entry = { keys, outside: new Set() }));
    } else entry.keys = keys;
    if (keys.has(endpoint)) return true;
    if (entry.outside.size >= 1_000) entry.outside.clear();
    entry.outside.add(endpoint);
    return false;
  };
  const onAttemptEnd = (message: unknown) => {
    const m = message as AttemptEndMessage;
    // As the endpoint's own histogram: an attempt the client stopped, or one an HTTP/2 endpoint turned away
    // unprocessed, says nothing about the endpoint's latency.
    if ((m.statusCode === 0 && setAside(m.errorKind)) || !ours(m.clusterId)) return;
    if (!isShown(m.clusterId, m.endpoint)) return;
    attemptDuration?.record(m.durationMs / 1000, {
      ...base,
      'sidecarless.cluster': m.cluster,
      'sidecarless.endpoint': m.endpoint,
    });
  };
  diagnostics.subscribe('sidecarless:request:end', onEnd);
  if (perEndpoint) diagnostics.subscribe('sidecarless:attempt:end', onAttemptEnd);

  const counter = (name: string, description: string, unit: string) =>
    meter.createObservableCounter(name, { description, unit });
  const gauge = (name: string, description: string, unit: string) =>
    meter.createObservableGauge(name, { description, unit });
  const upDown = (name: string, description: string, unit: string) =>
    meter.createObservableUpDownCounter(name, { description, unit });
  const requests = counter('sidecarless.requests', 'Requests accepted by the cluster.', '{request}');
  const active = upDown('sidecarless.requests.active', 'Requests accepted and not yet ended.', '{request}');
  const retries = counter('sidecarless.retries', 'Attempts that retried a failure.', '{attempt}');
  const hedges = counter('sidecarless.hedges', 'Hedged attempts.', '{attempt}');
  const endpoints = upDown('sidecarless.endpoints', 'Endpoints in the current set.', '{endpoint}');
  const endpointsEjected = upDown(
    'sidecarless.endpoints.ejected',
    'Endpoints of the current set ejected by outlier detection.',
    '{endpoint}',
  );
  const ejections = counter('sidecarless.ejections', 'Outlier ejections.', '{ejection}');
  const returns = counter('sidecarless.ejection_returns', 'Returns from outlier ejection.', '{return}');
  const breaker = gauge('sidecarless.breaker.state', 'Circuit breaker state (1 for the current state).', '1');
  const updates = counter('sidecarless.resolver.updates', 'Endpoint sets delivered by the resolver.', '{update}');
  const resolverErrors = counter('sidecarless.resolver.errors', 'Resolver failures.', '{error}');
  const attempts = counter('sidecarless.endpoint.attempts', 'Attempts sent to the endpoint.', '{attempt}');
  const endpointRetries = counter(
    'sidecarless.endpoint.retries',
    'Attempts sent to the endpoint that retried a failure.',
    '{attempt}',
  );
  const endpointHedges = counter('sidecarless.endpoint.hedges', 'Hedged attempts sent to the endpoint.', '{attempt}');
  const responses = counter(
    'sidecarless.endpoint.responses',
    'Responses from the endpoint, by status class.',
    '{response}',
  );
  const endpointErrors = counter('sidecarless.endpoint.errors', 'Attempt errors on the endpoint, by kind.', '{error}');
  const endpointActive = upDown('sidecarless.endpoint.active', 'Attempts in flight on the endpoint.', '{attempt}');
  const ejected = gauge('sidecarless.endpoint.ejected', '1 while the endpoint is ejected.', '1');
  const endpointEjections = counter(
    'sidecarless.endpoint.ejections',
    'Outlier ejections of the endpoint.',
    '{ejection}',
  );
  const endpointReturns = counter(
    'sidecarless.endpoint.ejection_returns',
    'Returns of the endpoint from outlier ejection.',
    '{return}',
  );
  const clusterObservables = [
    requests,
    active,
    retries,
    hedges,
    endpoints,
    endpointsEjected,
    ejections,
    returns,
    breaker,
    updates,
    resolverErrors,
  ];
  const endpointObservables = [
    attempts,
    endpointRetries,
    endpointHedges,
    responses,
    endpointErrors,
    endpointActive,
    ejected,
    endpointEjections,
    endpointReturns,
  ];
  const callback = (observer: { observe: (o: never, v: number, a?: Attributes) => void }) => {
    const observe = (o: unknown, value: number, attributes: Attributes) =>
      observer.observe(o as never, value, { ...base, ...attributes });
    // Rebuilt at each collection: clusters that left (discovered ones come and go) are forgotten.
    shown.clear();
    // Only per-endpoint instruments need each endpoint's figures; the cluster ones read the counts.
    for (const c of client.stats(perEndpoint ? undefined : CLUSTERS_ONLY).clusters) {
      const a = { 'sidecarless.cluster': c.name };
      observe(requests, c.requests.total, a);
      observe(active, c.inFlight, a);
      observe(retries, c.requests.retries, a);
      observe(hedges, c.requests.hedges, a);
      observe(endpoints, c.endpointCount, a);
      observe(endpointsEjected, c.ejectedCount, a);
      observe(ejections, c.ejections, a);
      observe(returns, c.returns, a);
      if (c.breaker !== undefined) {
        for (const state of BREAKER_STATES) {
          observe(breaker, c.breaker === state ? 1 : 0, { ...a, 'sidecarless.breaker.state': state });
        }
      }
      observe(updates, c.resolver.updates, a);
      observe(resolverErrors, c.resolver.errors, a);
      if (!perEndpoint) continue;
      const list = firstEndpoints(c.endpoints);
      shown.set(c.id, { keys: new Set(list.map((e) => e.key)), outside: new Set() });
      for (const e of list) {
        const ea = { ...a, 'sidecarless.endpoint': e.key };
        observe(attempts, e.attempts, ea);
        observe(endpointRetries, e.retries, ea);
        observe(endpointHedges, e.hedges, ea);
        observe(endpointActive, e.inFlight, ea);
        observe(ejected, e.ejected ? 1 : 0, ea);
        observe(endpointEjections, e.timesEjected, ea);
        observe(endpointReturns, e.returns, ea);
        for (const cls of CLASSES) observe(responses, e.statusClasses[cls], { ...ea, 'sidecarless.status_class': cls });
        for (const [kind, n] of Object.entries(e.errorsByKind))
          observe(endpointErrors, n, { ...ea, 'error.type': kind });
      }
    }
  };
  const observables = perEndpoint ? [...clusterObservables, ...endpointObservables] : clusterObservables;
  meter.addBatchObservableCallback(callback as never, observables);
  let registered = true;
  let closeSubscription: { dispose(): void } | undefined;
  const live = meters.get(meter) ?? new Set();
  meters.set(meter, live);
  const entry = { client };
  live.add(entry);
  const registration = {
    unregister() {
      if (!registered) return;
      registered = false;
      live.delete(entry);
      closeSubscription?.dispose();
      diagnostics.unsubscribe('sidecarless:request:end', onEnd);
      if (perEndpoint) diagnostics.unsubscribe('sidecarless:attempt:end', onAttemptEnd);
      meter.removeBatchObservableCallback(callback as never, observables);
    },
  };
  // A closed client is observed no more: its callback is removed and its channels unsubscribed.
  if (typeof client.onClose === 'function') closeSubscription = client.onClose(() => registration.unregister());
  return registration;
}
