/**
 * A resolver update in parts: the validation of a set that can stop and resume (`Validation`, what
 * `SubchannelPool.validate` runs in one go), and the preparation of a large update in slices
 * (`PreparedUpdate`: validation, the new subchannels, the new key map, the removed ones), which
 * `SubchannelPool.commit` then switches in at once. docs/ARCHITECTURE.md, "Updates".
 *
 * @module
 */
import {
  createEndpoint,
  type Endpoint,
  type EndpointInit,
  endpointKey,
  isCreatedEndpoint,
  parseHostPort,
} from '../common/endpoint.js';
import { DuplicateEndpointError, InvalidEndpointError } from '../common/errors.js';
import { thrownMessage } from '../common/thrown.js';
import type { Subchannel } from './subchannel.js';

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
 * The validation of one set against the pool's active subchannels (see `SubchannelPool.validate`), entry by
 * entry, able to stop after a number of entries or of changed ones and resume later. It reads the pool's key map
 * and order and writes nothing of them but each met subchannel's `validation` stamp (read by validations only), so
 * it may be dropped half way. The pool's set must not change while it runs (an update makes it stale).
 */
export class Validation {
  readonly #entries: readonly unknown[];
  readonly #active: ReadonlyMap<string, Subchannel>;
  readonly #old: readonly Subchannel[];
  readonly #mark: number;
  readonly #endpoints: Endpoint[];
  readonly #sources: (object | undefined)[];
  readonly #found: (Subchannel | undefined)[];
  readonly #rejected: (InvalidEndpointError | DuplicateEndpointError)[] = [];
  #added: Set<string> | undefined;
  #next = 0;
  #i = 0;
  #n = 0;
  #changed = 0;

  /** `mark`: a number no earlier validation of the pool used (duplicates are found by stamping subchannels). */
  constructor(
    input: Iterable<EndpointInit | Endpoint | string>,
    active: ReadonlyMap<string, Subchannel>,
    old: readonly Subchannel[],
    mark: number,
  ) {
    const entries = Array.isArray(input) ? (input as readonly unknown[]) : [...input];
    this.#entries = entries;
    this.#active = active;
    this.#old = old;
    this.#mark = mark;
    this.#endpoints = new Array<Endpoint>(entries.length);
    this.#sources = new Array<object | undefined>(entries.length);
    this.#found = new Array<Subchannel | undefined>(entries.length);
  }

  /** Entries in the set. */
  get size(): number {
    return this.#entries.length;
  }

  /** True once every entry is validated. */
  get done(): boolean {
    return this.#i >= this.#entries.length;
  }

  /**
   * Entries validated so far that are not an active endpoint unchanged: new keys, changed attributes, entries
   * validated in full (invalid ones included). The work an update makes beyond a pass over the set.
   */
  get changed(): number {
    return this.#changed;
  }

  /**
   * Validates the next entries: all of them, or `maxEntries`, or until `changed` reaches `maxChanged`, whichever
   * comes first. Returns {@link Validation.done}.
   */
  run(maxEntries = Number.POSITIVE_INFINITY, maxChanged = Number.POSITIVE_INFINITY): boolean {
    const entries = this.#entries;
    const endpoints = this.#endpoints;
    const sources = this.#sources;
    const found = this.#found;
    const rejected = this.#rejected;
    const active = this.#active;
    const old = this.#old;
    const mark = this.#mark;
    let added = this.#added;
    let next = this.#next;
    let n = this.#n;
    let changed = this.#changed;
    const end = Math.min(entries.length, this.#i + maxEntries);
    let i = this.#i;
    for (; i < end && changed < maxChanged; i++) {
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
      if (endpoint === undefined || endpoint !== current?.endpoint) changed++;
      if (endpoint === undefined) {
        try {
          endpoint =
            typeof entry === 'string' ? createEndpoint(parseHostPort(entry)) : createEndpoint(entry as EndpointInit);
        } catch (err) {
          rejected.push(
            err instanceof InvalidEndpointError ? err : new InvalidEndpointError(thrownMessage(err), { cause: err }),
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
    this.#added = added;
    this.#next = next;
    this.#n = n;
    this.#changed = changed;
    this.#i = i;
    return this.done;
  }

  /** The validated set (once {@link Validation.done}). */
  result(): ValidatedSet {
    const n = this.#n;
    const endpoints = this.#endpoints;
    const sources = this.#sources;
    const found = this.#found;
    endpoints.length = n;
    sources.length = n;
    found.length = n;
    return { endpoints, sources, found, rejected: this.#rejected };
  }
}

/** What {@link PreparedUpdate} needs of its pool. */
export interface PreparationHost {
  /** The pool's active subchannels by key, and in order (read, never written, by the preparation). */
  readonly active: ReadonlyMap<string, Subchannel>;
  readonly ordered: readonly Subchannel[];
  /** A subchannel for a new endpoint (no connection pool until its first dispatch: nothing to release if dropped). */
  readonly create: (endpoint: Endpoint) => Subchannel;
}

/**
 * A large update prepared in slices, off the pool's live structures: the set's validation, then a subchannel for
 * each new endpoint and the key map of the new set, then the list of the removed ones. Each {@link PreparedUpdate.step}
 * looks at a bounded number of entries. Nothing the pool serves from changes until `SubchannelPool.commit`
 * switches it in; dropped before that, it leaves nothing behind (its subchannels never made a pool, hold no timer
 * and are referenced by nothing else).
 */
export class PreparedUpdate {
  readonly #host: PreparationHost;
  readonly #validation: Validation;
  /** The pool's update count when the preparation began: a commit after another update falls back to `update`. */
  readonly version: number;
  #set: ValidatedSet | undefined;
  #i = 0;
  #phase: 'validate' | 'build' | 'removed' | 'ready' = 'validate';
  #map: Map<string, Subchannel> | undefined;
  #ordered: Subchannel[] = [];
  readonly #added: Subchannel[] = [];
  readonly #removed: Subchannel[] = [];
  /** Positions of kept endpoints whose attributes changed (applied at the commit: they are live subchannels). */
  readonly #changedAt: number[] = [];
  /** The same members in the same order so far, none changed. */
  #same = true;

  constructor(host: PreparationHost, validation: Validation, version: number) {
    this.#host = host;
    this.#validation = validation;
    this.version = version;
  }

  /** True once everything is prepared. */
  get ready(): boolean {
    return this.#phase === 'ready';
  }

  /** The validated set, once validation is over (`undefined` before). */
  get set(): ValidatedSet | undefined {
    return this.#set;
  }

  /** Prepares up to `maxEntries` more entries (of the set, then of the previous set). Returns `ready`. */
  step(maxEntries: number): boolean {
    if (this.#phase === 'validate') {
      if (!this.#validation.run(maxEntries)) return false;
      const set = this.#validation.result();
      this.#set = set;
      this.#ordered = new Array<Subchannel>(set.endpoints.length);
      this.#map = new Map();
      this.#same = set.endpoints.length === this.#host.ordered.length;
      this.#phase = 'build';
      return false;
    }
    if (this.#phase === 'build') {
      this.#build(maxEntries);
      return this.ready;
    }
    if (this.#phase === 'removed') this.#findRemoved(maxEntries);
    return this.ready;
  }

  #build(maxEntries: number): void {
    const { endpoints, found } = this.#set as ValidatedSet;
    const map = this.#map as Map<string, Subchannel>;
    const ordered = this.#ordered;
    const old = this.#host.ordered;
    const end = Math.min(endpoints.length, this.#i + maxEntries);
    let same = this.#same;
    for (let i = this.#i; i < end; i++) {
      const endpoint = endpoints[i] as Endpoint;
      let subchannel = found[i];
      if (subchannel === undefined) {
        subchannel = this.#host.create(endpoint);
        this.#added.push(subchannel);
        same = false;
      } else if (subchannel.endpoint !== endpoint && !sameAttributes(subchannel.endpoint, endpoint)) {
        this.#changedAt.push(i);
        same = false;
      }
      map.set(subchannel.key, subchannel);
      ordered[i] = subchannel;
      if (same && old[i] !== subchannel) same = false;
    }
    this.#same = same;
    this.#i = end;
    if (end < endpoints.length) return;
    this.#i = 0;
    // Every previous member kept: none removed.
    this.#phase = endpoints.length - this.#added.length === old.length ? 'ready' : 'removed';
  }

  #findRemoved(maxEntries: number): void {
    const old = this.#host.ordered;
    const map = this.#map as Map<string, Subchannel>;
    const end = Math.min(old.length, this.#i + maxEntries);
    for (let i = this.#i; i < end; i++) {
      const subchannel = old[i] as Subchannel;
      if (map.get(subchannel.key) !== subchannel) this.#removed.push(subchannel);
    }
    this.#i = end;
    if (end === old.length) this.#phase = 'ready';
  }

  /** What the commit applies (once `ready`). */
  result(): {
    readonly set: ValidatedSet;
    readonly map: Map<string, Subchannel>;
    readonly ordered: Subchannel[];
    readonly added: readonly Subchannel[];
    readonly removed: readonly Subchannel[];
    readonly changedAt: readonly number[];
    readonly same: boolean;
  } {
    return {
      set: this.#set as ValidatedSet,
      map: this.#map as Map<string, Subchannel>,
      ordered: this.#ordered,
      added: this.#added,
      removed: this.#removed,
      changedAt: this.#changedAt,
      same: this.#same,
    };
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
export function sameAttributes(a: Endpoint, b: Endpoint): boolean {
  if (a.weight !== b.weight || a.priority !== b.priority || a.zone !== b.zone) return false;
  return sameRecord(a.metadata, b.metadata);
}
