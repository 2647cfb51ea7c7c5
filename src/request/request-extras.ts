/**
 * What a request (`balanced-request.ts`) needs besides its state machine: the state only retries, hedges, aborts,
 * closing and the breaker need ({@link RequestExtras}, made on demand) and the small helpers of its rarer paths.
 * Apart so that the state machine's file holds the state machine.
 *
 * @module
 */
import type { Readable } from 'node:stream';
import type { Backoff } from '../common/backoff.js';
import { ClientClosedError, InvalidRequestError, isSidecarlessError, NoEndpointsError } from '../common/errors.js';
import { AllEjectedError } from '../common/request-errors.js';
import { markCallerError } from '../common/outcome.js';
import type { TimerHandle } from '../common/runtime.js';
import type { RouteDecision } from '../routing/router.js';
import type { Subchannel } from '../subchannel/subchannel.js';
import type { AttemptBase, AttemptFailure } from './attempt.js';
import { bodyIterator, type IterableBody, type RecordedBody } from './recorded-body.js';

/** How a request ended, for the circuit breaker. */
export type RequestVerdict = 'success' | 'failure' | 'ignored';

export function abortedError(): Error {
  const err = new Error('Request aborted') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'UND_ERR_ABORTED';
  return err;
}

export function isReadable(value: unknown): value is Readable {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function';
}

/** True for a body undici iterates (see {@link IterableBody}); a string or a byte view is not one here. */
export function isIterableBody(value: unknown): value is IterableBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    (Symbol.asyncIterator in value || typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function')
  );
}

/**
 * The error of a request that found no endpoint for a retry, carrying the earlier attempt's failure as `cause` (the
 * picker's errors are shared by every request of a snapshot, so a fresh one is made rather than the shared one
 * changed).
 */
export function withCause(error: Error, cause: Error, cluster: string): Error {
  if (!isSidecarlessError(error) || error.cause !== undefined) return error;
  switch (error.code) {
    case 'SIDECARLESS_ALL_EJECTED':
      return new AllEjectedError(cluster, { cause });
    case 'SIDECARLESS_NO_ENDPOINTS':
      return new NoEndpointsError(cluster, (error as NoEndpointsError).waitedMs, { cause });
    case 'SIDECARLESS_CLIENT_CLOSED':
      return new ClientClosedError({ cause });
    default:
      return error;
  }
}

/** The caller's body failed: its error is the caller's (issue 15.6), marked before undici sees it. */
function callerFailed(err: unknown): never {
  markCallerError(err);
  throw err;
}

/** A chunk undici can send; anything else fails the body as the caller's, as a recorded body's reader does. */
function checkedChunk(result: IteratorResult<unknown>): IteratorResult<unknown> {
  const chunk: unknown = result.value;
  if (result.done === true || typeof chunk === 'string' || ArrayBuffer.isView(chunk) || chunk instanceof ArrayBuffer) {
    return result;
  }
  return callerFailed(new InvalidRequestError(`Request body chunks must be strings or bytes, got ${typeof chunk}`));
}

/**
 * A view of the caller's iterable body (async, or sync and possibly single-use: a generator) that records when
 * undici starts reading it, so a failed attempt that never read it can be replayed with the same (untouched)
 * iterator, and marks the body's failures (an error it throws, a chunk that is not bytes) as the caller's. An async
 * iterable either way: undici sends it chunked, as it sends a sync one. A function of its own: a closure made inside
 * the request's method would make V8 allocate its context on every attempt, bodiless ones included (issue 14).
 */
export function watchedIterable(iterable: IterableBody, extras: RequestExtras): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]: (): AsyncIterator<unknown> => {
      extras.bodyStarted = true;
      const iterator = bodyIterator(iterable);
      return {
        next: () => {
          try {
            return Promise.resolve(iterator.next()).then(checkedChunk, callerFailed);
          } catch (err) {
            return callerFailed(err);
          }
        },
        return: (value?: unknown) => Promise.resolve(iterator.return?.(value) ?? { done: true, value }),
      };
    },
  };
}

/** The per-try timeout's callback (a function of its own, for the same reason as {@link watchedIterable}). */
export function perTryTimer(attempt: AttemptBase, ms: number): () => void {
  return () => {
    attempt.timer = undefined;
    attempt.timeout(ms);
  };
}

/** The endpoints a first attempt excludes: none (shared; a request makes its own set at its second attempt). */
export const NONE_TRIED: ReadonlySet<Subchannel> = new Set();

export function headerValue(raw: Buffer[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] as Buffer).toString('latin1').toLowerCase() === name) return (raw[i + 1] as Buffer).toString('latin1');
  }
  return undefined;
}

/**
 * What a request needs only when it does more than one attempt on its first pick: it retries, hedges, is aborted,
 * fails on the caller's side, is closed, or is counted by a breaker. Made on demand (`more()`), so a request that
 * succeeds on its first attempt never builds it (issue 14).
 */
export class RequestExtras {
  /** The request's route, if any (before the extras are made, the request holds it itself). */
  readonly route: RouteDecision | undefined;
  /** The request's authority, when its origin is a URL object (see `BalancedRequest.authority`). */
  authority = '';
  abortReason: Error | undefined;
  lastFailure: AttemptFailure | undefined;
  /** The live attempts other than the request's first live one (a second live attempt makes it). */
  hedges: Set<AttemptBase> | undefined;
  /** The request's lead attempt when it is not the request's own (see `BalancedRequest.lead`). */
  lead: AttemptBase | undefined;
  /** The endpoints tried so far, made at the first failure or hedge. */
  tried: Set<Subchannel> | undefined;
  /** The next hedge of the attempt group in progress; a request that ends clears it. */
  hedgeTimer: TimerHandle | undefined;
  /**
   * The caller's stream body (not recorded) may be read or destroyed by an attempt that is no longer the request's:
   * an iterable's iteration began, or an attempt holding it was given up before undici started it.
   */
  bodyStarted = false;
  /** The streamed body as read so far, when `retry.bufferBody` records it. */
  recorded: RecordedBody | undefined;
  /** Hedges the current group may still send. */
  hedgesLeft = 0;
  /**
   * When the latest hedge's retry-budget token was withdrawn: given back if that hedge is never sent. One field is
   * enough: a hedge is launched only while no attempt of the group waits for an endpoint (see `hedgeDue`).
   */
  hedgePaidAt: number | undefined;
  /**
   * The current group's retry was paid from the retry budget (a retried status on its last attempt running): it is
   * not paid again when the group fails (see `BalancedRequest.retryForStatus`).
   */
  groupPaid = false;
  /** The wait before the next attempt, while the request waits to retry. */
  retryTimer: TimerHandle | undefined;
  /** The request's retry backoff, made at its first retry. */
  backoff: Backoff | undefined;
  /** What the failure being retried asked to wait (`Retry-After`), ms. */
  retryAfterMs = 0;
  /** Set when the client closes: no new attempt starts. */
  closing = false;
  /** The request failed on the caller's side (its abort, its body, a request undici refused): see `callerFault`. */
  callerFault = false;
  /** When the breaker's fallback answered (the response of no attempt). */
  respondedAt: number | undefined;
  /** The status of the breaker's fallback response. */
  respondedStatus = 0;
  /** The caller was told `onResponseStarted`, with the first informational response it got (see `informational`). */
  toldStarted = false;
  /** Told the verdict for the circuit breaker, when one counts this request. */
  settle: ((verdict: RequestVerdict) => void) | undefined;
  // The first attempt's (the request's own, see `AttemptBase`) fields that only a stopped, discarded, timed or
  // queued first attempt needs.
  firstStopReason: Error | undefined;
  firstDiscardWaitMs = 0;
  firstTimer: TimerHandle | undefined;
  /** When the first attempt started, when it waited for an endpoint (otherwise when the request did). */
  firstStartedAt: number | undefined;

  constructor(route: RouteDecision | undefined) {
    this.route = route;
  }
}
