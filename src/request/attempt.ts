/**
 * One attempt of a request on one subchannel. Decides, when response headers arrive, whether the response is
 * handed to the caller (commit) or discarded for a retry, and turns failures into {@link AttemptFailure}s the
 * retry loop can judge.
 */
import type { Duplex } from 'node:stream';
import { PerTryTimeoutError, ResponseDiscardedError } from '../common/request-errors.js';
import type { LegacyHandler } from '../common/handler.js';
import type { TimerHandle } from '../common/runtime.js';
import { classifyError, type ErrorKind, isNotProcessed, markCallerError, refusedOptions } from '../common/outcome.js';
import type { Subchannel } from '../subchannel/subchannel.js';

/** Why a losing attempt (another answered first) is cancelled: classified `aborted`, against no endpoint's health. */
export function hedgeLost(): Error {
  const err = new Error('another attempt answered first') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'SIDECARLESS_HEDGE_LOST';
  return err;
}

/**
 * What undici is told when an attempt is stopped for a reason that is not its endpoint's (the caller aborted, the
 * request ended): classified `aborted`, so it counts against no endpoint whatever the reason (a caller's
 * `AbortSignal.timeout()` reason is a `TimeoutError`). The reason is its `cause`.
 */
function notTheEndpoint(reason: Error): Error {
  if (classifyError(reason) === 'aborted') return reason;
  const err = new Error(`Attempt stopped: ${reason.message}`, { cause: reason }) as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'UND_ERR_ABORTED';
  return err;
}

/** Why an attempt did not produce the caller's response. */
export type FailureKind = ErrorKind | 'status' | 'no-endpoint' | 'per-try-timeout';

/**
 * The response's raw headers with `name` (lower case) set to the endpoint's key: a header of that name the endpoint
 * sent is dropped, so the caller reads the endpoint's address, never the endpoint's say-so.
 */
function withEndpointHeader(headers: Buffer[], name: Buffer, key: string): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const k = headers[i] as Buffer;
    if (k.length === name.length && k.toString('latin1').toLowerCase() === name.toString('latin1')) continue;
    out.push(k, headers[i + 1] as Buffer);
  }
  out.push(name, Buffer.from(key, 'latin1'));
  return out;
}

/** The abort function an attempt keeps once undici has let go of it unstarted (nothing left to abort). */
const LET_GO = (): void => {};

/** An attempt's failure, as the retry loop sees it. Never reaches the caller: `error` does. */
export class AttemptFailure extends Error {
  constructor(
    /** The underlying error (for `status`, a description of the discarded response). */
    readonly error: Error,
    readonly kind: FailureKind,
    /** The request certainly was not processed (no connection was made, or the endpoint said so over HTTP/2). */
    readonly notSent: boolean,
    /** For `status`: the wait `Retry-After` asked for, ms. */
    readonly retryAfterMs = 0,
  ) {
    super(error.message);
  }
}

/** What an attempt needs from its request. */
export interface AttemptOwner {
  /** The caller's handler. */
  readonly user: LegacyHandler;
  /** True while no attempt has committed and the request has not ended. */
  readonly running: boolean;
  /**
   * Called with a retryable status before commit. Returns the `Retry-After` wait (ms) when the request will be
   * retried (and has spent the retry), or -1 when the response must go to the caller.
   */
  retryForStatus(statusCode: number, rawHeaders: Buffer[]): number;
  /** This attempt's response goes to the caller; the other attempts are cancelled. */
  commit(attempt: AttemptBase, statusCode: number): void;
  /** The committed response ended; `upgraded` when it was a protocol upgrade (the caller got `onUpgrade`). */
  completeCommitted(trailers: string[] | Buffer[] | null, upgraded?: boolean): void;
  /** The caller's `onComplete` threw `error` after the committed response ended: the caller gets it in `onError`. */
  completionFailed(error: Error): void;
  /** A pending attempt's informational (1xx) response: the caller gets it while the request runs, never after. */
  informational(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): void;
  /** The caller's first response headers are about to be delivered: tells it `onResponseStarted`, once a request. */
  responseStarted(): void;
  /** The committed response failed after its headers were delivered. */
  failCommitted(error: Error): void;
  /** `attempt` failed before committing (told once: never after a commit, a cancellation, or twice). */
  attemptFailed(attempt: AttemptBase, failure: AttemptFailure): void;
  /** The status codes retried, as a table by status (1: retried; see `RequestPolicy.retryStatus`). */
  readonly retryStatus: Uint8Array;
  /**
   * True when a timeout of an attempt whose request is not fully sent is the caller's doing: its request body is a
   * stream that has nothing for the attempt to send.
   */
  callerBodyStalled(): boolean;
  /**
   * An attempt undici has not started was given up while undici still holds it: when undici gets to it, its abort
   * destroys the body it was given. A caller's stream handed over as it is (not a recorded reader) is then no
   * longer the request's to send again.
   */
  bodyLeftWithUndici(): void;
  /** When set, the committed response gets this header (lower-case name) with the endpoint's key. */
  readonly endpointHeader: Buffer | undefined;
}

// An attempt's state, two flags and its status, in the low `ATTEMPT_BITS` bits of its `bits` (one small integer,
// issue 14).
const PENDING = 0;
const DISCARDING = 1;
const COMMITTED = 2;
const CANCELLED = 3;
const FAILED = 4;
const STATE = 7;
/** The request (headers and body) was fully written. */
const SENT = 8;
/** The outcome was reported to the subchannel. */
const REPORTED = 16;
/**
 * The final status (also of a discarded response), 10 bits: undici hands over three-digit statuses only (llhttp
 * rejects others for HTTP/1.1, nghttp2 for HTTP/2), 0 before headers.
 */
const STATUS_AT = 5;
const STATUS_MAX = 0x3ff;
/** The bits of `AttemptBase.bits` the attempt uses; a `BalancedRequest` keeps its own state in those above. */
export const ATTEMPT_BITS = 15;

/**
 * One attempt, and undici's handler for it. It also times itself and reports its outcome to its subchannel exactly
 * once (`Subchannel.dispatchAttempt`), so an attempt costs one handler object, not a wrapper around it.
 *
 * Two kinds (issue 14): a request's first attempt is the request itself (`BalancedRequest` extends this class), so
 * the common case, a request answered by its first attempt, costs one object; retries and hedges are
 * {@link Attempt}s. The state machine is this class's; the fields an attempt needs only when it is stopped,
 * discarded or timed (`stopReason`, `discardWaitMs`, `timer`) and its owner and start are each kind's.
 */
export abstract class AttemptBase implements LegacyHandler {
  // The fields are declared, not initialized here: a class with no field initializers and no constructor is one V8
  // skips when a subclass calls `super()`, so a request is allocated in one step rather than through the generic
  // construct stub (issue 14). Each subclass sets them first thing in its constructor (`initAttempt`).

  /** The subchannel the attempt was sent to (a request's first attempt gets it at its first pick). */
  declare subchannel: Subchannel;
  /**
   * The state (`PENDING`...), the `SENT` and `REPORTED` flags and the status (`outcomeStatus`), in the low
   * `ATTEMPT_BITS` bits; a request keeps its stage and counters in the bits above (one field for all, issue 14).
   */
  declare protected bits: number;
  /** undici's abort for this attempt, once it has connected. */
  declare private abortFn: ((reason?: Error) => void) | undefined;
  // The outcome reported to the subchannel is the status (in `bits`) and when it arrived (undefined until headers;
  // the latency is the difference with the attempt's start). A tagged field
  // (never a number before headers) holding the clock's reading as it is: no box of its own per attempt, and no
  // second number for the time of headers (issue 14).
  declare private respondedAtMs: number | undefined;

  /** Sets this class's fields (see above); each subclass calls it first in its constructor, in this order. */
  protected initAttempt(subchannel: Subchannel | undefined): void {
    this.subchannel = subchannel as Subchannel;
    this.bits = PENDING;
    this.abortFn = undefined;
    this.respondedAtMs = undefined;
  }

  /** The request the attempt belongs to. */
  protected abstract get owner(): AttemptOwner;
  /** When the attempt started, on its subchannel's clock (the cluster's). */
  protected abstract get attemptStart(): number;
  /**
   * Why undici was told to stop the attempt (cancelled, timed out, discarded); once committed, the caller's reason
   * when it aborted the response. One field for both: an attempt is stopped before or after commit, not both.
   */
  protected abstract get stopReason(): Error | undefined;
  protected abstract set stopReason(reason: Error | undefined);
  /** The `Retry-After` wait of a response discarded for a retry, ms. */
  protected abstract get discardWaitMs(): number;
  protected abstract set discardWaitMs(ms: number);
  /** @internal per-try timer, cleared by the owner's clock. */
  abstract get timer(): TimerHandle | undefined;
  abstract set timer(handle: TimerHandle | undefined);

  /** The final status the attempt received (0 before headers). */
  get outcomeStatus(): number {
    return (this.bits >>> STATUS_AT) & STATUS_MAX;
  }

  private get state(): number {
    return this.bits & STATE;
  }

  private set state(state: number) {
    this.bits = (this.bits & ~STATE) | state;
  }

  private setStatus(statusCode: number): void {
    this.bits = (this.bits & ~(STATUS_MAX << STATUS_AT)) | ((statusCode & STATUS_MAX) << STATUS_AT);
  }

  private get sent(): boolean {
    return (this.bits & SENT) !== 0;
  }

  // The methods below are TypeScript-private rather than `#`: a class with `#` methods gives each instance a brand
  // slot (8 bytes an attempt, issue 14).

  /** Reports the attempt's one outcome to its subchannel (invariant 5); later calls do nothing. */
  private report(error: Error | undefined): void {
    if ((this.bits & REPORTED) !== 0) return;
    this.bits |= REPORTED;
    this.subchannel.finishAttempt(this.outcomeStatus, error, this.attemptStart, this.respondedAtMs);
  }

  private reject(failure: AttemptFailure): void {
    this.owner.attemptFailed(this, failure);
  }

  /** When the response headers arrived (the subchannel's clock), if they did. */
  get respondedAt(): number | undefined {
    return this.respondedAtMs;
  }

  /** True until the attempt has committed, failed or been cancelled. */
  get pending(): boolean {
    return this.state === PENDING || this.state === DISCARDING;
  }

  /**
   * Stops this attempt without telling the caller (a lost hedge, or the request ended). Counts against the endpoint
   * only with `blame` (the request's deadline passed while the endpoint had the whole request), unless the caller's
   * request body is what the attempt was waiting for.
   */
  cancel(reason: Error, blame = false): void {
    if (this.state !== PENDING && this.state !== DISCARDING) return;
    this.state = CANCELLED;
    const abort = this.abortFn;
    // Blamed only once undici has started it (`onConnect`: a connection took the request). One still in the pool's
    // queue, or waiting for its connection, never reached the endpoint: its wait is no evidence against it.
    this.stopReason =
      blame && abort !== undefined && (this.sent || !this.owner.callerBodyStalled()) ? reason : notTheEndpoint(reason);
    if (abort !== undefined) abort(this.stopReason);
    // Not started: undici may hold it (queued, or connecting) long after the request has ended. Its outcome is told
    // now, so the endpoint's in-flight count and outcome are the request's, not whatever later ends the wait.
    else this.leaveWithUndici();
  }

  /** Given up before undici started it: reported now, and held by its subchannel until undici lets go of it. */
  private leaveWithUndici(): void {
    this.report(this.stopReason as Error);
    this.subchannel.holdUnstarted(this, this.stopReason as Error);
  }

  /** undici let go of an attempt given up before it started (`onConnect` or `onError` came): released once. */
  private letGo(): void {
    this.abortFn = LET_GO;
    this.subchannel.releaseUnstarted();
  }

  /** True when the deadline firing now would be the caller's doing (its body stalled): see {@link cancel}. */
  get callerStalled(): boolean {
    return !this.sent && this.owner.callerBodyStalled();
  }

  /** Aborts the committed response (the caller aborted while reading it): not the endpoint's doing. */
  abortCommitted(reason: Error): void {
    if (this.state !== COMMITTED) return;
    this.stopReason = reason;
    this.abortFn?.(notTheEndpoint(reason));
  }

  /** The per-try timeout fired before headers (or while a discarded response was being dropped). */
  timeout(ms: number): void {
    if (this.state !== PENDING && this.state !== DISCARDING) return;
    const err = new PerTryTimeoutError(ms);
    // Waiting for the caller's body rather than the endpoint: the caller's failure, not retried (issue 15.6).
    if (this.callerStalled) markCallerError(err);
    this.state = FAILED;
    const abort = this.abortFn;
    if (abort !== undefined) {
      abort(err);
      this.stopReason = err;
    } else {
      // Never started (see `cancel`): not the endpoint's timeout, and the request was certainly not sent.
      this.stopReason = notTheEndpoint(err);
      this.leaveWithUndici();
      this.owner.bodyLeftWithUndici();
    }
    this.reject(new AttemptFailure(err, this.callerStalled ? 'aborted' : 'per-try-timeout', abort === undefined));
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.stopReason === undefined) {
      this.abortFn = abort;
      return;
    }
    // Given up before this (see `cancel`): no abort function was ever kept, and undici now lets go of it.
    this.letGo();
    abort(this.stopReason);
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses are followed by the real one; time and count the final response.
    if (statusCode >= 200 || this.outcomeStatus === 0) {
      this.setStatus(statusCode);
      this.respondedAtMs = this.subchannel.clock.now();
    }
    if (this.state === COMMITTED) return this.deliverHeaders(statusCode, headers, resume, statusText, false);
    if (this.state !== PENDING) return this.state === DISCARDING;
    // An informational response (103 Early Hints) goes to the caller as it arrives while the request runs, as plain
    // undici delivers it (README, "Handlers, headers and informational responses"); the final one is judged as usual.
    if (statusCode < 200) {
      this.owner.informational(statusCode, headers, resume, statusText);
      return true;
    }
    if (!this.owner.running) {
      this.cancel(hedgeLost());
      return false;
    }
    if (this.owner.retryStatus[statusCode] === 1) {
      const wait = this.owner.retryForStatus(statusCode, headers);
      if (wait >= 0) {
        this.state = DISCARDING;
        this.discardWaitMs = wait;
        // A body already in the parser's buffer completes in this same tick, and the connection stays reusable; one
        // that has not is dropped, so a slow or endless body cannot hold the retry back (issue 15.4).
        queueMicrotask(this.dropBody.bind(this)); // not an arrow: its context would be made on every onHeaders
        return true;
      }
    }
    this.state = COMMITTED;
    this.owner.commit(this, statusCode);
    const name = this.owner.endpointHeader;
    const delivered = name === undefined ? headers : withEndpointHeader(headers, name, this.subchannel.key);
    return this.deliverHeaders(statusCode, delivered, resume, statusText, true);
  }

  /**
   * Hands the committed response's headers to the caller, after `onResponseStarted` when they are the first headers
   * it gets (`first`: the commit's, and no informational response came before). An exception of the caller's handler
   * (a `stream()` factory, a `pipeline` handler) is the caller's failure: marked so before undici aborts the request
   * with it, so that it counts against no endpoint.
   */
  private deliverHeaders(
    statusCode: number,
    headers: Buffer[],
    resume: () => void,
    statusText: string,
    first: boolean,
  ): boolean {
    try {
      if (first) this.owner.responseStarted();
      return this.owner.user.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
    } catch (err) {
      markCallerError(err);
      throw err;
    }
  }

  /**
   * Why a response discarded for a retry is not the caller's: what the caller gets if the retry does not happen after
   * all (the body stopped being replayable, the client is closing). Neither aborted nor a timeout: the outcome is the
   * status, which counts against the endpoint as any 5xx does.
   */
  private discarded(): Error {
    return new ResponseDiscardedError(this.subchannel.key, this.outcomeStatus);
  }

  /** The discarded response's body has not ended: abort it (undici closes that connection) and fail the attempt. */
  private dropBody(): void {
    if (this.state !== DISCARDING) return;
    this.state = FAILED;
    const err = this.discarded();
    this.stopReason = err;
    this.abortFn?.(err);
    this.reject(new AttemptFailure(err, 'status', false, this.discardWaitMs));
  }

  onData(chunk: Buffer): boolean {
    if (this.state !== COMMITTED) return this.state === DISCARDING;
    try {
      return this.owner.user.onData?.(chunk) ?? true;
    } catch (err) {
      markCallerError(err); // as in `deliverHeaders`
      throw err;
    }
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    this.report(undefined);
    if (this.state === COMMITTED) {
      this.owner.completeCommitted(trailers);
    } else if (this.state === DISCARDING) {
      this.state = FAILED;
      this.reject(new AttemptFailure(this.discarded(), 'status', false, this.discardWaitMs));
    }
  }

  onError(err: Error): void {
    if (this.abortFn === undefined) {
      // Given up before it started, and undici fails it without starting it (its connection failed).
      if (this.stopReason !== undefined) this.letGo();
      // undici refused the caller's options when it took the request (its Request constructor threw): the caller's.
      else if (refusedOptions(err)) markCallerError(err);
    } else if (this.state === COMMITTED && (this.bits & REPORTED) !== 0) {
      // The response was complete (its outcome reported) and the caller's `onComplete` threw: undici hands the throw
      // to `onError`, and the caller gets it there, as from plain undici. The endpoint's success stands.
      this.state = FAILED;
      markCallerError(err);
      this.owner.completionFailed(err);
      return;
    }
    this.report(err);
    if (this.state === COMMITTED) {
      this.state = FAILED;
      this.owner.failCommitted(this.stopReason ?? err);
      return;
    }
    if (this.state !== PENDING && this.state !== DISCARDING) return;
    this.state = FAILED;
    const kind = classifyError(err);
    // Not sent: undici never started the attempt (no `onConnect`: it failed while queued or connecting, whatever the
    // error's code: a connection reset during the handshake is a reset), no connection was made, or an HTTP/2
    // endpoint said it did not process the stream (GOAWAY, refused).
    const notSent = this.abortFn === undefined || kind === 'connect' || isNotProcessed(err);
    this.reject(new AttemptFailure(err, kind, notSent));
  }

  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.setStatus(statusCode);
    this.respondedAtMs = this.subchannel.clock.now();
    this.report(undefined);
    if (this.state !== PENDING) {
      socket.destroy();
      return;
    }
    this.state = COMMITTED;
    this.owner.commit(this, statusCode);
    this.owner.responseStarted();
    // Ended also when the caller's `onUpgrade` throws (undici hands the throw to `onError`, as for `onComplete`).
    try {
      this.owner.user.onUpgrade?.(statusCode, headers, socket);
    } finally {
      this.owner.completeCommitted(null, true);
    }
  }

  onBodySent(chunkSize: number, totalBytesSent: number): void {
    if (this.state === PENDING || this.state === COMMITTED) this.owner.user.onBodySent?.(chunkSize, totalBytesSent);
  }

  onRequestSent(): void {
    this.bits |= SENT;
    if (this.state === PENDING || this.state === COMMITTED) this.owner.user.onRequestSent?.();
  }
}

/** A retry or a hedge: an attempt other than its request's first (which is the request itself). */
export class Attempt extends AttemptBase {
  readonly #owner: AttemptOwner;
  readonly #startedAt: number;
  #stopReason: Error | undefined;
  #discardWaitMs = 0;
  timer: TimerHandle | undefined;

  /** `startedAt` is the attempt's start on its subchannel's clock (the cluster's). */
  constructor(owner: AttemptOwner, subchannel: Subchannel, startedAt: number) {
    super();
    this.initAttempt(subchannel);
    this.#owner = owner;
    this.#startedAt = startedAt;
  }

  protected get owner(): AttemptOwner {
    return this.#owner;
  }

  protected get attemptStart(): number {
    return this.#startedAt;
  }

  protected get stopReason(): Error | undefined {
    return this.#stopReason;
  }

  protected set stopReason(reason: Error | undefined) {
    this.#stopReason = reason;
  }

  protected get discardWaitMs(): number {
    return this.#discardWaitMs;
  }

  protected set discardWaitMs(ms: number) {
    this.#discardWaitMs = ms;
  }
}
