/**
 * The library's own picker policies, told apart from registered ones: the balancer checks a custom policy's pick
 * results (a target that is not an endpoint fails the request with `SIDECARLESS_PICKER_FAILED`), which costs a
 * lookup per pick and one insertion per endpoint per update; the built-ins' results need no check.
 *
 * @module
 */
import { leastRequestPolicy } from './least-request.js';
import { maglevPolicy } from './maglev.js';
import { peakEwmaPolicy } from './peak-ewma.js';
import type { PickerPolicy } from './picker.js';
import { randomPolicy } from './random.js';
import { ringHashPolicy } from './ring-hash.js';
import { roundRobinPolicy } from './round-robin.js';
import { weightedRandomPolicy } from './weighted-random.js';
import { weightedRoundRobinPolicy } from './weighted-round-robin.js';

/** The built-in policies, in the order a new registry holds them. */
export const BUILT_IN_POLICIES: readonly PickerPolicy[] = [
  roundRobinPolicy,
  randomPolicy,
  weightedRoundRobinPolicy,
  weightedRandomPolicy,
  leastRequestPolicy,
  peakEwmaPolicy,
  ringHashPolicy,
  maglevPolicy,
] as PickerPolicy[];

const BUILT_IN = new Set<unknown>(BUILT_IN_POLICIES);

/** True for one of the library's own policy objects (not a copy, not a registered policy of the same name). */
export function isBuiltInPolicy(policy: unknown): boolean {
  return BUILT_IN.has(policy);
}
