/**
 * What a cluster knows of its resolver beyond the endpoint set: whether a first set has arrived, the resolver's latest
 * state when it is not a healthy set (the cause of `SIDECARLESS_NO_ENDPOINTS`), and who waits for either; how a set
 * becomes the set in force: at once, or prepared in slices and switched in (`UpdateSlicer`, docs/ARCHITECTURE.md,
 * "Updates"); and the resolver itself, claimed for one cluster, started, hinted and closed (`ClusterResolver`).
 *
 * @module
 */
import { createDebug } from '../common/debug.js';
import {
  InvalidOptionError,
  isSidecarlessError,
  ResolverError,
  ServiceNotFoundError,
  type SidecarlessError,
} from '../common/errors.js';
import { asError, thrownMessage } from '../common/thrown.js';
import { describe } from '../common/options.js';
import { type Clock, deferToNextTurn, type TimerHandle } from '../common/runtime.js';
import type { Resolver, ResolverListener } from '../resolvers/resolver.js';
import { StaticResolver } from '../resolvers/static.js';
import type { Endpoint } from '../common/endpoint.js';
import type { PreparedUpdate, Validation } from '../subchannel/pool-update.js';
import type { SubchannelPool, ValidatedSet } from '../subchannel/subchannel-pool.js';
import { createClusterResolver, isResolver, type ResolvedClusterOptions } from './options.js';

const debug = createDebug('cluster');

interface EndpointWaiter {
  readonly min: number;
  readonly resolve: () => void;
}

/** The resolution side of one cluster: first-set and minimum-size waiters, and the latest resolver state. */
export class Resolution {
  /** Callers of whenResolved() until the first endpoint set arrives; `undefined` after it. */
  #resolvedWaiters: Set<() => void> | undefined = new Set();
  /** Callers of whenEndpoints(), each with the set size it waits for. */
  readonly #endpointWaiters = new Set<EndpointWaiter>();
  /**
   * The resolver's latest state when it is not a healthy set: its last error (until the next set), or why the set
   * is empty.
   */
  state: SidecarlessError | undefined;

  /** True once the resolver has delivered its first endpoint set (an empty one counts). */
  get resolved(): boolean {
    return this.#resolvedWaiters === undefined;
  }

  /** A set arrived: releases the first-set waiters. */
  markResolved(): void {
    const waiters = this.#resolvedWaiters;
    this.#resolvedWaiters = undefined;
    for (const resolve of waiters ?? []) resolve();
  }

  /**
   * A set of `count` endpoints came into force: the state is cleared, or says why the set is empty (see
   * {@link asNotFound}: `notFound` is whatever the resolver passed).
   */
  noteSet(count: number, cluster: string, notFound: unknown): void {
    this.state = count > 0 ? undefined : asNotFound(notFound, cluster);
  }

  /** The active set now has `count` endpoints: releases the waiters it satisfies. */
  setCount(count: number): void {
    for (const waiter of [...this.#endpointWaiters]) {
      if (count >= waiter.min) waiter.resolve();
    }
  }

  /**
   * Resolves once a set of at least `min` endpoints is in service (at once when `current`, the active set's size,
   * already is, after a first set). The returned `cancel` forgets the wait (the promise then never settles).
   */
  whenEndpoints(min: number, current: number): { promise: Promise<void>; cancel: () => void } {
    if (this.resolved && current >= min) return { promise: Promise.resolve(), cancel: () => {} };
    let waiter!: EndpointWaiter;
    const promise = new Promise<void>((resolve) => {
      waiter = {
        min,
        resolve: () => {
          this.#endpointWaiters.delete(waiter);
          resolve();
        },
      };
    });
    this.#endpointWaiters.add(waiter);
    return { promise, cancel: () => this.#endpointWaiters.delete(waiter) };
  }

  /**
   * Resolves when the resolver has delivered its first endpoint set; at once if it already has. The returned
   * `cancel` forgets the wait (the promise then never settles): a `ready()` that timed out must not stay here.
   */
  whenResolved(): { promise: Promise<void>; cancel: () => void } {
    const waiters = this.#resolvedWaiters;
    if (waiters === undefined) return { promise: Promise.resolve(), cancel: () => {} };
    let waiter!: () => void;
    const promise = new Promise<void>((resolve) => waiters.add((waiter = resolve)));
    return { promise, cancel: () => waiters.delete(waiter) };
  }
}

/**
 * @internal How clusters slice large resolver updates (docs/ARCHITECTURE.md, "Updates"). Constants of the library,
 * measured with `npm run bench:scale`; tests change them to count slices, and put them back.
 */
export const updateSlicing = {
  /**
   * Changed entries (new keys, changed attributes, entries validated in full) up to which an update is applied at
   * once, in the resolver's call. Beyond it, the update is prepared in slices.
   */
  threshold: 2_000,
  /** Entries a slice of a preparation looks at (of the new set, then of the previous one). */
  slice: 2_000,
  /** Runs `fn` on a later turn of the event loop, after I/O; returns what cancels it. */
  defer: deferToNextTurn,
};

/** How an update ends: its validated set and the step that puts it in force, or what validation threw. */
export type UpdateOutcome =
  { readonly set: ValidatedSet; readonly commit: () => void } | { readonly error: ResolverError };

/**
 * Applies a cluster's resolver updates: a small one (at most `updateSlicing.threshold` changed entries) at once, as
 * it always was; a larger one prepared in slices of `updateSlicing.slice` entries, one per turn of the event loop
 * (requests and I/O run between them, picks still go to the set in force), then switched in by one synchronous
 * step on a turn of its own. A set that arrives while one is being prepared waits for that one's switch (only the
 * latest such set is kept) and is then applied as any set is; {@link UpdateSlicer.cancel} (the cluster closing)
 * drops both. A preparation is never dropped for a newer set: a resolver that pushes large sets faster than they are
 * prepared (a watch streaming events while the first list of a large service is prepared) would otherwise never
 * have a set switched in.
 */
export class UpdateSlicer {
  readonly #pool: SubchannelPool;
  readonly #cluster: string;
  #cancel: (() => void) | undefined;
  /** The latest set that arrived during a preparation, applied after its switch. */
  #pending: { readonly endpoints: readonly Endpoint[]; readonly finish: (outcome: UpdateOutcome) => void } | undefined;

  constructor(pool: SubchannelPool, cluster: string) {
    this.#pool = pool;
    this.#cluster = cluster;
  }

  /** True while an update is being prepared (the previous set is still in force). */
  get preparing(): boolean {
    return this.#cancel !== undefined;
  }

  /**
   * A new set from the resolver. `finish` gets its outcome once prepared: synchronously for a small set, on a later
   * turn for a large one, or after the preparation in progress when there is one (never if a newer set arrives
   * before then, or `cancel` comes first). It must call `commit` to put the set in force (or not, when the set is
   * rejected as a whole).
   */
  push(endpoints: readonly Endpoint[], finish: (outcome: UpdateOutcome) => void): void {
    if (this.#cancel !== undefined) {
      this.#pending = { endpoints, finish };
      return;
    }
    const pool = this.#pool;
    let prepared: PreparedUpdate | undefined;
    let validation: Validation;
    let small: ValidatedSet | undefined;
    try {
      validation = pool.startValidation(endpoints);
      if (validation.run(Number.POSITIVE_INFINITY, updateSlicing.threshold)) small = validation.result();
      else prepared = pool.prepare(validation);
    } catch (error) {
      finish({ error: this.#invalid(error) });
      return;
    }
    // Outside the try: what `finish` does (the commit, requests the new set lets go) is not the set's fault.
    if (prepared === undefined) {
      const set = small as ValidatedSet;
      finish({ set, commit: () => pool.update(set.endpoints, set.sources, set.found) });
      return;
    }
    const slicing = prepared;
    debug('%s: preparing a set of %d entries in slices', this.#cluster, validation.size);
    const commit = (): void => pool.commit(slicing);
    const switchIn = (): void => {
      this.#cancel = undefined;
      this.#onTurn(() => finish({ set: slicing.set as ValidatedSet, commit }));
      this.#next();
    };
    const slice = (): void => {
      let ready: boolean;
      try {
        ready = slicing.step(updateSlicing.slice);
      } catch (error) {
        this.#cancel = undefined;
        this.#onTurn(() => finish({ error: this.#invalid(error) }));
        this.#next();
        return;
      }
      this.#cancel = updateSlicing.defer(ready ? switchIn : slice);
    };
    this.#cancel = updateSlicing.defer(slice);
  }

  /** The error reported for a set whose validation threw (the set is not used). */
  #invalid(cause: unknown): ResolverError {
    return new ResolverError(`Resolver for cluster "${this.#cluster}" delivered an invalid endpoint set`, { cause });
  }

  /** Applies the set that waited for the preparation just ended, if any. */
  #next(): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    this.#onTurn(() => this.push(pending.endpoints, pending.finish));
  }

  /**
   * Runs what a turn of its own does with a set. What would have thrown into the resolver's `onUpdate` (a custom
   * picker whose build throws) must not become an uncaught exception there.
   */
  #onTurn(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      debug('%s: applying a set failed: %s', this.#cluster, thrownMessage(err));
    }
  }

  /** Drops the preparation in progress and the set waiting for it, if any: neither comes into force. */
  cancel(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    this.#pending = undefined;
  }
}

/** The error reported for the entries of a set that were skipped (each logged). */
export function rejectedError(cluster: string, rejected: ValidatedSet['rejected']): ResolverError {
  for (const error of rejected) debug('%s: skipping an endpoint from the resolver: %s', cluster, error.message);
  return new ResolverError(
    `Resolver for cluster "${cluster}" delivered ${rejected.length} invalid endpoint(s), skipped ` +
      `(first: ${rejected[0]!.message})`,
    { cause: rejected[0] },
  );
}

/**
 * Passes on the cluster's refresh hint. A custom resolver whose `refresh()` throws breaks its contract ("never
 * throws"), but the hint comes from a connection's failure event: the error is logged, never thrown into it.
 */
export function hintRefresh(resolver: Resolver, cluster: string): void {
  try {
    resolver.refresh?.();
  } catch (err) {
    debug('%s: resolver refresh() threw: %s', cluster, thrownMessage(err));
  }
}

/**
 * Closes the cluster's resolver. An error it throws or rejects with is logged (the cluster closes the rest anyway),
 * and a `close()` that never settles is waited for at most `boundMs` (at least a second), so `client.close()` ends.
 */
export async function closeResolver(resolver: Resolver, clock: Clock, boundMs: number, cluster: string): Promise<void> {
  let timer: TimerHandle | undefined;
  try {
    const closed = Promise.resolve().then(() => resolver.close());
    const bound = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, Math.max(boundMs, 1000), false);
    });
    await Promise.race([closed, bound]);
  } catch (err) {
    debug('%s: resolver close() failed: %s', cluster, thrownMessage(err));
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
  }
}

/**
 * A resolver's error as the cluster keeps it: a {@link SidecarlessError} as it is; anything else (a custom resolver
 * may pass anything, `onError` being typed is no guarantee) as a `ResolverError` whose `cause` is an `Error`: the
 * one passed, or one describing what was passed (`asError`, with that as its own `cause`), described without
 * calling into it (`String()` of an object without a prototype throws).
 */
export function asResolverError(error: unknown): SidecarlessError {
  if (isSidecarlessError(error)) return error;
  let message: string;
  try {
    message = error instanceof Error ? String(error.message) : `the resolver reported ${describe(error)}`;
  } catch {
    message = 'the resolver reported an error that cannot be described';
  }
  return new ResolverError(message, { cause: asError(error) });
}

/**
 * Why a resolver's empty set is empty, as the cluster keeps it (the `cause` of `SIDECARLESS_NO_ENDPOINTS`): the
 * `notFound` it passed when that is a sidecarless error (a {@link ServiceNotFoundError}); with none, a
 * `ServiceNotFoundError` saying the resolver delivered no endpoint; anything else (a custom resolver may pass a
 * string, or a plain `Error`) as a `ServiceNotFoundError` whose message says what was passed and whose `cause` is an
 * `Error` (`asError`).
 */
export function asNotFound(notFound: unknown, cluster: string): SidecarlessError {
  const empty = `the resolver of cluster "${cluster}" delivered no endpoint`;
  if (notFound === undefined || notFound === null) return new ServiceNotFoundError(cluster, empty);
  if (isSidecarlessError(notFound)) return notFound;
  return new ServiceNotFoundError(cluster, `${empty}: ${thrownMessage(notFound)}`, { cause: asError(notFound) });
}

/**
 * Every resolver object a cluster has taken (and not handed back): a resolver is owned by exactly one cluster and
 * started once (resolvers/resolver.ts). A second user would get no endpoint set without a word (a second `start`
 * replaces the first listener, a closed resolver never calls again), so it is refused where the library takes a
 * resolver, whoever wrote the resolver. A set of objects, not a flag on them: a resolver may be frozen, or a Proxy.
 */
const taken = new WeakSet<object>();

/**
 * A cluster's resolver, claimed for the cluster at its construction (see {@link taken}): made from the target (a
 * string through the registry, a list as a static resolver) or the caller's own object. A cluster that fails or is
 * dropped before it starts hands the caller's object back untouched: neither started nor closed, free to be given
 * again (the caller retries `createClient` with fixed options). A resolver the library made is closed.
 */
export class ClusterResolver {
  readonly #resolver: Resolver;
  readonly #cluster: string;
  /** The caller's own object, rather than one the library made from a target string or a list. */
  readonly #given: boolean;
  #state: 'claimed' | 'started' | 'handed back' = 'claimed';

  /**
   * @param option - the target's option path (`target`, `clusters.users.target`, `discovery.target`), named by the
   * error when the resolver is already taken.
   * @throws InvalidOptionError when another cluster has taken the resolver (started it, or closed it).
   */
  constructor(options: ResolvedClusterOptions, cluster: string, option: string) {
    this.#given = isResolver(options.target);
    const resolver = createClusterResolver(options, cluster);
    // What a factory returned that is no object cannot be claimed: its start() fails the client's creation, as before.
    const claimable = (typeof resolver === 'object' && resolver !== null) || typeof resolver === 'function';
    if (claimable && taken.has(resolver)) {
      throw new InvalidOptionError(
        option,
        (this.#given ? 'this Resolver object' : 'the Resolver object the resolver registry made for this target') +
          ' is already taken by another cluster (started there, or closed): a resolver serves one cluster, once; ' +
          'give each cluster (and each client) a resolver of its own',
      );
    }
    if (claimable) taken.add(resolver);
    this.#resolver = resolver;
    this.#cluster = cluster;
  }

  /**
   * Starts resolution (see {@link startResolver}). Called once. The library's static resolver (an endpoint list, a
   * `static:` target, a `StaticResolver`) has its list now: the cluster takes it at once, so a request made right
   * after `createClient` finds it (with `waitForReadyTimeoutMs: 0` or `limits.maxPending: 0` it would fail rather than
   * wait a microtask). The resolver itself still delivers from a later tick, as every resolver must; that delivery
   * of the very list already taken is dropped (a list given to `update()` meanwhile is a new one, and applied).
   */
  start(listener: ResolverListener): void {
    this.#state = 'started';
    const resolver = this.#resolver;
    // Only the library's own class: a subclass may deliver something else from its start().
    if (Object.getPrototypeOf(resolver) !== StaticResolver.prototype) {
      startResolver(resolver, listener);
      return;
    }
    const known = (resolver as StaticResolver).endpoints;
    listener.onUpdate(known);
    let first = true;
    startResolver(resolver, {
      onUpdate: (endpoints, notFound) => {
        const again = first && endpoints === known;
        first = false;
        if (!again) listener.onUpdate(endpoints, notFound);
      },
      onError: (error) => listener.onError(error),
    });
  }

  /** Passes on the cluster's refresh hint (see {@link hintRefresh}). */
  refresh(): void {
    hintRefresh(this.#resolver, this.#cluster);
  }

  /**
   * Closes the resolver (see {@link closeResolver}), unless the cluster never started it and it is the caller's: that
   * one is handed back untouched (once: a later call does not free it from the cluster that took it next).
   */
  close(clock: Clock, boundMs: number): Promise<void> {
    if (this.#state === 'handed back') return Promise.resolve();
    if (this.#state === 'claimed' && this.#given) {
      this.#state = 'handed back';
      taken.delete(this.#resolver);
      return Promise.resolve();
    }
    return closeResolver(this.#resolver, clock, boundMs, this.#cluster);
  }
}

/**
 * Starts `resolver`. A synchronous throw propagates (the client fails with it). A promise `start` returns (an
 * `async start()`) that rejects is reported to `listener.onError`, never left as an unhandled rejection. Whatever
 * the resolver passes to `onError` reaches `listener.onError` as a {@link SidecarlessError} (see
 * {@link asResolverError}).
 */
export function startResolver(resolver: Resolver, listener: ResolverListener): void {
  const started: unknown = resolver.start({
    onUpdate: (endpoints, notFound) => listener.onUpdate(endpoints, notFound),
    onError: (error) => listener.onError(asResolverError(error)),
  });
  if (started === undefined || started === null) return;
  try {
    const then = (started as PromiseLike<void>).then;
    if (typeof then !== 'function') return;
    then.call(started, undefined, (err: unknown) => listener.onError(asResolverError(err)));
  } catch (err) {
    listener.onError(asResolverError(err));
  }
}
