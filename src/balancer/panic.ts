/**
 * The panic threshold, after Envoy
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/panic_threshold):
 * when the share of healthy endpoints falls below the threshold, health is disregarded and requests are balanced
 * across all endpoints, so that the few healthy ones are not overloaded into failing too (a cascade). Clusters
 * apply it per priority level, and not at all while the levels together are fully available (`planPriorities`).
 *
 * @module
 */
import { percent } from '../common/options.js';

/** Envoy's default panic threshold, %. */
export const DEFAULT_PANIC_THRESHOLD = 50;

/**
 * Validates a panic threshold: a percentage from 0 to 100, default 50. 0 disables panic mode (with every endpoint
 * unhealthy, nothing is eligible and requests wait, then fail with `SIDECARLESS_NO_ENDPOINTS`).
 *
 * @throws InvalidOptionError naming `option` when the value is not a number from 0 to 100.
 *
 * @example
 * ```ts
 * resolvePanicThreshold(undefined); // 50
 * resolvePanicThreshold(0); // panic mode off
 * ```
 */
export function resolvePanicThreshold(raw: number | undefined, option = 'panicThreshold'): number {
  return percent(raw, option, DEFAULT_PANIC_THRESHOLD);
}

/**
 * True when a cluster with `healthy` of `total` endpoints healthy is in panic: healthy% < threshold. Never in panic
 * with no endpoints or a threshold of 0. Pure; O(1).
 *
 * @example
 * ```ts
 * isPanic(4, 10, 50); // true: 40 % < 50 %
 * isPanic(5, 10, 50); // false
 * ```
 */
export function isPanic(healthy: number, total: number, thresholdPercent: number): boolean {
  return total > 0 && thresholdPercent > 0 && healthy * 100 < thresholdPercent * total;
}

/** What {@link selectEligible} decided. */
export interface EligibleSet<H> {
  /** The hosts to balance across: the healthy ones, or all of them in panic. */
  readonly hosts: readonly H[];
  /** True when the threshold was crossed and `hosts` is every host. */
  readonly panic: boolean;
}

/**
 * Picks the hosts to balance across: those for which `isHealthy` is true, unless their share is below the
 * threshold, in which case all of them (panic). Keeps the input order. Pure.
 *
 * @example
 * ```ts
 * const { hosts, panic } = selectEligible(subchannels, (sc) => !detector.isEjected(sc), 50);
 * ```
 */
export function selectEligible<H>(
  all: readonly H[],
  isHealthy: (host: H) => boolean,
  thresholdPercent: number,
): EligibleSet<H> {
  const healthy = all.filter(isHealthy);
  if (isPanic(healthy.length, all.length, thresholdPercent)) return { hosts: all, panic: true };
  return { hosts: healthy, panic: false };
}
