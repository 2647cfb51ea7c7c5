/**
 * Random: a uniformly random target per request. Stateless, so it suits many independent clients; ignores weights
 * (use `weighted-random` for those).
 *
 * @module
 */
import { type RandomFill, randomFill } from '../common/runtime.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults, indexOf } from './util.js';
import { rejectUnknownKeys } from '../common/options.js';

/** The picker built by {@link randomPolicy}. */
export class RandomPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #fill: RandomFill;
  readonly #draw = new Float64Array(1);

  /** @internal Built by the policy. */
  constructor(results: PickResult<T>[], random: () => number) {
    this.#results = results;
    this.#fill = randomFill(random);
  }

  /** A uniformly random target, ignoring weights. Always `complete`; the context is not read. */
  pick(_context: PickContext): PickResult<T> {
    this.#fill(this.#draw);
    return this.#results[indexOf(this.#draw[0] as number, this.#results.length)] as PickResult<T>;
  }
}

/** The `random` policy. Takes no settings. @category Built-in policies */
export const randomPolicy: PickerPolicy<Record<string, never>> = {
  name: 'random',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, []);
    return {};
  },
  build(targets, _config, env) {
    return new RandomPicker(completeResults(targets), env.random);
  },
};
