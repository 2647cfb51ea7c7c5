/**
 * The subchannel pool: reconciles each endpoint set from the resolver against the live subchannels, by key.
 *
 * @module
 */
import type { Pool } from 'undici';
import type { Endpoint, EndpointInit } from '../common/endpoint.js';
import { createDebug } from '../common/debug.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import type { ResolvedBackoffOptions } from '../common/backoff.js';
import type { ResolvedHttp2Options } from './http2.js';
import { Subchannel, type SubchannelObserver, type SubchannelSettings } from './subchannel.js';
import { PreparedUpdate, sameAttributes, Validation, type ValidatedSet } from './pool-update.js';
import { InFlightCounts } from '../pickers/load.js';

export type { ValidatedSet } from './pool-update.js';

const debug = createDebug('pool');

/** Settings shared by every subchannel of one pool. */
export interface SubchannelPoolInit {
  readonly protocol: 'http:' | 'https:';
  readonly poolOptions: Pool.Options;
  /** HTTP/2 to the endpoints, when on. */
  readonly http2?: ResolvedHttp2Options | undefined;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly connectBackoff: ResolvedBackoffOptions;
  /** How long a removed endpoint may take to finish its in-flight requests before it is destroyed, ms. */
  readonly drainTimeoutMs: number;
  readonly observer: SubchannelObserver;
  /**
   * Called after every reconciliation that changed membership, order or endpoint attributes, with the subchannels
   * that joined and left (both empty when only the order or attributes changed), so that per-host state can be
   * updated for the change rather than for the whole set.
   */
  readonly onMembershipChange: (change: MembershipChange) => void;
}

/** What a reconciliation changed: the new subchannels, and those that left the set (now draining, or closed). */
export interface MembershipChange {
  readonly added: readonly Subchannel[];
  readonly removed: readonly Subchannel[];
}

const NONE: readonly Subchannel[] = [];

/**
 * Holds one {@link Subchannel} per endpoint key. On each update, unchanged endpoints keep their subchannel
 * (connections, load, counters), changed attributes are applied in place, new endpoints get a subchannel, and
 * removed ones drain: they leave the active set at once, finish what is in flight, then close (at once when they
 * never made a connection pool).
 */
export class SubchannelPool {
  readonly #init: SubchannelPoolInit;
  /** Shared by every subchannel of the pool. */
  readonly #settings: SubchannelSettings;
  #active = new Map<string, Subchannel>();
  readonly #draining = new Set<Subchannel>();
  #ordered: readonly Subchannel[] = [];
  /** Stamped on every subchannel of the set at each update, to find the removed ones without a second map. */
  #generation = 0;
  /** Stamped on the active subchannel of each key a validation meets, to find duplicates without a set. */
  #validation = 0;
  /** Counts updates and commits: a preparation is applied as prepared only if none came after it began. */
  #version = 0;
  #closed = false;

  constructor(init: SubchannelPoolInit) {
    this.#init = init;
    this.#settings = {
      protocol: init.protocol,
      poolOptions: init.poolOptions,
      http2: init.http2,
      clock: init.clock,
      connectBackoff: init.connectBackoff,
      random: init.random,
      observer: init.observer,
      inFlight: new InFlightCounts(),
    };
  }

  /** Active subchannels (not draining), in the order of the last endpoint set. */
  get subchannels(): readonly Subchannel[] {
    return this.#ordered;
  }

  /**
   * Subchannels removed from the set and still finishing in-flight requests (one removed before it ever made a
   * connection pool is closed at once, and never listed here).
   */
  get draining(): ReadonlySet<Subchannel> {
    return this.#draining;
  }

  /**
   * Validates a set from the resolver, as `createEndpointSet` does (same endpoints, same errors), without
   * validating again what it has validated before. An entry whose key is active and that describes that key's
   * endpoint exactly (same host and port as normalized, same weight, priority, zone and metadata, defaults applied)
   * is that endpoint: it was valid, and validating it again would give an equal object. This holds for the same
   * frozen object as last time (one identity comparison: a resolver that keeps its unchanged endpoints, as
   * `StaticResolver` does) and for a new object with the same fields (DNS, Consul, etcd and Kubernetes parse every
   * answer anew): a few field comparisons instead of about 1 µs and 200 bytes of garbage for `createEndpoint`, at
   * 10,000 endpoints on every update however few changed. Changes nothing: the result goes to
   * {@link SubchannelPool.update}.
   */
  validate(input: Iterable<EndpointInit | Endpoint | string>): ValidatedSet {
    const validation = this.startValidation(input);
    validation.run();
    return validation.result();
  }

  /**
   * A {@link SubchannelPool.validate} that can run in parts (`run` with a bound): the cluster validates a set up to
   * a number of changed entries synchronously, and prepares the rest of a larger one in slices
   * ({@link SubchannelPool.prepare}). Valid until the next update.
   */
  startValidation(input: Iterable<EndpointInit | Endpoint | string>): Validation {
    return new Validation(input, this.#active, this.#ordered, ++this.#validation);
  }

  /**
   * Prepares an update in slices (see `PreparedUpdate`), continuing `validation` (begun with
   * {@link SubchannelPool.startValidation}): nothing in force changes until {@link SubchannelPool.commit}.
   */
  prepare(validation: Validation): PreparedUpdate {
    return new PreparedUpdate(
      { active: this.#active, ordered: this.#ordered, create: (endpoint) => new Subchannel(endpoint, this.#settings) },
      validation,
      this.#version,
    );
  }

  /**
   * Switches in a prepared update, in one synchronous step: what {@link SubchannelPool.update} does, but with the
   * new subchannels, the key map and the removed ones already made. O(N) field writes (each member's position and
   * source), plus the attribute changes and the removed endpoints' drain. A preparation made before another update
   * (which the cluster never lets happen) is applied as an update of its validated set.
   */
  commit(prepared: PreparedUpdate): void {
    if (this.#closed) return;
    const result = prepared.result();
    const { set } = result;
    if (!prepared.ready || prepared.version !== this.#version) {
      this.update(set.endpoints, set.sources);
      return;
    }
    this.#version++;
    const { ordered, added, removed } = result;
    const { endpoints, sources } = set;
    for (let i = 0; i < ordered.length; i++) {
      const subchannel = ordered[i] as Subchannel;
      subchannel.index = i;
      const source = sources[i];
      if (subchannel.source !== source) subchannel.source = source;
    }
    for (const i of result.changedAt) (ordered[i] as Subchannel).updateEndpoint(endpoints[i] as Endpoint);
    if (result.same) return;
    const logging = debug.enabled;
    if (logging) for (const subchannel of added) debug('add %s', subchannel.key);
    this.#active = result.map;
    for (const subchannel of removed) {
      if (logging) debug('remove %s (in flight: %d)', subchannel.key, subchannel.inFlight);
      this.#startDrain(subchannel);
    }
    this.#ordered = ordered;
    this.#init.onMembershipChange({ added, removed });
  }

  /**
   * Reconciles with a full endpoint set (keys unique, as the resolver contract requires). Synchronous: when it
   * returns, removed subchannels no longer take requests and `onMembershipChange` has run if anything changed.
   * `sources` (from {@link SubchannelPool.validate}) are remembered so the next validation can skip them; `found`,
   * from the same validation, must come with no update in between.
   *
   * O(N) in the size of the two sets. The key map is updated in place, so an update allocates the new order (one
   * array) and a subchannel per new endpoint (which makes no connection pool until it is first picked), and
   * nothing per unchanged endpoint.
   */
  update(
    endpoints: readonly Endpoint[],
    sources?: readonly (object | undefined)[],
    found?: ValidatedSet['found'],
  ): void {
    if (this.#closed) return;
    this.#version++;
    const active = this.#active;
    const old = this.#ordered;
    const mark = ++this.#generation;
    // Once per update, not once per endpoint: the getter asks two loggers (10,000 calls were about 3 ms).
    const logging = debug.enabled;
    const ordered: Subchannel[] = new Array<Subchannel>(endpoints.length);
    // Same members in the same order so far; a new member, a removed one or a move makes it false.
    let same = endpoints.length === old.length;
    let kept = 0;
    let added: Subchannel[] | undefined;
    let removed: Subchannel[] | undefined;
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[i] as Endpoint;
      let subchannel = found === undefined ? active.get(endpoint.key) : found[i];
      if (subchannel === undefined) {
        subchannel = new Subchannel(endpoint, this.#settings);
        active.set(endpoint.key, subchannel);
        if (logging) debug('add %s', endpoint.key);
        (added ??= []).push(subchannel);
        same = false;
      } else {
        kept++;
        if (subchannel.endpoint !== endpoint && !sameAttributes(subchannel.endpoint, endpoint)) {
          subchannel.updateEndpoint(endpoint);
          same = false;
        }
      }
      subchannel.generation = mark;
      subchannel.index = i;
      const source = sources?.[i];
      if (subchannel.source !== source) subchannel.source = source;
      ordered[i] = subchannel;
      if (same && old[i] !== subchannel) same = false;
    }
    if (kept < old.length) {
      // Removed: those of the previous set the loop did not mark (an array walk, cheaper than the map's).
      for (let i = 0; i < old.length; i++) {
        const subchannel = old[i] as Subchannel;
        if (subchannel.generation !== mark) {
          active.delete(subchannel.key);
          if (logging) debug('remove %s (in flight: %d)', subchannel.key, subchannel.inFlight);
          (removed ??= []).push(subchannel);
          this.#startDrain(subchannel);
        }
      }
    }
    // Nothing changed, not even the order: keep the current snapshot.
    if (same) return;
    this.#ordered = ordered;
    this.#init.onMembershipChange({ added: added ?? NONE, removed: removed ?? NONE });
  }

  /**
   * A subchannel that never made its pool closes within `drain` (nothing in flight, nothing to close): it is not
   * tracked as draining, and costs no promise callback (an update removing 10,000 such endpoints made 20,000).
   */
  #startDrain(subchannel: Subchannel): void {
    const closed = subchannel.drain(this.#init.drainTimeoutMs);
    if (subchannel.state === 'closed') return;
    this.#draining.add(subchannel);
    void closed.then(() => this.#draining.delete(subchannel));
  }

  /**
   * Drains every subchannel (bounded by the drain timeout) and resolves when all are closed. Idempotent; no update
   * is accepted afterwards.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const subchannel of this.#active.values()) this.#startDrain(subchannel);
      this.#active = new Map();
      this.#ordered = [];
    }
    await Promise.all([...this.#draining].map((s) => s.drain(this.#init.drainTimeoutMs)));
  }

  /** Destroys every subchannel now, failing in-flight requests. */
  async destroy(reason?: Error): Promise<void> {
    this.#closed = true;
    const all = [...this.#active.values(), ...this.#draining];
    this.#active = new Map();
    this.#ordered = [];
    await Promise.all(all.map((s) => s.destroy(reason)));
    this.#draining.clear();
  }
}
