/**
 * Priority levels and zone preference: how much traffic each priority level (and, within a level, the local zone)
 * receives, from how much of it is healthy. Pure functions.
 *
 * Priority load follows Envoy's "priority levels" arithmetic: a level's health is
 * `min(100, overprovisioning × 100 × healthy / total)` with an overprovisioning factor of 1.4; traffic fills levels
 * in order of priority up to each level's health, and when the levels' health sums below 100 the loads are scaled
 * up proportionally (so a degraded cluster still sends all its traffic somewhere).
 * See Envoy docs: "Priority levels" (intro/arch_overview/upstream/load_balancing/priority).
 *
 * @module
 */

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

/**
 * The share of a level's traffic that stays in the local zone: the local zone's health (overprovisioned, as for
 * priority levels), 0 when it has no endpoint, 1 when no other zone can take the rest.
 */
export function localZoneShare(
  local: LevelHealth,
  othersHealthy: number,
  overprovisioning = OVERPROVISIONING_FACTOR,
): number {
  if (local.healthy === 0) return 0;
  if (othersHealthy === 0) return 1;
  return levelHealth(local, overprovisioning) / 100;
}
