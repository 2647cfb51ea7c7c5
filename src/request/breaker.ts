/**
 * The cluster's circuit breaker: Hystrix's rule, as opossum applies it. It counts each request's final outcome over
 * a rolling window of ten buckets (a 5xx response the caller receives, or a failure, counts as a failure; other
 * responses as successes; caller aborts and requests cut short by closing the client not at all). Past
 * `volumeThreshold` outcomes in the window, a failure rate above `errorThresholdPercentage` opens the circuit:
 * requests fail fast with `SIDECARLESS_CIRCUIT_OPEN` (or get the fallback). After `resetTimeoutMs` the circuit is
 * half-open and lets one probe through: its success closes the circuit (with an empty window, as Hystrix does), its
 * failure opens it again, and a probe that does not count (aborted) lets the next request probe.
 *
 * The project's own rather than opossum's (docs/ARCHITECTURE.md, "Circuit breaker"): opossum counts every call it
 * runs, so an outcome that must not count cannot be expressed (an aborted half-open probe would close the circuit),
 * and its reset and window timers do not follow the injected clock. Off by default: a cluster without `breaker`
 * has none, and pays nothing.
 */
import { createDebug } from '../common/debug.js';
import type { Clock, TimerHandle } from '../common/runtime.js';
import type { BalancedRequest, RequestVerdict } from './balanced-request.js';
import type { ResolvedBreakerOptions } from './policy.js';

const debug = createDebug('breaker');
const BUCKETS = 10;

/** Breaker states as reported in stats. @category Stats */
export type BreakerState = 'closed' | 'open' | 'half-open';

export class Breaker {
  readonly #options: ResolvedBreakerOptions;
  readonly #name: string;
  readonly #clock: Clock;
  readonly #bucketMs: number;
  readonly #successes = new Float64Array(BUCKETS);
  readonly #failures = new Float64Array(BUCKETS);
  #bucket = 0;
  #bucketStart: number;
  #state: BreakerState = 'closed';
  /** A half-open probe is out. */
  #probing = false;
  /** Takes the open circuit to half-open. */
  #resetTimer: TimerHandle | undefined;
  #shutdown = false;

  constructor(options: ResolvedBreakerOptions, name: string, clock: Clock) {
    this.#options = options;
    this.#name = name;
    this.#clock = clock;
    this.#bucketMs = options.rollingCountTimeoutMs / BUCKETS;
    this.#bucketStart = clock.now();
  }

  /** Runs the request if the circuit lets it through; `onRejected` is called (synchronously) when it does not. */
  run(request: BalancedRequest, onRejected: () => void): void {
    let probe = false;
    if (this.#state !== 'closed') {
      if (this.#state === 'open' || this.#probing) {
        onRejected();
        return;
      }
      probe = true;
      this.#probing = true;
    }
    request.run((verdict) => this.#record(verdict, probe));
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Stops the breaker's timer; outcomes are no longer counted. */
  shutdown(): void {
    this.#shutdown = true;
    if (this.#resetTimer !== undefined) {
      this.#clock.clearTimeout(this.#resetTimer);
      this.#resetTimer = undefined;
    }
  }

  #record(verdict: RequestVerdict, probe: boolean): void {
    if (probe) this.#probing = false;
    if (verdict === 'ignored' || this.#shutdown) return;
    // A verdict from before the circuit opened says nothing the circuit has not already acted on; while half-open
    // only the probe's counts, and it closes or reopens the circuit.
    if (probe ? this.#state !== 'half-open' : this.#state !== 'closed') return;
    this.#advance();
    if (verdict === 'success') {
      this.#successes[this.#bucket] = (this.#successes[this.#bucket] as number) + 1;
      if (probe) this.#close();
      return;
    }
    this.#failures[this.#bucket] = (this.#failures[this.#bucket] as number) + 1;
    if (probe) {
      this.#open();
      return;
    }
    let failures = 0;
    let total = 0;
    for (let i = 0; i < BUCKETS; i++) {
      failures += this.#failures[i] as number;
      total += (this.#failures[i] as number) + (this.#successes[i] as number);
    }
    if (total < this.#options.volumeThreshold) return;
    if ((failures / total) * 100 > this.#options.errorThresholdPercentage) this.#open();
  }

  /** Moves the window to the current bucket, emptying the buckets it passes. */
  #advance(): void {
    let steps = Math.floor((this.#clock.now() - this.#bucketStart) / this.#bucketMs);
    if (steps <= 0) return;
    this.#bucketStart += steps * this.#bucketMs;
    if (steps > BUCKETS) steps = BUCKETS;
    for (let i = 0; i < steps; i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#successes[this.#bucket] = 0;
      this.#failures[this.#bucket] = 0;
    }
  }

  #open(): void {
    this.#state = 'open';
    debug('%s: circuit open', this.#name);
    this.#resetTimer = this.#clock.setTimeout(() => {
      this.#resetTimer = undefined;
      this.#state = 'half-open';
      debug('%s: circuit half-open', this.#name);
    }, this.#options.resetTimeoutMs);
  }

  #close(): void {
    this.#state = 'closed';
    // A fresh window, as Hystrix resets its counters on closing: the failures that opened the circuit (still in the
    // window when `resetTimeoutMs` is shorter than it) would open it again at the first failure.
    this.#successes.fill(0);
    this.#failures.fill(0);
    debug('%s: circuit closed', this.#name);
  }
}
