/**
 * A cluster's pick snapshot: the eligible subchannels grouped by priority level (and, with zone preference, by
 * local and other zones), each group with its own picker and share of traffic. Rebuilt whenever membership,
 * weights or eligibility change; picking reads it without allocating.
 *
 * @module
 */
import type { SidecarlessError } from '../errors.js';
import type { Pickable, PickContext, Picker, PickResult } from '../picker/picker.js';
import type { RandomSource } from '../runtime.js';
import { localZoneShare, priorityLoads } from './priority.js';

/** Zone preference settings. */
export interface ZoneAwareOptions {
  /** The zone this process runs in; endpoints with `zone` equal to it are preferred. */
  readonly localZone: string;
  /**
   * Below this many endpoints in a priority level, zone preference is off for that level (too few to split
   * sensibly; Envoy's `min_cluster_size`). @defaultValue 6
   */
  readonly minClusterSize?: number;
}

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
  | { readonly kind: 'slots'; readonly slots: readonly Slot<T>[]; readonly levels: number };

/** No endpoint at all: requests wait for some. */
export const EMPTY: Snapshot<never> = { kind: 'empty' };

/**
 * Builds a snapshot. `candidates` are the usable endpoints, `eligible` the subset that may take traffic (after
 * outlier detection, health checks and the panic threshold), `build` makes a picker for one group.
 */
export function buildSnapshot<T extends SnapshotHost & Pickable>(
  candidates: readonly T[],
  eligible: readonly T[],
  build: (group: readonly T[]) => Picker<T>,
  noneEligible: () => SidecarlessError,
  zone: ZoneAwareOptions | undefined,
): Snapshot<T> {
  if (candidates.length === 0) return EMPTY;
  if (eligible.length === 0) return { kind: 'fail', result: { type: 'fail', error: noneEligible() } };
  const levels = [...new Set(candidates.map((c) => c.endpoint.priority))].sort((a, b) => a - b);
  const eligibleSet = new Set(eligible);
  if (levels.length === 1 && zone === undefined) {
    return { kind: 'slots', slots: [{ picker: build(eligible), upTo: 1 }], levels: 1 };
  }
  const byLevel = levels.map((level) => ({
    all: candidates.filter((c) => c.endpoint.priority === level),
    ok: eligible.filter((c) => c.endpoint.priority === level),
  }));
  const loads = priorityLoads(byLevel.map((l) => ({ total: l.all.length, healthy: l.ok.length })));
  const slots: Slot<T>[] = [];
  let acc = 0;
  const add = (group: readonly T[], share: number) => {
    if (share <= 0 || group.length === 0) return;
    acc += share;
    slots.push({ picker: build(group), upTo: acc });
  };
  byLevel.forEach((level, i) => {
    const load = loads[i] as number;
    if (load <= 0 || level.ok.length === 0) return;
    if (zone === undefined || level.all.length < (zone.minClusterSize ?? 6)) {
      add(level.ok, load);
      return;
    }
    const localAll = level.all.filter((c) => c.endpoint.zone === zone.localZone);
    const local = localAll.filter((c) => eligibleSet.has(c));
    const others = level.ok.filter((c) => c.endpoint.zone !== zone.localZone);
    const share = localZoneShare({ total: localAll.length, healthy: local.length }, others.length);
    add(local, load * share);
    add(others, load * (1 - share));
  });
  if (slots.length === 0)
    return { kind: 'slots', slots: [{ picker: build(eligible), upTo: 1 }], levels: levels.length };
  // Rounding: the last slot takes whatever is left.
  const last = slots[slots.length - 1] as Slot<T>;
  slots[slots.length - 1] = { picker: last.picker, upTo: Number.POSITIVE_INFINITY };
  return { kind: 'slots', slots, levels: levels.length };
}

/** Picks from a snapshot; `undefined` for an empty one (the caller waits). */
export function pickFrom<T extends Pickable>(
  snapshot: Snapshot<T>,
  context: PickContext,
  random: RandomSource,
): PickResult<T> | undefined {
  if (snapshot.kind === 'slots') {
    const { slots } = snapshot;
    if (slots.length === 1) return (slots[0] as Slot<T>).picker.pick(context);
    const r = random();
    for (const slot of slots) if (r < slot.upTo) return slot.picker.pick(context);
    return (slots[slots.length - 1] as Slot<T>).picker.pick(context);
  }
  return snapshot.kind === 'fail' ? snapshot.result : undefined;
}
