/**
 * Peak EWMA: power of two choices on a latency-aware cost, after Finagle's `Balancers.p2cPeakEwma` and Linkerd's
 * tower balancer. Each target's cost is `rtt * (inFlight + 1) / weight`, where `rtt` is its peak-sensitive EWMA of
 * response latency (see `PeakEwma` in `subchannel/load.ts`: jumps up at once on a slow response, decays back over
 * `decayMs`), or `defaultRttMs` before its first response, decaying from when the target's load record was created
 * as in tower (from the picker's build for a target with no `load`). Two distinct random targets are compared and the
 * cheaper one (then the one with fewer requests in flight) wins. Only the two stamps' difference matters, so a pick
 * never reads the clock.
 *
 * Weights divide the cost (Finagle and Linkerd ignore weights here; dividing keeps `weight` meaningful: a target
 * of weight 2 is preferred until it is twice as loaded or twice as slow).
 *
 * @module
 */
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, weightsOf } from './util.js';
import { duration, joinPath, number, rejectUnknownKeys } from '../common/options.js';

/** Upper bound of both settings: 1 hour, ms. */
const MAX_MS = 3_600_000;

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
  /**
   * True when every weight is the same (the common case): the costs then skip the weights, whose array at N = 10,000
   * is one more cache line per candidate; scaling both costs by one constant decides nothing.
   */
  readonly #uniform: boolean;
  /**
   * The default RTT in a typed array, so that reading it gives a float: from a number field it would be a small
   * integer, and V8 would merge it with an estimate (a float) as a boxed number, 16 bytes a pick.
   */
  readonly #defaultRtt = new Float64Array(1);
  readonly #decay: number;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  /**
   * When the picker was built (a typed array for the reason given for `#defaultRtt`): the stamp of a target with no
   * `load` at all, whose default RTT decays from there.
   */
  readonly #builtAt = new Float64Array(1);

  /** @internal Built by the policy. */
  constructor(
    targets: readonly T[],
    results: PickResult<T>[],
    weights: Float64Array,
    defaultRtt: number,
    decay: number,
    random: () => number,
    builtAt: number,
  ) {
    this.#targets = targets;
    this.#results = results;
    this.#inverseWeights = weights.map((w) => 1 / w);
    this.#uniform = weights.every((w) => w === weights[0]);
    this.#defaultRtt[0] = defaultRtt;
    this.#decay = decay;
    this.#fill = randomFill(random);
    this.#builtAt[0] = builtAt;
  }

  /**
   * Compares two distinct random targets by decayed cost and returns the cheaper (on a tie, the one with fewer
   * requests in flight). Always `complete`; the context is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const targets = this.#targets;
    const n = targets.length;
    if (n === 1) return this.#results[0] as PickResult<T>;
    // Two distinct choices from one draw: integer part, then fraction (exact while n * n < 2^52).
    this.#fill(this.#draw);
    const x = (this.#draw[0] as number) * n;
    let a = x | 0;
    if (a >= n) a = n - 1;
    let b = ((x - a) * (n - 1)) | 0;
    if (b >= a) b++;
    // Everything in this one function, no helper returning a number: a float returned from a call V8 does not
    // inline is a 16-byte heap number, and whether it inlines depends on what else the function has seen (a helper
    // per cost cost 32 bytes a pick once the clock-reading branch below had run).
    const ta = targets[a] as T;
    const tb = targets[b] as T;
    const la = ta.load;
    const lb = tb.load;
    const uniform = this.#uniform;
    const wa = uniform ? 1 : (this.#inverseWeights[a] as number);
    const wb = uniform ? 1 : (this.#inverseWeights[b] as number);
    // cost = rtt * (inFlight + 1) / weight, decayed: * exp(-(now - stamp) / decay). A target without an estimate (no
    // response yet) costs the default RTT stamped when its load record was created (tower's initial estimate), or
    // when this picker was built if it has none. Comparing two costs, `now` cancels out: only the stamps' difference
    // matters, so a pick never reads the clock (on Node 20 every read of it allocates), and the comparison is exactly
    // the one made with the current time. Decay only lowers the older side's cost, so when that side is already the
    // cheaper one it wins without exp(). exp() of a non-positive number only, so nothing overflows.
    const defaultRtt = this.#defaultRtt[0] as number;
    const builtAt = this.#builtAt[0] as number;
    // An estimate's value is 0 until its first sample, so `value + defaultRtt * (samples === 0)` is exactly the one
    // or the other, without a branch (which one is a coin toss while many targets have no estimate yet).
    const ra = la === undefined ? defaultRtt : la.value + defaultRtt * +(la.samples === 0);
    const rb = lb === undefined ? defaultRtt : lb.value + defaultRtt * +(lb.samples === 0);
    let ca = ra * (ta.inFlight + 1) * wa;
    let cb = rb * (tb.inFlight + 1) * wb;
    const sa = la === undefined ? builtAt : la.stamp;
    const sb = lb === undefined ? builtAt : lb.stamp;
    if (sa > sb) {
      if (!(cb < ca)) cb *= Math.exp(-(sa - sb) / this.#decay);
    } else if (sb > sa) {
      if (!(ca < cb)) ca *= Math.exp(-(sb - sa) / this.#decay);
    }
    if (cb < ca) return this.#results[b] as PickResult<T>;
    if (ca < cb) return this.#results[a] as PickResult<T>;
    return tb.inFlight < ta.inFlight ? (this.#results[b] as PickResult<T>) : (this.#results[a] as PickResult<T>);
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
      env.clock.now(),
    );
  },
};
