/**
 * The cluster's circuit breaker, on opossum: counts each request's final outcome (a 5xx response the caller
 * receives, or a failure, counts as a failure; other responses as successes; caller aborts and requests cut short
 * by closing the client not at all), opens past the error threshold, fails fast with `SIDECARLESS_CIRCUIT_OPEN` (or
 * answers with the fallback) while open, and lets one probe through after `resetTimeout` (half-open).
 *
 * Requests run outside opossum, which is fired once a request's verdict is known, with that verdict: opossum counts
 * every call it runs (its error rate is failures over calls), so a request that turns out not to count must never
 * have been a call. Admission mirrors opossum's own rule: all requests while closed, one probe while half-open.
 */
import CircuitBreaker from 'opossum';
import { createDebug } from '../common/debug.js';
import type { BalancedRequest, RequestVerdict } from './balanced-request.js';
import type { RequestPolicy } from './policy.js';

const debug = createDebug('breaker');
const FAILED = Symbol('failed');

/** Breaker states as reported in stats. @category Stats */
export type BreakerState = 'closed' | 'open' | 'half-open';

export class Breaker {
  readonly #breaker: CircuitBreaker<[RequestVerdict], void>;
  /** A half-open probe is out (opossum's own flag is only consumed when the probe's verdict is fired). */
  #probing = false;

  constructor(options: NonNullable<RequestPolicy['breaker']>, name: string) {
    this.#breaker = new CircuitBreaker(
      (verdict: RequestVerdict) => (verdict === 'failure' ? Promise.reject(FAILED) : Promise.resolve()),
      {
        name,
        timeout: false,
        errorThresholdPercentage: options.errorThresholdPercentage,
        volumeThreshold: options.volumeThreshold,
        resetTimeout: options.resetTimeout,
        rollingCountTimeout: options.rollingCountTimeout,
        rollingCountBuckets: 10,
      },
    );
    this.#breaker.on('open', () => debug('%s: circuit open', name));
    this.#breaker.on('halfOpen', () => debug('%s: circuit half-open', name));
    this.#breaker.on('close', () => debug('%s: circuit closed', name));
  }

  /** Runs the request if the circuit lets it through; `onRejected` is called (synchronously) when it does not. */
  run(request: BalancedRequest, onRejected: () => void): void {
    const breaker = this.#breaker;
    let probe = false;
    if (!breaker.closed) {
      if (!breaker.halfOpen || !breaker.pendingClose || this.#probing) {
        onRejected();
        return;
      }
      probe = true;
      this.#probing = true;
    }
    void request.run(true).then((verdict) => this.#record(verdict, probe));
  }

  #record(verdict: RequestVerdict, probe: boolean): void {
    const breaker = this.#breaker;
    if (probe) this.#probing = false;
    if (verdict === 'ignored') return;
    // A verdict from before the circuit opened says nothing the circuit has not already acted on; while half-open
    // only the probe's counts, and it closes or reopens the circuit.
    if (probe ? !breaker.halfOpen : !breaker.closed) return;
    breaker.fire(verdict).catch(() => {});
  }

  get state(): BreakerState {
    if (this.#breaker.opened) return 'open';
    return this.#breaker.halfOpen ? 'half-open' : 'closed';
  }

  /** Stops the breaker's timers. */
  shutdown(): void {
    this.#breaker.shutdown();
  }
}
