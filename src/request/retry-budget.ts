/**
 * A retry budget after Finagle's `RetryBudget`: every request deposits `percent / 100` of a token, every retry
 * withdraws one, and `minRetriesPerSecond × window` tokens are always available, over a sliding window of ten
 * buckets. Under total failure at rate R this caps retries at 0.2 R + 10 per second, instead of multiplying the
 * load by the attempt count.
 */
import type { Clock } from '../common/runtime.js';

const BUCKETS = 10;

export class RetryBudget {
  readonly #ratio: number;
  readonly #reserve: number;
  readonly #bucketMs: number;
  readonly #clock: Clock;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #bucket = 0;
  /** When the current bucket ends: a request within it compares with this and divides nothing. */
  #bucketEnd: number;

  constructor(options: { percent: number; minRetriesPerSecond: number; windowMs: number }, clock: Clock) {
    this.#ratio = options.percent / 100;
    this.#reserve = options.minRetriesPerSecond * (options.windowMs / 1000);
    this.#bucketMs = options.windowMs / BUCKETS;
    this.#clock = clock;
    this.#bucketEnd = clock.now() + this.#bucketMs;
  }

  #advance(now: number): void {
    // Whole buckets from the current one's start (its end less one bucket) to `now`.
    let steps = Math.floor((now - this.#bucketEnd) / this.#bucketMs) + 1;
    if (steps <= 0) return;
    this.#bucketEnd += steps * this.#bucketMs;
    if (steps > BUCKETS) steps = BUCKETS;
    for (let i = 0; i < steps; i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#requests[this.#bucket] = 0;
      this.#retries[this.#bucket] = 0;
    }
  }

  /** Records one request (first attempt); `now` when the caller has read the clock already. */
  deposit(now: number = this.#clock.now()): void {
    if (now >= this.#bucketEnd) this.#advance(now);
    this.#requests[this.#bucket] = (this.#requests[this.#bucket] as number) + 1;
  }

  /**
   * Spends one retry if the budget allows it; returns false (spending nothing) when it does not. `now` when the
   * caller has read the clock already (and keeps it for a {@link RetryBudget.refund}).
   */
  tryWithdraw(now: number = this.#clock.now()): boolean {
    this.#advance(now);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.#requests[i] as number;
      retries += this.#retries[i] as number;
    }
    if (retries + 1 > requests * this.#ratio + this.#reserve) return false;
    this.#retries[this.#bucket] = (this.#retries[this.#bucket] as number) + 1;
    return true;
  }

  /**
   * Gives back one retry withdrawn at `withdrawnAt` that was never made (a hedge that found no endpoint): the bucket
   * it was taken from gets it back, or nothing does when that bucket has left the window (the token has expired).
   */
  refund(withdrawnAt: number): void {
    this.#advance(this.#clock.now());
    // The bucket holding `withdrawnAt`, counted back from the current one (which ends at #bucketEnd, exclusive).
    const back = Math.ceil((this.#bucketEnd - withdrawnAt) / this.#bucketMs) - 1;
    if (back < 0 || back >= BUCKETS) return;
    const i = (this.#bucket - back + BUCKETS) % BUCKETS;
    if ((this.#retries[i] as number) > 0) this.#retries[i] = (this.#retries[i] as number) - 1;
  }
}
