/**
 * One request as the caller dispatched it: its wait for an endpoint, its attempts (retries and hedges), its
 * deadline, and the single conversation the caller sees.
 *
 * The caller's handler sees exactly one `onConnect` (with an abort function that works at every stage), then the
 * response of the one attempt that commits, or one `onError`. Attempts whose response is discarded for a retry,
 * or that lose a hedge race, are invisible to the caller; each still reports its own outcome to its subchannel.
 *
 * Replay safety (invariant 6 of DESIGN.md): a request is sent again only when
 * - it certainly did not reach the server (the connection failed), or the method is idempotent (RFC 9110 §9.2.2)
 *   or the user opted in with `retry.retryNonIdempotent`; and
 * - its body can be sent again: none, buffered, or a stream no attempt has started to read.
 * Retried statuses (502, 503, 504 by default) are retried only for requests that may be replayed; otherwise the
 * response goes to the caller as it is.
 */
import type { Readable } from 'node:stream';
import pRetry, { AbortError as RetryAbort } from 'p-retry';
import type { Dispatcher } from 'undici';
import { DeadlineExceededError, RetryBudgetExhaustedError } from '../errors.js';
import type { LegacyHandler } from '../internal/handler.js';
import type { PickContext } from '../picker/picker.js';
import type { RouteDecision } from '../routing/router.js';
import type { Clock, RandomSource, TimerHandle } from '../runtime.js';
import type { Subchannel } from '../subchannel/subchannel.js';
import { Attempt, AttemptFailure, type AttemptOwner, hedgeLost } from './attempt.js';
import { type BodyReplay, bodyReplay, isIdempotent, parseRetryAfter, type RequestPolicy } from './policy.js';
import type { RetryBudget } from './retry-budget.js';

/** What a request needs from its cluster. */
export interface RequestHost {
  readonly name: string;
  readonly policy: RequestPolicy;
  readonly clock: Clock;
  /** Jitter for the first retry backoff. */
  readonly random: RandomSource;
  readonly budget: RetryBudget | undefined;
  /** The response header naming the answering endpoint (lower-case), if configured. */
  readonly endpointHeader: Buffer | undefined;
  /**
   * Finds a subchannel for the request, avoiding `exclude` when another is available; when none is usable, waits
   * (bounded by `waitForReadyTimeout`). Calls `callback` exactly once, possibly synchronously.
   */
  acquire(
    request: BalancedRequest,
    exclude: ReadonlySet<Subchannel>,
    callback: (error: Error | undefined, subchannel: Subchannel | undefined) => void,
  ): void;
  /** Takes the request out of the wait queue. */
  dequeue(request: BalancedRequest): void;
  /** Sends one attempt. */
  send(request: BalancedRequest, subchannel: Subchannel, body: unknown, attempt: Attempt): void;
  /**
   * The request ended (the caller has seen its end): `statusCode` is what the caller received (0 if nothing),
   * `error` how it failed (before or after the response headers), if it did.
   */
  finished(request: BalancedRequest, statusCode: number, error: Error | undefined): void;
  /** A hedge attempt is about to be sent. */
  hedged(request: BalancedRequest): void;
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

const NOOP = (): void => {};

function isReadable(value: unknown): value is Readable {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
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
  /** Set by the host while the request waits for an endpoint. */
  queueTimer: TimerHandle | undefined;
  /** Set by the host while the request waits for an endpoint. */
  waiter: ((error: Error | undefined, subchannel: Subchannel | undefined) => void) | undefined;
  /** Set by the host while the request waits for an endpoint. */
  exclude: ReadonlySet<Subchannel> | undefined;
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
  #controller: AbortController | undefined;
  #bodyStarted = false;
  #attemptNumber = 0;
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
   * Runs the attempts. Resolves once the outcome is known to the breaker: at commit (by status) or at the final
   * failure. Never rejects; the caller's handler is told everything.
   */
  run(): void;
  run(withVerdict: true): Promise<RequestVerdict>;
  run(withVerdict = false): Promise<RequestVerdict> | undefined {
    const { policy, clock } = this.#host;
    this.#host.budget?.deposit();
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
    const verdict = withVerdict
      ? new Promise<RequestVerdict>((resolve) => {
          this.#settle = resolve;
        })
      : undefined;
    // The first attempt runs without the retry machinery (p-retry, an AbortController, promises): most requests
    // succeed at once, and this keeps their cost close to a plain undici request.
    if (this.#hedging) {
      this.#group().then(undefined, (failure: unknown) => this.#afterFirstFailure(failure));
    } else {
      this.#attemptNumber++;
      this.#launch(NOOP, (failure) => this.#afterFirstFailure(failure));
    }
    return verdict;
  }

  /** The first attempt failed: judge it, then hand the remaining attempts to p-retry. */
  #afterFirstFailure(failure: unknown): void {
    if (this.#stage !== 'running') return;
    const { policy, random } = this.#host;
    let again: boolean;
    try {
      again = policy.maxAttempts > 1 && this.#shouldRetry(failure as Error);
    } catch (budgetSpent) {
      this.#finalFailure(budgetSpent);
      return;
    }
    if (!again) {
      this.#finalFailure(failure);
      return;
    }
    const controller = new AbortController();
    this.#controller = controller;
    // The first backoff, as p-retry would draw it (randomized in [1, 2) x), or longer if Retry-After asks.
    const backoff = Math.min(policy.backoffInitialMs * (1 + random()), policy.backoffMaxMs);
    const wait = Math.max(backoff, failure instanceof AttemptFailure ? failure.retryAfterMs : 0);
    // Real timers, like p-retry's own backoffs after this one (a fake clock drives deadlines, not backoff).
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      controller.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    })
      .then(() => {
        if (this.#stage !== 'running') return undefined;
        // p-retry continues the exponential sequence from the second backoff on.
        return pRetry(() => this.#group(), {
          retries: policy.maxAttempts - 2,
          minTimeout: Math.min(policy.backoffInitialMs * 2, policy.backoffMaxMs),
          maxTimeout: policy.backoffMaxMs,
          factor: 2,
          randomize: true,
          signal: controller.signal,
          onFailedAttempt: ({ error }) => this.#beforeRetry(error),
          shouldRetry: ({ error }) => this.#shouldRetry(error),
        });
      })
      .then(undefined, (last: unknown) => this.#finalFailure(last));
  }

  /** One attempt, or a hedged group of attempts: resolves at commit, rejects with the last failure. */
  /** True when attempts are hedged: hedging is on, the method idempotent and the body replayable. */
  get #hedging(): boolean {
    return this.#host.policy.hedge !== undefined && this.#idempotent && this.#body !== 'once';
  }

  #group(): Promise<void> {
    this.#attemptNumber++;
    const { hedge } = this.#host.policy;
    if (hedge === undefined || !this.#hedging) return this.#try();
    return new Promise<void>((resolve, reject) => {
      let outstanding = 0;
      let hedgesLeft = hedge.maxHedges;
      let settled = false;
      let timer: TimerHandle | undefined;
      const { clock } = this.#host;
      const launch = () => {
        outstanding++;
        this.#try().then(
          () => {
            settled = true;
            if (timer !== undefined) clock.clearTimeout(timer);
            resolve();
          },
          (failure: unknown) => {
            outstanding--;
            if (settled || outstanding > 0) return;
            settled = true;
            if (timer !== undefined) clock.clearTimeout(timer);
            reject(failure);
          },
        );
      };
      const arm = () => {
        timer = clock.setTimeout(
          () => {
            timer = undefined;
            if (settled || this.#stage !== 'running') return;
            if (this.#host.budget !== undefined && !this.#host.budget.tryWithdraw()) return;
            hedgesLeft--;
            launch();
            if (hedgesLeft > 0) arm();
          },
          hedge.delay,
          true,
        );
      };
      launch();
      arm();
    });
  }

  /** One attempt on one subchannel. */
  #try(): Promise<void> {
    return new Promise<void>((resolve, reject) => this.#launch(resolve, reject));
  }

  /** Sends one attempt; `resolve` at commit, `reject` with its failure. */
  #launch(resolve: () => void, reject: (failure: unknown) => void): void {
    if (this.#stage !== 'running') {
      reject(new RetryAbort(this.#abortReason ?? abortedError()));
      return;
    }
    this.#host.acquire(this, this.#tried, (error, subchannel) => {
      if (error !== undefined || subchannel === undefined) {
        reject(new AttemptFailure(error ?? new Error('no subchannel'), 'no-endpoint', true));
        return;
      }
      if (this.#stage !== 'running') {
        reject(new RetryAbort(this.#abortReason ?? abortedError()));
        return;
      }
      this.#tried.add(subchannel);
      const attempt = new Attempt(this, subchannel, resolve, (failure) => {
        this.#live.delete(attempt);
        this.#clearAttemptTimer(attempt);
        this.#lastFailure = failure;
        reject(failure);
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
      this.#host.send(this, subchannel, this.#attemptBody(), attempt);
    });
  }

  #attemptBody(): unknown {
    const { body } = this.options;
    if (this.#body !== 'once' || isReadable(body) || !isAsyncIterable(body)) return body;
    // Hand undici a view that records when it starts reading, so a failed attempt that never read the body can
    // be replayed with the same (untouched) iterator.
    return {
      [Symbol.asyncIterator]: () => {
        this.#bodyStarted = true;
        return body[Symbol.asyncIterator]();
      },
    };
  }

  #bodyReplayable(): boolean {
    if (this.#body !== 'once') return true;
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
    if (!this.#idempotent && !policy.retryNonIdempotent) return -1;
    if (this.#body === 'once') return -1; // the body was read by this attempt
    let wait = 0;
    if (policy.honorRetryAfter) {
      wait = parseRetryAfter(headerValue(rawHeaders, 'retry-after'), Date.now()) ?? 0;
      if (wait > policy.maxRetryAfterMs) return -1;
    }
    if (budget !== undefined && !budget.tryWithdraw()) return -1;
    return wait;
  }

  async #beforeRetry(error: Error): Promise<void> {
    if (error instanceof AttemptFailure && error.retryAfterMs > 0 && this.#stage === 'running') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, error.retryAfterMs);
        this.#controller?.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  #shouldRetry(error: Error): boolean {
    if (this.#stage !== 'running' || !(error instanceof AttemptFailure)) return false;
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

  #finalFailure(failure: unknown): void {
    if (this.#stage !== 'running') return;
    const error =
      failure instanceof AttemptFailure
        ? failure.error
        : failure instanceof RetryAbort
          ? failure.originalError
          : (failure as Error);
    this.#fail(error, 'failure');
  }

  commit(attempt: Attempt, statusCode: number): void {
    this.#stage = 'committed';
    this.headersAt = this.#host.clock.now();
    this.#committedStatus = statusCode;
    this.#settle?.(statusCode >= 500 ? 'failure' : 'success');
    this.#settle = undefined;
    this.#committed = attempt;
    this.#live.delete(attempt);
    this.#clearAttemptTimer(attempt);
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

  #fail(error: Error, verdict: RequestVerdict): void {
    this.#host.dequeue(this);
    for (const attempt of this.#live) {
      this.#clearAttemptTimer(attempt);
      attempt.cancel(error);
    }
    this.#live.clear();
    this.#controller?.abort(error);
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
