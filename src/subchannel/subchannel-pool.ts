/**
 * The subchannel pool: reconciles each endpoint set from the resolver against the live subchannels, by key.
 *
 * @module
 */
import type { Pool } from 'undici';
import { createEndpoint, type Endpoint, type EndpointInit, parseHostPort } from '../common/endpoint.js';
import { DuplicateEndpointError, InvalidEndpointError } from '../common/errors.js';
import { createDebug } from '../common/debug.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import type { ResolvedBackoffOptions } from '../common/backoff.js';
import type { ResolvedHttp2Options } from './http2.js';
import { Subchannel, type SubchannelObserver, type SubchannelSettings } from './subchannel.js';

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
  /** Called after every reconciliation that changed membership or endpoint attributes. */
  readonly onMembershipChange: () => void;
}

/** A validated endpoint set, and for each entry the resolver's object when it is immutable (else `undefined`). */
export interface ValidatedSet {
  readonly endpoints: Endpoint[];
  readonly sources: readonly (object | undefined)[];
  /** The active subchannel of each entry's key at validation, if any (saves `update` a second lookup). */
  readonly found: readonly (Subchannel | undefined)[];
  /** An error for each entry left out: invalid (no connection could be made to it), or a repeated key. */
  readonly rejected: readonly (InvalidEndpointError | DuplicateEndpointError)[];
}

/** Frozen, and so is its metadata (when it has an object there). */
function immutable(entry: object): boolean {
  if (!Object.isFrozen(entry)) return false;
  const metadata = (entry as { metadata?: unknown }).metadata;
  return typeof metadata !== 'object' || metadata === null || Object.isFrozen(metadata);
}

/**
 * Holds one {@link Subchannel} per endpoint key. On each update, unchanged endpoints keep their subchannel
 * (connections, load, counters), changed attributes are applied in place, new endpoints get a subchannel, and
 * removed ones drain: they leave the active set at once, finish what is in flight, then close.
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
    };
  }

  /** Active subchannels (not draining), in the order of the last endpoint set. */
  get subchannels(): readonly Subchannel[] {
    return this.#ordered;
  }

  /** Subchannels removed from the set and still finishing in-flight requests. */
  get draining(): ReadonlySet<Subchannel> {
    return this.#draining;
  }

  /**
   * Validates a set from the resolver, as `createEndpointSet` does (same endpoints, same errors), without
   * validating again what it has validated before: an entry that is the same frozen object as last time for its key
   * (a resolver that keeps its unchanged endpoints, as `StaticResolver` and most custom ones do) is the endpoint it
   * was. At 10,000 endpoints, validating everything again costs about 1 µs and 200 bytes of garbage per endpoint on
   * every update, however few changed. Changes nothing: the result goes to {@link SubchannelPool.update}.
   */
  validate(input: Iterable<EndpointInit | Endpoint | string>): ValidatedSet {
    const entries = Array.isArray(input) ? (input as readonly unknown[]) : [...input];
    const endpoints = new Array<Endpoint>(entries.length);
    const sources = new Array<object | undefined>(entries.length);
    const found = new Array<Subchannel | undefined>(entries.length);
    // Duplicates: an active key is stamped with this validation; a new key goes in a set (few per update).
    const mark = ++this.#validation;
    let added: Set<string> | undefined;
    const active = this.#active;
    const rejected: (InvalidEndpointError | DuplicateEndpointError)[] = [];
    let n = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      let endpoint: Endpoint | undefined;
      let source: object | undefined;
      let current: Subchannel | undefined;
      if (typeof entry === 'object' && entry !== null) {
        const key = (entry as { key?: unknown }).key;
        current = typeof key === 'string' ? active.get(key) : undefined;
        // The very object validated last time, and frozen then (so still): it cannot have changed.
        if (current !== undefined && current.source === entry) {
          endpoint = current.endpoint;
          source = entry;
        } else if (immutable(entry)) {
          source = entry;
        }
      }
      if (endpoint === undefined) {
        try {
          endpoint =
            typeof entry === 'string' ? createEndpoint(parseHostPort(entry)) : createEndpoint(entry as EndpointInit);
        } catch (err) {
          rejected.push(
            err instanceof InvalidEndpointError ? err : new InvalidEndpointError(String(err), { cause: err }),
          );
          continue;
        }
        current = active.get(endpoint.key);
      }
      if (current !== undefined) {
        if (current.validation === mark) {
          rejected.push(new DuplicateEndpointError(endpoint.key));
          continue;
        }
        current.validation = mark;
      } else {
        added ??= new Set();
        if (added.has(endpoint.key)) {
          rejected.push(new DuplicateEndpointError(endpoint.key));
          continue;
        }
        added.add(endpoint.key);
      }
      endpoints[n] = endpoint;
      sources[n] = source;
      found[n] = current;
      n++;
    }
    endpoints.length = n;
    sources.length = n;
    found.length = n;
    return { endpoints, sources, found, rejected };
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
    const active = this.#active;
    const old = this.#ordered;
    const mark = ++this.#generation;
    const ordered: Subchannel[] = new Array<Subchannel>(endpoints.length);
    // Same members in the same order so far; a new member, a removed one or a move makes it false.
    let same = endpoints.length === old.length;
    let kept = 0;
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[i] as Endpoint;
      let subchannel = found === undefined ? active.get(endpoint.key) : found[i];
      if (subchannel === undefined) {
        subchannel = new Subchannel(endpoint, this.#settings);
        active.set(endpoint.key, subchannel);
        debug('add %s', endpoint.key);
        same = false;
      } else {
        kept++;
        if (subchannel.endpoint !== endpoint && !sameAttributes(subchannel.endpoint, endpoint)) {
          subchannel.updateEndpoint(endpoint);
          same = false;
        }
      }
      subchannel.generation = mark;
      subchannel.source = sources?.[i];
      ordered[i] = subchannel;
      if (same && old[i] !== subchannel) same = false;
    }
    if (kept < old.length) {
      // Removed: those the loop did not mark (deleting the current entry while iterating a Map is safe).
      for (const [key, subchannel] of active) {
        if (subchannel.generation !== mark) {
          active.delete(key);
          debug('remove %s (in flight: %d)', key, subchannel.inFlight);
          this.#startDrain(subchannel);
        }
      }
    }
    // Nothing changed, not even the order: keep the current snapshot.
    if (same) return;
    this.#ordered = ordered;
    this.#init.onMembershipChange();
  }

  #startDrain(subchannel: Subchannel): void {
    this.#draining.add(subchannel);
    void subchannel.drain(this.#init.drainTimeoutMs).then(() => this.#draining.delete(subchannel));
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

// No allocation: this runs for every unchanged endpoint of every update (resolvers hand over fresh objects).
function sameAttributes(a: Endpoint, b: Endpoint): boolean {
  if (a.weight !== b.weight || a.priority !== b.priority || a.zone !== b.zone) return false;
  const ma = a.metadata;
  const mb = b.metadata;
  let count = 0;
  for (const k in ma) {
    if (!Object.hasOwn(ma, k)) continue;
    if (!Object.hasOwn(mb, k) || ma[k] !== mb[k]) return false;
    count++;
  }
  for (const k in mb) if (Object.hasOwn(mb, k)) count--;
  return count === 0;
}
