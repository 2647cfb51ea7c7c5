/**
 * Least request, after Envoy's `LEAST_REQUEST` load balancer
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers).
 *
 * - Equal weights: power of `choiceCount` choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
 *   Balancing", 2001): draw `choiceCount` targets at random and send to the one with the fewest requests in flight,
 *   read live. The first two draws are always distinct (both from one random number); any further ones are
 *   independent, as Envoy's.
 * - Unequal weights: a weighted power of `choiceCount` choices on Envoy's load-adjusted weight
 *   `weight / (inFlight + 1) ^ activeRequestBias`: draw `choiceCount` targets from an alias table and send to the
 *   one whose adjusted weight is highest. With equal loads (idle, say) each target gets exactly its weight's share;
 *   a bias of 0 is plain weighted random; 1 (the default) makes a target with twice the requests in flight look
 *   half as heavy. Envoy uses an earliest-deadline-first schedule here, which is O(log n) and deterministic (many
 *   clients with the same view can move in step); random choices are O(1) and do not herd.
 *
 * Both are O(choiceCount) per pick and allocate nothing.
 *
 * @module
 */
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { aliasTable, allEqual, completeResults, weightsOf } from './util.js';
import { integer, joinPath, number, rejectUnknownKeys } from '../common/options.js';
import { type InFlightCounts, inFlightRecordsOf } from './load.js';

/** Settings of the `least-request` policy. @category Built-in policies */
export interface LeastRequestConfig {
  /**
   * How many random targets to compare per pick. Envoy's `choice_count` (which Envoy applies to equal weights only;
   * here unequal weights draw this many too, in proportion to weight); an integer from 2 to 100.
   * @defaultValue 2
   */
  readonly choiceCount: number;
  /**
   * Exponent on `inFlight + 1` in the effective weight `weight / (inFlight + 1) ^ bias` (unequal weights), by which
   * the drawn targets are compared. Envoy's `active_request_bias`; a finite number from 0 to 100. 0 ignores load
   * (weighted random). Since 0.2.0 unequal weights use random choices rather than Envoy's schedule: shares follow the
   * weights exactly only on average and when loads are equal, not pick by pick. Under concurrent load they compress
   * toward equal, as Envoy's do (a heavier target's larger share puts more requests in flight on it): weights 1:2:3:4
   * with equal latencies and 8 callers get about 16/23/29/33 %. A lower bias compresses less.
   * @defaultValue 1
   */
  readonly activeRequestBias: number;
}

/** The picker built by {@link leastRequestPolicy} when all weights are equal: power of `choiceCount` choices. */
export class LeastRequestPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #targets: readonly T[];
  /** Each target's record in `#table` when all have one (subchannels): the counts are read from there. */
  readonly #slots: Int32Array | undefined;
  readonly #table: InFlightCounts;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  readonly #choices: number;

  /** @internal Built by the policy. */
  constructor(targets: readonly T[], results: PickResult<T>[], choiceCount: number, random: () => number) {
    this.#targets = targets;
    const counted = inFlightRecordsOf(targets);
    this.#table = counted.table;
    this.#slots = counted.slots;
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
    if (this.#choices === 2) {
      // The default: one draw gives two distinct choices (its integer part the first, its fraction the second; exact
      // while n * n < 2^52, i.e. any realistic n), and the less loaded wins by index arithmetic rather than a branch
      // (which of two random targets has fewer requests in flight is a coin toss the branch predictor loses).
      this.#fill(this.#draw);
      const x = (this.#draw[0] as number) * n;
      let i = x | 0;
      if (i >= n) i = n - 1;
      let other = ((x - i) * (n - 1)) | 0;
      if (other >= i) other++;
      const slots = this.#slots;
      let lower: number;
      if (slots !== undefined) {
        const counts = this.#table.array;
        lower = +((counts[slots[other] as number] as number) < (counts[slots[i] as number] as number));
      } else {
        lower = +((targets[other] as T).inFlight < (targets[i] as T).inFlight);
      }
      return this.#results[i + lower * (other - i)] as PickResult<T>;
    }
    // `choiceCount - 1` draws: the first gives two distinct choices as above, each further draw one more. One call
    // site for the random source in this loop: with a second one (say, a branch for more than two choices) V8 could
    // compile whichever it met second as a real call.
    const slots = this.#slots;
    const counts = this.#table.array;
    let best = 0;
    let bestLoad = 0;
    for (let c = 1; c < this.#choices; c++) {
      this.#fill(this.#draw);
      const x = (this.#draw[0] as number) * n;
      let i = x | 0;
      if (i >= n) i = n - 1;
      const load = slots === undefined ? (targets[i] as T).inFlight : (counts[slots[i] as number] as number);
      if (c === 1) {
        let other = ((x - i) * (n - 1)) | 0;
        if (other >= i) other++;
        const otherLoad =
          slots === undefined ? (targets[other] as T).inFlight : (counts[slots[other] as number] as number);
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
 * The draw probabilities of the weighted picker: chosen so that, with every target equally loaded, the best of
 * `choices` independent draws (the heaviest, ties to the first drawn) is target `i` with probability exactly
 * `weight_i / W`. The best of k draws lands in the lightest weights up to and including `w` with probability
 * `F_q(w)^k`, where `F_q` sums the draw probabilities up to `w`; setting that equal to `F(w)`, the share of weights up
 * to `w`, gives `F_q(w) = F(w)^(1/k)`, spread evenly over targets of equal weight (equal weights tie, and the first
 * drawn of them is uniform among them). Targets are grouped by `1 / weight` exactly as the pick compares them.
 *
 * @internal Exported for the tests' reference picker.
 */
export function drawProbabilities(inverseWeights: Float64Array, choices: number): Float64Array {
  const n = inverseWeights.length;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (inverseWeights[b] as number) - (inverseWeights[a] as number),
  );
  let total = 0;
  for (let i = 0; i < n; i++) total += 1 / (inverseWeights[i] as number);
  const q = new Float64Array(n);
  let below = 0; // F before the group
  let start = 0;
  while (start < n) {
    const inverse = inverseWeights[order[start] as number] as number;
    let end = start;
    let mass = 0;
    while (end < n && inverseWeights[order[end] as number] === inverse) {
      mass += 1 / inverse;
      end++;
    }
    const upTo = end === n ? 1 : Math.min(below + mass / total, 1);
    const each = (upTo ** (1 / choices) - below ** (1 / choices)) / (end - start);
    for (let j = start; j < end; j++) q[order[j] as number] = each;
    below = upTo;
    start = end;
  }
  return q;
}

/**
 * The picker built by {@link leastRequestPolicy} when weights differ: a weighted power of `choiceCount` choices. Each
 * pick draws `choiceCount` targets independently from an alias table (O(1) a draw) and returns the one with the
 * lowest `(inFlight + 1)^bias / weight` (Envoy's effective weight, inverted), the first drawn on a tie. The draw
 * probabilities are tilted towards lighter targets (see `drawProbabilities`) so that when every target has the same
 * number of requests in flight, as when idle, each gets exactly its weight's share. A bias of 0 ignores load: one draw
 * from the weights, plain weighted random.
 */
export class WeightedLeastRequestPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #targets: readonly T[];
  readonly #table: InFlightCounts;
  /** True when every target has a record in `#table` (subchannels): the counts are read from there. */
  readonly #counted: boolean;
  readonly #bias: number;
  readonly #choices: number;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  /**
   * One 32-byte record per alias-table column `c`, everything a draw needs but the counts, in one cache line: the
   * threshold (a float32 at `#thresholds[8c]`), the alias (`#ints[8c + 1]`), the records in `#table` of the column's
   * own target and of its alias (`#ints[8c + 2]`, `[8c + 3]`; subchannels only), and `max / weight` of the own
   * target and of the alias (`#inverse[4c + 2]`, `[4c + 3]`). At N = 10,000 the tables no longer fit in a core's
   * cache: one line a draw, then the count it points to, is as few misses as a draw can take (separate arrays cost
   * one each). Three views of one buffer.
   */
  readonly #thresholds: Float32Array;
  readonly #ints: Int32Array;
  readonly #inverse: Float64Array;

  /** @internal Built by the policy. */
  constructor(
    targets: readonly T[],
    results: PickResult<T>[],
    weights: Float64Array,
    choiceCount: number,
    bias: number,
    random: () => number,
  ) {
    this.#targets = targets;
    const counted = inFlightRecordsOf(targets);
    this.#table = counted.table;
    this.#results = results;
    this.#bias = bias;
    // With no bias the score is the weight alone, so a single draw from the weights is the same distribution.
    this.#choices = bias === 0 ? 1 : choiceCount;
    this.#fill = randomFill(random);
    let max = 0;
    for (const w of weights) max = Math.max(max, w);
    const inverse = weights.map((w) => max / w);
    const { threshold, table } = aliasTable(drawProbabilities(inverse, this.#choices));
    const n = targets.length;
    const buffer = new ArrayBuffer(32 * n);
    this.#thresholds = new Float32Array(buffer);
    this.#ints = new Int32Array(buffer);
    this.#inverse = new Float64Array(buffer);
    const slots = counted.slots;
    this.#counted = slots !== undefined;
    for (let c = 0; c < n; c++) {
      const alias = table[2 * c + 1] as number;
      // A float32 threshold moves a column's split by at most 2^-24 of a column: nothing a distribution shows.
      this.#thresholds[8 * c] = threshold[c] as number;
      this.#ints[8 * c + 1] = alias;
      if (slots !== undefined) {
        this.#ints[8 * c + 2] = slots[c] as number;
        this.#ints[8 * c + 3] = slots[alias] as number;
      }
      this.#inverse[4 * c + 2] = inverse[c] as number;
      this.#inverse[4 * c + 3] = inverse[alias] as number;
    }
  }

  /**
   * Draws `choiceCount` targets (independently, in the tilted proportions) and returns the one with the lowest
   * `(inFlight + 1)^bias / weight`, the first drawn on a tie. Always `complete`; the context is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const n = this.#targets.length;
    const targets = this.#targets;
    const thresholds = this.#thresholds;
    const ints = this.#ints;
    const inverse = this.#inverse;
    const bias = this.#bias;
    const draw = this.#draw;
    if (this.#choices === 2) {
      // The default, unrolled: two independent draws, then the lower score by index arithmetic rather than a branch
      // (which of two random targets is less loaded is a coin toss the branch predictor loses).
      this.#fill(draw);
      const x1 = (draw[0] as number) * n;
      this.#fill(draw);
      const x2 = (draw[0] as number) * n;
      let c1 = x1 | 0;
      if (c1 >= n) c1 = n - 1;
      let c2 = x2 | 0;
      if (c2 >= n) c2 = n - 1;
      const b1 = 8 * c1;
      const b2 = 8 * c2;
      // The column's own target (k = 0) or its alias (k = 1), chosen by index rather than a branch (a coin toss).
      const k1 = +(x1 - c1 >= (thresholds[b1] as number));
      const k2 = +(x2 - c2 >= (thresholds[b2] as number));
      const i1 = (c1 + k1 * ((ints[b1 + 1] as number) - c1)) | 0;
      const i2 = (c2 + k2 * ((ints[b2 + 1] as number) - c2)) | 0;
      let f1: number;
      let f2: number;
      if (this.#counted) {
        const counts = this.#table.array;
        f1 = counts[ints[b1 + 2 + k1] as number] as number;
        f2 = counts[ints[b2 + 2 + k2] as number] as number;
      } else {
        f1 = (targets[i1] as T).inFlight;
        f2 = (targets[i2] as T).inFlight;
      }
      const l1 = f1 + 1;
      const l2 = f2 + 1;
      const s1 = (bias === 1 ? l1 : l1 ** bias) * (inverse[4 * c1 + 2 + k1] as number);
      const s2 = (bias === 1 ? l2 : l2 ** bias) * (inverse[4 * c2 + 2 + k2] as number);
      return this.#results[i1 + +(s2 < s1) * (i2 - i1)] as PickResult<T>;
    }
    // One call site for the random source and the score computed inline: a float returned from a call V8 does not
    // inline is a 16-byte heap number per pick.
    const counted = this.#counted;
    const counts = this.#table.array;
    let best = 0;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let c = 0; c < this.#choices; c++) {
      this.#fill(draw);
      const x = (draw[0] as number) * n;
      let col = x | 0;
      if (col >= n) col = n - 1;
      const base = 8 * col;
      const k = +(x - col >= (thresholds[base] as number));
      const i = (col + k * ((ints[base + 1] as number) - col)) | 0;
      const load = (counted ? (counts[ints[base + 2 + k] as number] as number) : (targets[i] as T).inFlight) + 1;
      // max weight / weight, so the score is a multiplication: (inFlight + 1)^bias / weight, scaled.
      const score = (bias === 1 ? load : load ** bias) * (inverse[4 * col + 2 + k] as number);
      if (score < bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return this.#results[best] as PickResult<T>;
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
    return new WeightedLeastRequestPicker(
      targets,
      results,
      weights,
      config.choiceCount,
      config.activeRequestBias,
      env.random,
    );
  },
};
