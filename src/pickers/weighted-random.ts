/**
 * Weighted random: each request goes to target `i` with probability `weight_i / sum(weights)`, in O(1) per pick by
 * Walker's alias method (`aliasTable` in util.ts, built in O(n) with Vose's stable variant). One random draw per pick: its integer part picks a
 * column, its fraction decides between the column's own target and its alias.
 *
 * @module
 */
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { aliasTable, completeResults, weightsOf } from './util.js';
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
    const { threshold, table } = aliasTable(weights);
    this.#threshold = threshold;
    this.#table = Array.from(table, (i) => results[i] as PickResult<T>);
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
