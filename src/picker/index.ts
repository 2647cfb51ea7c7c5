import { PickerRegistry } from './picker.js';
import { roundRobinPolicy } from './round-robin.js';

/** A new registry holding the built-in policies (`round-robin`). Register your own policies on it. */
export function createPickerRegistry(): PickerRegistry {
  return new PickerRegistry().register(roundRobinPolicy);
}
