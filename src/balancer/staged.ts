/**
 * Snapshots whose pickers are still being built (docs/ARCHITECTURE.md, "Picker builds"): a policy that offers
 * `startBuild` (ring hash) has its large builds run in bounded steps, one per turn of the event loop, and until the
 * last one is done the balancer serves a {@link StagedSnapshot}: the previous complete snapshot, as long as what it
 * picks is still a member of the new one, else the new one with stand-in pickers (the build's `interim`, or
 * a random member).
 *
 * @module
 */
import type { Pickable, PickContext, Picker, PickerBuild, PickResult } from '../pickers/picker.js';
import { indexOf } from '../pickers/util.js';
import type { SidecarlessError } from '../common/errors.js';
import { deferToNextTurn, type RandomSource } from '../common/runtime.js';
import { asError } from '../common/thrown.js';
import { pickFrom, type Snapshot } from './snapshot.js';

/**
 * @internal How balancers slice picker builds. Constants of the library, measured with
 * `bench/micro/ring-build.ts`; tests change them to count steps, and put them back.
 */
export const pickerSlicing = {
  /** Work per step given to a build (ring hash: ring entries; 32,768 are about 1-4 ms of CPU, warm). */
  budget: 32_768,
  /**
   * Steps run so far in the process. The first ones get a smaller budget (1/16 of it, doubling every 8 steps):
   * they run code V8 has not optimized yet, several times slower than it will be.
   */
  stepsRun: 0,
  /** Runs `fn` on a later turn of the event loop, after I/O; returns what cancels it. */
  defer: deferToNextTurn,
};

/** The budget of the next step (see `pickerSlicing.stepsRun`). */
export function stepBudget(): number {
  const warmUp = 4 - Math.min(4, pickerSlicing.stepsRun++ >> 3);
  return Math.max(1, pickerSlicing.budget >> warmUp);
}

/** A snapshot being built: what serves until its pickers are done. */
export interface StagedSnapshot<T extends Pickable> {
  readonly kind: 'staged';
  /**
   * The last complete snapshot; serves while what it picks is in `members`. Replaced (by the balancer) when a build
   * this one superseded finishes: a newer complete snapshot, still guarded by `members`.
   */
  previous: Snapshot<T>;
  /** The new snapshot, stand-in pickers in the slots whose builds run. */
  readonly next: Snapshot<T> & { readonly kind: 'slots' };
  /** Every endpoint the new snapshot's pickers balance over (eligible and usable, or a level in panic's). */
  readonly members: ReadonlySet<T>;
}

/** What a balancer serves a main or subset pick from. */
export type Served<T extends Pickable> = Snapshot<T> | StagedSnapshot<T>;

/** The last complete snapshot of `served`. */
export function completeOf<T extends Pickable>(served: Served<T>): Snapshot<T> {
  return served.kind === 'staged' ? served.previous : served;
}

/** The snapshot whose groups are the endpoints in force (for the retry's untried endpoint). */
export function currentOf<T extends Pickable>(served: Served<T>): Snapshot<T> {
  return served.kind === 'staged' ? served.next : served;
}

/**
 * Picks from what is served: a staged snapshot's previous one when it names a member of the new set, so that a
 * request keeps its endpoint through a rebuild (ring hash keys stay put; a ring-hash key whose endpoint left goes to
 * the next entry of the previous ring that is a member, where the new ring will send it unless an endpoint added in
 * between takes it), otherwise the new one. No allocation.
 */
export function pickServed<T extends Pickable>(
  served: Served<T>,
  context: PickContext,
  random: RandomSource,
): PickResult<T> | undefined {
  if (served.kind !== 'staged') return pickFrom(served, context, random);
  if (served.previous.kind === 'slots') {
    const result = pickFrom(served.previous, context, random, served.members);
    // `?.`: a custom picker may return null; its next pick's result is checked by the balancer.
    if (result?.type === 'complete' && served.members.has(result.target)) return result;
  }
  return pickFrom(served.next, context, random);
}

/** A picker that fails every pick with `error` (what a custom policy's build threw, or its fault). */
export function failing<T extends Pickable>(error: Error): Picker<T> {
  // The policy's own error, not one of sidecarless's: the request layer fails with any Error.
  const result: PickResult<T> = { type: 'fail', error: error as SidecarlessError };
  return { pick: () => result };
}

/**
 * True for what can serve as a picker. A custom build may hand back anything; a non-object would break the balancer
 * later, away from the policy's call (a WeakMap key, on a deferred step), so it is checked where it comes back.
 */
export function isPicker(value: unknown): value is Picker<Pickable> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { pick?: unknown }).pick === 'function'
  );
}

/**
 * Serves a group whose picker is being built: the build's `interim` picker, made on first use (or at once when
 * there is no previous snapshot to serve), else a uniformly random member.
 */
export class StandIn<T extends Pickable> implements Picker<T> {
  readonly #build: PickerBuild<T>;
  readonly #group: readonly T[];
  readonly #random: RandomSource;
  #picker: Picker<T> | undefined;

  readonly #fault: (interim: unknown) => Error;

  /** `fault` makes the error of an `interim` that returned something that is not a picker. */
  constructor(build: PickerBuild<T>, group: readonly T[], random: RandomSource, fault: (interim: unknown) => Error) {
    this.#build = build;
    this.#group = group;
    this.#random = random;
    this.#fault = fault;
  }

  /**
   * The picker it serves with, made now if it was not yet. An `interim` that throws, or returns something that is
   * not a picker, has its stand-in fail requests with that error, as a build that throws does: it is called within
   * a resolver's update or a pick, where a throw would be uncaught or lose the request.
   */
  get picker(): Picker<T> {
    return (this.#picker ??= this.#interim());
  }

  #interim(): Picker<T> {
    let interim: unknown;
    try {
      interim = this.#build.interim?.();
      if (interim === undefined || interim === null) return randomPicker(this.#group, this.#random);
      if (isPicker(interim)) return interim as Picker<T>;
    } catch (err) {
      return failing(asError(err));
    }
    return failing(this.#fault(interim));
  }

  pick(context: PickContext): PickResult<T> {
    return this.picker.pick(context);
  }
}

/**
 * A result made per pick rather than one per member made up front: a first build's stand-in is made within the update
 * (for 10,000 endpoints, 10 ms in a process V8 has not warmed up) and serves only until the build lands.
 */
function randomPicker<T extends Pickable>(group: readonly T[], random: RandomSource): Picker<T> {
  return { pick: () => ({ type: 'complete', target: group[indexOf(random(), group.length)] as T }) };
}

/** A build of one slot's picker, run a step per turn. */
export interface SlotBuild<T extends Pickable> {
  readonly build: PickerBuild<T>;
  readonly standIn: StandIn<T>;
  picker: Picker<T> | undefined;
}

/** `next` with every stand-in replaced by its finished picker. */
export function finish<T extends Pickable>(
  next: Snapshot<T> & { readonly kind: 'slots' },
  builds: readonly SlotBuild<T>[],
): Snapshot<T> {
  const slots = next.slots.map((slot) => {
    const built = builds.find((b) => b.standIn === slot.picker);
    return built === undefined ? slot : { picker: built.picker as Picker<T>, upTo: slot.upTo };
  });
  return { ...next, slots };
}
