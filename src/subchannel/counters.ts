/**
 * What a subchannel counts: its counters (made on first use) and the bound on attempts undici still holds for it
 * after they were given up.
 *
 * @module
 */
import type { ErrorKind } from '../common/outcome.js';

/** Counters of one subchannel, since it was created. */
export interface SubchannelCounters {
  /** Attempts dispatched. */
  attempts: number;
  /** Attempts that received response headers. */
  responses: number;
  /** Responses by status class: index 1 for 1xx ... 5 for 5xx. */
  readonly statusClasses: [number, number, number, number, number, number];
  /** Attempts that ended in an error (before or after headers). */
  errors: number;
  /** Sum of attempt latencies (to headers), ms. */
  latencySumMs: number;
  /** Failed connection attempts. */
  connectFailures: number;
  /** Attempt errors by kind. */
  readonly errorsByKind: Record<ErrorKind, number>;
  /** When the last response headers came (the clock's reading; -Infinity before any): see {@link HELD_GRACE_MS}. */
  answeredAtMs: number;
}

/** Counters of a subchannel that has not dispatched anything yet: all zero, shared, never written. */
export const NO_COUNTERS: Readonly<SubchannelCounters> = Object.freeze({
  attempts: 0,
  responses: 0,
  statusClasses: Object.freeze([0, 0, 0, 0, 0, 0]) as unknown as SubchannelCounters['statusClasses'],
  errors: 0,
  latencySumMs: 0,
  connectFailures: 0,
  errorsByKind: Object.freeze({ connect: 0, reset: 0, timeout: 0, aborted: 0, goaway: 0, other: 0 }),
  answeredAtMs: Number.NEGATIVE_INFINITY,
});

/** A subchannel's counters as they start, made on its first attempt (an endpoint never picked has none). */
export function freshCounters(): SubchannelCounters {
  return {
    attempts: 0,
    responses: 0,
    statusClasses: [0, 0, 0, 0, 0, 0],
    errors: 0,
    latencySumMs: 0,
    connectFailures: 0,
    errorsByKind: { connect: 0, reset: 0, timeout: 0, aborted: 0, goaway: 0, other: 0 },
    answeredAtMs: Number.NEGATIVE_INFINITY,
  };
}

/**
 * Attempts given up before undici started them (their deadline passed in the pool's queue, or while their connection
 * was being made) that undici still holds, at most, per subchannel. undici keeps such an attempt until a connection
 * takes it (and it is aborted there) or fails, and each may have opened a connection of its own: against an endpoint
 * that drops connection attempts, callers with short deadlines would pile up a connecting socket per request, each
 * until undici's connect timeout (10 s), thousands within seconds. Past this many, the subchannel refuses attempts at
 * once with `SIDECARLESS_NOT_PROCESSED` (not sent: retried on another endpoint whatever the method, and no evidence
 * against this one) until undici lets go of some, unless the endpoint answered within {@link HELD_GRACE_MS}.
 */
export const MAX_HELD_UNSTARTED = 128;

/**
 * An endpoint that answered a request this recently (ms) takes attempts past {@link MAX_HELD_UNSTARTED}: it is
 * answering, and what undici holds for it is a burst on its way (hedges that lost while their connections were being
 * made, under a thousand concurrent requests), not a pile-up against an endpoint that drops connection attempts. A
 * healthy endpoint is never refused for it (probe 5: a burst of hedged requests to one endpoint failed with
 * `SIDECARLESS_NOT_PROCESSED`).
 */
export const HELD_GRACE_MS = 1000;
