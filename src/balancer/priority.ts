/**
 * Priority levels: how much traffic each priority level receives, from how much of it is healthy, and which levels
 * are in panic. Pure functions. (Zone preference within a level: `zone.ts`.)
 *
 * Priority load follows Envoy's "priority levels" arithmetic: a level's health is
 * `min(100, overprovisioning × 100 × healthy / total)` with an overprovisioning factor of 1.4; traffic fills levels
 * in order of priority up to each level's health, and when the levels' health sums below 100 the loads are scaled
 * up proportionally (so a degraded cluster still sends all its traffic somewhere).
 * See Envoy docs: "Priority levels" (intro/arch_overview/upstream/load_balancing/priority).
 *
 * @module
 */
import { isPanic } from './panic.js';

/** Envoy's default overprovisioning factor. */
export const OVERPROVISIONING_FACTOR = 1.4;

/** One level's size: how many endpoints it has and how many are eligible. */
export interface LevelHealth {
  /** Endpoints in the level (or zone). */
  readonly total: number;
  /** Those of them that are eligible for traffic (not ejected, not failing health checks); at most `total`. */
  readonly healthy: number;
}

/** A level's health percentage, 0-100. */
export function levelHealth(level: LevelHealth, overprovisioning = OVERPROVISIONING_FACTOR): number {
  if (level.total === 0) return 0;
  return Math.min(100, (overprovisioning * 100 * level.healthy) / level.total);
}

/**
 * The share of traffic (0-1, summing to 1) each level receives, in priority order. With no healthy endpoint
 * anywhere, everything goes to the first level.
 *
 * @example
 * ```ts
 * priorityLoads([{ total: 10, healthy: 5 }, { total: 10, healthy: 10 }]); // [0.7, 0.3]
 * ```
 */
export function priorityLoads(levels: readonly LevelHealth[], overprovisioning = OVERPROVISIONING_FACTOR): number[] {
  const health = levels.map((l) => levelHealth(l, overprovisioning));
  const total = Math.min(
    100,
    health.reduce((a, b) => a + b, 0),
  );
  if (total === 0) return levels.map((_, i) => (i === 0 ? 1 : 0));
  let remaining = 100;
  const loads = health.map((h) => {
    const load = Math.min(h, remaining);
    remaining -= load;
    return load;
  });
  // Scale up when the levels together are less than fully healthy.
  return loads.map((l) => l / total);
}

/** How traffic is spread over priority levels, and which levels are in panic. */
export interface PriorityPlan {
  /** Share of traffic per level, in priority order: 0-1, summing to 1. */
  readonly loads: readonly number[];
  /**
   * Per level: in panic, so its traffic goes to all its endpoints, eligible or not, without zone preference.
   */
  readonly panic: readonly boolean[];
}

/**
 * Priority loads with the panic threshold applied per level, as Envoy does (docs: "Panic threshold", the part on
 * priority levels; `LoadBalancerBase::recalculatePerPriorityPanic`):
 *
 * 1. The normalized total availability is `min(100, sum of the levels' health)`. At 100 the lower levels can take
 *    what the degraded ones cannot, so no level is in panic, however few of its endpoints are eligible.
 * 2. Below 100, a level is in panic when its eligible share is under the threshold ({@link isPanic}).
 * 3. When every level is in panic, each level's load is its share of all endpoints (health says nothing any more).
 * 4. With the threshold at 0 nothing is ever in panic, and the loads are {@link priorityLoads}.
 *
 * @example
 * ```ts
 * // P0: 4 endpoints all ejected, P1: 2 healthy. P1 alone is enough: no panic, everything on P1.
 * planPriorities([{ total: 4, healthy: 0 }, { total: 2, healthy: 2 }], 50); // { loads: [0, 1], panic: [false, false] }
 * ```
 */
export function planPriorities(
  levels: readonly LevelHealth[],
  panicThresholdPercent: number,
  overprovisioning = OVERPROVISIONING_FACTOR,
): PriorityPlan {
  const loads = priorityLoads(levels, overprovisioning);
  const availability = Math.min(
    100,
    levels.reduce((sum, level) => sum + levelHealth(level, overprovisioning), 0),
  );
  const panic = levels.map((level) => availability < 100 && isPanic(level.healthy, level.total, panicThresholdPercent));
  if (levels.length === 0 || !panic.every(Boolean)) return { loads, panic };
  const hosts = levels.reduce((sum, level) => sum + level.total, 0);
  return { loads: levels.map((level) => (hosts === 0 ? 0 : level.total / hosts)), panic };
}
