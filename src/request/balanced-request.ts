/**
 * One request as the caller dispatched it, across its wait for an endpoint and its attempt(s).
 *
 * The caller's handler sees exactly one `onConnect` (with an abort function that works at every stage: while the
 * request waits for an endpoint, before undici has started it, and while it runs), then the response callbacks of
 * the attempt that answers, or one `onError`.
 */
import type { Dispatcher } from 'undici';
import type { LegacyHandler } from '../internal/handler.js';
import type { PickContext } from '../picker/picker.js';
import type { TimerHandle } from '../runtime.js';

type Stage = 'new' | 'queued' | 'sent' | 'done';

/** Lets the owner take a request out of its wait queue when the caller aborts it. */
export interface RequestOwner {
  dequeue(request: BalancedRequest): void;
}

/** The abort error used when the caller aborts without a reason. */
function abortedError(): Error {
  const err = new Error('Request aborted') as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'UND_ERR_ABORTED';
  return err;
}

export class BalancedRequest implements LegacyHandler {
  /** The options as the caller dispatched them. */
  readonly options: Dispatcher.DispatchOptions;
  /** What the picker sees. */
  readonly context: PickContext;
  /** The wait-for-ready timer while the request waits for an endpoint. */
  queueTimer: TimerHandle | undefined;

  readonly #user: LegacyHandler;
  readonly #owner: RequestOwner;
  #stage: Stage = 'new';
  #abortAttempt: ((reason?: Error) => void) | undefined;
  #abortReason: Error | undefined;

  constructor(options: Dispatcher.DispatchOptions, user: LegacyHandler, context: PickContext, owner: RequestOwner) {
    this.options = options;
    this.context = context;
    this.#user = user;
    this.#owner = owner;
  }

  /** Hands the caller its abort function. Returns false when the caller aborted at once. */
  start(): boolean {
    this.#user.onConnect?.((reason) => this.#abort(reason));
    return this.#abortReason === undefined && this.#stage !== 'done';
  }

  /** The reason the caller aborted with, if it did. */
  get abortReason(): Error | undefined {
    return this.#abortReason;
  }

  /** True once the caller has seen the end (response complete or error). */
  get done(): boolean {
    return this.#stage === 'done';
  }

  /** Marks the request as waiting for an endpoint. */
  markQueued(): void {
    this.#stage = 'queued';
  }

  /** Marks the request as handed to a subchannel. */
  markSent(): void {
    this.#stage = 'sent';
    this.#abortAttempt = undefined;
  }

  /** Ends the request with `error` (no-op once done). */
  fail(error: Error): void {
    if (this.#stage === 'done') return;
    this.#stage = 'done';
    this.#user.onError?.(error);
  }

  #abort(reason?: Error): void {
    if (this.#stage === 'done' || this.#abortReason !== undefined) return;
    this.#abortReason = reason ?? abortedError();
    if (this.#stage === 'queued') {
      this.#owner.dequeue(this);
      this.fail(this.#abortReason);
    } else if (this.#stage === 'sent' && this.#abortAttempt !== undefined) {
      this.#abortAttempt(this.#abortReason);
    }
    // 'new': start() reports it; 'sent' before undici's onConnect: onConnect aborts at once.
  }

  // The attempt handler side: undici calls these.

  onConnect(abort: (reason?: Error) => void): void {
    if (this.#abortReason !== undefined) abort(this.#abortReason);
    else this.#abortAttempt = abort;
  }
  onResponseStarted(): void {
    this.#user.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#user.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.#user.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    if (this.#stage === 'done') return;
    this.#stage = 'done';
    this.#user.onComplete?.(trailers);
  }
  onError(err: Error): void {
    this.fail(err);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: import('node:stream').Duplex): void {
    this.#stage = 'done';
    this.#user.onUpgrade?.(statusCode, headers, socket);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#user.onBodySent?.(chunkSize, totalBytesSent);
  }
  onRequestSent(): void {
    this.#user.onRequestSent?.();
  }
}
