/**
 * The cluster's circuit breaker, on opossum: counts each request's final outcome (a 5xx response the caller
 * receives, or a failure; 4xx and caller aborts are not failures), opens past the error threshold, fails fast with
 * `SIDECARLESS_CIRCUIT_OPEN` (or answers with the fallback) while open, and lets a probe through after
 * `resetTimeout` (half-open).
 */
import CircuitBreaker from 'opossum';
import { createDebug } from '../internal/debug.js';
import type { BalancedRequest, RequestVerdict } from './balanced-request.js';
import type { RequestPolicy } from './policy.js';

const debug = createDebug('breaker');
const FAILED = Symbol('failed');

/** Breaker states as reported in stats. */
export type BreakerState = 'closed' | 'open' | 'half-open';

export class Breaker {
  readonly #breaker: CircuitBreaker<[BalancedRequest], RequestVerdict>;

  constructor(options: NonNullable<RequestPolicy['breaker']>, name: string) {
    this.#breaker = new CircuitBreaker(
      async (request: BalancedRequest) => {
        const verdict = await request.run(true);
        if (verdict === 'failure') throw FAILED;
        return verdict;
      },
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

  /** Runs the request through the breaker; `onRejected` is called when the breaker refused to run it. */
  run(request: BalancedRequest, onRejected: () => void): void {
    this.#breaker.fire(request).catch((err: unknown) => {
      if (err !== FAILED) onRejected();
    });
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
