/**
 * A cluster's balancer: owns the current pick snapshot (see `snapshot.ts`), the snapshots of endpoint subsets that
 * routes ask for, and the pick with exclusion that sends a retry to an endpoint not tried yet.
 *
 * Snapshots are immutable: {@link Balancer.rebuild} swaps in new ones (and forgets the subsets, rebuilt on first use),
 * so a pick in progress never sees a half-built state. A policy that builds in steps (`startBuild`: ring hash) has
 * a large build run one step per turn of the event loop (`staged.ts`); the new snapshot is swapped in when its last
 * picker is done. A newer rebuild does not drop a build that has started: it finishes, and its snapshot serves (guarded
 * by the newest set) until the newest one lands; builds not started yet are dropped for the newer one. {@link
 * Balancer.clear} (the cluster closing) drops every build and releases what the builds cached.
 *
 * @module
 */
import { AllEjectedError, EmptySubsetError } from '../common/request-errors.js';
import { describe } from '../common/options.js';
import { asError } from '../common/thrown.js';
import { isBuiltInPolicy } from '../pickers/built-in.js';
import { PickerError } from '../pickers/errors.js';
import type { RandomSource } from '../common/runtime.js';
import type {
  ConfiguredPolicy,
  Pickable,
  PickContext,
  Picker,
  PickerBuild,
  PickerEnvironment,
  PickResult,
} from '../pickers/picker.js';
import { buildSnapshot, EMPTY, keepAll, type Snapshot, type ZoneAwareOptions } from './snapshot.js';
import {
  completeOf,
  currentOf,
  failing,
  finish,
  isPicker,
  pickerSlicing,
  pickServed,
  type Served,
  type SlotBuild,
  StandIn,
  stepBudget,
} from './staged.js';

/** Endpoint metadata a subset requires: every key must be present with exactly this value. */
export type SubsetSelector = Readonly<Record<string, string>>;

/** The subset a request is routed to (a route decision carries these). */
export interface SubsetRoute {
  /** The subset to pick from; the whole cluster when `undefined`. */
  readonly subset: SubsetSelector | undefined;
  /** When the subset is empty: `any` uses the whole cluster, `fail` fails, a selector tries that subset instead. */
  readonly subsetFallback: 'any' | 'fail' | SubsetSelector;
}

/** What the balancer needs to know of an endpoint's connection pool (a subchannel). */
export interface BalancedHost extends Pickable {
  /** True when it takes new requests now (not backing off after refused connections). */
  readonly usable: boolean;
  /** The slow-start factor of its weight, set before each build. */
  weightFactor: number;
}

/** How a balancer builds its snapshots. */
export interface BalancerSettings<T extends BalancedHost> {
  /** The cluster's name, for errors. */
  readonly cluster: string;
  /** The picker policy and its configuration. */
  readonly policy: ConfiguredPolicy;
  /**
   * Its clock and random source are passed to the policy's builds, in an object of the balancer's own (a new one
   * after {@link Balancer.clear}): a policy may key what it keeps between builds by that object.
   */
  readonly environment: PickerEnvironment;
  /** Chooses between priority levels and zones, and among untried endpoints. */
  readonly random: RandomSource;
  /** Zone preference, when configured. */
  readonly zone: ZoneAwareOptions | undefined;
  /** The panic threshold, %; 0 turns panic off. */
  readonly panicThreshold: number;
  /** True for endpoints health allows. */
  readonly eligible: (host: T) => boolean;
  /** True when `eligible` is true for every endpoint (so the rebuild need not ask it of each); optional. */
  readonly allEligible?: (() => boolean) | undefined;
  /** The slow-start factor of an endpoint's weight; without it (no slow start), every factor stays 1. */
  readonly weightFactor?: ((host: T) => number) | undefined;
  /** Told after each rebuild whether the main snapshot has a level in panic. */
  readonly onPanic: (panic: boolean) => void;
}

const isUsable = (s: BalancedHost): boolean => s.usable;

/** A balancer's own picker environment: the same clock and random source in an object of its own. */
function ownEnvironment(environment: PickerEnvironment): PickerEnvironment {
  return { random: environment.random, clock: environment.clock };
}

/**
 * A superseded staged snapshot's builds are done (`done`), `now` serving at that time: a staged snapshot started
 * later serves `done` as its previous one from now on (still guarded by its own members, so nothing left out of the
 * newest set is picked, and a key whose endpoint is in it stays on it); anything else is newer and stays as it is.
 */
function landed<T extends Pickable>(now: Served<T> | undefined, done: Snapshot<T>): void {
  if (now?.kind === 'staged') now.previous = done;
}

/** One staged snapshot's builds, and where its finished snapshot goes. */
interface Staged<T extends Pickable> {
  readonly served: Served<T>;
  readonly builds: SlotBuild<T>[];
  readonly swap: (done: Snapshot<T>) => void;
  /** True once a turn has stepped one of its builds: a newer rebuild lets it finish (see #supersede). */
  started: boolean;
}
const NO_GROUP: readonly never[] = [];

/** True for what can be a {@link PickerBuild}: a custom `startBuild` may return anything. */
function isBuild(value: unknown): value is PickerBuild<Pickable> {
  return typeof value === 'object' && value !== null && typeof (value as { step?: unknown }).step === 'function';
}

export class Balancer<T extends BalancedHost> {
  readonly #settings: BalancerSettings<T>;
  #snapshot: Served<T> = EMPTY;
  #population: readonly T[] = [];
  // Keyed by the route table's frozen selector objects, so a pick looks its subset up without building a key.
  #subsets = new WeakMap<SubsetSelector, Served<T>>();
  /** The subsets' snapshots before the last rebuild: each serves its subset's first staged build. */
  #lastSubsets = new WeakMap<SubsetSelector, Served<T>>();
  /** Staged builds, run one step per turn in this order; a rebuild or clear() drops them. */
  #builds: { readonly slot: SlotBuild<T>; readonly staged: Staged<T> }[] = [];
  #cancelStep: (() => void) | undefined;
  /** The endpoints each picker of the current snapshots balances over (see #untried). */
  readonly #groups = new WeakMap<object, readonly T[]>();
  /**
   * Every endpoint a rebuild has handed the builds since the last clear(): a custom picker's target must be one. A
   * stale one (from an earlier set) is fine, the request layer sends it on; anything else would break the request
   * away from the pick (in a queue's flush, on a timer), leaving it in flight for good.
   */
  #known = new WeakSet<T>();
  /** The policy is a built-in one: its targets are not checked against {@link #known}, which then stays empty. */
  readonly #trusted: boolean;
  /**
   * What the policy's builds get: this balancer's own object, replaced by clear(), since a policy may key what it
   * keeps between builds by it (ring hash's cache of virtual nodes): one cluster's, released when it closes.
   */
  #environment: PickerEnvironment;
  /** Read once: the registry checked it is a string when the policy was registered. */
  readonly #policyName: string;

  constructor(settings: BalancerSettings<T>) {
    this.#settings = settings;
    this.#environment = ownEnvironment(settings.environment);
    this.#policyName = settings.policy.policy.name;
    this.#trusted = isBuiltInPolicy(settings.policy.policy);
  }

  /** True when there is no endpoint at all (requests wait). */
  get empty(): boolean {
    return this.#snapshot.kind === 'empty';
  }

  /** True while a staged build runs (tests and benchmarks). */
  get building(): boolean {
    return this.#builds.length > 0;
  }

  /** Builds the snapshot of `population` (every active endpoint) and forgets the subsets' snapshots. */
  rebuild(population: readonly T[]): void {
    this.#supersede();
    this.#population = population;
    if (!this.#trusted) for (const host of population) this.#known.add(host);
    this.#lastSubsets = this.#subsets;
    this.#subsets = new WeakMap();
    const served = this.#build(population, this.#snapshot, (done) => {
      if (this.#snapshot === served) this.#snapshot = done;
      else landed(this.#snapshot, done);
    });
    this.#snapshot = served;
    const snapshot = currentOf(served);
    this.#settings.onPanic(snapshot.kind === 'slots' && snapshot.panic);
  }

  /** Drops every endpoint: picks find nothing until the next rebuild. Stops the builds under way. */
  clear(): void {
    this.#builds = [];
    this.#cancelStep?.();
    this.#cancelStep = undefined;
    this.#snapshot = EMPTY;
    this.#population = [];
    this.#known = new WeakSet();
    this.#subsets = new WeakMap();
    this.#lastSubsets = new WeakMap();
    this.#environment = ownEnvironment(this.#settings.environment);
  }

  /**
   * A rebuild supersedes every staged snapshot. The builds a turn has started go on to their end (their snapshot
   * then serves the newest staged one as its previous, guarded by the newest set: see `landed`), so that a stream of
   * updates faster than a build still lands rings, one after another (docs/ARCHITECTURE.md, "Picker builds"); the
   * builds of a snapshot no turn has started are dropped, so intermediate sets are skipped.
   */
  #supersede(): void {
    const running = this.#builds[0]?.staged;
    this.#builds = running?.started === true ? this.#builds.filter((b) => b.staged === running) : [];
    if (this.#builds.length === 0) {
      this.#cancelStep?.();
      this.#cancelStep = undefined;
    }
  }

  /**
   * The snapshot of `population`. Pickers of a policy with `startBuild` get one step at once (a small build ends
   * there); those that need more make it a staged snapshot, served with `previous` (guarded) and stand-ins until
   * their builds end on later turns, when `swap` gets the complete one.
   */
  #build(population: readonly T[], previous: Served<T>, swap: (done: Snapshot<T>) => void): Served<T> {
    const settings = this.#settings;
    const { weightFactor } = settings;
    if (weightFactor !== undefined) for (const host of population) host.weightFactor = weightFactor(host);
    const { policy, config } = settings.policy;
    const last = completeOf(previous);
    const builds: SlotBuild<T>[] = [];
    const built = (picker: Picker<T>, group: readonly T[]): Picker<T> => {
      this.#groups.set(picker, group);
      return picker;
    };
    const snapshot = buildSnapshot({
      population,
      // Every endpoint failing to connect: keep sending (and let callers see the real connection error) rather
      // than parking requests behind backoff timers. The one deliberate exception to "no policy picks a non-ready
      // endpoint": it also finds an endpoint that comes back before its backoff expires. Both the rule and this
      // exception are tested per policy in test/integration/picker-eligibility.test.ts.
      usable: population.some(isUsable) ? isUsable : keepAll,
      eligible: settings.allEligible?.() === true ? keepAll : settings.eligible,
      panicThreshold: settings.panicThreshold,
      zone: settings.zone,
      build: (group) => {
        let build: PickerBuild<T>;
        let done: Picker<T> | undefined;
        try {
          const env = this.#environment;
          if (policy.startBuild === undefined) return built(this.#checked(policy.build(group, config, env)), group);
          build = policy.startBuild(group, config, env);
          if (!isBuild(build))
            return built(failing(this.#fault(`returned ${describe(build)} from startBuild()`)), group);
          done = build.step(pickerSlicing.budget);
          if (done !== undefined) return built(this.#checked(done), group);
        } catch (err) {
          // A custom policy whose build throws: its requests fail with the error (the rebuild runs inside the
          // resolver's update, where a throw would be uncaught).
          return built(failing(asError(err)), group);
        }
        const standIn = new StandIn(build, group, settings.random, (interim) =>
          this.#fault(`returned ${describe(interim)} from interim(), not a picker`),
        );
        // Nothing complete to serve (the first build): the stand-in's picker is made now, not in a request's pick.
        if (last.kind !== 'slots') void standIn.picker;
        builds.push({ build, standIn, picker: undefined });
        return built(standIn, group);
      },
      noneEligible: () => new AllEjectedError(settings.cluster),
    });
    if (builds.length === 0 || snapshot.kind !== 'slots') return snapshot;
    const members = new Set<T>();
    for (const slot of snapshot.slots) for (const host of this.#groups.get(slot.picker) ?? NO_GROUP) members.add(host);
    const served: Served<T> = { kind: 'staged', previous: last, next: snapshot, members };
    const staged: Staged<T> = { served, builds, swap, started: false };
    for (const slot of builds) this.#builds.push({ slot, staged });
    this.#cancelStep ??= pickerSlicing.defer(this.#step);
    return served;
  }

  /** One step of the first build under way; swaps a staged snapshot in when its last build is done. */
  readonly #step = (): void => {
    this.#cancelStep = undefined;
    const first = this.#builds[0];
    if (first === undefined) return;
    const { slot, staged } = first;
    staged.started = true;
    let picker: Picker<T> | undefined;
    try {
      picker = slot.build.step(stepBudget());
      // Checked here, on a deferred step: a non-picker would throw from the WeakMap below, where nothing catches it.
      if (picker !== undefined) picker = this.#checked(picker);
    } catch (err) {
      picker = failing(asError(err)); // as in #build
    }
    if (picker !== undefined) {
      slot.picker = picker;
      this.#groups.set(picker, this.#groups.get(slot.standIn) ?? NO_GROUP);
      this.#builds.shift();
      if (staged.builds.every((b) => b.picker !== undefined) && staged.served.kind === 'staged') {
        staged.swap(finish(staged.served.next, staged.builds));
      }
    }
    if (this.#builds.length > 0) this.#cancelStep = pickerSlicing.defer(this.#step);
  };

  /**
   * Picks an endpoint for a request, avoiding `exclude` when another is available: `undefined` when there is none
   * yet (the request waits), an error when the request must fail (nothing eligible, an empty subset).
   */
  pick(context: PickContext, route: SubsetRoute | undefined, exclude: ReadonlySet<T>): T | Error | undefined {
    const served = this.#snapshotFor(route);
    if (served instanceof Error) return served;
    if (served.kind === 'empty') return undefined;
    // A retry should land elsewhere: re-pick a few times to find an endpoint not tried yet, else choose one.
    const tries = exclude.size === 0 ? 1 : Math.min(exclude.size + 1, 8);
    let first: T | undefined;
    for (let i = 0; i < tries; i++) {
      let target: T | Error | undefined;
      try {
        target = this.#target(pickServed(served, context, this.#settings.random));
      } catch (err) {
        // A custom policy that throws fails this request with its error, as a `fail` result would; thrown on, it
        // would leave the request counted in flight (or, for one waiting in the queue, lose the queue's flush).
        return asError(err);
      }
      if (target === undefined || target instanceof Error) return target;
      // A first attempt excludes nothing: no lookup in the empty set.
      if (exclude.size === 0 || !exclude.has(target)) return target;
      first ??= target;
    }
    const snapshot = currentOf(served);
    return (snapshot.kind === 'slots' && this.#untried(snapshot.slots, exclude)) || first;
  }

  /**
   * The endpoint a pick result names, `undefined` to wait, or the error to fail with. A custom policy's malformed
   * result (not a `PickResult`, a target that is not an endpoint of this cluster, a failure without its error) is a
   * {@link PickerError}, as if the policy had thrown it: used as it is, it would throw later in the request.
   */
  #target(result: PickResult<T> | undefined): T | Error | undefined {
    if (result === undefined) return undefined;
    if (typeof result !== 'object' || result === null) return this.#fault(`returned ${describe(result)} from pick()`);
    const { type } = result;
    if (type === 'complete') {
      const { target } = result;
      return this.#trusted || this.#known.has(target)
        ? target
        : this.#fault(`picked ${describe(target)}, not one of its endpoints`);
    }
    if (type === 'queue') return undefined;
    if (type !== 'fail' && type !== 'drop') return this.#fault(`returned a pick result of type ${describe(type)}`);
    const { error } = result as { error?: unknown };
    return error === undefined || error === null
      ? this.#fault(`returned a "${type}" result without an error`)
      : asError(error);
  }

  /** `picker` when it is one; else a picker failing with a {@link PickerError}. */
  #checked(picker: unknown): Picker<T> {
    return isPicker(picker) ? (picker as Picker<T>) : failing(this.#fault(`built ${describe(picker)}, not a picker`));
  }

  #fault(what: string): PickerError {
    return new PickerError(this.#settings.cluster, this.#policyName, what);
  }

  /**
   * A uniformly random endpoint of the snapshot's pickers not in `exclude`, if there is one. Re-picking cannot
   * find it when the policy is deterministic for the request (ring hash and Maglev return the same endpoint for a
   * key), so the retry would go back to the endpoint that just failed. Two passes, no allocation.
   */
  #untried(slots: readonly { readonly picker: object }[], exclude: ReadonlySet<T>): T | undefined {
    let count = 0;
    for (const slot of slots) {
      for (const s of this.#groups.get(slot.picker) ?? NO_GROUP) if (!exclude.has(s)) count++;
    }
    if (count === 0) return undefined;
    let n = Math.floor(this.#settings.random() * count);
    for (const slot of slots) {
      for (const s of this.#groups.get(slot.picker) ?? NO_GROUP) if (!exclude.has(s) && n-- === 0) return s;
    }
    return undefined;
  }

  #snapshotFor(route: SubsetRoute | undefined): Served<T> | Error {
    const main = this.#snapshot;
    if (route?.subset === undefined || main.kind === 'empty') return main;
    const subset = this.#subsetSnapshot(route.subset);
    if (subset.kind !== 'empty') return subset;
    const fallback = route.subsetFallback;
    if (fallback === 'any') return main;
    if (fallback !== 'fail') {
      const second = this.#subsetSnapshot(fallback);
      if (second.kind !== 'empty') return second;
    }
    return new EmptySubsetError(this.#settings.cluster, route.subset);
  }

  /**
   * The snapshot for a subset of endpoints (by metadata), built on first use after each rebuild; while a staged
   * build of it runs, the subset's snapshot from before the rebuild serves (guarded).
   */
  #subsetSnapshot(selector: SubsetSelector): Served<T> {
    let snapshot = this.#subsets.get(selector);
    if (snapshot === undefined) {
      // The selector's entries once, not once per endpoint.
      const wanted = Object.entries(selector);
      const members = this.#population.filter((s) => {
        const metadata = s.endpoint.metadata;
        for (const [k, v] of wanted) if (metadata[k] !== v) return false;
        return true;
      });
      const served = this.#build(members, this.#lastSubsets.get(selector) ?? EMPTY, (done) => {
        // Superseded by a rebuild: the subset's next snapshot (built on its next use) or the one under way gets it.
        const now = this.#subsets.get(selector);
        const last = this.#lastSubsets.get(selector);
        if (now === served) this.#subsets.set(selector, done);
        else if (now !== undefined) landed(now, done);
        else if (last === undefined || last === served) this.#lastSubsets.set(selector, done);
        else landed(last, done);
      });
      this.#lastSubsets.delete(selector);
      this.#subsets.set(selector, served);
      snapshot = served;
    }
    return snapshot;
  }
}
