/**
 * The errors of a request's way through a cluster, past its options: its deadlines, retries and retry budget, the
 * circuit breaker and concurrency limits, the balancer (every endpoint ejected, an empty subset), routing and
 * redirects. The base class, the codes and the errors of options, targets and resolvers are in `errors.ts`.
 *
 * @module
 */
import { SidecarlessError } from './errors.js';

/**
 * The request's overall deadline (the `timeout` option) passed before a response arrived. `cause` is the last
 * attempt's error, if an attempt failed before.
 *
 * @category Errors
 */
export class DeadlineExceededError extends SidecarlessError {
  constructor(timeoutMs: number, options?: { cause?: unknown }) {
    super('SIDECARLESS_DEADLINE_EXCEEDED', `No response within the ${timeoutMs} ms deadline`, options);
  }
}

/**
 * One attempt got no response headers within `retry.perTryTimeoutMs`; retried when the request may be.
 *
 * @category Errors
 */
export class PerTryTimeoutError extends SidecarlessError {
  constructor(timeoutMs: number) {
    super('SIDECARLESS_PER_TRY_TIMEOUT', `Attempt got no response within the ${timeoutMs} ms per-try timeout`);
  }
}

/**
 * An attempt failed in a way that could have been retried, but the cluster's retry budget was spent (retries are
 * capped to a share of requests so a failing service is not hit by a retry storm). `cause` is the attempt's error.
 *
 * @category Errors
 */
export class RetryBudgetExhaustedError extends SidecarlessError {
  constructor(cluster: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_RETRY_BUDGET_EXHAUSTED', `Retry budget of cluster "${cluster}" is exhausted`, options);
  }
}

/** The cluster's circuit breaker is open: requests fail fast until a half-open probe succeeds. @category Errors */
export class CircuitOpenError extends SidecarlessError {
  constructor(cluster: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_CIRCUIT_OPEN', `Circuit breaker of cluster "${cluster}" is open`, options);
  }
}

/**
 * The cluster is at a concurrency limit (`limits.maxInFlight` requests in flight, or `limits.maxPending` requests
 * waiting for an endpoint), or discovery cannot make a cluster for a new host because every discovered cluster is
 * busy and the overflow (of `overflow` clusters) above `discovery.maxClusters` is used up (`maxClusters`); not sent.
 *
 * @category Errors
 */
export class OverloadedError extends SidecarlessError {
  /** Which limit was hit. */
  readonly limit: 'maxInFlight' | 'maxPending' | 'maxClusters';

  constructor(cluster: string, limit: 'maxInFlight' | 'maxPending' | 'maxClusters', value: number, overflow = 0) {
    const hit =
      overflow > 0
        ? `${value + overflow} busy discovered clusters: ${limit} (${value}) plus the busy overflow (${overflow})`
        : `${limit} (${value}) reached`;
    super('SIDECARLESS_OVERLOADED', `Cluster "${cluster}" is overloaded: ${hit}`);
    this.limit = limit;
  }
}

/**
 * Every endpoint is ejected by outlier detection or failing active health checks, and the panic threshold is off
 * (`panicThreshold: 0`), so no endpoint may take the request. When an earlier attempt of the request failed (and
 * got its endpoint ejected, say), `cause` is that attempt's error.
 *
 * @category Errors
 */
export class AllEjectedError extends SidecarlessError {
  constructor(cluster: string, options?: { cause?: unknown }) {
    super(
      'SIDECARLESS_ALL_EJECTED',
      `Every endpoint of cluster "${cluster}" is ejected or unhealthy (and the panic threshold is off)`,
      options,
    );
  }
}

/**
 * A route's endpoint subset (and its fallback subset) matched no endpoint, with `subsetFallback` not `any`.
 *
 * @category Errors
 */
export class EmptySubsetError extends SidecarlessError {
  /** The subset that was empty. */
  readonly subset: Readonly<Record<string, string>>;

  constructor(cluster: string, subset: Readonly<Record<string, string>>) {
    super('SIDECARLESS_EMPTY_SUBSET', `No endpoint of cluster "${cluster}" matches subset ${JSON.stringify(subset)}`);
    this.subset = subset;
  }
}

/** No route matched the request, no cluster is named by its host, and passthrough is off. @category Errors */
export class NoRouteError extends SidecarlessError {
  /** The request's host. */
  readonly host: string;

  constructor(host: string, path: string) {
    super('SIDECARLESS_NO_ROUTE', `No route for ${host}${path}`);
    this.host = host;
  }
}

/**
 * `client.fetch` was redirected to another origin than the request's, and the client refuses such redirects
 * (`redirect: { crossOrigin: 'refuse' }`): nothing was sent there.
 *
 * @category Errors
 */
export class RedirectRefusedError extends SidecarlessError {
  /** The origin the redirect pointed to (`https://login.example`). */
  readonly location: string;

  constructor(location: string) {
    super('SIDECARLESS_REDIRECT_REFUSED', `Refused a redirect to another origin (${location})`);
    this.location = location;
  }
}

/**
 * An endpoint answered with a retried status (`retry.retryOn`: 502, 503, 504 by default), its response was set aside
 * for a retry, then the streamed request body went past `retry.bufferBody` during the upload: the caller gets this
 * (`status`: what the endpoint answered) instead of the response, which is gone. If the client began closing, or the
 * caller's stream failed, it gets a {@link ClientClosedError} with this as `cause`, or that stream's own error.
 *
 * @category Errors
 */
export class ResponseDiscardedError extends SidecarlessError {
  /** The endpoint that answered (`host:port`). */
  readonly endpoint: string;
  /** The status it answered with. */
  readonly status: number;

  constructor(endpoint: string, status: number) {
    super(
      'SIDECARLESS_RESPONSE_DISCARDED',
      `Endpoint ${endpoint} answered ${status}; the response was set aside for a retry that could not be made`,
    );
    this.endpoint = endpoint;
    this.status = status;
  }
}
