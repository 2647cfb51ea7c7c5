/**
 * One request as the caller dispatched it: its wait for an endpoint, its attempts (retries and hedges), its
 * deadline, and the single conversation the caller sees.
 *
 * The attempts run as a state machine driven by callbacks, not promises: the first attempt costs no more than a
 * plain undici request (no promise, no controller, no closure beyond the attempt's own). A failed attempt is judged
 * at once (groupFailed); a retry waits on the host's clock (`clock.setTimeout`) for the larger of the request's
 * backoff (common/backoff.ts, jitter from the host's random source) and the `Retry-After` the failure asked for.
 * Hedged attempts form a group (nextAttempt, hedgeDue): the group fails with its last outstanding attempt. The
 * waits and attempt counting are the project's own rather than p-retry's, see docs/ARCHITECTURE.md ("Retries").
 *
 * The caller's handler sees exactly one `onConnect` (with an abort function that works at every stage), then the
 * response of the one attempt that commits, or one `onError` (also after `onComplete`, when its `onComplete` threw,
 * as undici does). Attempts whose response is discarded for a retry, or that lose a hedge race, are invisible to the
 * caller but for the informational (1xx) responses they deliver while the request runs (`informational`, as plain
 * undici delivers them); each still reports its own outcome to its subchannel.
 *
 * Replay safety (docs/ARCHITECTURE.md, "Invariants"): a request is sent again only when
 * - it certainly did not reach the server (the connection failed), or the method is idempotent (RFC 9110 §9.2.2)
 *   or the user opted in with `retry.retryNonIdempotent`, and the request is not marked `idempotent: false`; and
 * - its body can be sent again: none, buffered, a stream recorded while it was read (`retry.bufferBody`), or a
 *   stream no attempt has started to read.
 * Retried statuses (502, 503, 504 by default) are retried only for requests that may be replayed; otherwise the
 * response goes to the caller as it is.
 *
 * @size single state machine: one request's wait, attempts, retries, hedges and deadline, and the one conversation
 * the caller sees; its parts share the request's state and would only trade fields for parameters if split.
 */
import type { Dispatcher } from 'undici';
import { Backoff } from '../common/backoff.js';
import { ClientClosedError } from '../common/errors.js';
import { DeadlineExceededError, RetryBudgetExhaustedError } from '../common/request-errors.js';
import { keepShape } from '../common/shapes.js';
import { asError } from '../common/thrown.js';
import type { LegacyHandler } from '../common/handler.js';
import { isCallerError, markCallerError } from '../common/outcome.js';
import type { PickContext } from '../pickers/picker.js';
import type { RouteDecision } from '../routing/router.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import type { Subchannel } from '../subchannel/subchannel.js';
import { ATTEMPT_BITS, Attempt, AttemptBase, AttemptFailure, type AttemptOwner, hedgeLost } from './attempt.js';
import { type BodyReplay, bodyReplay, isIdempotent, parseRetryAfter, type RequestPolicy, retryWait } from './policy.js';
import type { DeadlineList, Deadlined } from './deadlines.js';
import { requestPath } from '../common/request-path.js';
import { parseOrigin } from './origin.js';
import { RecordedBody } from './recorded-body.js';
import {
  abortedError,
  headerValue,
  isIterableBody,
  isReadable,
  NONE_TRIED,
  perTryTimer,
  RequestExtras,
  type RequestVerdict,
  watchedIterable,
  withCause,
} from './request-extras.js';
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
   * The cluster's running requests and their deadline (`timeoutMs`, none when 0). The host puts a request on it when
   * it dispatches it; the request leaves it when it commits or ends.
   */
  readonly deadlines: DeadlineList;
  /**
   * Finds a subchannel for the request, avoiding `exclude` when another is available; when none is usable, waits
   * (bounded by `waitForReadyTimeoutMs`). Calls `request.acquired(error, subchannel, hedge)` exactly once, possibly
   * synchronously (a method rather than a callback: the common case, a synchronous pick, allocates no closure).
   */
  acquire(request: BalancedRequest, exclude: ReadonlySet<Subchannel>, hedge: boolean): void;
  /** Takes the request out of the wait queue. */
  dequeue(request: BalancedRequest): void;
  /** Sends one attempt; `hedge` tells a hedged attempt from a first attempt or a retry. */
  send(request: BalancedRequest, subchannel: Subchannel, body: unknown, attempt: AttemptBase, hedge: boolean): void;
  /**
   * The request ended (the caller has seen its end): `statusCode` is what the caller received (0 if nothing),
   * `error` how it failed (before or after the response headers), if it did.
   */
  finished(request: BalancedRequest, statusCode: number, error: Error | undefined): void;
}

export type { RequestVerdict };

// A request's stage and counters share one small integer with the state of its own attempt (`AttemptBase.bits`,
// issue 14): above the attempt's `ATTEMPT_BITS`, the stage (2 bits), the attempts sent (5 bits; hedges included, at
// most maxAttempts x (1 + maxHedges) = 20), the attempt groups started (3 bits; at most maxAttempts = 5), the
// current group's outstanding attempts (3 bits; at most 1 + maxHedges = 4), the `SELF` and `EXTRAS` flags: 30 bits, a
// Smi.
// Stages: 0 is new (dispatched, not started), then:
const RUNNING = 1;
const COMMITTED = 2;
const DONE = 3;
const STAGE_AT = ATTEMPT_BITS;
const STAGE = 3 << STAGE_AT;
const ATTEMPTS = STAGE_AT + 2;
const ATTEMPTS_MAX = 31;
const GROUPS = ATTEMPTS + 5;
const OUTSTANDING = GROUPS + 3;
const GROUP_MAX = 7;
/** The lead attempt (see `lead`) is the request's own. */
const SELF = 1 << (OUTSTANDING + 3);
/**
 * The extras are made (`#x` holds them, not a route): a mask test where an `instanceof` was, on a getter read several
 * times a request (issue 14). Bit 29: `bits` stays below 2^30, a Smi with or without pointer compression.
 */
const EXTRAS = 1 << (OUTSTANDING + 4);

/**
 * A request, and its first attempt (issue 14): as an {@link AttemptBase} it is undici's handler for that attempt, so
 * a request answered by its first attempt is one object. Retries and hedges are {@link Attempt}s of their own.
 */
export class BalancedRequest extends AttemptBase implements AttemptOwner, Deadlined, PickContext {
  /** The options as the caller dispatched them. */
  readonly options: Dispatcher.DispatchOptions;
  /** The caller's handler. */
  readonly user: LegacyHandler;
  /** When the request was accepted (host clock, ms). */
  readonly startedAt: number;
  /** The cluster's deadline list's links (see `deadlines.ts`). */
  deadlinePrev: Deadlined | undefined;
  /** See `deadlinePrev`. */
  deadlineNext: Deadlined | undefined;

  readonly #host: RequestHost;
  /**
   * State only retries, hedges, aborts, closing and the breaker need (see {@link RequestExtras}); until they are
   * made, the request's route, if it has one (one field for both, issue 14; the extras take the route over).
   */
  #x: RequestExtras | RouteDecision | undefined;

  constructor(
    options: Dispatcher.DispatchOptions,
    user: LegacyHandler,
    authority: string,
    host: RequestHost,
    route?: RouteDecision,
  ) {
    super();
    // Its first pick sets the subchannel.
    this.initAttempt(undefined);
    this.options = options;
    this.user = user;
    this.startedAt = host.clock.now();
    this.#x = route;
    this.#host = host;
    if (typeof options.origin !== 'string') this.more().authority = authority;
  }

  /**
   * The logical authority (`host[:port]`) of the request's URL (the picker's {@link PickContext.authority}). No field
   * of its own (issue 14): for a string origin the origin parser's cache has it (the last origin parsed, or a map
   * entry); the extras hold it for a URL, whose `origin` would be a new string at each read.
   */
  get authority(): string {
    const { origin } = this.options;
    return typeof origin === 'string' ? parseOrigin(origin).authority : (this.extras as RequestExtras).authority;
  }

  // Methods are TypeScript-private rather than `#`: a class with `#` methods gives each instance a brand slot (8
  // bytes a request, issue 14). Fields stay `#`.

  /** Attempts sent, including hedges. */
  get attempts(): number {
    return (this.bits >>> ATTEMPTS) & ATTEMPTS_MAX;
  }

  private get stage(): number {
    return (this.bits & STAGE) >>> STAGE_AT;
  }

  private set stage(stage: number) {
    this.bits = (this.bits & ~STAGE) | (stage << STAGE_AT);
  }

  /** Attempt groups started (the first attempt, each retry; hedges belong to their group). */
  private get attemptNumber(): number {
    return (this.bits >>> GROUPS) & GROUP_MAX;
  }

  private set attemptNumber(n: number) {
    this.bits = (this.bits & ~(GROUP_MAX << GROUPS)) | ((n & GROUP_MAX) << GROUPS);
  }

  /** Attempts of the current group (one, or hedged) not yet failed, counting those still waiting for an endpoint. */
  private get outstanding(): number {
    return (this.bits >>> OUTSTANDING) & GROUP_MAX;
  }

  private set outstanding(n: number) {
    this.bits = (this.bits & ~(GROUP_MAX << OUTSTANDING)) | ((n & GROUP_MAX) << OUTSTANDING);
  }

  /**
   * The first live attempt (a second live attempt goes to the extras' `hedges`), then the committed one: the common
   * case, one attempt, needs no set. No field (issue 14): a bit of `bits` when it is the request's own first attempt,
   * the extras' `lead` when it is an `Attempt` (a retry's or a hedge's: the request has its extras by then).
   */
  private get lead(): AttemptBase | undefined {
    return (this.bits & SELF) !== 0 ? this : this.extras?.lead;
  }

  private set lead(attempt: AttemptBase | undefined) {
    if (attempt === this) {
      this.bits |= SELF;
      const x = this.extras;
      if (x !== undefined) x.lead = undefined;
    } else {
      this.bits &= ~SELF;
      if (attempt !== undefined || this.extras !== undefined) this.more().lead = attempt;
    }
  }

  /** The route that sent the request here, if any (its subset narrows the endpoints). */
  get route(): RouteDecision | undefined {
    const x = this.#x;
    return (this.bits & EXTRAS) !== 0 ? (x as RequestExtras).route : (x as RouteDecision | undefined);
  }

  /** The extras, once made. */
  private get extras(): RequestExtras | undefined {
    return (this.bits & EXTRAS) !== 0 ? (this.#x as RequestExtras) : undefined;
  }

  private more(): RequestExtras {
    if ((this.bits & EXTRAS) !== 0) return this.#x as RequestExtras;
    const extras = new RequestExtras(this.#x as RouteDecision | undefined);
    this.#x = extras;
    this.bits |= EXTRAS;
    return extras;
  }

  // The request as its own first attempt (AttemptBase): its owner is itself, and the fields only a stopped,
  // discarded, timed or queued first attempt needs are on the extras.

  protected get owner(): AttemptOwner {
    return this;
  }

  protected get attemptStart(): number {
    return this.extras?.firstStartedAt ?? this.startedAt;
  }

  protected get stopReason(): Error | undefined {
    return this.extras?.firstStopReason;
  }

  protected set stopReason(reason: Error | undefined) {
    if (reason !== undefined || this.extras !== undefined) this.more().firstStopReason = reason;
  }

  protected get discardWaitMs(): number {
    return this.extras?.firstDiscardWaitMs ?? 0;
  }

  protected set discardWaitMs(ms: number) {
    this.more().firstDiscardWaitMs = ms;
  }

  /** @internal The first attempt's per-try timer. */
  get timer(): TimerHandle | undefined {
    return this.extras?.firstTimer;
  }

  set timer(handle: TimerHandle | undefined) {
    if (handle !== undefined || this.extras !== undefined) this.more().firstTimer = handle;
  }

  /** The status the caller received, once committed: the fallback's, or the committed attempt's. */
  private get committedStatus(): number {
    const x = this.extras;
    return x !== undefined && x.respondedAt !== undefined ? x.respondedStatus : (this.lead?.outcomeStatus ?? 0);
  }

  /** The upper-case method ({@link PickContext.method}). */
  get method(): string {
    return this.options.method.toUpperCase();
  }

  /** {@link PickContext.path} */
  get path(): string {
    return requestPath(this.options);
  }

  /** {@link PickContext.headers} */
  get headers(): unknown {
    return this.options.headers;
  }

  /** What the picker sees: the request itself (no object of its own per request). */
  get context(): PickContext {
    return this;
  }

  /** A copy of the pick context, for code outside the library (the breaker's fallback). */
  contextSnapshot(): PickContext {
    return { method: this.method, path: this.path, authority: this.authority, headers: this.headers };
  }

  /** By its method, unless the caller said `idempotent: false` (undici's option: not safe to send twice). */
  private get idempotent(): boolean {
    return this.options.idempotent !== false && isIdempotent(this.options.method);
  }

  /** May be sent again once it may have reached the server: `idempotent: false` wins over `retryNonIdempotent`. */
  private get mayResend(): boolean {
    return this.idempotent || (this.#host.policy.retryNonIdempotent && this.options.idempotent !== false);
  }

  private get bodyKind(): BodyReplay {
    return bodyReplay(this.options.body);
  }

  /** Hands the caller its abort function. Returns false when the caller aborted at once. */
  start(): boolean {
    this.stage = RUNNING;
    try {
      // A bound method rather than an arrow function: no closure context, about half the bytes a request.
      this.user.onConnect?.(this.abortByCaller.bind(this));
    } catch (thrown) {
      // As undici's own dispatchers: a handler that throws in `onConnect` (`onRequestStart`) gets the error through
      // `onError`, and `dispatch` returns. The request ends now, as the caller's failure: it must not stay counted
      // in flight (holding a `maxInFlight` slot until its deadline) and answer again later.
      this.callerThrew(thrown);
      return false;
    }
    return this.extras?.abortReason === undefined && this.stage === RUNNING;
  }

  /**
   * The caller's handler threw before the request ended: the request ends with what it threw, as the caller's failure
   * (counted against no endpoint, not retried), which the caller gets in `onError`, as undici does.
   */
  private callerThrew(thrown: unknown): void {
    const error = asError(thrown);
    markCallerError(error);
    this.more().callerFault = true;
    this.failWith(error, 'ignored');
  }

  /**
   * When the caller received response headers, if it did: the committed attempt's time of headers (no field and no
   * clock read of its own, issue 14), or the fallback's.
   */
  get headersAt(): number | undefined {
    if (this.stage !== COMMITTED && this.stage !== DONE) return undefined;
    return this.extras?.respondedAt ?? this.lead?.respondedAt;
  }

  /** The reason the caller aborted with, if it did. */
  get abortReason(): Error | undefined {
    return this.extras?.abortReason;
  }

  /**
   * True when the request failed on the caller's side, not an endpoint's: the caller aborted, its request body failed
   * or stalled, or undici refused the request before sending it. Such a failure counts against no endpoint, is not
   * retried, and is not a failure for the breaker (docs/ARCHITECTURE.md, "What counts against an endpoint").
   */
  get callerFault(): boolean {
    return this.extras?.callerFault === true;
  }

  /** True once the caller has seen the end. */
  get done(): boolean {
    return this.stage === DONE;
  }

  get running(): boolean {
    return this.stage === RUNNING;
  }

  get retryStatus(): Uint8Array {
    return this.#host.policy.retryStatus;
  }

  get endpointHeader(): Buffer | undefined {
    return this.#host.endpointHeader;
  }

  /**
   * Runs the attempts. `onVerdict`, when given, is told the outcome for the circuit breaker once it is known: at
   * commit (by status) or at the final failure. The caller's handler is told everything.
   */
  run(onVerdict?: (verdict: RequestVerdict) => void): void {
    this.#host.budget?.deposit(this.startedAt);
    if (onVerdict !== undefined) this.more().settle = onVerdict;
    this.nextAttempt();
  }

  /**
   * The deadline passed (told by the cluster's deadline list) before the response headers. It is the
   * endpoint's doing (its attempts are blamed) unless an attempt was still waiting for the caller's request body
   * (issue 15.6).
   */
  deadlinePassed(): void {
    if (this.stage !== RUNNING) return;
    const timeoutMs = this.#host.policy.timeoutMs;
    const error = new DeadlineExceededError(timeoutMs, { cause: this.extras?.lastFailure?.error });
    let stalled = this.lead?.callerStalled === true;
    const hedges = this.extras?.hedges;
    if (hedges !== undefined) for (const attempt of hedges) stalled ||= attempt.callerStalled;
    if (stalled) {
      this.more().callerFault = true;
      markCallerError(error);
    }
    this.failWith(error, stalled ? 'ignored' : 'failure', !stalled);
  }

  /**
   * Starts the next attempt: one attempt, or with hedging a group that sends another attempt (to an untried endpoint
   * when there is one, else to a tried one again) each `hedge.delayMs` without response headers (up to `maxHedges`);
   * the first answer wins.
   */
  private nextAttempt(): void {
    this.attemptNumber++;
    this.outstanding = 0;
    if (this.extras !== undefined) this.extras.groupPaid = false;
    const { hedge } = this.#host.policy;
    if (hedge !== undefined && this.hedging) {
      const x = this.more();
      x.tried ??= new Set();
      x.hedgesLeft = hedge.maxHedges;
      this.armHedge(hedge.delayMs);
    }
    this.launch(false);
  }

  private armHedge(delayMs: number): void {
    this.more().hedgeTimer = this.#host.clock.setTimeout(() => this.hedgeDue(delayMs), delayMs, true);
  }

  /** No attempt of the group has answered within the hedge delay: send a hedge, if the budget allows one. */
  private hedgeDue(delayMs: number): void {
    const x = this.more();
    x.hedgeTimer = undefined;
    if (this.stage !== RUNNING || x.closing || this.outstanding === 0) return;
    // An attempt of the group is still waiting for an endpoint: a hedge would only wait beside it. The delay starts
    // again when that attempt is sent (see `acquired`).
    if (this.outstanding > (this.lead === undefined ? 0 : 1) + (x.hedges?.size ?? 0)) return;
    const { budget } = this.#host;
    if (budget !== undefined) {
      const now = this.#host.clock.now();
      if (!budget.tryWithdraw(now)) return;
      x.hedgePaidAt = now;
    }
    x.hedgesLeft--;
    this.launch(true);
    if (x.hedgesLeft > 0 && this.stage === RUNNING && this.outstanding > 0) this.armHedge(delayMs);
  }

  /**
   * An attempt failed. The group it belongs to fails with its last outstanding attempt; then the request is
   * retried after its wait, or ends with the failure (or with why it may not be retried).
   */
  private groupFailed(failure: AttemptFailure): void {
    // The request committed or ended meanwhile: nothing to decide.
    if (this.stage !== RUNNING) return;
    if (--this.outstanding > 0) return;
    this.clearHedgeTimer();
    let again: boolean;
    try {
      again = this.attemptNumber < this.#host.policy.maxAttempts && this.decideRetry(failure);
    } catch (refused) {
      this.finalFailure(refused as Error);
      return;
    }
    if (!again) {
      this.finalFailure(failure);
      return;
    }
    const { policy, random, clock } = this.#host;
    const x = this.more();
    x.backoff ??= new Backoff(policy.backoff, random);
    // A ref'd timer, like the request's deadline (see `Clock.setTimeout`): the caller is waiting for this request.
    // failWith clears it, so a request that ends while waiting (deadline, abort, close) starts no attempt.
    x.retryTimer = clock.setTimeout(
      () => {
        x.retryTimer = undefined;
        if (this.stage !== RUNNING) return;
        // Checked again after the wait: a read of the failed attempt's, pending when it failed, may have taken a
        // recorded body past `retry.bufferBody`. The failure then goes to the caller rather than a retry that
        // could send only part of the body.
        if (!this.bodyReplayable(failure.notSent)) this.finalFailure(failure);
        else this.nextAttempt();
      },
      retryWait(x.backoff, x.retryAfterMs),
      true,
    );
  }

  /**
   * Whether `failure` is retried. Throws when it would be but may not: the retry budget is spent, or the client is
   * closing (then the request fails with `SIDECARLESS_CLIENT_CLOSED`, the failure as its cause).
   */
  private decideRetry(failure: AttemptFailure): boolean {
    if (!this.shouldRetry(failure)) return false;
    const x = this.more();
    if (x.closing) throw new ClientClosedError({ cause: failure.error });
    x.retryAfterMs = failure.retryAfterMs;
    return true;
  }

  /** True when attempts are hedged: hedging is on, the method idempotent and the body replayable. */
  private get hedging(): boolean {
    return this.#host.policy.hedge !== undefined && this.idempotent && this.bodyKind !== 'once';
  }

  /** The hedge being launched is never sent: its retry-budget token goes back (a hedge that is not sent costs none). */
  private refundHedge(): void {
    const x = this.extras;
    if (x?.hedgePaidAt === undefined) return;
    this.#host.budget?.refund(x.hedgePaidAt);
    x.hedgePaidAt = undefined;
  }

  private clearHedgeTimer(): void {
    const x = this.extras;
    if (x?.hedgeTimer !== undefined) {
      this.#host.clock.clearTimeout(x.hedgeTimer);
      x.hedgeTimer = undefined;
    }
  }

  /** Sends one attempt of the current group on a subchannel not tried yet (when there is one). */
  private launch(hedge: boolean): void {
    this.outstanding++;
    this.#host.acquire(this, this.excluded(), hedge);
  }

  /**
   * The endpoints the next pick avoids: those tried so far (a set made at the first failure or hedge; a first
   * attempt has tried none).
   */
  private excluded(): ReadonlySet<Subchannel> {
    return this.extras?.tried ?? NONE_TRIED;
  }

  /**
   * @internal The host's answer to {@link RequestHost.acquire}: sends the attempt, or fails it. `waited` when the
   * request waited for an endpoint (then its first attempt starts now, not when the request did).
   */
  acquired(error: Error | undefined, subchannel: Subchannel | undefined, hedge: boolean, waited = false): void {
    // The request ended while waiting for an endpoint: it has told the caller already.
    if (this.stage !== RUNNING) return;
    if (error !== undefined || subchannel === undefined) {
      if (hedge) this.refundHedge();
      this.groupFailed(new AttemptFailure(error ?? new Error('no subchannel'), 'no-endpoint', true));
      return;
    }
    const x = this.extras;
    x?.tried?.add(subchannel);
    // Sent after a wait for an endpoint, with hedges left and none due: the hedge delay runs from now.
    const { hedge: hedging } = this.#host.policy;
    if (waited && hedging !== undefined && x !== undefined && x.hedgesLeft > 0 && x.hedgeTimer === undefined) {
      this.armHedge(hedging.delayMs);
    }
    const first = this.attempts === 0;
    if (first) {
      // The first attempt is the request itself; it starts with the request unless it waited for an endpoint.
      this.subchannel = subchannel;
      if (waited) this.more().firstStartedAt = this.#host.clock.now();
    }
    this.sendAttempt(first ? this : new Attempt(this, subchannel, this.#host.clock.now()), subchannel, hedge);
  }

  /** Sends `attempt` (the request itself, or a retry or hedge) to `subchannel` as one of the live attempts. */
  private sendAttempt(attempt: AttemptBase, subchannel: Subchannel, hedge: boolean): void {
    const x = this.extras;
    if (this.lead === undefined && x?.hedges === undefined) this.lead = attempt;
    else ((x as RequestExtras).hedges ??= new Set()).add(attempt);
    this.bits += 1 << ATTEMPTS;
    const { perTryTimeoutMs } = this.#host.policy;
    if (perTryTimeoutMs > 0)
      attempt.timer = this.#host.clock.setTimeout(perTryTimer(attempt, perTryTimeoutMs), perTryTimeoutMs, true);
    this.#host.send(this, subchannel, this.attemptBody(), attempt, hedge);
  }

  /** An attempt failed before committing (told once per attempt; see {@link AttemptOwner.attemptFailed}). */
  attemptFailed(attempt: AttemptBase, failure: AttemptFailure): void {
    this.dropLive(attempt);
    this.clearAttemptTimer(attempt);
    const x = this.more();
    // The failed attempt's reader of a recorded body stops: what it read stays recorded for the next attempt.
    x.recorded?.detach();
    // The first failure makes the set of endpoints tried (a request with hedges has it already).
    (x.tried ??= new Set()).add(attempt.subchannel);
    x.lastFailure = failure;
    this.groupFailed(failure);
  }

  private dropLive(attempt: AttemptBase): void {
    if (this.lead === attempt) this.lead = undefined;
    else this.extras?.hedges?.delete(attempt);
  }

  private get liveCount(): number {
    return (this.lead === undefined ? 0 : 1) + (this.extras?.hedges?.size ?? 0);
  }

  /** Cancels every live attempt, with `reason` or, when none is given, each with its own `hedgeLost()`. */
  private cancelLive(reason: Error | undefined, blame = false): void {
    const first = this.lead;
    const hedges = this.extras?.hedges;
    this.lead = undefined;
    if (hedges !== undefined) (this.extras as RequestExtras).hedges = undefined;
    if (first !== undefined) {
      this.clearAttemptTimer(first);
      first.cancel(reason ?? hedgeLost(), blame);
    }
    if (hedges === undefined) return;
    for (const attempt of hedges) {
      this.clearAttemptTimer(attempt);
      attempt.cancel(reason ?? hedgeLost(), blame);
    }
  }

  private attemptBody(): unknown {
    const { body } = this.options;
    // A stream or an iterable, sync ones included (a generator is single-use): recorded or watched. Anything else
    // undici refuses as it is.
    if (this.bodyKind !== 'once' || !isIterableBody(body)) return body;
    if (isReadable(body) && this.attempts <= 1) {
      // An error of the caller's stream is the caller's, not the endpoint's (issue 15.6); listened for from the
      // start, also before undici reads it.
      body.on('error', markCallerError);
    }
    const { bufferBodyBytes, maxAttempts } = this.#host.policy;
    if (bufferBodyBytes > 0 && maxAttempts > 1) {
      const x = this.more();
      x.recorded ??= new RecordedBody(body, bufferBodyBytes);
      return x.recorded.reader();
    }
    if (isReadable(body)) return body;
    return watchedIterable(body, this.more());
  }

  callerBodyStalled(): boolean {
    if (this.bodyKind !== 'once') return false;
    // A recorded body knows when its reader waits on the caller's source (also before the first chunk).
    if (this.extras?.recorded?.awaitingSource === true) return true;
    const { body } = this.options;
    // A Readable tells whether it has anything undici has not read; of another iterable nothing is known, and the
    // endpoint gets the benefit of the doubt. undici reads a Readable in flowing mode, paused while the socket is
    // full (then the endpoint is the one not reading): flowing with nothing buffered is a caller that has not yet
    // produced, its first byte included.
    if (!isReadable(body)) return true;
    return (body.readableDidRead || body.readableFlowing === true) && !body.readableEnded && body.readableLength === 0;
  }

  bodyLeftWithUndici(): void {
    // `bodyStarted`: the stream may be read (or destroyed) by an attempt that is no longer this request's.
    if (this.bodyKind === 'once' && this.extras?.recorded === undefined) this.more().bodyStarted = true;
  }

  /** `notProcessed`: for a retry of an attempt the endpoint did not process (see `RecordedBody.replayableUnprocessed`). */
  private bodyReplayable(notProcessed = false): boolean {
    if (this.bodyKind !== 'once') return true;
    const recorded = this.extras?.recorded;
    if (recorded !== undefined) return notProcessed ? recorded.replayableUnprocessed : recorded.replayable;
    const { body } = this.options;
    if (this.extras?.bodyStarted === true) return false;
    return !isReadable(body) || (!body.readableDidRead && !body.destroyed);
  }

  private clearAttemptTimer(attempt: AttemptBase): void {
    if (attempt.timer !== undefined) {
      this.#host.clock.clearTimeout(attempt.timer);
      attempt.timer = undefined;
    }
  }

  retryForStatus(_statusCode: number, rawHeaders: Buffer[]): number {
    const { policy, budget } = this.#host;
    if (this.attemptNumber >= policy.maxAttempts) return -1;
    if (this.extras?.closing === true || !this.mayResend) return -1;
    // A stream that is not recorded is being read by this attempt; a recorded one must still be whole.
    const recorded = this.extras?.recorded;
    if (this.bodyKind === 'once' && (recorded === undefined || !recorded.replayable)) return -1;
    let wait = 0;
    if (policy.honorRetryAfter) {
      wait = parseRetryAfter(headerValue(rawHeaders, 'retry-after'), Date.now()) ?? 0;
      if (wait > policy.maxRetryAfterMs) return -1;
    }
    if (budget === undefined) return wait;
    // Another attempt of the group still runs and may answer: this status is set aside and the retry, which then
    // never happens, is paid only when the group fails (`payRetry`: with the budget spent by then, the request fails
    // with SIDECARLESS_RETRY_BUDGET_EXHAUSTED). The last attempt running pays now, for the group.
    if (this.outstanding > 1) return wait;
    if (!budget.tryWithdraw()) return -1;
    this.more().groupPaid = true;
    return wait;
  }

  /**
   * Pays the retry of the group that just failed from the retry budget, unless a retried status of its last attempt
   * running paid it already. Throws when the budget is spent.
   */
  private payRetry(failure: AttemptFailure): void {
    const { budget } = this.#host;
    if (budget === undefined || this.extras?.groupPaid === true) return;
    if (!budget.tryWithdraw()) throw new RetryBudgetExhaustedError(this.#host.name, { cause: failure.error });
  }

  private shouldRetry(error: AttemptFailure): boolean {
    if (this.stage !== RUNNING) return false;
    switch (error.kind) {
      case 'status':
        // Decided when the headers arrived; the body may have stopped being replayable since (the discarded
        // response came while the upload went on).
        if (!this.bodyReplayable()) return false;
        this.payRetry(error);
        return true;
      case 'no-endpoint':
      case 'aborted':
        return false;
      default:
        break;
    }
    if (!this.bodyReplayable(error.notSent)) return false;
    if (!error.notSent && !this.mayResend) return false;
    // A request the endpoint never processed (not sent, or refused unprocessed over HTTP/2) is replayed without
    // spending the budget, as gRPC's transparent retries are (proposal A6): the budget bounds the extra load retries
    // put on endpoints, and this replay puts none; `retry.maxAttempts` still bounds it.
    if (error.notSent) return true;
    this.payRetry(error);
    return true;
  }

  private finalFailure(failure: AttemptFailure | Error): void {
    if (this.stage !== RUNNING) return;
    let error = failure instanceof AttemptFailure ? failure.error : failure;
    // A response set aside for a retry that the caller's own body stream then made impossible: the stream's error is
    // what went wrong (the caller's, as `client.fetch` reports it), not the discarded response.
    const bodyFailure = this.extras?.recorded?.failure;
    if (failure instanceof AttemptFailure && failure.kind === 'status' && bodyFailure instanceof Error) {
      error = bodyFailure;
    }
    if (isCallerError(error)) {
      this.more().callerFault = true;
      this.failWith(error, 'ignored');
      return;
    }
    // Out of endpoints for a retry: the earlier attempt's failure is what went wrong, keep it.
    const last = this.extras?.lastFailure;
    if (failure instanceof AttemptFailure && failure.kind === 'no-endpoint' && last !== undefined) {
      error = withCause(error, last.error, this.#host.name);
    }
    this.failWith(error, 'failure');
  }

  commit(attempt: AttemptBase, statusCode: number): void {
    this.stage = COMMITTED;
    this.clearDeadline();
    this.clearAttemptTimer(attempt);
    const x = this.extras;
    if (x === undefined) {
      // The common case: the first and only attempt answered.
      this.lead = attempt;
      return;
    }
    x.settle?.(statusCode >= 500 ? 'failure' : 'success');
    x.settle = undefined;
    x.recorded?.seal();
    // A hedge still waiting for an endpoint leaves the queue now, not at its next flush or timeout, unsent.
    if (this.outstanding > this.liveCount) this.refundHedge();
    this.#host.dequeue(this);
    this.dropLive(attempt);
    this.clearHedgeTimer();
    this.cancelLive(undefined);
    this.lead = attempt;
  }

  completeCommitted(trailers: string[] | Buffer[] | null, upgraded = false): void {
    if (this.stage === DONE) return;
    this.end(this.committedStatus >= 500 ? 'failure' : 'success', undefined);
    if (!upgraded) this.user.onComplete?.(trailers);
  }

  completionFailed(error: Error): void {
    // The request has ended (its end counted with the response): only the caller is told, once.
    this.user.onError?.(error);
  }

  informational(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): void {
    // Never after the request committed to an attempt (this one or another) or ended.
    if (this.stage !== RUNNING) return;
    const x = this.more();
    try {
      if (!x.toldStarted) {
        x.toldStarted = true;
        this.user.onResponseStarted?.();
      }
      this.user.onHeaders?.(statusCode, headers, resume, statusText);
    } catch (thrown) {
      // undici's `request()` calls `onInfo` from here: what it throws ends the request, as the caller's.
      this.callerThrew(thrown);
    }
  }

  responseStarted(): void {
    if (this.extras?.toldStarted !== true) this.user.onResponseStarted?.();
  }

  failCommitted(error: Error): void {
    if (this.stage === DONE) return;
    this.end(this.extras?.abortReason !== undefined ? 'ignored' : 'failure', error);
    this.user.onError?.(error);
  }

  /**
   * Answers the caller with a locally made response (the breaker's fallback) instead of sending the request.
   * `response` has been checked (cluster/admission.ts, `checkFallbackResponse`).
   */
  respond(response: { status: number; headers?: Readonly<Record<string, string>>; body?: string | Uint8Array }): void {
    if (this.stage !== RUNNING) return;
    const body = response.body === undefined ? undefined : Buffer.from(response.body);
    const raw: Buffer[] = [];
    for (const [k, v] of Object.entries(response.headers ?? {})) {
      // The framing is the library's: content-length is set from the body.
      const lower = k.toLowerCase();
      if (lower !== 'content-length' && lower !== 'transfer-encoding')
        raw.push(Buffer.from(k), Buffer.from(v, 'latin1'));
    }
    // As an endpoint's answer: a 204 or 304 has no content and promises none; a HEAD answer keeps the length a GET
    // would have had (RFC 9110 §9.3.2, §8.6), without the bytes.
    const noContent = response.status === 204 || response.status === 304;
    const withoutBytes = noContent || this.options.method === 'HEAD';
    if (body !== undefined && !noContent) {
      raw.push(Buffer.from('content-length'), Buffer.from(String(body.length)));
    }
    const x = this.more();
    x.respondedAt = this.#host.clock.now();
    x.respondedStatus = response.status;
    this.stage = COMMITTED;
    this.clearDeadline();
    // What the caller's handler throws goes to its `onError`, as for a response of an endpoint.
    try {
      this.user.onHeaders?.(response.status, raw, () => {}, '');
      if (body !== undefined && body.length > 0 && !withoutBytes) this.user.onData?.(body);
    } catch (thrown) {
      this.callerThrew(thrown);
      return;
    }
    try {
      this.completeCommitted([]);
    } catch (thrown) {
      const error = asError(thrown);
      markCallerError(error);
      this.completionFailed(error);
    }
  }

  private abortByCaller(reason?: Error): void {
    if (this.stage === DONE || this.extras?.abortReason !== undefined) return;
    const x = this.more();
    const abortReason = reason ?? abortedError();
    // The caller's, whatever it is: counted against no endpoint, and under a bounded code in the metrics (its `code`
    // is the caller's to choose).
    markCallerError(abortReason);
    x.abortReason = abortReason;
    x.callerFault = true;
    if (this.stage === COMMITTED) {
      this.lead?.abortCommitted(abortReason);
    } else if (this.stage === RUNNING) {
      this.failWith(abortReason, 'ignored');
    }
    // 'new': start() reports it.
  }

  /** Ends the request with `error` before any response was committed (no-op once committed or done). */
  fail(error: Error): void {
    if (this.stage === DONE || this.stage === COMMITTED) return;
    this.failWith(error, 'failure');
  }

  /**
   * The client is closing gracefully: no attempt starts from now on. A request between attempts (in a backoff or
   * a `Retry-After` wait, or waiting for an endpoint) fails now with `SIDECARLESS_CLIENT_CLOSED`; one with an
   * attempt in flight lets it finish: its response goes to the caller as it is (a retried status included), and a
   * failure it would have retried ends the request with `SIDECARLESS_CLIENT_CLOSED`, the failure as `cause`.
   */
  clientClosing(): void {
    if (this.stage !== RUNNING || this.extras?.closing === true) return;
    const x = this.more();
    x.closing = true;
    if (this.liveCount === 0) this.failWith(new ClientClosedError({ cause: x.lastFailure?.error }), 'ignored');
  }

  /** Ends the request with `error`; `blame` when its live attempts failed their endpoints (the deadline passed). */
  private failWith(error: Error, verdict: RequestVerdict, blame = false): void {
    this.#host.dequeue(this);
    this.cancelLive(error, blame);
    this.clearHedgeTimer();
    const x = this.extras;
    if (x?.retryTimer !== undefined) {
      this.#host.clock.clearTimeout(x.retryTimer);
      x.retryTimer = undefined;
    }
    x?.recorded?.close();
    this.end(verdict, error);
    this.user.onError?.(error);
  }

  private clearDeadline(): void {
    this.#host.deadlines.remove(this);
  }

  private end(verdict: RequestVerdict, error: Error | undefined): void {
    const wasCommitted = this.stage === COMMITTED;
    this.stage = DONE;
    this.clearDeadline();
    this.#host.finished(this, wasCommitted ? this.committedStatus : 0, error);
    // A committed request told the breaker its verdict at commit time.
    const x = this.extras;
    if (x !== undefined) {
      if (!wasCommitted) x.settle?.(verdict);
      x.settle = undefined;
    }
  }
}

// The hidden class of a request outlives moments when no request is alive (common/shapes.ts): one made through the
// same constructor, with stand-ins of the same kinds as a real request's (a string origin; a clock reading that is a
// double, as `performance.now()`'s are, so the field never changes representation), referencing nothing else.
const SHAPE_HOST = { clock: { now: () => 0.5 } } as unknown as RequestHost;
const SHAPE_REQUEST = keepShape(
  new BalancedRequest({ origin: 'http://shape.invalid', path: '/', method: 'GET' }, {}, 'shape.invalid', SHAPE_HOST),
);
keepShape(new Attempt(SHAPE_REQUEST, {} as Subchannel, 0.5));
keepShape(new RequestExtras(undefined));
