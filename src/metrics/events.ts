/**
 * `diagnostics_channel` events. Subscribe with `diagnostics_channel.subscribe(name, fn)`; nothing is built or
 * published while a channel has no subscriber.
 *
 * | channel | message |
 * | --- | --- |
 * | `sidecarless:request:start` | {@link RequestStartMessage} |
 * | `sidecarless:request:end` | {@link RequestEndMessage} |
 * | `sidecarless:pick` | {@link PickMessage} |
 * | `sidecarless:attempt:end` | {@link AttemptEndMessage} |
 * | `sidecarless:eject` | {@link HealthEvent} (`type` `eject`, and `return`, `healthy`, `unhealthy`) |
 * | `sidecarless:resolve` | {@link ResolveMessage} |
 *
 * @module
 */
import diagnostics from 'node:diagnostics_channel';
import type { Endpoint } from '../common/endpoint.js';
import type { ErrorKind } from '../common/outcome.js';

/** A request was accepted by a cluster. @category Observability */
export interface RequestStartMessage {
  /** The cluster's name. */
  readonly cluster: string;
  /**
   * The cluster's {@link ClusterStats.id}: unique in the process, so subscribers can tell apart clusters of different
   * clients that share a name.
   */
  readonly clusterId: number;
  /** HTTP method, as dispatched. */
  readonly method: string;
  /** The request URL's scheme, which gives the port when `authority` has none (80 or 443). */
  readonly scheme: 'http' | 'https';
  /** The logical authority (`host[:port]`) of the request URL, e.g. `users`. */
  readonly authority: string;
  /** Request path with query. */
  readonly path: string;
}

/**
 * A request ended: its response completed (with `statusCode`) or it failed (with `error`; `statusCode` too when the
 * failure came after the response headers).
 *
 * @category Observability
 */
export interface RequestEndMessage extends RequestStartMessage {
  /** The status the caller received; 0 when the request failed before response headers. */
  readonly statusCode: number;
  /** What ended the request (also set when the response body failed after headers); `undefined` on success. */
  readonly error: Error | undefined;
  /** From dispatch to response headers or failure, ms. */
  readonly durationMs: number;
  /** Attempts sent, retries and hedges included. */
  readonly attempts: number;
}

/** An attempt was sent to an endpoint. @category Observability */
export interface PickMessage {
  /** The cluster's name. */
  readonly cluster: string;
  /**
   * The cluster's {@link ClusterStats.id}: unique in the process, so subscribers can tell apart clusters of different
   * clients that share a name.
   */
  readonly clusterId: number;
  /** Key (`host:port`) of the endpoint the attempt goes to. */
  readonly endpoint: string;
  /** 1 for the first attempt of a request. */
  readonly attempt: number;
}

/**
 * An attempt ended: it got response headers (the status, whether the response reached the caller or was
 * discarded for a retry) or failed. Published once per attempt, with the outcome its endpoint's load and health
 * were fed.
 *
 * @category Observability
 */
export interface AttemptEndMessage {
  /** The cluster's name. */
  readonly cluster: string;
  /**
   * The cluster's {@link ClusterStats.id}: unique in the process, so subscribers can tell apart clusters of different
   * clients that share a name.
   */
  readonly clusterId: number;
  /** Key (`host:port`) of the endpoint the attempt went to. */
  readonly endpoint: string;
  /** The response status; 0 when the attempt failed before response headers. */
  readonly statusCode: number;
  /** How the attempt failed (also after headers); `undefined` when it did not. */
  readonly errorKind: ErrorKind | undefined;
  /** From dispatch to response headers, or to the error when none arrived, ms. */
  readonly durationMs: number;
}

/** A resolver delivered an endpoint set, or failed. @category Observability */
export interface ResolveMessage {
  /** The cluster's name. */
  readonly cluster: string;
  /**
   * The cluster's {@link ClusterStats.id}: unique in the process, so subscribers can tell apart clusters of different
   * clients that share a name.
   */
  readonly clusterId: number;
  /** Endpoints in the new set (or kept, on error). */
  readonly endpoints: number;
  /** The resolver's error (the endpoints are kept); `undefined` for a new endpoint set. */
  readonly error: Error | undefined;
}

/**
 * Why a host was ejected.
 * - `consecutive-5xx`, `consecutive-gateway-failure`, `consecutive-local-origin-failure`: the inline rules;
 * - `success-rate`, `failure-percentage`: the interval rules over external-origin outcomes (all outcomes unless
 *   `splitExternalLocalOriginErrors`);
 * - `local-origin-success-rate`, `local-origin-failure-percentage`: the interval rules over local-origin outcomes
 *   (only with `splitExternalLocalOriginErrors`);
 * - `health-check`: the outlier detector's `eject()` was called (by an active health checker or the application).
 */
export type EjectionReason =
  | 'consecutive-5xx'
  | 'consecutive-gateway-failure'
  | 'consecutive-local-origin-failure'
  | 'success-rate'
  | 'failure-percentage'
  | 'local-origin-success-rate'
  | 'local-origin-failure-percentage'
  | 'health-check';

/**
 * Why an ejected host came back.
 * - `elapsed`: its ejection time passed (at an interval sweep);
 * - `health-check`: an active health check passed (`canReturnEjected`), through the outlier detector's `uneject()`;
 * - `manual`: `uneject()` with no reason.
 */
export type ReturnReason = 'elapsed' | 'health-check' | 'manual';

/** An endpoint left or rejoined the eligible set. */
export interface HealthEvent {
  /** The cluster's name. */
  readonly cluster: string;
  /**
   * The cluster's {@link ClusterStats.id}: unique in the process, so subscribers can tell apart clusters of different
   * clients that share a name.
   */
  readonly clusterId: number;
  /** The endpoint. */
  readonly endpoint: Endpoint;
  /** `eject`: outlier detection took it out; `return`: it came back; `unhealthy`/`healthy`: active health checks. */
  readonly type: 'eject' | 'return' | 'unhealthy' | 'healthy';
  /** Why: the ejection rule (`consecutive-5xx`, `success-rate`, ...) or how it returned (`elapsed`, `health-check`). */
  readonly reason: EjectionReason | ReturnReason | 'health-check';
  /** For `eject`: how long the ejection lasts, ms. */
  readonly ejectionMs?: number;
  /** For `eject` and `return`: how many times the endpoint has been ejected. */
  readonly timesEjected?: number;
}

/**
 * A subscription (to health events, with {@link Client.onHealthEvent}): `dispose()` removes the listener. It is
 * also a `Disposable` of explicit resource management, so `using sub = client.onHealthEvent(...)` removes the
 * listener at the end of the scope.
 *
 * @category Observability
 */
export interface Subscription {
  /** Removes the listener; calling it again does nothing. */
  dispose(): void;
  /** The same as {@link Subscription.dispose}, for `using`. */
  [Symbol.dispose](): void;
}

/**
 * The former name of {@link Subscription}, which shadowed the global `Disposable` of TypeScript's lib.
 *
 * @deprecated use {@link Subscription}
 * @category Observability
 */
export type Disposable = Subscription;

/** A {@link Subscription} whose `dispose()` (and `[Symbol.dispose]()`) calls `remove`. @internal */
export function subscription(remove: () => unknown): Subscription {
  const dispose = (): void => {
    remove();
  };
  return { dispose, [Symbol.dispose]: dispose };
}

/** The channels, by name. */
export const channels = {
  /** `sidecarless:request:start`, publishing {@link RequestStartMessage}. */
  requestStart: diagnostics.channel('sidecarless:request:start'),
  /** `sidecarless:request:end`, publishing {@link RequestEndMessage}. */
  requestEnd: diagnostics.channel('sidecarless:request:end'),
  /** `sidecarless:pick`, publishing {@link PickMessage} once per attempt. */
  pick: diagnostics.channel('sidecarless:pick'),
  /** `sidecarless:attempt:end`, publishing {@link AttemptEndMessage} once per attempt. */
  attemptEnd: diagnostics.channel('sidecarless:attempt:end'),
  /** `sidecarless:eject`, publishing every {@link HealthEvent} (ejections, returns and health-check changes). */
  eject: diagnostics.channel('sidecarless:eject'),
  /** `sidecarless:resolve`, publishing {@link ResolveMessage}. */
  resolve: diagnostics.channel('sidecarless:resolve'),
} as const;
