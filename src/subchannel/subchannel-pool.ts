/**
 * The subchannel pool: reconciles each endpoint set from the resolver against the live subchannels, by key.
 *
 * @module
 */
import type { Pool } from 'undici';
import {
  createEndpoint,
  type Endpoint,
  type EndpointInit,
  endpointKey,
  isCreatedEndpoint,
  parseHostPort,
} from '../common/endpoint.js';
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
    const entries = Array.isArray(input) ? (input as readonly unknown[]) : [...input];
    const endpoints = new Array<Endpoint>(entries.length);
    const sources = new Array<object | undefined>(entries.length);
    const found = new Array<Subchannel | undefined>(entries.length);
    // Duplicates: an active key is stamped with this validation; a new key goes in a set (few per update).
    const mark = ++this.#validation;
    let added: Set<string> | undefined;
    const active = this.#active;
    const old = this.#ordered;
    let next = 0;
    const rejected: (InvalidEndpointError | DuplicateEndpointError)[] = [];
    let n = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      let endpoint: Endpoint | undefined;
      let source: object | undefined;
      let current: Subchannel | undefined;
      if (typeof entry === 'object' && entry !== null) {
        try {
          // First guess: the entry after the last one found, in the previous set's order (resolvers mostly keep
          // their order). A guess is checked by host and port, which avoids hashing the key: a resolver's keys are
          // new strings at every answer, and hashing one (a cons string, flattened first) costs more than
          // everything else here.
          current = old[next];
          let same =
            current !== undefined && (current.source === entry || describes(entry as EndpointLike, current.endpoint));
          if (!same) {
            current = active.get(lookupKey(entry as EndpointLike));
            same =
              current !== undefined && (current.source === entry || describes(entry as EndpointLike, current.endpoint));
          }
          if (current !== undefined) next = current.index + 1;
          if (same) {
            // Unchanged: the endpoint validated before, and the object it came from stays the one remembered (a
            // resolver that makes new objects at every answer then costs no write per endpoint, and its objects
            // are not kept alive a whole update longer).
            endpoint = (current as Subchannel).endpoint;
            source = (current as Subchannel).source;
            if (source === undefined && immutable(entry)) source = entry;
          } else if (isCreatedEndpoint(entry)) {
            // New to the pool, or changed, but made by `createEndpoint` (as the built-in resolvers make theirs):
            // valid as it is, and frozen with its metadata. `current` is already its key's subchannel, if any: the
            // lookup above was by its key.
            endpoint = entry;
            source = entry;
          } else if (immutable(entry)) {
            source = entry;
          }
        } catch {
          // A field that throws when read: `createEndpoint` below meets it again and rejects the entry.
          endpoint = undefined;
        }
      } else if (typeof entry === 'string') {
        // `host:port` exactly as the key is written parses to that key, with the default attributes.
        current = active.get(entry);
        if (current !== undefined && hasDefaults(current.endpoint)) endpoint = current.endpoint;
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
        // One hash operation, not two: the set does not grow when the key is already in it.
        added ??= new Set();
        const size = added.size;
        if (added.add(endpoint.key).size === size) {
          rejected.push(new DuplicateEndpointError(endpoint.key));
          continue;
        }
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

/** An entry of a set as the resolver may hand it over: any of its fields may be missing or of any type. */
interface EndpointLike {
  readonly key?: unknown;
  readonly host?: unknown;
  readonly port?: unknown;
  readonly weight?: unknown;
  readonly priority?: unknown;
  readonly zone?: unknown;
  readonly metadata?: unknown;
}

/**
 * The key to look `entry` up by: its own `key` when it has one (an `Endpoint`), else the key its host and port
 * would have if already normalized. Only a hint: {@link describes} checks the fields against what it finds.
 */
function lookupKey(entry: EndpointLike): string {
  const { key, host, port } = entry;
  if (typeof key === 'string') return key;
  return typeof host === 'string' && typeof port === 'number' ? endpointKey(host, port) : '';
}

/**
 * True when `entry` would validate to an endpoint equal to `endpoint` (a validated one): the same normalized host
 * and port (so the same key), and the same weight, priority, zone and metadata once `createEndpoint`'s defaults
 * are applied. Such an entry is valid, since `endpoint` is. Anything else (a host spelled otherwise, a changed
 * attribute, a value of the wrong type) returns false and is validated in full. No allocation: this runs for every
 * unchanged endpoint of every update when the resolver hands over new objects.
 */
function describes(entry: EndpointLike, endpoint: Endpoint): boolean {
  if (entry.host !== endpoint.host || entry.port !== endpoint.port || entry.zone !== endpoint.zone) return false;
  if ((entry.weight ?? 1) !== endpoint.weight || (entry.priority ?? 0) !== endpoint.priority) return false;
  const metadata = entry.metadata;
  if (metadata === undefined) return isEmpty(endpoint.metadata);
  return (
    typeof metadata === 'object' &&
    metadata !== null &&
    sameRecord(metadata as Record<string, unknown>, endpoint.metadata)
  );
}

/** The attributes `createEndpoint` gives an endpoint given only its host and port. */
function hasDefaults(endpoint: Endpoint): boolean {
  return endpoint.weight === 1 && endpoint.priority === 0 && endpoint.zone === undefined && isEmpty(endpoint.metadata);
}

function isEmpty(record: object): boolean {
  for (const k in record) if (Object.hasOwn(record, k)) return false;
  return true;
}

/**
 * The same own enumerable string keys (those `Object.entries`, and so `createEndpoint`, reads) with identical
 * values. No allocation.
 */
function sameRecord(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  if (a === b) return true;
  let count = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) continue;
    if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
    count++;
  }
  for (const k in b) if (Object.hasOwn(b, k)) count--;
  return count === 0;
}

// No allocation: this runs for every kept endpoint whose object is not the subchannel's own.
function sameAttributes(a: Endpoint, b: Endpoint): boolean {
  if (a.weight !== b.weight || a.priority !== b.priority || a.zone !== b.zone) return false;
  return sameRecord(a.metadata, b.metadata);
}
