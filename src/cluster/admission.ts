/**
 * Admission: whether a cluster takes a request, and how it runs. The `maxInFlight` limit refuses beyond it
 * (`SIDECARLESS_OVERLOADED`; `maxPending` is the wait queue's); the circuit breaker, when configured, runs the
 * request or rejects it, and a rejected request fails with `SIDECARLESS_CIRCUIT_OPEN` or gets the fallback's answer.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';
import { CircuitOpenError, OverloadedError } from '../common/errors.js';
import type { BalancedRequest } from '../request/balanced-request.js';
import { Breaker, type BreakerState } from '../request/breaker.js';
import type { RequestPolicy } from '../request/policy.js';
import type { RequestCounters } from './stats.js';

export class Admission {
  readonly #cluster: string;
  readonly #policy: RequestPolicy;
  readonly #counters: RequestCounters;
  readonly #breaker: Breaker | undefined;

  constructor(cluster: string, policy: RequestPolicy, counters: RequestCounters, clock: Clock) {
    this.#cluster = cluster;
    this.#policy = policy;
    this.#counters = counters;
    this.#breaker = policy.breaker === undefined ? undefined : new Breaker(policy.breaker, cluster, clock);
  }

  /** The error refusing one more request (`maxInFlight` reached, counted), or `undefined` to accept it. */
  refuse(): OverloadedError | undefined {
    const { maxInFlight } = this.#policy;
    if (this.#counters.inFlight < maxInFlight) return undefined;
    this.#counters.overloaded++;
    return new OverloadedError(this.#cluster, 'maxInFlight', maxInFlight);
  }

  /** Runs a started request, through the breaker when there is one. */
  run(request: BalancedRequest): void {
    const breaker = this.#breaker;
    if (breaker === undefined) {
      request.run();
    } else {
      breaker.run(request, () => this.#rejected(request));
    }
  }

  #rejected(request: BalancedRequest): void {
    this.#counters.circuitOpen++;
    const fallback = this.#policy.breaker?.fallback;
    if (fallback === undefined) {
      request.fail(new CircuitOpenError(this.#cluster));
      return;
    }
    Promise.resolve()
      .then(() => fallback(request.context))
      .then(
        (response) => request.respond(response),
        (err: unknown) => request.fail(new CircuitOpenError(this.#cluster, { cause: err })),
      );
  }

  /** The breaker's state, when there is one. */
  get breakerState(): BreakerState | undefined {
    return this.#breaker?.state;
  }

  /** Stops the breaker's timers. */
  shutdown(): void {
    this.#breaker?.shutdown();
  }
}
