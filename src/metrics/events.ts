/**
 * `diagnostics_channel` events. Subscribe with `diagnostics_channel.subscribe(name, fn)`; nothing is built or
 * published while a channel has no subscriber.
 *
 * | channel | message |
 * | --- | --- |
 * | `sidecarless:request:start` | {@link RequestStartMessage} |
 * | `sidecarless:request:end` | {@link RequestEndMessage} |
 * | `sidecarless:pick` | {@link PickMessage} |
 * | `sidecarless:eject` | {@link HealthEvent} (`type` `eject`, and `return`, `healthy`, `unhealthy`) |
 * | `sidecarless:resolve` | {@link ResolveMessage} |
 *
 * @module
 */
import diagnostics from 'node:diagnostics_channel';
import type { HealthEvent } from '../health/endpoint-health.js';

/** A request was accepted by a cluster. */
export interface RequestStartMessage {
  readonly cluster: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
}

/** A request ended: its response headers were delivered (with `statusCode`) or it failed (with `error`). */
export interface RequestEndMessage extends RequestStartMessage {
  /** The status the caller received; 0 when the request failed. */
  readonly statusCode: number;
  readonly error: Error | undefined;
  /** From dispatch to response headers or failure, ms. */
  readonly durationMs: number;
  /** Attempts sent, retries and hedges included. */
  readonly attempts: number;
}

/** An attempt was sent to an endpoint. */
export interface PickMessage {
  readonly cluster: string;
  readonly endpoint: string;
  /** 1 for the first attempt of a request. */
  readonly attempt: number;
}

/** A resolver delivered an endpoint set, or failed. */
export interface ResolveMessage {
  readonly cluster: string;
  /** Endpoints in the new set (or kept, on error). */
  readonly endpoints: number;
  readonly error: Error | undefined;
}

/** The channels, by name. */
export const channels = {
  requestStart: diagnostics.channel('sidecarless:request:start'),
  requestEnd: diagnostics.channel('sidecarless:request:end'),
  pick: diagnostics.channel('sidecarless:pick'),
  eject: diagnostics.channel('sidecarless:eject'),
  resolve: diagnostics.channel('sidecarless:resolve'),
} as const;

export type { HealthEvent };
