/**
 * One attempt of a request on one subchannel. Decides, when response headers arrive, whether the response is
 * handed to the caller (commit) or discarded for a retry, and turns failures into {@link AttemptFailure}s the
 * retry loop can judge.
 */
import type { Duplex } from 'node:stream';
import { PerTryTimeoutError } from '../common/errors.js';
import type { LegacyHandler } from '../common/handler.js';
import type { TimerHandle } from '../common/runtime.js';
import { classifyError, type ErrorKind } from '../common/outcome.js';
import type { Subchannel } from '../subchannel/subchannel.js';

/**
 * Why a losing attempt (another attempt answered first) is cancelled. Classified as `aborted`, so it counts
 * against no endpoint's health.
 */
export function hedgeLost(): Error {
  const err = new Error('another attempt answered first') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'SIDECARLESS_HEDGE_LOST';
  return err;
}

/** Why an attempt did not produce the caller's response. */
export type FailureKind = ErrorKind | 'status' | 'no-endpoint' | 'per-try-timeout';

/** An attempt's failure, as the retry loop sees it. Never reaches the caller: `error` does. */
export class AttemptFailure extends Error {
  constructor(
    /** The underlying error (for `status`, a description of the discarded response). */
    readonly error: Error,
    readonly kind: FailureKind,
    /** The request certainly did not reach the server (no connection was made). */
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
  commit(attempt: Attempt, statusCode: number): void;
  /** The committed response ended; `upgraded` when it was a protocol upgrade (the caller got `onUpgrade`). */
  completeCommitted(trailers: string[] | Buffer[] | null, upgraded?: boolean): void;
  /** The committed response failed after its headers were delivered. */
  failCommitted(error: Error): void;
  /** The status codes retried. */
  readonly retryOn: ReadonlySet<number>;
  /** When set, the committed response gets this header (lower-case name) with the endpoint's key. */
  readonly endpointHeader: Buffer | undefined;
}

type State = 'pending' | 'discarding' | 'committed' | 'cancelled' | 'failed';

export class Attempt implements LegacyHandler {
  readonly subchannel: Subchannel;
  readonly #owner: AttemptOwner;
  /** Told when the attempt fails before committing (never after a commit, a cancellation, or twice). */
  readonly #reject: (failure: AttemptFailure) => void;
  #state: State = 'pending';
  #abort: ((reason?: Error) => void) | undefined;
  #cancelReason: Error | undefined;
  #statusCode = 0;
  #retryAfterMs = 0;
  /** @internal per-try timer, cleared by the owner's clock. */
  timer: TimerHandle | undefined;

  constructor(owner: AttemptOwner, subchannel: Subchannel, reject: (failure: AttemptFailure) => void) {
    this.#owner = owner;
    this.subchannel = subchannel;
    this.#reject = reject;
  }

  /** True until the attempt has committed, failed or been cancelled. */
  get pending(): boolean {
    return this.#state === 'pending' || this.#state === 'discarding';
  }

  /** Stops this attempt without telling the caller (a lost hedge, or the request ended). */
  cancel(reason: Error): void {
    if (this.#state !== 'pending' && this.#state !== 'discarding') return;
    this.#state = 'cancelled';
    this.#cancelReason = reason;
    this.#abort?.(reason);
  }

  /** Aborts the committed response (the caller aborted while reading it). */
  abortCommitted(reason: Error): void {
    if (this.#state === 'committed') this.#abort?.(reason);
  }

  /** The per-try timeout fired before headers. */
  timeout(ms: number): void {
    if (this.#state !== 'pending') return;
    const err = new PerTryTimeoutError(ms);
    this.#state = 'failed';
    this.#abort?.(err);
    this.#cancelReason = err;
    this.#reject(new AttemptFailure(err, 'per-try-timeout', false));
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.#cancelReason !== undefined) abort(this.#cancelReason);
    else this.#abort = abort;
  }

  onResponseStarted(): void {
    if (this.#state === 'committed') this.#owner.user.onResponseStarted?.();
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#state === 'committed')
      return this.#owner.user.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
    if (this.#state !== 'pending') return this.#state === 'discarding';
    // Informational responses precede the real one and are not the caller's business before commit.
    if (statusCode < 200) return true;
    if (!this.#owner.running) {
      this.cancel(hedgeLost());
      return false;
    }
    if (this.#owner.retryOn.has(statusCode)) {
      const wait = this.#owner.retryForStatus(statusCode, headers);
      if (wait >= 0) {
        this.#state = 'discarding';
        this.#statusCode = statusCode;
        this.#retryAfterMs = wait;
        return true;
      }
    }
    this.#state = 'committed';
    this.#owner.commit(this, statusCode);
    const name = this.#owner.endpointHeader;
    const delivered = name === undefined ? headers : [...headers, name, Buffer.from(this.subchannel.key, 'latin1')];
    return this.#owner.user.onHeaders?.(statusCode, delivered, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#state === 'committed') return this.#owner.user.onData?.(chunk) ?? true;
    return this.#state === 'discarding';
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    if (this.#state === 'committed') {
      this.#owner.completeCommitted(trailers);
    } else if (this.#state === 'discarding') {
      this.#state = 'failed';
      const err = new Error(`Endpoint ${this.subchannel.key} answered ${this.#statusCode}`);
      this.#reject(new AttemptFailure(err, 'status', false, this.#retryAfterMs));
    }
  }

  onError(err: Error): void {
    if (this.#state === 'committed') {
      this.#state = 'failed';
      this.#owner.failCommitted(err);
      return;
    }
    if (this.#state !== 'pending' && this.#state !== 'discarding') return;
    this.#state = 'failed';
    const kind = classifyError(err);
    this.#reject(new AttemptFailure(err, kind, kind === 'connect'));
  }

  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.#state !== 'pending') {
      socket.destroy();
      return;
    }
    this.#state = 'committed';
    this.#owner.commit(this, statusCode);
    this.#owner.user.onUpgrade?.(statusCode, headers, socket);
    this.#owner.completeCommitted(null, true);
  }

  onBodySent(chunkSize: number, totalBytesSent: number): void {
    if (this.#state === 'pending' || this.#state === 'committed')
      this.#owner.user.onBodySent?.(chunkSize, totalBytesSent);
  }

  onRequestSent(): void {
    if (this.#state === 'pending' || this.#state === 'committed') this.#owner.user.onRequestSent?.();
  }
}
