/**
 * Least request, after Envoy's `LEAST_REQUEST` load balancer
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers).
 *
 * - Equal weights: power of `choiceCount` choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
 *   Balancing", 2001): draw `choiceCount` targets at random and send to the one with the fewest requests in flight,
 *   read live. The first two draws are always distinct (both from one random number); any further ones are
 *   independent, as Envoy's.
 * - Unequal weights: as Envoy, an earliest-deadline-first weighted round robin whose weights are adjusted to the
 *   load at the time of selection: `weight / (inFlight + 1) ^ activeRequestBias`. A bias of 0 is plain weighted
 *   round robin; 1 (the default) makes a target with twice the requests in flight look half as heavy.
 *
 * Both are O(1) or O(log n) per pick.
 *
 * @module
 */
import { EdfHeap } from './edf.js';
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { allEqual, completeResults, weightsOf } from './util.js';
import { integer, joinPath, number, rejectUnknownKeys } from '../common/options.js';

/** Settings of the `least-request` policy. @category Built-in policies */
export interface LeastRequestConfig {
  /**
   * How many random targets to compare per pick (equal weights). Envoy's `choice_count`; an integer from 2 to 100.
   * @defaultValue 2
   */
  readonly choiceCount: number;
  /**
   * Exponent on `inFlight + 1` in the effective weight `weight / (inFlight + 1) ^ bias` (unequal weights). Envoy's
   * `active_request_bias`; a finite number from 0 to 100.
   * @defaultValue 1
   */
  readonly activeRequestBias: number;
}

/** The picker built by {@link leastRequestPolicy} when all weights are equal: power of `choiceCount` choices. */
export class LeastRequestPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #targets: readonly T[];
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  readonly #choices: number;

  /** @internal Built by the policy. */
  constructor(targets: readonly T[], results: PickResult<T>[], choiceCount: number, random: () => number) {
    this.#targets = targets;
    this.#results = results;
    this.#choices = choiceCount;
    this.#fill = randomFill(random);
  }

  /**
   * Draws `choiceCount` targets at random and returns the one with the fewest requests in flight (the first drawn on
   * a tie). Always `complete`; the context is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const n = this.#targets.length;
    if (n === 1) return this.#results[0] as PickResult<T>;
    const targets = this.#targets;
    // `choiceCount - 1` draws: the first gives two distinct choices (its integer part the first, its fraction the
    // second; exact while n * n < 2^52, i.e. any realistic n), each further draw one more. One call site for the
    // random source, on purpose: with a second one (say, a branch for more than two choices) V8 could compile
    // whichever it met second as a real call, and a random number returned from a call that is not inlined is a
    // 16-byte heap number per pick.
    let best = 0;
    let bestLoad = 0;
    for (let c = 1; c < this.#choices; c++) {
      this.#fill(this.#draw);
      const x = (this.#draw[0] as number) * n;
      let i = x | 0;
      if (i >= n) i = n - 1;
      const load = (targets[i] as T).inFlight;
      if (c === 1) {
        let other = ((x - i) * (n - 1)) | 0;
        if (other >= i) other++;
        const otherLoad = (targets[other] as T).inFlight;
        best = otherLoad < load ? other : i;
        bestLoad = otherLoad < load ? otherLoad : load;
      } else if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return this.#results[best] as PickResult<T>;
  }
}

/**
 * The picker built by {@link leastRequestPolicy} when weights differ: EDF with weights adjusted to the picked
 * target's in-flight count when it is rescheduled (Envoy recomputes the same way, so other targets' deadlines
 * reflect their load when they were last picked).
 */
export class WeightedLeastRequestPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #targets: readonly T[];
  // 1 / weight, so rescheduling is a multiplication: the period 1 / effective weight is (inFlight + 1)^bias / weight.
  readonly #inverseWeights: Float64Array;
  readonly #bias: number;
  readonly #heap: EdfHeap;

  /** @internal Built by the policy. */
  constructor(
    targets: readonly T[],
    results: PickResult<T>[],
    weights: Float64Array,
    bias: number,
    random: () => number,
  ) {
    this.#targets = targets;
    this.#results = results;
    this.#bias = bias;
    let max = 0;
    for (const w of weights) max = Math.max(max, w);
    // Normalised so the heaviest target has weight 1 and deadlines stay in a comfortable range.
    this.#inverseWeights = weights.map((w) => max / w);
    const deadlines = new Float64Array(targets.length);
    for (let i = 0; i < targets.length; i++) {
      deadlines[i] = random() * this.#period(i);
    }
    this.#heap = new EdfHeap(deadlines);
  }

  /** 1 / effective weight of target `i` as of now: (inFlight + 1)^bias / weight. */
  #period(i: number): number {
    const inverse = this.#inverseWeights[i] as number;
    const bias = this.#bias;
    if (bias === 0) return inverse;
    const load = (this.#targets[i] as T).inFlight + 1;
    return (bias === 1 ? load : load ** bias) * inverse;
  }

  /**
   * Returns the target with the earliest deadline and reschedules it by its load-adjusted weight as of now. Always
   * `complete`; the context is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const heap = this.#heap;
    const i = heap.top();
    // #period inlined by hand, and the heap adds the period itself: a float returned from (or passed to) a call V8
    // does not inline is boxed, 16 bytes a pick (seen on Node 24).
    const inverse = this.#inverseWeights[i] as number;
    const bias = this.#bias;
    const load = (this.#targets[i] as T).inFlight + 1;
    const period = bias === 0 ? inverse : (bias === 1 ? load : load ** bias) * inverse;
    heap.delayTop(period);
    return this.#results[i] as PickResult<T>;
  }
}

/** The `least-request` policy. @category Built-in policies */
export const leastRequestPolicy: PickerPolicy<LeastRequestConfig> = {
  name: 'least-request',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, ['choiceCount', 'activeRequestBias']);
    return {
      choiceCount: integer(raw.choiceCount, joinPath(path, 'choiceCount'), 2, 2, 100),
      activeRequestBias: number(raw.activeRequestBias, joinPath(path, 'activeRequestBias'), 1, 0, false, 100),
    };
  },
  build(targets, config, env) {
    const results = completeResults(targets);
    const weights = weightsOf(targets);
    if (allEqual(weights)) return new LeastRequestPicker(targets, results, config.choiceCount, env.random);
    return new WeightedLeastRequestPicker(targets, results, weights, config.activeRequestBias, env.random);
  },
};
