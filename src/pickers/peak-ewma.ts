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
import { type Clock, type RandomFill, randomFill, systemClock } from '../common/runtime.js';
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

/** Writes the clock's time into `out[0]`: read into a typed array, a time is never boxed as a heap number. */
type ClockFill = (out: Float64Array) => void;

/**
 * How the picker reads `clock`. The system clock is `performance.now()` written straight into the array: on Node 22
 * and later that call is a V8 fast API call and allocates nothing, where returning its value through
 * `systemClock.now()` (a call V8 may not inline) boxes it, 16 bytes. On Node 20 `performance.now()` itself
 * returns a new heap number, whatever the caller does.
 */
function clockFill(clock: Clock): ClockFill {
  if (clock === systemClock) {
    return (out) => {
      out[0] = performance.now();
    };
  }
  return (out) => {
    out[0] = clock.now();
  };
}

/** The picker built by {@link peakEwmaPolicy}. */
export class PeakEwmaPicker<T extends Pickable> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #results: PickResult<T>[];
  readonly #inverseWeights: Float64Array;
  /**
   * The default RTT in a typed array, so that reading it gives a float: from a number field it would be a small
   * integer, and V8 would merge it with an estimate (a float) as a boxed number, 16 bytes a pick.
   */
  readonly #defaultRtt = new Float64Array(1);
  readonly #decay: number;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  readonly #now: ClockFill;
  readonly #time = new Float64Array(1);

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
    this.#defaultRtt[0] = defaultRtt;
    this.#decay = decay;
    this.#fill = randomFill(random);
    this.#now = clockFill(clock);
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
    // A target without an estimate (no response yet) costs the default RTT, which does not decay.
    const estimatedA = la !== undefined && la.samples !== 0;
    const estimatedB = lb !== undefined && lb.samples !== 0;
    const wa = this.#inverseWeights[a] as number;
    const wb = this.#inverseWeights[b] as number;
    // cost = rtt * (inFlight + 1) / weight, decayed: * exp(-(now - stamp) / decay).
    const defaultRtt = this.#defaultRtt[0] as number;
    let ca = (estimatedA ? la.value : defaultRtt) * (ta.inFlight + 1) * wa;
    let cb = (estimatedB ? lb.value : defaultRtt) * (tb.inFlight + 1) * wb;
    // Comparing two costs, `now` cancels out: only the stamps' difference matters, so the clock is read only when one
    // side has no estimate yet, and then only when decay could change the outcome (decay only lowers the estimated
    // side's cost, so if it is already the cheaper one it wins anyway). exp() of a non-positive number only, so
    // nothing overflows.
    if (estimatedA && estimatedB) {
      const sa = la.stamp;
      const sb = lb.stamp;
      if (sa > sb) cb *= Math.exp(-(sa - sb) / this.#decay);
      else if (sb > sa) ca *= Math.exp(-(sb - sa) / this.#decay);
    } else if (estimatedA) {
      if (!(ca < cb)) {
        this.#now(this.#time);
        ca *= Math.exp(-Math.max((this.#time[0] as number) - la.stamp, 0) / this.#decay);
      }
    } else if (estimatedB) {
      if (!(cb < ca)) {
        this.#now(this.#time);
        cb *= Math.exp(-Math.max((this.#time[0] as number) - lb.stamp, 0) / this.#decay);
      }
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
      env.clock,
    );
  },
};
