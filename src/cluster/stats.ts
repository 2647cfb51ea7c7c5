/**
 * What a cluster reports: the {@link ClusterStats} and {@link EndpointStats} types, the request-layer counters the
 * cluster keeps as requests end, and the builder of one endpoint's figures.
 *
 * @module
 */
import type { SidecarlessError } from '../common/errors.js';
import { boolean, checkObject, readOptions } from '../common/options.js';
import type { ErrorKind } from '../common/outcome.js';
import type { EndpointCounts } from '../metrics/endpoint-counters.js';
import { ErrorCodes } from '../metrics/error-codes.js';
import { type HistogramSnapshot, LatencyHistogram } from '../metrics/histogram.js';
import type { BreakerState } from '../request/breaker.js';
import type { Subchannel, SubchannelState } from '../subchannel/subchannel.js';

/** Per-endpoint figures in a {@link ClusterStats} snapshot. */
export interface EndpointStats {
  /** The endpoint's stable key, `host:port` (`[v6]:port` for IPv6). */
  readonly key: string;
  /** Connectivity state of the endpoint's connection pool. */
  readonly state: SubchannelState;
  /** The endpoint's configured weight, before slow start (see `effectiveWeight`). */
  readonly weight: number;
  /** Attempts sent to this endpoint and not yet finished. */
  readonly inFlight: number;
  /** Attempts dispatched (first tries, retries and hedges) since the endpoint joined the set. */
  readonly attempts: number;
  /** Attempts that received response headers, whatever the status. */
  readonly responses: number;
  /** Responses by status class: `{ '2xx': n, ... }`. */
  readonly statusClasses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
  /** Attempts that ended in an error, before or after response headers (caller aborts included). */
  readonly errors: number;
  /** Attempt errors by kind. */
  readonly errorsByKind: Readonly<Record<ErrorKind, number>>;
  /** Failed connection attempts (one per failed connect, not per request). */
  readonly connectFailures: number;
  /** Of `attempts`, those that retried a failure (of this endpoint or another). */
  readonly retries: number;
  /** Of `attempts`, the hedged ones. */
  readonly hedges: number;
  /** Outlier ejections of this endpoint since it joined the set. */
  readonly timesEjected: number;
  /** Returns of this endpoint from ejection since it joined the set. */
  readonly returns: number;
  /** Ejected by outlier detection. */
  readonly ejected: boolean;
  /** Passing active health checks (always true without them). */
  readonly healthy: boolean;
  /** The weight pickers use: the endpoint's weight times its slow-start factor. */
  readonly effectiveWeight: number;
  /** Mean time to response headers, ms (0 before the first response). */
  readonly meanLatencyMs: number;
  /**
   * Attempt latency (to headers, or to the error), ms. Attempts that say nothing of the endpoint's latency are left
   * out: stopped on the client's side (caller abort, lost hedge, deadline) or turned away unprocessed by a draining
   * HTTP/2 endpoint (GOAWAY, refused stream). The exporters' endpoint histograms leave out the same.
   */
  readonly latency: HistogramSnapshot;
}

/** A point-in-time snapshot of a cluster. */
export interface ClusterStats {
  /** The cluster's name. */
  readonly name: string;
  /** The cluster's process-unique id (`Cluster.id`), as in diagnostics messages (`clusterId`). */
  readonly id: number;
  /**
   * Active endpoints, in resolver order. An endpoint's figures leave with it (the cluster's counters keep theirs),
   * so after `close()` this is empty: read the endpoints' figures before closing if you need them at the end.
   */
  readonly endpoints: readonly EndpointStats[];
  /**
   * Endpoints in the current set: `endpoints.length` when the endpoints are included, and known without them (see
   * {@link StatsOptions.endpoints}). 0 after `close()`.
   */
  readonly endpointCount: number;
  /**
   * Endpoints of the current set ejected by outlier detection now: those with `ejected` true in `endpoints`, known
   * without them. 0 without outlier detection.
   */
  readonly ejectedCount: number;
  /** Removed endpoints still finishing in-flight requests. */
  readonly draining: number;
  /** Requests waiting for an endpoint. */
  readonly pending: number;
  /** Requests accepted and not yet ended. */
  readonly inFlight: number;
  /** Request-layer counters since the cluster started. */
  readonly requests: {
    /** Requests accepted; those refused at dispatch (closed client, wrong protocol, `maxInFlight`) are not counted. */
    readonly total: number;
    /** Attempts beyond the first (retries and hedges). */
    readonly extraAttempts: number;
    /** Attempts that retried a failure. */
    readonly retries: number;
    /** Hedged attempts. */
    readonly hedges: number;
    /** Requests refused by the `maxInFlight` or `maxPending` limit (`SIDECARLESS_OVERLOADED`). */
    readonly overloaded: number;
    /** Requests refused by the open circuit breaker, whether or not a fallback answered them. */
    readonly circuitOpen: number;
    /** Responses the callers received, by status class. */
    readonly statusClasses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
    /**
     * Failed requests by error code (`ECONNREFUSED`, `SIDECARLESS_DEADLINE_EXCEEDED`, ...): the error's `code` (else
     * its cause's, else its name) when it is one sidecarless (`SIDECARLESS_*`), undici (`UND_ERR_*`) or Node (`ERR_*`,
     * system errors' `E*`) gives. A failure on the caller's side (see `callerErrors`) keeps only the codes of an abort
     * (`UND_ERR_ABORTED`, `ABORT_ERR`, `AbortError`, `TimeoutError`), a deadline or a request refused before sending;
     * any other code of the caller's counts as `_CALLER`, and any other code at all as `_OTHER`. At most 64 distinct
     * codes are kept, the two fixed ones included; later new ones count as `_OTHER`. An abort reason or a request body
     * error may carry any code, and each distinct one would otherwise be a key here and a metric series for good.
     */
    readonly errors: Readonly<Record<string, number>>;
    /**
     * Of the failed requests, those that failed on the caller's side, not an endpoint's: the caller aborted (its
     * `AbortSignal`, `AbortSignal.timeout()` included), its request body failed or stalled past the deadline, or undici
     * refused the request before sending it (an invalid header value). They count against no endpoint and are not
     * retried.
     */
    readonly callerErrors: number;
    /** Time to response headers across all attempts, ms. */
    readonly latency: HistogramSnapshot;
  };
  /** Circuit breaker state, when a breaker is configured. */
  readonly breaker: BreakerState | undefined;
  /**
   * True while a priority level that receives traffic is in panic: too few of its endpoints are eligible (and the
   * levels together are under 100 % available), so its traffic goes to all of them (panic threshold).
   */
  readonly panic: boolean;
  /** Outlier ejections since the cluster started. */
  readonly ejections: number;
  /** Returns from ejection since the cluster started. */
  readonly returns: number;
  /** Resolver counters since the cluster started. */
  readonly resolver: {
    /** Endpoint sets accepted from the resolver. */
    readonly updates: number;
    /** Resolver errors, including endpoint sets rejected as invalid and reports of skipped entries. */
    readonly errors: number;
    /** Endpoints the cluster skipped from the resolver's sets: invalid (no connection could be made) or repeated. */
    readonly skipped: number;
    /** Message of the most recent resolver error, kept after later successful updates; `undefined` if none yet. */
    readonly lastError: string | undefined;
  };
}

/**
 * Options of `client.stats()`.
 *
 * @category Stats
 */
export interface StatsOptions {
  /**
   * Build each cluster's per-endpoint figures (`endpoints`). With `false`, every `endpoints` is empty and the snapshot
   * costs the same at 10 endpoints as at 10,000; `endpointCount` and `ejectedCount` are there either way. Ask for
   * `false` when reading cluster figures often (a metrics scrape) from clusters with many endpoints: building the
   * endpoints' figures (a latency histogram each) is O(endpoints) in one synchronous turn.
   * @defaultValue true
   */
  readonly endpoints?: boolean | undefined;
}

/** The options `stats()` passes to each cluster's when asked for no endpoints (read without validating again). */
export const WITHOUT_ENDPOINTS: StatsOptions = Object.freeze({ endpoints: false });

/**
 * Whether `stats(options)` includes the endpoints; throws `SIDECARLESS_INVALID_OPTION` for options that are not an
 * object or an `endpoints` that is not a boolean.
 */
export function includesEndpoints(options: StatsOptions | undefined): boolean {
  // The common calls take no allocation: no options, and the exporters' and the client's shared constant.
  if (options === undefined) return true;
  if (options === WITHOUT_ENDPOINTS) return false;
  const read = readOptions('options', () => checkObject(options, ['endpoints'], 'options'));
  return boolean(read.endpoints, 'options.endpoints', true);
}

function classes(counts: readonly number[]): Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number> {
  return {
    '1xx': counts[1] ?? 0,
    '2xx': counts[2] ?? 0,
    '3xx': counts[3] ?? 0,
    '4xx': counts[4] ?? 0,
    '5xx': counts[5] ?? 0,
  };
}

/** The request-layer counters of one cluster (the `requests` part of {@link ClusterStats}, and `inFlight`). */
export class RequestCounters {
  /** Requests accepted and not yet ended. */
  inFlight = 0;
  /** Requests accepted. */
  total = 0;
  /** Attempts beyond the first. */
  extraAttempts = 0;
  /** Of `extraAttempts`, the hedged ones. */
  hedges = 0;
  /** Requests refused by `maxInFlight` or `maxPending`. */
  overloaded = 0;
  /** Requests refused by the open breaker. */
  circuitOpen = 0;
  /** Requests that failed on the caller's side. */
  callerErrors = 0;
  readonly #statusClasses: [number, number, number, number, number, number] = [0, 0, 0, 0, 0, 0];
  readonly #errorsByCode = new Map<string, number>();
  readonly #codes = new ErrorCodes();
  readonly #latency = new LatencyHistogram();

  /**
   * A request ended: `statusCode` is what the caller received (0 if nothing), `error` how it failed, if it did, and
   * `callerFault` whether the failure was on the caller's side.
   */
  ended(statusCode: number, error: Error | undefined, durationMs: number, callerFault = false): void {
    this.inFlight--;
    if (statusCode > 0) {
      const cls = Math.floor(statusCode / 100);
      if (cls >= 1 && cls <= 5) this.#statusClasses[cls as 1 | 2 | 3 | 4 | 5]++;
      this.#latency.observe(durationMs);
    }
    if (error !== undefined) {
      if (callerFault) this.callerErrors++;
      const code = this.#codes.of(error, callerFault);
      this.#errorsByCode.set(code, (this.#errorsByCode.get(code) ?? 0) + 1);
    }
  }

  /** The `requests` part of {@link ClusterStats}. */
  snapshot(): ClusterStats['requests'] {
    return {
      total: this.total,
      extraAttempts: this.extraAttempts,
      retries: this.extraAttempts - this.hedges,
      hedges: this.hedges,
      overloaded: this.overloaded,
      circuitOpen: this.circuitOpen,
      statusClasses: classes(this.#statusClasses),
      errors: Object.fromEntries(this.#errorsByCode),
      callerErrors: this.callerErrors,
      latency: this.#latency.snapshot(),
    };
  }
}

/** The resolver part of {@link ClusterStats}, as the cluster counts it. */
export class ResolverCounters {
  /** Endpoint sets accepted. */
  updates = 0;
  /** Resolver errors, invalid endpoint sets included. */
  errors = 0;
  /** Invalid or repeated endpoints skipped from the resolver's sets. */
  skipped = 0;
  /** The most recent resolver error, kept after later successful updates. */
  lastError: SidecarlessError | undefined;

  /** The `resolver` part of {@link ClusterStats}. */
  snapshot(): ClusterStats['resolver'] {
    return { updates: this.updates, errors: this.errors, skipped: this.skipped, lastError: this.lastError?.message };
  }
}

/** What {@link endpointStats} and {@link endpointFigures} ask of the health layer. */
export interface EndpointHealthView {
  isEjected(subchannel: Subchannel): boolean;
  isHealthy(subchannel: Subchannel): boolean;
  /** Hosts of the current set ejected now, kept as a count (not found by a walk of the set). */
  readonly ejectedCount: number;
}

/**
 * The endpoint part of {@link ClusterStats} for the current set `subchannels`: the counts always, each endpoint's
 * figures only when `options` ask for them (the default).
 */
export function endpointFigures(
  subchannels: readonly Subchannel[],
  counts: { read(s: Subchannel): Readonly<EndpointCounts> },
  health: EndpointHealthView,
  options: StatsOptions | undefined,
): Pick<ClusterStats, 'endpoints' | 'endpointCount' | 'ejectedCount'> {
  return {
    endpoints: includesEndpoints(options) ? subchannels.map((s) => endpointStats(s, counts.read(s), health)) : [],
    endpointCount: subchannels.length,
    // close() empties the set without telling the detector, which keeps its ejections: none are of the set then.
    ejectedCount: subchannels.length === 0 ? 0 : health.ejectedCount,
  };
}

/** One endpoint's figures: the subchannel's own counters, the cluster's (`extra`) and its health. */
export function endpointStats(
  s: Subchannel,
  extra: Readonly<EndpointCounts>,
  health: EndpointHealthView,
): EndpointStats {
  const c = s.counters;
  return {
    key: s.key,
    state: s.state,
    weight: s.endpoint.weight,
    inFlight: s.inFlight,
    attempts: c.attempts,
    responses: c.responses,
    statusClasses: classes(c.statusClasses),
    errors: c.errors,
    errorsByKind: { ...c.errorsByKind },
    connectFailures: c.connectFailures,
    retries: extra.retries,
    hedges: extra.hedges,
    timesEjected: extra.timesEjected,
    returns: extra.returns,
    ejected: health.isEjected(s),
    healthy: health.isHealthy(s),
    effectiveWeight: s.weight,
    meanLatencyMs: c.responses === 0 ? 0 : c.latencySumMs / c.responses,
    latency: s.latency.snapshot(),
  };
}
