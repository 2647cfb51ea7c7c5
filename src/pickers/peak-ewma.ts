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
import { type Clock, type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, weightsOf } from './util.js';
import { duration, joinPath, number, rejectUnknownKeys } from '../common/options.js';
import { type InFlightCounts, inFlightRecordsOf, loadRecords, PeakEwma, recordOf } from './load.js';

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
  /**
   * Each target's record in `loadRecords` (its `PeakEwma`'s, or for a target without one, that of the estimate this
   * picker made at its build): the pick reads a candidate's estimate from that one dense array.
   */
  readonly #records: Int32Array;
  /**
   * Each target's `load` at the build, for targets read directly: a pick compares the live one with it (a pointer,
   * not a read of the record). Empty for counted targets, whose `load` never changes.
   */
  readonly #loads: (PeakEwma | undefined)[];
  /**
   * Each target's record in `#table` when all have one (subchannels): a pick then reads the in-flight counts from
   * there and never the targets themselves (whose `load` such a target promises never to replace).
   */
  readonly #slots: Int32Array | undefined;
  readonly #table: InFlightCounts;
  /** The estimate for targets without a `load` (never observed: the default RTT stamped at the build). */
  readonly #ownLoad: PeakEwma;
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
    // A target with no `load` at all has the default RTT stamped at this build: an estimate of the picker's own,
    // never observed.
    this.#ownLoad = new PeakEwma({ clock, decayMs: decay });
    this.#records = Int32Array.from(targets, (t) => this.#recordOf(t.load));
    const counted = inFlightRecordsOf(targets);
    this.#table = counted.table;
    this.#slots = counted.slots;
    this.#loads = counted.slots === undefined ? targets.map((t) => t.load) : [];
    this.#results = results;
    this.#inverseWeights = weights.map((w) => 1 / w);
    this.#uniform = weights.every((w) => w === weights[0]);
    this.#defaultRtt[0] = defaultRtt;
    this.#decay = decay;
    this.#fill = randomFill(random);
  }

  #recordOf(load: PeakEwma | undefined): number {
    return recordOf(load ?? this.#ownLoad);
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
    // Each candidate's estimate is two doubles in one shared typed array (`loadRecords`), at an index this picker
    // keeps densely, and a subchannel's in-flight count one int32 in its pool's table (`InFlightCounts`): independent
    // loads from small arrays, not a chain through a target object each.
    const records = this.#records;
    const all = loadRecords.array;
    let ia = (records[a] as number) << 1;
    let ib = (records[b] as number) << 1;
    const slots = this.#slots;
    let fa: number;
    let fb: number;
    if (slots !== undefined) {
      const counts = this.#table.array;
      fa = counts[slots[a] as number] as number;
      fb = counts[slots[b] as number] as number;
    } else {
      const ta = targets[a] as T;
      const tb = targets[b] as T;
      fa = ta.inFlight;
      fb = tb.inFlight;
      // `load` is read live: one replaced since the build is the one compared (never with a subchannel's).
      const loads = this.#loads;
      const la = ta.load;
      const lb = tb.load;
      if (la !== loads[a]) ia = this.#recordOf(la) << 1;
      if (lb !== loads[b]) ib = this.#recordOf(lb) << 1;
    }
    const va = all[ia] as number;
    const vb = all[ib] as number;
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
    // A record's value is -1 until its first sample, so `value * (1 - none) + defaultRtt * none` is exactly the one
    // or the other (-0 + defaultRtt, or value + 0), without a branch (which one is a coin toss while many targets
    // have no estimate yet).
    const na = +(va < 0);
    const nb = +(vb < 0);
    const ra = va * (1 - na) + defaultRtt * na;
    const rb = vb * (1 - nb) + defaultRtt * nb;
    let ca = ra * (fa + 1) * wa;
    let cb = rb * (fb + 1) * wb;
    const sa = all[ia + 1] as number;
    const sb = all[ib + 1] as number;
    if (sa > sb) {
      if (!(cb < ca)) cb *= Math.exp(-(sa - sb) / this.#decay);
    } else if (sb > sa) {
      if (!(ca < cb)) ca *= Math.exp(-(sb - sa) / this.#decay);
    }
    if (cb < ca) return this.#results[b] as PickResult<T>;
    if (ca < cb) return this.#results[a] as PickResult<T>;
    return fb < fa ? (this.#results[b] as PickResult<T>) : (this.#results[a] as PickResult<T>);
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
    // The one write a picker makes: the EWMA's decay and prior follow the policy's settings (same on every rebuild).
    for (const t of targets) {
      const load = t.load;
      if (load === undefined) continue;
      if (load.decayMs !== config.decayMs) load.decayMs = config.decayMs;
      if (load.priorMs !== config.defaultRttMs) load.priorMs = config.defaultRttMs;
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
