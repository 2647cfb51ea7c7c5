/**
 * The diagnostics-channel messages a cluster publishes (see `metrics/events.ts` for the channels and message types).
 * Each function publishes only when the channel has subscribers, and builds its message then: a cluster nobody
 * observes pays one property read per event.
 *
 * @module
 */
import type { AttemptOutcome } from '../common/outcome.js';
import {
  type AttemptEndMessage,
  channels,
  type PickMessage,
  type RequestEndMessage,
  type RequestStartMessage,
  type ResolveMessage,
} from '../metrics/events.js';
import type { PickContext } from '../pickers/picker.js';

/** What every message says of its cluster; built once per cluster. */
export interface ClusterLabel {
  /** The cluster's name. */
  readonly cluster: string;
  /** The cluster's process-unique id. */
  readonly clusterId: number;
  /** The scheme of the cluster's requests. */
  readonly scheme: 'http' | 'https';
}

/** `sidecarless:request:start`: a request was accepted. */
export function publishRequestStart(label: ClusterLabel, context: PickContext): void {
  if (!channels.requestStart.hasSubscribers) return;
  const message: RequestStartMessage = {
    cluster: label.cluster,
    clusterId: label.clusterId,
    method: context.method,
    scheme: label.scheme,
    authority: context.authority,
    path: context.path,
  };
  channels.requestStart.publish(message);
}

/** `sidecarless:request:end`: a request ended (the caller has seen its end). */
export function publishRequestEnd(
  label: ClusterLabel,
  context: PickContext,
  statusCode: number,
  error: Error | undefined,
  durationMs: number,
  attempts: number,
): void {
  if (!channels.requestEnd.hasSubscribers) return;
  const message: RequestEndMessage = {
    cluster: label.cluster,
    clusterId: label.clusterId,
    method: context.method,
    scheme: label.scheme,
    authority: context.authority,
    path: context.path,
    statusCode,
    error,
    durationMs,
    attempts,
  };
  channels.requestEnd.publish(message);
}

/** `sidecarless:pick`: attempt number `attempt` goes to `endpoint`. */
export function publishPick(label: ClusterLabel, endpoint: string, attempt: number): void {
  if (!channels.pick.hasSubscribers) return;
  const message: PickMessage = { cluster: label.cluster, clusterId: label.clusterId, endpoint, attempt };
  channels.pick.publish(message);
}

/** `sidecarless:attempt:end`: an attempt to `endpoint` ended with `outcome`. */
export function publishAttemptEnd(label: ClusterLabel, endpoint: string, outcome: AttemptOutcome): void {
  if (!channels.attemptEnd.hasSubscribers) return;
  const message: AttemptEndMessage = {
    cluster: label.cluster,
    clusterId: label.clusterId,
    endpoint,
    statusCode: outcome.statusCode,
    errorKind: outcome.errorKind,
    durationMs: outcome.latencyMs,
  };
  channels.attemptEnd.publish(message);
}

/** `sidecarless:resolve`: the resolver delivered `endpoints` endpoints, or failed with `error` (endpoints kept). */
export function publishResolve(label: ClusterLabel, endpoints: number, error: Error | undefined): void {
  if (!channels.resolve.hasSubscribers) return;
  const message: ResolveMessage = { cluster: label.cluster, clusterId: label.clusterId, endpoints, error };
  channels.resolve.publish(message);
}
