import { leastRequestPolicy } from './least-request.js';
import { maglevPolicy } from './maglev.js';
import { peakEwmaPolicy } from './peak-ewma.js';
import { PickerRegistry } from './picker.js';
import { randomPolicy } from './random.js';
import { ringHashPolicy } from './ring-hash.js';
import { roundRobinPolicy } from './round-robin.js';
import { weightedRandomPolicy } from './weighted-random.js';
import { weightedRoundRobinPolicy } from './weighted-round-robin.js';

/**
 * A new registry holding the built-in policies: `round-robin`, `random`, `weighted-round-robin`,
 * `weighted-random`, `least-request`, `peak-ewma`, `ring-hash` and `maglev`. Register your own policies on it.
 *
 * @example
 * ```ts
 * const pickers = createPickerRegistry().register(myPolicy);
 * createClient({ target, pickers, picker: { name: 'least-request', choiceCount: 3 } });
 * ```
 *
 * @category Pickers
 */
export function createPickerRegistry(): PickerRegistry {
  return new PickerRegistry()
    .register(roundRobinPolicy)
    .register(randomPolicy)
    .register(weightedRoundRobinPolicy)
    .register(weightedRandomPolicy)
    .register(leastRequestPolicy)
    .register(peakEwmaPolicy)
    .register(ringHashPolicy)
    .register(maglevPolicy);
}
