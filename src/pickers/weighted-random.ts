/**
 * Weighted random: each request goes to target `i` with probability `weight_i / sum(weights)`, in O(1) per pick by
 * Walker's alias method, built in O(n) with Vose's stable variant (M. D. Vose, "A linear algorithm for generating
 * random numbers with a given distribution", IEEE TSE 1991). One random draw per pick: its integer part picks a
 * column, its fraction decides between the column's own target and its alias.
 *
 * @module
 */
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, weightsOf } from './util.js';
import { rejectUnknownKeys } from '../common/options.js';

/** The picker built by {@link weightedRandomPolicy}. */
export class WeightedRandomPicker<T extends Pickable> implements Picker<T> {
  // Column i's own result at 2i, its alias's at 2i + 1, so the pick indexes rather than branches: which of the two
  // a draw lands on is a coin toss the branch predictor loses (about 40 % off a pick with weights 1..5).
  readonly #table: PickResult<T>[];
  readonly #threshold: Float64Array;
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);
  readonly #n: number;

  /** @internal Built by the policy. */
  constructor(results: PickResult<T>[], weights: Float64Array, random: () => number) {
    const n = results.length;
    this.#n = n;
    this.#fill = randomFill(random);
    const threshold = new Float64Array(n);
    const alias = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += weights[i] as number;
    // Scaled probabilities: mean 1. Columns under 1 are topped up by an alias from a column over 1.
    const scaled = new Float64Array(n);
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < n; i++) {
      scaled[i] = ((weights[i] as number) * n) / total;
      alias[i] = i;
      if ((scaled[i] as number) < 1) small.push(i);
      else large.push(i);
    }
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large[large.length - 1] as number;
      threshold[s] = scaled[s] as number;
      alias[s] = l;
      scaled[l] = (scaled[l] as number) + (scaled[s] as number) - 1;
      if ((scaled[l] as number) < 1) {
        large.pop();
        small.push(l);
      }
    }
    // Leftovers are 1 up to rounding error.
    for (const i of large) threshold[i] = 1;
    for (const i of small) threshold[i] = 1;
    this.#threshold = threshold;
    this.#table = [];
    for (let i = 0; i < n; i++)
      this.#table.push(results[i] as PickResult<T>, results[alias[i] as number] as PickResult<T>);
  }

  /** A random target in proportion to weight (alias method, O(1)). Always `complete`; the context is not read. */
  pick(_context: PickContext): PickResult<T> {
    this.#fill(this.#draw);
    const x = (this.#draw[0] as number) * this.#n;
    let i = x | 0;
    if (i >= this.#n) i = this.#n - 1;
    return this.#table[2 * i + +(x - i >= (this.#threshold[i] as number))] as PickResult<T>;
  }
}

/**
 * The `weighted-random` policy: random in proportion to endpoint weight, O(1) per pick. Takes no settings. Any
 * valid endpoint weights work (ratios up to 1e6 / 1e-300 are represented as doubles; the alias table is exact up
 * to floating-point rounding).
 *
 * @category Built-in policies
 */
export const weightedRandomPolicy: PickerPolicy<Record<string, never>> = {
  name: 'weighted-random',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, []);
    return {};
  },
  build(targets, _config, env) {
    return new WeightedRandomPicker(completeResults(targets), weightsOf(targets), env.random);
  },
};
