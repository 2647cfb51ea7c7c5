/**
 * Building a `ring-hash` ring (see `ring-hash.ts` for the ring itself, `ring-vnodes.ts` for hashing and sorting
 * virtual nodes): the per-cluster cache of sorted virtual nodes and the ring filtered from it, in bounded steps that
 * the balancer runs one per turn of the event loop (`PickerBuild`; docs/ARCHITECTURE.md, "Picker builds").
 *
 * Every loop over ring entries here can stop after a given number of entries and resume where it stopped, so one
 * step of a build touches at most its budget of entries; the work per endpoint (ordering keys, finding the ones not
 * cached) is O(N) and done in one step. A synchronous build is the same build given an unbounded budget.
 *
 * @module
 */
import { KEY } from './key-sort.js';
import { ALLOCATION, RADIX, RadixSort, UNBOUNDED, VnodeHasher } from './ring-vnodes.js';

export { buildRing, UNBOUNDED } from './ring-vnodes.js';

/** Rings a cache remembers for reuse (see `VnodeCache.filterFor`). */
const RECENT_RINGS = 4;

/** Marks of cached keys while an update is planned: still wanted as they are, or wanted with another count. */
const WANTED = 1;
const REPLACED = 2;

/** What the cache holds: keys by id, each one's count, and its entries sorted by position (owners are ids). */
interface CacheState {
  readonly ids: ReadonlyMap<string, number>;
  readonly keys: readonly string[];
  readonly counts: readonly number[];
  readonly hashes: Uint32Array;
  readonly owners: Int32Array;
}

/**
 * Adds the virtual nodes of some endpoints to the cache (hash, sort, merge with the kept entries), in bounded
 * steps; the cache takes the result when the last step is done. It belongs to the cache, not to the build that
 * started it: a build dropped for a newer one leaves it to the next build, which finishes it before anything else,
 * so no hashing is lost however often builds are superseded.
 */
class CacheUpdate {
  readonly #old: CacheState;
  readonly #keys: readonly string[];
  readonly #counts: Uint32Array;
  // Planning, in steps: what each cached key becomes (WANTED, REPLACED, or neither), then the next ids.
  readonly #mark: Uint8Array;
  #scanned = 0;
  #size = 0;
  #planned = false;
  #keepUnused = false;
  #numbered = 0; // old ids given their next id so far
  #freshNumbered = 0;
  readonly #next: { ids: Map<string, number>; keys: string[]; counts: number[] };
  #newId = new Int32Array(0);
  readonly #fresh: { key: string; count: number; id: number }[] = [];
  #freshSize = 0;
  #fh = new Uint32Array(0);
  #fo = new Int32Array(0);
  #sort: RadixSort | undefined;
  readonly #hasher = new VnodeHasher();
  #f = 0; // fresh endpoint being hashed
  #n = 0; // its next virtual node
  #at = 0; // where it goes
  #kept = -1;
  #keptSoFar = 0;
  #j = 0; // kept-count cursor
  #mh: Uint32Array | undefined;
  #mo: Int32Array | undefined;
  #a = 0;
  #b = 0;
  #m = 0;

  constructor(old: CacheState, keys: readonly string[], counts: Uint32Array) {
    this.#old = old;
    this.#keys = keys;
    this.#counts = counts;
    this.#mark = new Uint8Array(old.keys.length);
    this.#next = { ids: new Map(), keys: [], counts: [] };
  }

  /**
   * Plans on for about `budget` units (a key-level operation counting {@link KEY}): finds the keys the cache lacks
   * (or holds with another count), then numbers the entries kept and the fresh ones. Returns the units used, and
   * `unchanged` when the cache holds every key already.
   */
  #plan(budget: number): { used: number; unchanged?: true } {
    const keys = this.#keys;
    const counts = this.#counts;
    const old = this.#old;
    const stop = (from: number, length: number): number =>
      Math.min(length, from + Math.max(1, Math.ceil(budget / KEY)));
    if (this.#scanned < keys.length) {
      const end = stop(this.#scanned, keys.length);
      for (let i = this.#scanned; i < end; i++) {
        const c = counts[i] as number;
        this.#size += c;
        const id = old.ids.get(keys[i] as string);
        if (id !== undefined && old.counts[id] === c) {
          this.#mark[id] = WANTED;
          continue;
        }
        if (id !== undefined) this.#mark[id] = REPLACED;
        this.#fresh.push({ key: keys[i] as string, count: c, id: -1 });
        this.#freshSize += c;
      }
      const used = (end - this.#scanned) * KEY;
      this.#scanned = end;
      if (end < keys.length) return { used };
      if (this.#fresh.length === 0) return { used, unchanged: true };
      // Keep an unused endpoint's entries while the cache stays within twice the ring (plus slack for small rings).
      this.#keepUnused = old.hashes.length + this.#freshSize <= 2 * this.#size + 65536;
      this.#newId = new Int32Array(old.keys.length).fill(-1);
      return { used };
    }
    const next = this.#next;
    if (this.#numbered < old.keys.length) {
      const end = stop(this.#numbered, old.keys.length);
      for (let id = this.#numbered; id < end; id++) {
        const mark = this.#mark[id];
        if (mark === REPLACED || (!this.#keepUnused && mark !== WANTED)) continue;
        const key = old.keys[id] as string;
        this.#newId[id] = next.keys.length;
        next.ids.set(key, next.keys.length);
        next.keys.push(key);
        next.counts.push(old.counts[id] as number);
      }
      const used = (end - this.#numbered) * KEY;
      this.#numbered = end;
      return { used };
    }
    const end = stop(this.#freshNumbered, this.#fresh.length);
    for (let i = this.#freshNumbered; i < end; i++) {
      const f = this.#fresh[i] as { key: string; count: number; id: number };
      f.id = next.keys.length;
      next.ids.set(f.key, f.id);
      next.keys.push(f.key);
      next.counts.push(f.count);
    }
    const used = (end - this.#freshNumbered) * KEY;
    this.#freshNumbered = end;
    if (end === this.#fresh.length) this.#planned = true;
    return { used };
  }

  /** Works on, touching at most about `budget` entries; returns the entries touched and the new state when done. */
  step(budget: number): { used: number; result?: CacheState } {
    let left = budget;
    if (!this.#planned) {
      const { used, unchanged } = this.#plan(budget);
      return unchanged === true ? { used, result: this.#old } : { used };
    }
    if (this.#sort === undefined) {
      // One large allocation a step.
      if (this.#fh.length < this.#freshSize) this.#fh = new Uint32Array(this.#freshSize);
      else this.#sort = new RadixSort(this.#fh, (this.#fo = new Int32Array(this.#freshSize)));
      return { used: ALLOCATION };
    }
    const sort = this.#sort;
    // 1. Hash the fresh endpoints' virtual nodes (fresh is in key order: with a stable sort, ties stay in it).
    while (left > 0 && this.#f < this.#fresh.length) {
      const f = this.#fresh[this.#f] as { key: string; count: number; id: number };
      if (this.#n === 0) this.#hasher.reset(f.key, 0);
      const k = Math.min(left, f.count - this.#n);
      this.#hasher.hash(k, f.id, this.#fh, this.#fo, this.#at);
      this.#n += k;
      this.#at += k;
      left -= k;
      if (this.#n === f.count) {
        this.#f++;
        this.#n = 0;
      }
    }
    // 2. Sort them.
    while (left > 0 && this.#f === this.#fresh.length && !sort.done) left -= sort.step(left);
    // 3. Count the old entries kept, 4. merge them (sorted already) with the fresh ones.
    const oo = this.#old.owners;
    const newId = this.#newId;
    if (this.#kept < 0 && sort.done && left > 0) {
      const end = Math.min(oo.length, this.#j + left);
      let kept = this.#keptSoFar;
      for (let j = this.#j; j < end; j++) if ((newId[oo[j] as number] as number) >= 0) kept++;
      left -= end - this.#j;
      this.#j = end;
      this.#keptSoFar = kept;
      if (end === oo.length) this.#kept = kept;
    }
    if (this.#kept >= 0 && this.#mo === undefined && left > 0) {
      if (this.#mh === undefined) this.#mh = new Uint32Array(this.#kept + this.#freshSize);
      else this.#mo = new Int32Array(this.#kept + this.#freshSize);
      left -= ALLOCATION;
    }
    const mh = this.#mh;
    const mo = this.#mo;
    if (mh === undefined || mo === undefined || left <= 0) return { used: budget - left };
    const oh = this.#old.hashes;
    const fh = this.#fh;
    const fo = this.#fo;
    const keys = this.#next.keys;
    let a = this.#a;
    let b = this.#b;
    let m = this.#m;
    for (; left > 0; left--) {
      if (a < oh.length && (newId[oo[a] as number] as number) < 0) {
        a++;
        continue;
      }
      if (a === oh.length && b === fh.length) break;
      let takeOld = b === fh.length;
      if (!takeOld && a < oh.length) {
        const ha = oh[a] as number;
        const hb = fh[b] as number;
        takeOld =
          ha < hb ||
          (ha === hb && (keys[newId[oo[a] as number] as number] as string) < (keys[fo[b] as number] as string));
      }
      if (takeOld) {
        mh[m] = oh[a] as number;
        mo[m++] = newId[oo[a] as number] as number;
        a++;
      } else {
        mh[m] = fh[b] as number;
        mo[m++] = fo[b] as number;
        b++;
      }
    }
    this.#a = a;
    this.#b = b;
    this.#m = m;
    const used = budget - left;
    if (a < oh.length || b < fh.length) return { used };
    return { used, result: { ...this.#next, hashes: mh, owners: mo } };
  }
}

/**
 * The sorted virtual nodes of every endpoint a cluster's ring has recently held, so that a rebuild hashes only
 * endpoints it has not seen (or whose virtual-node count changed) and otherwise filters.
 *
 * Why: the cluster rebuilds its picker whenever eligibility changes (an ejection, a return, a connection failure),
 * and hashing and sorting a ring from scratch costs about 1 s of CPU at 8M entries (the default at N >= 8,192).
 * Positions depend only on an endpoint's key and count, so an ejection is a filter of this cache (one pass, no
 * hashing) and a new endpoint is its own virtual nodes merged in. Ejected endpoints stay cached until the cache
 * holds more than twice the entries the current ring needs, so their return is a filter too.
 *
 * One cache per cluster (its balancer's picker environment) and configuration, held weakly: it goes when the cluster
 * closes (the balancer drops its environment then) or is collected. Memory: 8 bytes per cached entry, beside the
 * picker's own 8 bytes per ring entry.
 */
export class VnodeCache {
  #state: CacheState = {
    ids: new Map(),
    keys: [],
    counts: [],
    hashes: new Uint32Array(0),
    owners: new Int32Array(0),
  };
  /** @internal The update under way, if any (builds run it to its end before their own). */
  update: CacheUpdate | undefined;
  /**
   * The rings last built or being built from this cache (a cluster's main snapshot and a few subsets): a rebuild
   * whose ring would be the same (the same keys and counts: a slow-start step, a change in another priority level
   * or zone, a rebuild that supersedes a build of the same ring) takes it, finished or where it stands, instead of
   * filtering the cache again. Rings are immutable, so pickers share them. Memory: a finished ring is held weakly
   * (by its pickers), and only the latest ring under way is kept, so this holds at most one ring of its own.
   */
  #recent: RingFilter[] = [];

  /** The ring of `keys` (in key order) with `counts` entries each: a recent one if the same, else a new one. */
  filterFor(keys: readonly string[], counts: Uint32Array): RingFilter {
    const found = this.#recent.find((f) => f.alive && f.sameInput(keys, counts));
    const filter = found ?? new RingFilter(this, keys, counts);
    // Finished rings still held by a picker, and the one under way now (not a build a newer one superseded).
    const recent = this.#recent.filter((f) => f !== filter && f.done && f.alive);
    recent.unshift(filter);
    if (recent.length > RECENT_RINGS) recent.pop();
    this.#recent = recent;
    return filter;
  }

  /** Entries held (for tests and diagnostics). */
  get size(): number {
    return this.#state.hashes.length;
  }

  /** The state held now (replaced as a whole by each update). */
  get state(): CacheState {
    return this.#state;
  }

  /** Runs the update under way on; returns the entries touched. */
  stepUpdate(budget: number): number {
    const update = this.update;
    if (update === undefined) return 0;
    const { used, result } = update.step(budget);
    if (result !== undefined) {
      this.#state = result;
      this.update = undefined;
    }
    return used;
  }

  /**
   * Starts the update that adds what `keys` (in key order) with `counts` entries each need and the cache lacks (its
   * first steps find out what that is; nothing, it ends without a change), unless one is under way.
   */
  startUpdate(keys: readonly string[], counts: Uint32Array): void {
    this.update ??= new CacheUpdate(this.#state, keys, counts);
  }

  /**
   * The ring for `keys` (in key order) with `counts` entries each, as interleaved `[position, owner]` pairs, owners
   * indexing `keys`; identical to {@link buildRing}'s. At once, whatever it takes.
   */
  ring(keys: readonly string[], counts: Uint32Array): Uint32Array {
    const build = new RingFilter(this, keys, counts);
    while (!build.done) build.step(UNBOUNDED);
    return build.ring as Uint32Array;
  }
}

/**
 * The ring of one build: brings the cache up to date for its keys, then filters the cache's entries down to its
 * keys into interleaved `[position, owner]` pairs, counting the entries under each 16-bit bucket on the way (the
 * picker's lookup index), in bounded steps.
 */
export class RingFilter {
  readonly #cache: VnodeCache;
  readonly #keys: readonly string[];
  readonly #counts: Uint32Array;
  #state: CacheState | undefined;
  /** True once this ring's update of the cache was started (and, the cache having no other, has ended). */
  #updated = false;
  #indexing: CacheState | undefined;
  #indexed = 0;
  #size = 0;
  #indexOfId: Int32Array | undefined;
  #j = 0;
  #o = 0;
  #ring: Uint32Array | undefined;
  // Once done, the ring is held weakly: by the pickers that use it, not by the cache's list of recent rings.
  #weak: WeakRef<Uint32Array> | undefined;
  /** Entries per bucket of the top 16 bits of the position, then (when done) each bucket's first ring index. */
  readonly buckets = new Uint32Array(RADIX + 1);
  done = false;

  constructor(cache: VnodeCache, keys: readonly string[], counts: Uint32Array) {
    this.#cache = cache;
    this.#keys = keys;
    this.#counts = counts;
  }

  /** The ring: being filled, or done (undefined once no picker holds a finished ring any more). */
  get ring(): Uint32Array | undefined {
    return this.#ring ?? this.#weak?.deref();
  }

  /** False for a finished ring no picker holds any more. */
  get alive(): boolean {
    return !this.done || this.ring !== undefined;
  }

  /** True when this is (or will be) the ring of `keys` with `counts`. */
  sameInput(keys: readonly string[], counts: Uint32Array): boolean {
    if (keys.length !== this.#keys.length) return false;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] !== this.#keys[i] || counts[i] !== this.#counts[i]) return false;
    }
    return true;
  }

  /**
   * Maps the cache's ids to this ring's owners, for about `budget` units (a key lookup counting {@link KEY}), then
   * allocates the ring; returns the units used. Should the cache lack one of the keys (another update came in
   * between), this ring's update starts again.
   */
  #index(budget: number): number {
    const cache = this.#cache;
    if (this.#indexing !== cache.state) {
      this.#indexing = cache.state;
      this.#indexOfId = new Int32Array(cache.state.keys.length).fill(-1);
      this.#indexed = 0;
      this.#size = 0;
    }
    const state = this.#indexing;
    const indexOfId = this.#indexOfId as Int32Array;
    const keys = this.#keys;
    const counts = this.#counts;
    if (this.#indexed < keys.length) {
      const end = Math.min(keys.length, this.#indexed + Math.max(1, Math.ceil(budget / KEY)));
      for (let i = this.#indexed; i < end; i++) {
        const id = state.ids.get(keys[i] as string);
        if (id === undefined || state.counts[id] !== counts[i]) {
          this.#updated = false;
          this.#indexing = undefined;
          return (i - this.#indexed + 1) * KEY;
        }
        indexOfId[id] = i;
        this.#size += counts[i] as number;
      }
      const used = (end - this.#indexed) * KEY;
      this.#indexed = end;
      return used;
    }
    this.#ring = new Uint32Array(this.#size * 2);
    this.#state = state;
    return ALLOCATION;
  }

  /** Works on, touching at most about `budget` units (ring entries; a key-level operation counts {@link KEY}). */
  step(budget: number): number {
    if (this.done) return 0;
    let left = budget;
    const cache = this.#cache;
    while (this.#state === undefined && left > 0) {
      if (cache.update !== undefined) {
        left -= cache.stepUpdate(left);
        continue;
      }
      if (!this.#updated) {
        cache.startUpdate(this.#keys, this.#counts);
        this.#updated = true;
        continue;
      }
      left -= this.#index(left);
    }
    const state = this.#state;
    if (state === undefined || left <= 0) return budget - left;
    const { hashes, owners } = state;
    const indexOfId = this.#indexOfId as Int32Array;
    const ring = this.#ring as Uint32Array;
    const buckets = this.buckets;
    const end = Math.min(hashes.length, this.#j + left);
    let o = this.#o;
    for (let j = this.#j; j < end; j++) {
      const t = indexOfId[owners[j] as number] as number;
      if (t >= 0) {
        const h = hashes[j] as number;
        ring[o++] = h;
        ring[o++] = t;
        const b = (h >>> 16) + 1;
        buckets[b] = (buckets[b] as number) + 1;
      }
    }
    left -= end - this.#j;
    this.#j = end;
    this.#o = o;
    if (end === hashes.length) {
      for (let b = 1; b <= RADIX; b++) buckets[b] = (buckets[b] as number) + (buckets[b - 1] as number);
      this.done = true;
      this.#weak = new WeakRef(ring);
      this.#ring = undefined;
      return budget - left + RADIX;
    }
    return budget - left;
  }
}
