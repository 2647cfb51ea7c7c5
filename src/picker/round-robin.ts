/**
 * Round robin: each target in turn, starting at a random offset so that many clients built at the same moment do
 * not all hit the first endpoint together (grpc-js `load-balancer-round-robin.ts` does the same).
 *
 * @module
 */
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { rejectUnknownKeys } from './picker.js';

class RoundRobinPicker<T extends Pickable> implements Picker<T> {
  readonly #results: ReadonlyArray<PickResult<T>>;
  #next: number;

  constructor(results: ReadonlyArray<PickResult<T>>, start: number) {
    this.#results = results;
    this.#next = start;
  }

  pick(_context: PickContext): PickResult<T> {
    const i = this.#next;
    this.#next = i + 1 === this.#results.length ? 0 : i + 1;
    return this.#results[i] as PickResult<T>;
  }
}

/** The `round-robin` policy. Takes no settings. */
export const roundRobinPolicy: PickerPolicy<Record<string, never>> = {
  name: 'round-robin',
  parseConfig(raw) {
    rejectUnknownKeys(raw, []);
    return {};
  },
  build(targets, _config, env) {
    const results = targets.map((target) => ({ type: 'complete', target }) as const);
    return new RoundRobinPicker(results, Math.floor(env.random() * targets.length) % targets.length);
  },
};
