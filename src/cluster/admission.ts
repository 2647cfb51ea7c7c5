/**
 * Admission: whether a cluster takes a request, and how it runs. The `maxInFlight` limit refuses beyond it
 * (`SIDECARLESS_OVERLOADED`; `maxPending` is the wait queue's); the circuit breaker, when configured, runs the
 * request or rejects it, and a rejected request fails with `SIDECARLESS_CIRCUIT_OPEN` or gets the fallback's answer.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';
import { CircuitOpenError, OverloadedError } from '../common/request-errors.js';
import { asError } from '../common/thrown.js';
import type { BalancedRequest } from '../request/balanced-request.js';
import { Breaker, type BreakerState } from '../request/breaker.js';
import type { FallbackResponse, RequestPolicy } from '../request/policy.js';
import type { RequestCounters } from './stats.js';

// RFC 9110 §5.1 field names (tokens); §5.5 field values: no CR, LF or NUL, nothing above latin1.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function fallbackError(message: string): TypeError {
  return new TypeError(`breaker.fallback returned an invalid response: ${message}`);
}

/**
 * The fallback's answer, checked: an object whose `status` is an integer 200-599, whose `headers` (if any) map valid
 * field names to valid field values, and whose `body` (if any) is a string or bytes. Throws a `TypeError` saying
 * what is wrong (the request then fails with `SIDECARLESS_CIRCUIT_OPEN`, that error as its `cause`).
 */
export function checkFallbackResponse(value: unknown): FallbackResponse {
  if (typeof value !== 'object' || value === null) {
    throw fallbackError(`expected an object, got ${value === null ? 'null' : typeof value}`);
  }
  const { status, headers, body } = value as Record<string, unknown>;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw fallbackError(`status must be an integer 200-599, got ${JSON.stringify(status) ?? typeof status}`);
  }
  if (headers !== undefined) {
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
      throw fallbackError('headers must be an object of strings');
    }
    for (const [name, v] of Object.entries(headers)) {
      if (!TOKEN.test(name)) throw fallbackError(`invalid header name ${JSON.stringify(name)}`);
      if (typeof v !== 'string' || !FIELD_VALUE.test(v)) {
        throw fallbackError(`invalid value for header ${JSON.stringify(name)}`);
      }
    }
  }
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    throw fallbackError('body must be a string, a Buffer or a Uint8Array');
  }
  return value as FallbackResponse;
}

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

  /**
   * The error refusing one more request (`maxInFlight` reached, counted), or `undefined` to accept it. `pending` is
   * how many requests wait for an endpoint: they are in flight too, so with the defaults (1024 each) a full wait
   * queue also fills `maxInFlight`. The queue fills only when no endpoint is usable, so a request refused then would
   * have waited: the limit it meets is `maxPending`, and the error says so. An empty queue is full only by its limit
   * (`maxPending: 0`) and holds nobody: the limit reached is then `maxInFlight`.
   */
  refuse(pending: number): OverloadedError | undefined {
    const { maxInFlight, maxPending } = this.#policy;
    if (this.#counters.inFlight < maxInFlight) return undefined;
    this.#counters.overloaded++;
    if (pending > 0 && pending >= maxPending) return new OverloadedError(this.#cluster, 'maxPending', maxPending);
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
    // Whatever the fallback returns or throws, the request settles: a bad answer fails it like a throw (issue 15.3).
    Promise.resolve()
      .then(() => fallback(request.contextSnapshot()))
      .then(checkFallbackResponse)
      .then(
        (response) => request.respond(response),
        (err: unknown) => request.fail(new CircuitOpenError(this.#cluster, { cause: err })),
      )
      .catch((err: unknown) => request.fail(asError(err)));
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
