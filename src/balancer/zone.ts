/**
 * Zone-aware routing within one priority level: how much of the level's traffic stays in the local zone, and how
 * the rest spreads over the other zones. Pure functions.
 *
 * Follows Envoy's zone aware routing (docs: "Zone aware routing"; `ZoneAwareLoadBalancerBase::
 * regenerateLocalityRoutingStructures`): it compares the local zone's share of the healthy upstream endpoints with
 * the share of the callers that run in the local zone. When the local zone has at least its callers' share, all
 * traffic stays local; otherwise the local zone takes `upstream share / caller share` of it and the rest goes to the
 * other zones in proportion to their residual capacity (`upstream share - caller share`, when positive). Envoy
 * learns the callers' spread from the local cluster's membership; here it is the `callers` option, by default the
 * same as the level's endpoints (one caller per endpoint in each zone).
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { checkObject, describe, integer, isRecord, joinPath, number, required, string } from '../common/options.js';

/** Envoy's default `min_cluster_size`: below this many eligible endpoints in a level, zone preference is off. */
export const DEFAULT_MIN_CLUSTER_SIZE = 6;

/** Zone preference settings. @category Options */
export interface ZoneAwareOptions {
  /** The zone this process runs in; endpoints with `zone` equal to it are preferred. */
  readonly localZone: string;
  /**
   * Below this many eligible endpoints in a priority level, zone preference is off for that level and its traffic
   * is balanced over all its eligible endpoints (too few to split sensibly; Envoy's `min_cluster_size`, which also
   * counts healthy hosts). @defaultValue 6
   */
  readonly minClusterSize?: number;
  /**
   * How the service's callers (the processes running this client) spread over zones: a relative number per zone,
   * e.g. instance counts `{ 'eu-1a': 6, 'eu-1b': 2 }`. The local zone keeps all its traffic while its share of the
   * eligible endpoints is at least its share of the callers, and keeps `endpoint share / caller share` of it
   * otherwise. Must give the local zone a number above 0; zones left out have no callers.
   * @defaultValue callers spread like the level's endpoints (each zone's endpoint count)
   */
  readonly callers?: Readonly<Record<string, number>>;
}

/** Validated zone preference settings: {@link ZoneAwareOptions} with `minClusterSize` defaulted. */
export interface ResolvedZoneAwareOptions extends ZoneAwareOptions {
  /** Below this many eligible endpoints in a level, zone preference is off for it (1 or more). */
  readonly minClusterSize: number;
}

const ZONE_AWARE_KEYS = ['localZone', 'minClusterSize', 'callers'];

/**
 * Validates the `zoneAware` option; `undefined` means off and returns `undefined`.
 *
 * @param path - The option's path, used in error messages (`zoneAware.localZone`).
 * @throws InvalidOptionError naming the field: a missing or empty `localZone`, a `minClusterSize` that is not an
 *   integer >= 1, `callers` that is not an object of counts >= 0 or gives the local zone none, an unknown key.
 *
 * @example
 * ```ts
 * resolveZoneAwareOptions({ localZone: 'eu-1a', callers: { 'eu-1a': 6, 'eu-1b': 2 } });
 * ```
 */
export function resolveZoneAwareOptions(raw: unknown, path = 'zoneAware'): ResolvedZoneAwareOptions | undefined {
  if (raw === undefined) return undefined;
  const o = checkObject(raw, ZONE_AWARE_KEYS, path);
  const zoneAt = joinPath(path, 'localZone');
  // `required` guarantees a value, so the fallback of `string` is never used.
  const localZone = string(required(o.localZone, zoneAt, 'the zone this process runs in'), zoneAt, '');
  const minClusterSize = integer(o.minClusterSize, joinPath(path, 'minClusterSize'), DEFAULT_MIN_CLUSTER_SIZE, 1);
  if (o.callers === undefined) return { localZone, minClusterSize };
  const callersAt = joinPath(path, 'callers');
  if (!isRecord(o.callers)) {
    throw new InvalidOptionError(
      callersAt,
      `expected an object of zone names to caller counts, got ${describe(o.callers)}`,
    );
  }
  const callers: Record<string, number> = Object.fromEntries(
    Object.entries(o.callers).map(([zone, n]) => {
      const at = joinPath(callersAt, zone);
      return [zone, number(required(n, at), at, 0, 0)];
    }),
  );
  const local = Object.hasOwn(callers, localZone) ? callers[localZone] : undefined;
  if (local === undefined || !(local > 0)) {
    throw new InvalidOptionError(
      joinPath(callersAt, localZone),
      `the local zone must have callers (a number > 0), got ${describe(local)}`,
    );
  }
  return { localZone, minClusterSize, callers: Object.freeze(callers) };
}

/** One zone of a priority level. */
export interface ZoneCount {
  /** The zone name; `undefined` for endpoints that name none. */
  readonly zone: string | undefined;
  /** Endpoints of the level in the zone. */
  readonly total: number;
  /** Those of them eligible for traffic. */
  readonly healthy: number;
}

/**
 * The share (0-1) of a level's traffic each zone receives, in the order of `zones`, summing to 1; or `undefined`
 * when zone preference does not apply (no eligible endpoint in the local zone, or none at all), and the level's
 * traffic should be balanced over all its eligible endpoints.
 *
 * @example
 * ```ts
 * // 2 + 2 endpoints, callers spread alike; one local endpoint ejected: 1/3 of the healthy ones for 1/2 of the
 * // callers, so 2/3 of the traffic stays local and 1/3 goes to zone b.
 * zoneShares([{ zone: 'a', total: 2, healthy: 1 }, { zone: 'b', total: 2, healthy: 2 }], 'a'); // [0.667, 0.333]
 * ```
 */
export function zoneShares(
  zones: readonly ZoneCount[],
  localZone: string,
  callers?: Readonly<Record<string, number>>,
): number[] | undefined {
  const local = zones.findIndex((z) => z.zone === localZone);
  const healthy = zones.reduce((sum, z) => sum + z.healthy, 0);
  if (local < 0 || healthy === 0 || (zones[local] as ZoneCount).healthy === 0) return undefined;
  let callerTotal = 0;
  if (callers === undefined) for (const z of zones) callerTotal += z.total;
  else for (const n of Object.values(callers)) callerTotal += n;
  // Own keys only: a zone a registry names `toString` or `constructor` has no callers, not an inherited function's.
  const callersOf = (z: ZoneCount): number =>
    z.zone !== undefined && callers !== undefined && Object.hasOwn(callers, z.zone) ? (callers[z.zone] as number) : 0;
  const callerShare = (z: ZoneCount): number => (callers === undefined ? z.total : callersOf(z)) / callerTotal;
  const upstream = (z: ZoneCount): number => z.healthy / healthy;
  const localZoneCount = zones[local] as ZoneCount;
  const localCallers = callerShare(localZoneCount);
  if (upstream(localZoneCount) >= localCallers) return zones.map((_, i) => (i === local ? 1 : 0));
  const stay = upstream(localZoneCount) / localCallers;
  const residual = zones.map((z, i) => (i === local ? 0 : Math.max(0, upstream(z) - callerShare(z))));
  // Positive whenever the local zone is short: the other zones' endpoint shares exceed their caller shares by at
  // least the local zone's shortfall.
  const spare = residual.reduce((a, b) => a + b, 0);
  return zones.map((_, i) => (i === local ? stay : ((1 - stay) * (residual[i] as number)) / spare));
}
