import { BUILT_IN_POLICIES } from './built-in.js';
import { PickerRegistry } from './picker.js';

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
  const registry = new PickerRegistry();
  for (const policy of BUILT_IN_POLICIES) registry.register(policy);
  return registry;
}
