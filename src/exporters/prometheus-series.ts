/**
 * The series `sidecarless/prometheus` reads from a client's stats: per cluster and per endpoint, each a name, a
 * type, a help text, the extra label it adds (if any) and how to read it from the stats.
 *
 * @module
 */
import type { ClientStats } from '../client/client.js';

export type Labels = Record<string, string>;
export type ClusterStats = ClientStats['clusters'][number];
export type EndpointStats = ClusterStats['endpoints'][number];
export type Emit = (labels: Labels, value: number) => void;

export const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;

export type ClusterFill = (c: ClusterStats, emit: Emit) => void;
export type EndpointFill = (e: EndpointStats, emit: Emit) => void;

export const one =
  (pick: (c: ClusterStats) => number): ClusterFill =>
  (c, emit) =>
    emit({}, pick(c));
export const oneEndpoint =
  (pick: (e: EndpointStats) => number): EndpointFill =>
  (e, emit) =>
    emit({}, pick(e));

// name, type, help, extra label, fill
export const CLUSTER_METRICS: readonly [string, 'counter' | 'gauge', string, string | undefined, ClusterFill][] = [
  ['requests_total', 'counter', 'Requests accepted by the cluster.', undefined, one((c) => c.requests.total)],
  ['requests_in_flight', 'gauge', 'Requests accepted and not yet ended.', undefined, one((c) => c.inFlight)],
  ['requests_pending', 'gauge', 'Requests waiting for an endpoint.', undefined, one((c) => c.pending)],
  [
    'responses_total',
    'counter',
    'Responses delivered to callers, by status class.',
    'code_class',
    (c, emit) => {
      for (const cls of CLASSES) emit({ code_class: cls }, c.requests.statusClasses[cls]);
    },
  ],
  [
    'request_errors_total',
    'counter',
    'Requests that failed, by error code.',
    'error_code',
    (c, emit) => {
      for (const [code, n] of Object.entries(c.requests.errors)) emit({ error_code: code }, n);
    },
  ],
  ['retries_total', 'counter', 'Attempts that retried a failure.', undefined, one((c) => c.requests.retries)],
  ['hedges_total', 'counter', 'Hedged attempts.', undefined, one((c) => c.requests.hedges)],
  [
    'overloaded_total',
    'counter',
    'Requests refused by a concurrency limit.',
    undefined,
    one((c) => c.requests.overloaded),
  ],
  [
    'circuit_open_total',
    'counter',
    'Requests refused by an open circuit breaker.',
    undefined,
    one((c) => c.requests.circuitOpen),
  ],
  [
    'breaker_state',
    'gauge',
    'Circuit breaker state (1 for the current state), when a breaker is configured.',
    'state',
    (c, emit) => {
      if (c.breaker === undefined) return;
      for (const state of BREAKER_STATES) emit({ state }, c.breaker === state ? 1 : 0);
    },
  ],
  ['endpoints', 'gauge', 'Endpoints in the current set.', undefined, one((c) => c.endpointCount)],
  [
    'endpoints_ejected',
    'gauge',
    'Endpoints of the current set ejected by outlier detection now.',
    undefined,
    one((c) => c.ejectedCount),
  ],
  ['ejections_total', 'counter', 'Outlier ejections.', undefined, one((c) => c.ejections)],
  ['ejection_returns_total', 'counter', 'Returns from outlier ejection.', undefined, one((c) => c.returns)],
  [
    'panic',
    'gauge',
    '1 while the cluster is in panic mode (too few eligible endpoints).',
    undefined,
    one((c) => (c.panic ? 1 : 0)),
  ],
  [
    'resolver_updates_total',
    'counter',
    'Endpoint sets delivered by the resolver.',
    undefined,
    one((c) => c.resolver.updates),
  ],
  [
    'resolver_errors_total',
    'counter',
    'Resolver failures (the last good set was kept).',
    undefined,
    one((c) => c.resolver.errors),
  ],
];

export const ENDPOINT_METRICS: readonly [string, 'counter' | 'gauge', string, string | undefined, EndpointFill][] = [
  ['endpoint_attempts_total', 'counter', 'Attempts sent to the endpoint.', undefined, oneEndpoint((e) => e.attempts)],
  [
    'endpoint_retries_total',
    'counter',
    'Attempts sent to the endpoint that retried a failure.',
    undefined,
    oneEndpoint((e) => e.retries),
  ],
  [
    'endpoint_hedges_total',
    'counter',
    'Hedged attempts sent to the endpoint.',
    undefined,
    oneEndpoint((e) => e.hedges),
  ],
  ['endpoint_in_flight', 'gauge', 'Attempts in flight on the endpoint.', undefined, oneEndpoint((e) => e.inFlight)],
  [
    'endpoint_responses_total',
    'counter',
    'Responses from the endpoint, by status class (classes seen).',
    'code_class',
    (e, emit) => {
      for (const cls of CLASSES) if (e.statusClasses[cls] > 0) emit({ code_class: cls }, e.statusClasses[cls]);
    },
  ],
  [
    'endpoint_errors_total',
    'counter',
    'Attempt errors on the endpoint, by kind (kinds seen).',
    'error_kind',
    (e, emit) => {
      for (const [kind, n] of Object.entries(e.errorsByKind)) if (n > 0) emit({ error_kind: kind }, n);
    },
  ],
  [
    'endpoint_ejections_total',
    'counter',
    'Outlier ejections of the endpoint.',
    undefined,
    oneEndpoint((e) => e.timesEjected),
  ],
  [
    'endpoint_ejection_returns_total',
    'counter',
    'Returns of the endpoint from outlier ejection.',
    undefined,
    oneEndpoint((e) => e.returns),
  ],
  [
    'endpoint_ejected',
    'gauge',
    '1 while the endpoint is ejected by outlier detection.',
    undefined,
    oneEndpoint((e) => (e.ejected ? 1 : 0)),
  ],
  [
    'endpoint_healthy',
    'gauge',
    '1 while the endpoint passes health checks.',
    undefined,
    oneEndpoint((e) => (e.healthy ? 1 : 0)),
  ],
  [
    'endpoint_weight',
    'gauge',
    'Effective weight (slow start applied).',
    undefined,
    oneEndpoint((e) => e.effectiveWeight),
  ],
];
