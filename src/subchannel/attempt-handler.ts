/**
 * The handler `Subchannel.dispatch` wraps around a caller's: times the attempt and reports its outcome to the
 * subchannel exactly once. (The request layer's own attempts report themselves, without this wrapper.)
 *
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/runtime.js';
import type { LegacyHandler } from '../common/handler.js';

/** What the handler reports to: the subchannel it was dispatched on. */
export interface AttemptOwner {
  readonly clock: Clock;
  finishAttempt(statusCode: number, error: Error | undefined, startedAt: number, respondedAt?: number): void;
}

/** Wraps the caller's handler to time the attempt and report its outcome exactly once. */
export class AttemptHandler implements LegacyHandler {
  readonly #subchannel: AttemptOwner;
  readonly #handler: LegacyHandler;
  readonly #start: number;
  #statusCode = 0;
  #latencyMs = -1;
  #done = false;

  constructor(subchannel: AttemptOwner, handler: LegacyHandler, start: number) {
    this.#subchannel = subchannel;
    this.#handler = handler;
    this.#start = start;
  }

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    const latency = this.#latencyMs >= 0 ? this.#latencyMs : this.#subchannel.clock.now() - this.#start;
    this.#subchannel.finishAttempt(this.#statusCode, error, 0, latency);
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#handler.onConnect?.(abort, context);
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses are followed by the real one; time and count the final response.
    if (statusCode >= 200 || this.#statusCode === 0) {
      this.#statusCode = statusCode;
      this.#latencyMs = this.#subchannel.clock.now() - this.#start;
    }
    return this.#handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.#handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    this.#finish(undefined);
    this.#handler.onComplete?.(trailers);
  }
  onError(err: Error): void {
    this.#finish(err);
    this.#handler.onError?.(err);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.#statusCode = statusCode;
    this.#finish(undefined);
    this.#handler.onUpgrade?.(statusCode, headers, socket);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#handler.onBodySent?.(chunkSize, totalBytesSent);
  }
  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
}
