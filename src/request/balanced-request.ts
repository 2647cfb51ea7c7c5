/**
 * One request as the caller dispatched it: its wait for an endpoint, its attempts (retries and hedges), its
 * deadline, and the single conversation the caller sees.
 *
 * The attempts run as a state machine driven by callbacks, not promises: the first attempt costs no more than a
 * plain undici request (no promise, no controller, no closure beyond the attempt's own). A failed attempt is judged
 * at once (#attemptFailed); a retry waits on the host's clock (`clock.setTimeout`) for the larger of the request's
 * backoff (common/backoff.ts, jitter from the host's random source) and the `Retry-After` the failure asked for.
 * Hedged attempts form a group (#nextAttempt, #hedgeDue): the group fails with its last outstanding attempt. The
 * waits and attempt counting are the project's own rather than p-retry's, see docs/ARCHITECTURE.md ("Retries").
 *
 * The caller's handler sees exactly one `onConnect` (with an abort function that works at every stage), then the
 * response of the one attempt that commits, or one `onError`. Attempts whose response is discarded for a retry,
 * or that lose a hedge race, are invisible to the caller; each still reports its own outcome to its subchannel.
 *
 * Replay safety (docs/ARCHITECTURE.md, "Invariants"): a request is sent again only when
 * - it certainly did not reach the server (the connection failed), or the method is idempotent (RFC 9110 §9.2.2)
 *   or the user opted in with `retry.retryNonIdempotent`; and
 * - its body can be sent again: none, buffered, a stream recorded while it was read (`retry.bufferBody`), or a
 *   stream no attempt has started to read.
 * Retried statuses (502, 503, 504 by default) are retried only for requests that may be replayed; otherwise the
 * response goes to the caller as it is.
 *
 * @size single state machine: one request's wait, attempts, retries, hedges and deadline, and the one conversation
 * the caller sees; its parts share the request's state and would only trade fields for parameters if split.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Backoff } from '../common/backoff.js';
import {
  AllEjectedError,
  ClientClosedError,
  DeadlineExceededError,
  isSidecarlessError,
  NoEndpointsError,
  RetryBudgetExhaustedError,
} from '../common/errors.js';
import type { LegacyHandler } from '../common/handler.js';
import type { PickContext } from '../pickers/picker.js';
import type { RouteDecision } from '../routing/router.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import type { Subchannel } from '../subchannel/subchannel.js';
import { Attempt, AttemptFailure, type AttemptOwner, hedgeLost } from './attempt.js';
import { type BodyReplay, bodyReplay, isIdempotent, parseRetryAfter, type RequestPolicy, retryWait } from './policy.js';
import { RecordedBody } from './recorded-body.js';
import type { RetryBudget } from './retry-budget.js';

/** What a request needs from its cluster. */
export interface RequestHost {
  readonly name: string;
  readonly policy: RequestPolicy;
  readonly clock: Clock;
  /** Jitter for retry backoffs. */
  readonly random: RandomSource;
  readonly budget: RetryBudget | undefined;
  /** The response header naming the answering endpoint (lower-case), if configured. */
  readonly endpointHeader: Buffer | undefined;
  /**
   * Finds a subchannel for the request, avoiding `exclude` when another is available; when none is usable, waits
   * (bounded by `waitForReadyTimeoutMs`). Calls `callback` exactly once, possibly synchronously.
   */
  acquire(
    request: BalancedRequest,
    exclude: ReadonlySet<Subchannel>,
    callback: (error: Error | undefined, subchannel: Subchannel | undefined) => void,
  ): void;
  /** Takes the request out of the wait queue. */
  dequeue(request: BalancedRequest): void;
  /** Sends one attempt; `hedge` tells a hedged attempt from a first attempt or a retry. */
  send(request: BalancedRequest, subchannel: Subchannel, body: unknown, attempt: Attempt, hedge: boolean): void;
  /**
   * The request ended (the caller has seen its end): `statusCode` is what the caller received (0 if nothing),
   * `error` how it failed (before or after the response headers), if it did.
   */
  finished(request: BalancedRequest, statusCode: number, error: Error | undefined): void;
}

/** How a request ended, for the circuit breaker. */
export type RequestVerdict = 'success' | 'failure' | 'ignored';

type Stage = 'new' | 'running' | 'committed' | 'done';

function abortedError(): Error {
  const err = new Error('Request aborted') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'UND_ERR_ABORTED';
  return err;
}

function isReadable(value: unknown): value is Readable {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/**
 * The error of a request that found no endpoint for a retry, carrying the earlier attempt's failure as `cause` (the
 * picker's errors are shared by every request of a snapshot, so a fresh one is made rather than the shared one
 * changed).
 */
function withCause(error: Error, cause: Error, cluster: string): Error {
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

function headerValue(raw: Buffer[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] as Buffer).toString('latin1').toLowerCase() === name) return (raw[i + 1] as Buffer).toString('latin1');
  }
  return undefined;
}

export class BalancedRequest implements AttemptOwner {
  /** The options as the caller dispatched them. */
  readonly options: Dispatcher.DispatchOptions;
  /** What the picker sees. */
  readonly context: PickContext;
  /** The caller's handler. */
  readonly user: LegacyHandler;
  /** Attempts sent, including hedges. */
  attempts = 0;
  /** When the request was accepted (host clock, ms). */
  readonly startedAt: number;
  /** When the caller received response headers, if it did. */
  headersAt: number | undefined;

  readonly #host: RequestHost;
  readonly #idempotent: boolean;
  readonly #body: BodyReplay;
  #stage: Stage = 'new';
  #abortReason: Error | undefined;
  #lastFailure: AttemptFailure | undefined;
  readonly #live = new Set<Attempt>();
  readonly #tried = new Set<Subchannel>();
  #committed: Attempt | undefined;
  #deadline: TimerHandle | undefined;
  /** The next hedge of the attempt group in progress; a request that ends clears it. */
  #hedgeTimer: TimerHandle | undefined;
  #bodyStarted = false;
  /** The streamed body as read so far, when `retry.bufferBody` records it. */
  #recorded: RecordedBody | undefined;
  #attemptNumber = 0;
  /** Attempts of the current group (one, or hedged) not yet failed, counting those still waiting for an endpoint. */
  #outstanding = 0;
  /** Hedges the current group may still send. */
  #hedgesLeft = 0;
  /** The wait before the next attempt, while the request waits to retry. */
  #retryTimer: TimerHandle | undefined;
  /** The request's retry backoff, made at its first retry. */
  #backoff: Backoff | undefined;
  /** What the failure being retried asked to wait (`Retry-After`), ms. */
  #retryAfterMs = 0;
  /** Set when the client closes: no new attempt starts. */
  #closing = false;
  /** Told the verdict for the circuit breaker, when one counts this request. */
  #settle: ((verdict: RequestVerdict) => void) | undefined;

  /** The route that sent the request here, if any (its subset narrows the endpoints). */
  readonly route: RouteDecision | undefined;

  constructor(
    options: Dispatcher.DispatchOptions,
    user: LegacyHandler,
    context: PickContext,
    host: RequestHost,
    route?: RouteDecision,
  ) {
    this.options = options;
    this.route = route;
    this.startedAt = host.clock.now();
    this.context = context;
    this.user = user;
    this.#host = host;
    this.#idempotent = isIdempotent(options.method);
    this.#body = bodyReplay(options.body);
  }

  /** Hands the caller its abort function. Returns false when the caller aborted at once. */
  start(): boolean {
    this.#stage = 'running';
    this.user.onConnect?.((reason) => this.#abort(reason));
    return this.#abortReason === undefined && this.#stage === 'running';
  }

  /** The reason the caller aborted with, if it did. */
  get abortReason(): Error | undefined {
    return this.#abortReason;
  }

  /** True once the caller has seen the end. */
  get done(): boolean {
    return this.#stage === 'done';
  }

  get running(): boolean {
    return this.#stage === 'running';
  }

  get retryOn(): ReadonlySet<number> {
    return this.#host.policy.retryOn;
  }

  get endpointHeader(): Buffer | undefined {
    return this.#host.endpointHeader;
  }

  /**
   * Runs the attempts. `onVerdict`, when given, is told the outcome for the circuit breaker once it is known: at
   * commit (by status) or at the final failure. The caller's handler is told everything.
   */
  run(onVerdict?: (verdict: RequestVerdict) => void): void {
    const { policy, clock } = this.#host;
    this.#host.budget?.deposit();
    this.#settle = onVerdict;
    if (policy.timeoutMs > 0) {
      this.#deadline = clock.setTimeout(
        () => {
          this.#deadline = undefined;
          if (this.#stage === 'running') {
            this.#fail(new DeadlineExceededError(policy.timeoutMs, { cause: this.#lastFailure?.error }), 'failure');
          }
        },
        policy.timeoutMs,
        true,
      );
    }
    this.#nextAttempt();
  }

  /**
   * Starts the next attempt: one attempt, or with hedging a group that sends another attempt to another endpoint
   * each `hedge.delayMs` without response headers (up to `maxHedges`); the first answer wins.
   */
  #nextAttempt(): void {
    this.#attemptNumber++;
    this.#outstanding = 0;
    const { hedge } = this.#host.policy;
    if (hedge !== undefined && this.#hedging) {
      this.#hedgesLeft = hedge.maxHedges;
      this.#armHedge(hedge.delayMs);
    }
    this.#launch(false);
  }

  #armHedge(delayMs: number): void {
    this.#hedgeTimer = this.#host.clock.setTimeout(() => this.#hedgeDue(delayMs), delayMs, true);
  }

  /** No attempt of the group has answered within the hedge delay: send a hedge, if the budget allows one. */
  #hedgeDue(delayMs: number): void {
    this.#hedgeTimer = undefined;
    if (this.#stage !== 'running' || this.#closing || this.#outstanding === 0) return;
    if (this.#host.budget !== undefined && !this.#host.budget.tryWithdraw()) return;
    this.#hedgesLeft--;
    this.#launch(true);
    if (this.#hedgesLeft > 0 && this.#stage === 'running' && this.#outstanding > 0) this.#armHedge(delayMs);
  }

  /**
   * An attempt failed. The group it belongs to fails with its last outstanding attempt; then the request is
   * retried after its wait, or ends with the failure (or with why it may not be retried).
   */
  #attemptFailed(failure: AttemptFailure): void {
    // The request committed or ended meanwhile: nothing to decide.
    if (this.#stage !== 'running') return;
    if (--this.#outstanding > 0) return;
    this.#clearHedgeTimer();
    let again: boolean;
    try {
      again = this.#attemptNumber < this.#host.policy.maxAttempts && this.#decideRetry(failure);
    } catch (refused) {
      this.#finalFailure(refused as Error);
      return;
    }
    if (!again) {
      this.#finalFailure(failure);
      return;
    }
    const { policy, random, clock } = this.#host;
    this.#backoff ??= new Backoff(policy.backoff, random);
    // A ref'd timer, like the request's deadline (see `Clock.setTimeout`): the caller is waiting for this request.
    // #fail clears it, so a request that ends while waiting (deadline, abort, close) starts no attempt.
    this.#retryTimer = clock.setTimeout(
      () => {
        this.#retryTimer = undefined;
        if (this.#stage === 'running') this.#nextAttempt();
      },
      retryWait(this.#backoff, this.#retryAfterMs),
      true,
    );
  }

  /**
   * Whether `failure` is retried. Throws when it would be but may not: the retry budget is spent, or the client is
   * closing (then the request fails with `SIDECARLESS_CLIENT_CLOSED`, the failure as its cause).
   */
  #decideRetry(failure: AttemptFailure): boolean {
    if (!this.#shouldRetry(failure)) return false;
    if (this.#closing) throw new ClientClosedError({ cause: failure.error });
    this.#retryAfterMs = failure.retryAfterMs;
    return true;
  }

  /** True when attempts are hedged: hedging is on, the method idempotent and the body replayable. */
  get #hedging(): boolean {
    return this.#host.policy.hedge !== undefined && this.#idempotent && this.#body !== 'once';
  }

  #clearHedgeTimer(): void {
    if (this.#hedgeTimer !== undefined) {
      this.#host.clock.clearTimeout(this.#hedgeTimer);
      this.#hedgeTimer = undefined;
    }
  }

  /** Sends one attempt of the current group on a subchannel not tried yet (when there is one). */
  #launch(hedge: boolean): void {
    this.#outstanding++;
    this.#host.acquire(this, this.#tried, (error, subchannel) => {
      // The request ended while waiting for an endpoint: it has told the caller already.
      if (this.#stage !== 'running') return;
      if (error !== undefined || subchannel === undefined) {
        this.#attemptFailed(new AttemptFailure(error ?? new Error('no subchannel'), 'no-endpoint', true));
        return;
      }
      this.#tried.add(subchannel);
      const attempt = new Attempt(this, subchannel, (failure) => {
        this.#live.delete(attempt);
        this.#clearAttemptTimer(attempt);
        this.#lastFailure = failure;
        this.#attemptFailed(failure);
      });
      this.#live.add(attempt);
      this.attempts++;
      const { perTryTimeoutMs } = this.#host.policy;
      if (perTryTimeoutMs > 0) {
        attempt.timer = this.#host.clock.setTimeout(
          () => {
            attempt.timer = undefined;
            attempt.timeout(perTryTimeoutMs);
          },
          perTryTimeoutMs,
          true,
        );
      }
      this.#host.send(this, subchannel, this.#attemptBody(), attempt, hedge);
    });
  }

  #attemptBody(): unknown {
    const { body } = this.options;
    if (this.#body !== 'once' || !isAsyncIterable(body)) return body;
    const { bufferBodyBytes, maxAttempts } = this.#host.policy;
    if (bufferBodyBytes > 0 && maxAttempts > 1) {
      this.#recorded ??= new RecordedBody(body, bufferBodyBytes);
      return this.#recorded.reader();
    }
    if (isReadable(body)) return body;
    const iterable: AsyncIterable<unknown> = body;
    // Hand undici a view that records when it starts reading, so a failed attempt that never read the body can
    // be replayed with the same (untouched) iterator.
    return {
      [Symbol.asyncIterator]: () => {
        this.#bodyStarted = true;
        return iterable[Symbol.asyncIterator]();
      },
    };
  }

  #bodyReplayable(): boolean {
    if (this.#body !== 'once') return true;
    if (this.#recorded !== undefined) return this.#recorded.replayable;
    const { body } = this.options;
    if (isReadable(body)) return !body.readableDidRead && !body.destroyed;
    return !this.#bodyStarted;
  }

  #clearAttemptTimer(attempt: Attempt): void {
    if (attempt.timer !== undefined) {
      this.#host.clock.clearTimeout(attempt.timer);
      attempt.timer = undefined;
    }
  }

  retryForStatus(_statusCode: number, rawHeaders: Buffer[]): number {
    const { policy, budget } = this.#host;
    if (this.#attemptNumber >= policy.maxAttempts) return -1;
    if (this.#closing || (!this.#idempotent && !policy.retryNonIdempotent)) return -1;
    // A stream that is not recorded is being read by this attempt; a recorded one must still be whole.
    if (this.#body === 'once' && (this.#recorded === undefined || !this.#recorded.replayable)) return -1;
    let wait = 0;
    if (policy.honorRetryAfter) {
      wait = parseRetryAfter(headerValue(rawHeaders, 'retry-after'), Date.now()) ?? 0;
      if (wait > policy.maxRetryAfterMs) return -1;
    }
    if (budget !== undefined && !budget.tryWithdraw()) return -1;
    return wait;
  }

  #shouldRetry(error: AttemptFailure): boolean {
    if (this.#stage !== 'running') return false;
    switch (error.kind) {
      case 'status':
        return true; // decided, and paid for, when the headers arrived
      case 'no-endpoint':
      case 'aborted':
        return false;
      default:
        break;
    }
    if (!this.#bodyReplayable()) return false;
    if (!error.notSent && !this.#idempotent && !this.#host.policy.retryNonIdempotent) return false;
    if (this.#host.budget !== undefined && !this.#host.budget.tryWithdraw()) {
      throw new RetryBudgetExhaustedError(this.#host.name, { cause: error.error });
    }
    return true;
  }

  #finalFailure(failure: AttemptFailure | Error): void {
    if (this.#stage !== 'running') return;
    let error = failure instanceof AttemptFailure ? failure.error : failure;
    // Out of endpoints for a retry: the earlier attempt's failure is what went wrong, keep it.
    if (failure instanceof AttemptFailure && failure.kind === 'no-endpoint' && this.#lastFailure !== undefined) {
      error = withCause(error, this.#lastFailure.error, this.#host.name);
    }
    this.#fail(error, 'failure');
  }

  commit(attempt: Attempt, statusCode: number): void {
    this.#stage = 'committed';
    this.headersAt = this.#host.clock.now();
    this.#committedStatus = statusCode;
    this.#settle?.(statusCode >= 500 ? 'failure' : 'success');
    this.#settle = undefined;
    this.#committed = attempt;
    this.#recorded?.seal();
    this.#live.delete(attempt);
    this.#clearAttemptTimer(attempt);
    this.#clearHedgeTimer();
    this.#clearDeadline();
    for (const other of this.#live) {
      this.#clearAttemptTimer(other);
      other.cancel(hedgeLost());
    }
    this.#live.clear();
  }

  completeCommitted(trailers: string[] | Buffer[] | null, upgraded = false): void {
    if (this.#stage === 'done') return;
    this.#end(this.#committedStatus >= 500 ? 'failure' : 'success', undefined);
    if (!upgraded) this.user.onComplete?.(trailers);
  }

  failCommitted(error: Error): void {
    if (this.#stage === 'done') return;
    this.#end(this.#abortReason !== undefined ? 'ignored' : 'failure', error);
    this.user.onError?.(error);
  }

  #committedStatus = 0;

  /**
   * Answers the caller with a locally made response (the breaker's fallback) instead of sending the request.
   */
  respond(response: { status: number; headers?: Readonly<Record<string, string>>; body?: string | Uint8Array }): void {
    if (this.#stage !== 'running') return;
    const body = response.body === undefined ? undefined : Buffer.from(response.body);
    const raw: Buffer[] = [];
    for (const [k, v] of Object.entries(response.headers ?? {})) raw.push(Buffer.from(k), Buffer.from(v));
    if (body !== undefined) raw.push(Buffer.from('content-length'), Buffer.from(String(body.length)));
    this.#stage = 'committed';
    this.#committedStatus = response.status;
    this.headersAt = this.#host.clock.now();
    this.#clearDeadline();
    this.user.onHeaders?.(response.status, raw, () => {}, '');
    if (body !== undefined && body.length > 0) this.user.onData?.(body);
    this.completeCommitted([]);
  }

  #abort(reason?: Error): void {
    if (this.#stage === 'done' || this.#abortReason !== undefined) return;
    this.#abortReason = reason ?? abortedError();
    if (this.#stage === 'committed') {
      this.#committed?.abortCommitted(this.#abortReason);
    } else if (this.#stage === 'running') {
      this.#fail(this.#abortReason, 'ignored');
    }
    // 'new': start() reports it.
  }

  /** Ends the request with `error` before any response was committed (no-op once committed or done). */
  fail(error: Error): void {
    if (this.#stage === 'done' || this.#stage === 'committed') return;
    this.#fail(error, 'failure');
  }

  /**
   * The client is closing gracefully: no attempt starts from now on. A request between attempts (in a backoff or
   * a `Retry-After` wait, or waiting for an endpoint) fails now with `SIDECARLESS_CLIENT_CLOSED`; one with an
   * attempt in flight lets it finish: its response goes to the caller as it is (a retried status included), and a
   * failure it would have retried ends the request with `SIDECARLESS_CLIENT_CLOSED`, the failure as `cause`.
   */
  clientClosing(): void {
    if (this.#stage !== 'running' || this.#closing) return;
    this.#closing = true;
    if (this.#live.size === 0) this.#fail(new ClientClosedError({ cause: this.#lastFailure?.error }), 'ignored');
  }

  #fail(error: Error, verdict: RequestVerdict): void {
    this.#host.dequeue(this);
    for (const attempt of this.#live) {
      this.#clearAttemptTimer(attempt);
      attempt.cancel(error);
    }
    this.#live.clear();
    this.#clearHedgeTimer();
    if (this.#retryTimer !== undefined) {
      this.#host.clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#recorded?.close();
    this.#end(verdict, error);
    this.user.onError?.(error);
  }

  #clearDeadline(): void {
    if (this.#deadline !== undefined) {
      this.#host.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
  }

  #end(verdict: RequestVerdict, error: Error | undefined): void {
    const wasCommitted = this.#stage === 'committed';
    this.#stage = 'done';
    this.#clearDeadline();
    this.#host.finished(this, this.#committedStatus, error);
    // A committed request told the breaker its verdict at commit time.
    if (!wasCommitted) this.#settle?.(verdict);
    this.#settle = undefined;
  }
}
