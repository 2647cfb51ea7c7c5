/**
 * Peak EWMA: power of two choices on a latency-aware cost, after Finagle's `Balancers.p2cPeakEwma` and Linkerd's
 * tower balancer. Each target's cost is `rtt * (inFlight + 1) / weight`, where `rtt` is its peak-sensitive EWMA of
 * response latency (see `PeakEwma` in `subchannel/load.ts`: jumps up at once on a slow response, decays back over
 * `decayMs`), or `defaultRttMs` before its first response. Two distinct random targets are compared and the cheaper
 * one (then the one with fewer requests in flight) wins.
 *
 * Weights divide the cost (Finagle and Linkerd ignore weights here; dividing keeps `weight` meaningful: a target
 * of weight 2 is preferred until it is twice as loaded or twice as slow).
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, weightsOf } from './util.js';
import { duration, joinPath, number, rejectUnknownKeys } from '../common/options.js';

/** Upper bound of both settings: 1 hour, ms. */
const MAX_MS = 3_600_000;
/** Stamp of a target without an estimate: its cost (the default RTT) does not decay. */
const NO_STAMP = Number.NEGATIVE_INFINITY;

/** Settings of the `peak-ewma` policy. @category Built-in policies */
export interface PeakEwmaConfig {
  /**
   * Decay time constant of the latency EWMA, ms (Finagle's `decayTime`): an observation's weight falls to 1/e
   * after this long. From 1 ms to 1 hour.
   * @defaultValue 10000
   */
  readonly decayMs: number;
  /**
   * Latency assumed for a target with no response yet, ms (Linkerd's default RTT). From 0 (exclusive) to 1 hour.
   * @defaultValue 30
   */
  readonly defaultRttMs: number;
}

/** The picker built by {@link peakEwmaPolicy}. */
export class PeakEwmaPicker<T extends Pickable> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #results: PickResult<T>[];
  readonly #inverseWeights: Float64Array;
  readonly #defaultRtt: number;
  readonly #decay: number;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  readonly #clock: Clock;

  /** @internal Built by the policy. */
  constructor(
    targets: readonly T[],
    results: PickResult<T>[],
    weights: Float64Array,
    defaultRtt: number,
    decay: number,
    random: () => number,
    clock: Clock,
  ) {
    this.#targets = targets;
    this.#results = results;
    this.#inverseWeights = weights.map((w) => 1 / w);
    this.#defaultRtt = defaultRtt;
    this.#decay = decay;
    this.#fill = randomFill(random);
    this.#clock = clock;
  }

  /** Cost before decay: the last EWMA value (or the default RTT) times (in-flight + 1), over the weight. */
  #base(i: number): number {
    const target = this.#targets[i] as T;
    const load = target.load;
    const rtt = load === undefined || load.samples === 0 ? this.#defaultRtt : load.value;
    return rtt * (target.inFlight + 1) * (this.#inverseWeights[i] as number);
  }

  /** When the cost of target `i` was last stamped, or {@link NO_STAMP} when it does not decay (no estimate yet). */
  #stamp(i: number): number {
    const load = (this.#targets[i] as T).load;
    return load === undefined || load.samples === 0 ? NO_STAMP : load.stamp;
  }

  /**
   * Compares two distinct random targets by decayed cost and returns the cheaper (on a tie, the one with fewer
   * requests in flight). Always `complete`; the context is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const n = this.#targets.length;
    if (n === 1) return this.#results[0] as PickResult<T>;
    // Two distinct choices from one draw: integer part, then fraction (exact while n * n < 2^52).
    this.#fill(this.#draw);
    const x = (this.#draw[0] as number) * n;
    let a = x | 0;
    if (a >= n) a = n - 1;
    let b = ((x - a) * (n - 1)) | 0;
    if (b >= a) b++;
    // cost = base * exp(-(now - stamp) / decay). Comparing two costs, `now` cancels out: only the stamps' difference
    // matters, so the clock is read only when one side has no estimate yet, and then only when decay could change
    // the outcome (decay only lowers the estimated side's cost, so if it is already the cheaper one it wins
    // anyway). Worth avoiding: `performance.now()` returns a new 16-byte heap number on every call in Node.
    // exp() of a non-positive number only, so nothing overflows.
    let ca = this.#base(a);
    let cb = this.#base(b);
    const sa = this.#stamp(a);
    const sb = this.#stamp(b);
    if (sa !== NO_STAMP && sb !== NO_STAMP) {
      if (sa > sb) cb *= Math.exp(-(sa - sb) / this.#decay);
      else if (sb > sa) ca *= Math.exp(-(sb - sa) / this.#decay);
    } else if (sa !== NO_STAMP) {
      if (!(ca < cb)) ca *= Math.exp(-Math.max(this.#clock.now() - sa, 0) / this.#decay);
    } else if (sb !== NO_STAMP) {
      if (!(cb < ca)) cb *= Math.exp(-Math.max(this.#clock.now() - sb, 0) / this.#decay);
    }
    if (cb < ca) return this.#results[b] as PickResult<T>;
    if (ca < cb) return this.#results[a] as PickResult<T>;
    return (this.#targets[b] as T).inFlight < (this.#targets[a] as T).inFlight
      ? (this.#results[b] as PickResult<T>)
      : (this.#results[a] as PickResult<T>);
  }
}

/** The `peak-ewma` policy. @category Built-in policies */
export const peakEwmaPolicy: PickerPolicy<PeakEwmaConfig> = {
  name: 'peak-ewma',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, ['decayMs', 'defaultRttMs']);
    return {
      decayMs: number(raw.decayMs, joinPath(path, 'decayMs'), 10_000, 1, false, MAX_MS),
      defaultRttMs: duration(raw.defaultRttMs, joinPath(path, 'defaultRttMs'), 30, false, MAX_MS),
    };
  },
  build(targets, config, env) {
    // The one write a picker makes: the EWMA's decay follows the policy's setting (same value on every rebuild).
    for (const t of targets) {
      if (t.load !== undefined && t.load.decayMs !== config.decayMs) t.load.decayMs = config.decayMs;
    }
    return new PeakEwmaPicker(
      targets,
      completeResults(targets),
      weightsOf(targets),
      config.defaultRttMs,
      config.decayMs,
      env.random,
      env.clock,
    );
  },
};
