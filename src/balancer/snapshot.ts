/**
 * A cluster's pick snapshot: the eligible subchannels grouped by priority level (and, with zone preference, by
 * zone), each group with its own picker and share of traffic. Rebuilt whenever membership,
 * weights or eligibility change; picking reads it without allocating.
 *
 * @module
 */
import type { SidecarlessError } from '../common/errors.js';
import type { Pickable, PickContext, Picker, PickResult } from '../pickers/picker.js';
import type { RandomSource } from '../common/runtime.js';
import { planPriorities } from './priority.js';
import { type ZoneAwareOptions, zoneShares } from './zone.js';

export type { ZoneAwareOptions } from './zone.js';

/** What the snapshot needs to know of an endpoint. */
export type SnapshotHost = Pickable;

interface Slot<T extends Pickable> {
  readonly picker: Picker<T>;
  /** Cumulative share, in (0, 1]. */
  readonly upTo: number;
}

/** An immutable pick snapshot. */
export type Snapshot<T extends Pickable> =
  | { readonly kind: 'empty' }
  | { readonly kind: 'fail'; readonly result: PickResult<T> }
  | {
      readonly kind: 'slots';
      readonly slots: readonly Slot<T>[];
      readonly levels: number;
      /** True when a level that receives traffic is in panic. */
      readonly panic: boolean;
    };

/**
 * A `usable` or `eligible` that keeps every endpoint: passed when nothing can be left out, the build then takes no
 * look at each of (maybe 10,000) endpoints.
 */
export const keepAll = (): boolean => true;

/** No endpoint at all: requests wait for some. */
export const EMPTY: Snapshot<never> = { kind: 'empty' };

/** What {@link buildSnapshot} works from. */
export interface SnapshotInput<T extends SnapshotHost> {
  /**
   * Every active endpoint (not draining), whether it connects or not: the totals that priority levels, panic and
   * zones are measured against, so endpoints that refuse connections count as a degraded level.
   */
  readonly population: readonly T[];
  /**
   * True for endpoints that take new requests now (not backing off after refused connections). When none in the
   * population does, callers pass one that is always true, so requests still go out and fail with the real error.
   */
  readonly usable: (host: T) => boolean;
  /** True for endpoints health allows: not ejected, passing health checks. */
  readonly eligible: (host: T) => boolean;
  /** The panic threshold, %; 0 turns panic off. */
  readonly panicThreshold: number;
  /** Zone preference, when configured. */
  readonly zone: ZoneAwareOptions | undefined;
  /** Makes a picker for one group of endpoints. */
  readonly build: (group: readonly T[]) => Picker<T>;
  /** The error of a snapshot with nothing to send to (panic off, nothing eligible). */
  readonly noneEligible: () => SidecarlessError;
}

interface Level<T> {
  /** The level's population. */
  readonly all: readonly T[];
  /** Usable ones, or the whole level when none is (a level in panic still has somewhere to send). */
  readonly reachable: readonly T[];
  /** Usable and eligible. */
  readonly healthy: readonly T[];
}

/**
 * Builds a snapshot: the population is grouped by priority level; each level gets its share of traffic from
 * {@link planPriorities} (usable and eligible endpoints count as healthy); a level in panic balances over all its
 * reachable endpoints, a healthy one over its eligible endpoints, split by zone with {@link zoneShares} when zone
 * preference is on and the level has at least `minClusterSize` eligible endpoints.
 */
export function buildSnapshot<T extends SnapshotHost>(input: SnapshotInput<T>): Snapshot<T> {
  const { population, usable, eligible, zone, build } = input;
  if (population.length === 0) return EMPTY;
  const levels = groupLevels(population, usable, eligible);
  const plan = planPriorities(
    levels.map((l) => ({ total: l.all.length, healthy: l.healthy.length })),
    input.panicThreshold,
  );
  const slots: Slot<T>[] = [];
  let acc = 0;
  let panic = false;
  const add = (group: readonly T[], share: number) => {
    if (share <= 0 || group.length === 0) return;
    acc += share;
    slots.push({ picker: build(group), upTo: acc });
  };
  levels.forEach((level, i) => {
    const load = plan.loads[i] as number;
    if (load <= 0) return;
    if (plan.panic[i] === true) {
      panic = true;
      add(level.reachable, load);
      return;
    }
    if (zone === undefined || level.healthy.length < (zone.minClusterSize ?? 6)) {
      add(level.healthy, load);
      return;
    }
    const byZone = new Map<string | undefined, { total: number; healthy: T[] }>();
    for (const host of level.all) {
      const key = host.endpoint.zone;
      let entry = byZone.get(key);
      if (entry === undefined) byZone.set(key, (entry = { total: 0, healthy: [] }));
      entry.total++;
    }
    for (const host of level.healthy) byZone.get(host.endpoint.zone)?.healthy.push(host);
    const zones = [...byZone].map(([name, z]) => ({ zone: name, total: z.total, healthy: z.healthy.length }));
    const shares = zoneShares(zones, zone.localZone, zone.callers);
    if (shares === undefined) {
      add(level.healthy, load);
      return;
    }
    [...byZone.values()].forEach((z, j) => add(z.healthy, load * (shares[j] as number)));
  });
  if (slots.length === 0) return { kind: 'fail', result: { type: 'fail', error: input.noneEligible() } };
  // Rounding: the last slot takes whatever is left.
  const last = slots[slots.length - 1] as Slot<T>;
  slots[slots.length - 1] = { picker: last.picker, upTo: Number.POSITIVE_INFINITY };
  return { kind: 'slots', slots, levels: levels.length, panic };
}

/**
 * The population by priority level, in priority order. One pass per level (one in all for a single level, the
 * common case), and no copy where a filter would keep everything: a level whose endpoints are all usable is its own
 * `reachable` list, and one whose reachable endpoints are all eligible is its own `healthy` list. At 10,000
 * endpoints this runs on every membership or health change, so it allocates O(levels), not O(N) per filter.
 */
function groupLevels<T extends SnapshotHost>(
  population: readonly T[],
  usable: (host: T) => boolean,
  eligible: (host: T) => boolean,
): Level<T>[] {
  const first = (population[0] as T).endpoint.priority;
  let single = true;
  for (const host of population) {
    if (host.endpoint.priority !== first) {
      single = false;
      break;
    }
  }
  if (single) return [level(population, usable, eligible)];
  const byPriority = new Map<number, T[]>();
  for (const host of population) {
    const p = host.endpoint.priority;
    let group = byPriority.get(p);
    if (group === undefined) byPriority.set(p, (group = []));
    group.push(host);
  }
  return [...byPriority.keys()].sort((a, b) => a - b).map((p) => level(byPriority.get(p) as T[], usable, eligible));
}

function level<T>(all: readonly T[], usable: (host: T) => boolean, eligible: (host: T) => boolean): Level<T> {
  const reachable = keepIf(all, usable);
  return { all, reachable: reachable.length === 0 ? all : reachable, healthy: keepIf(reachable, eligible) };
}

/** `list.filter(keep)`, but `list` itself when every element is kept. */
function keepIf<T>(list: readonly T[], keep: (item: T) => boolean): readonly T[] {
  if (keep === keepAll) return list;
  let i = 0;
  while (i < list.length && keep(list[i] as T)) i++;
  if (i === list.length) return list;
  const out = list.slice(0, i);
  for (i++; i < list.length; i++) if (keep(list[i] as T)) out.push(list[i] as T);
  return out;
}

/**
 * A picker that can also pick among some targets only, the way its own choice would move if the others left (ring
 * hash: the next ring entry whose owner is one of them); `undefined` when it finds none within a few steps.
 * Duck-typed, so that the balancer depends on no policy: a staged snapshot's previous picker serves with it.
 */
interface PicksAmong<T extends Pickable> {
  pickAmong(context: PickContext, among: ReadonlySet<T>): PickResult<T> | undefined;
}

function pickWith<T extends Pickable>(
  picker: Picker<T>,
  context: PickContext,
  among: ReadonlySet<T> | undefined,
): PickResult<T> | undefined {
  if (among === undefined || !('pickAmong' in picker)) return picker.pick(context);
  return (picker as Picker<T> & PicksAmong<T>).pickAmong(context, among);
}

/** A picker that hashes a request's key (ring hash, maglev): duck-typed, as `PicksAmong`. */
interface HashesKeys {
  keyHash(context: PickContext, out: Uint32Array): boolean;
}

const keyHash = new Uint32Array(1);

/**
 * Where in [0, 1) a request falls among a snapshot's slots (priority levels, zones). With a hashing policy, from the
 * request's key (Envoy chooses the priority from the hash for these): a key keeps to one level, so to one endpoint,
 * while traffic spills over levels, when a random draw would spread it over all (probe 21). The hash is mixed
 * (murmur3's finalizer) so that the level does not follow the key's place on the ring: the keys of a level are spread
 * over its whole ring. A request without a key draws at random, as the picker does.
 */
function slotDraw<T extends Pickable>(picker: Picker<T>, context: PickContext, random: RandomSource): number {
  if (!('keyHash' in picker) || !(picker as Picker<T> & HashesKeys).keyHash(context, keyHash)) return random();
  let h = keyHash[0] as number;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4_294_967_296;
}

/**
 * Picks from a snapshot; `undefined` for an empty one (the caller waits). With `among`, a picker that can pick among
 * those targets only does (see `PicksAmong`); the others pick as always, and the caller checks their result.
 */
export function pickFrom<T extends Pickable>(
  snapshot: Snapshot<T>,
  context: PickContext,
  random: RandomSource,
  among?: ReadonlySet<T>,
): PickResult<T> | undefined {
  if (snapshot.kind === 'slots') {
    const { slots } = snapshot;
    if (slots.length === 1) return pickWith((slots[0] as Slot<T>).picker, context, among);
    const r = slotDraw((slots[0] as Slot<T>).picker, context, random);
    for (const slot of slots) if (r < slot.upTo) return pickWith(slot.picker, context, among);
    return pickWith((slots[slots.length - 1] as Slot<T>).picker, context, among);
  }
  return snapshot.kind === 'fail' ? snapshot.result : undefined;
}
