/**
 * Round robin: each target in turn, starting at a random offset so that many clients built at the same moment do
 * not all hit the first endpoint together (grpc-js `load-balancer-round-robin.ts` does the same).
 *
 * Weighted, as Envoy's round robin is: when the targets' weights differ (endpoint weights, or a slow-start ramp),
 * the build hands over to the `weighted-round-robin` schedule, because ignoring them would make slow start a silent
 * no-op under the default policy. Equal weights keep the plain cycle and its exact order.
 *
 * @module
 */
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { completeResults } from './util.js';
// The one cross-policy import: round robin with unequal weights is, by definition, weighted round robin, and sharing
// its build keeps the two orders identical rather than maintaining a second EDF schedule here.
import { weightedRoundRobinPolicy } from './weighted-round-robin.js';
import { rejectUnknownKeys } from '../common/options.js';

/**
 * `allEqual(weightsOf(targets))` in one pass and without the array: every build asks it, and at 10,000 endpoints
 * the array was 80 KB made and dropped per rebuild.
 */
function equalWeights(targets: readonly Pickable[]): boolean {
  const first = targets[0];
  if (first === undefined) return true;
  const w = first.weight ?? first.endpoint.weight;
  for (let i = 1; i < targets.length; i++) {
    const t = targets[i] as Pickable;
    if ((t.weight ?? t.endpoint.weight) !== w) return false;
  }
  return true;
}

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

/**
 * The `round-robin` policy. Takes no settings. Targets with unequal weights (as reported by `weight`, else
 * `endpoint.weight`) are served in proportion to them, exactly as by `weighted-round-robin`.
 *
 * @category Built-in policies
 */
export const roundRobinPolicy: PickerPolicy<Record<string, never>> = {
  name: 'round-robin',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, []);
    return {};
  },
  build(targets, _config, env) {
    if (!equalWeights(targets)) return weightedRoundRobinPolicy.build(targets, {}, env);
    const results = completeResults(targets);
    return new RoundRobinPicker(results, Math.floor(env.random() * targets.length) % targets.length);
  },
};
