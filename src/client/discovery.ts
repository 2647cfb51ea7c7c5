/**
 * Discovery (transparent mode): a host under the discovery domain gets a cluster of its own on first use, kept in
 * an LRU cache bounded by `maxClusters` and closed once idle for `idleTimeoutMs`.
 *
 * Eviction never fails a request (issue 15.5): only idle clusters (no request in flight or waiting) are evicted, the
 * least recently used first. While every cluster is busy, a new host gets a cluster above `maxClusters` (at most
 * {@link MAX_OVERFLOW} more), and the cache shrinks back as clusters fall idle (looked at every
 * {@link TRIM_INTERVAL_MS} while above `maxClusters`); past that, the request for the new
 * host is refused with `SIDECARLESS_OVERLOADED` (limit `maxClusters`), so hostnames a caller chooses can neither
 * evict busy clusters nor grow the cache without bound.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { Cluster } from '../cluster/cluster.js';
import { withTarget } from '../cluster/options.js';
import { ClientClosedError, ResolverError } from '../common/errors.js';
import { OverloadedError } from '../common/request-errors.js';
import type { ResolvedDiscoveryOptions } from './options.js';

/** Where the target a discovered cluster gets comes from: `discovery.target` (its errors are named after it). */
const TARGET_PATH = 'discovery';

/** Busy clusters kept above `maxClusters` at most. */
export const MAX_OVERFLOW = 1000;

/** How often the clusters above `maxClusters` are looked at again until they are back within it, ms. */
export const TRIM_INTERVAL_MS = 1000;

/** The lazily created clusters of a client's discovery domain. */
export class Discovery {
  readonly #options: ResolvedDiscoveryOptions;
  readonly #cache: LRUCache<string, Cluster>;
  readonly #created: (cluster: Cluster) => void;
  readonly #closing: () => boolean;
  readonly #sweep: NodeJS.Timeout;
  /**
   * Every cluster made and started whose close has not finished, whatever the cache shows (in it, waiting to be put
   * back, or taken out and draining): what a client's `close()` and `destroy()` must reach.
   */
  readonly #live = new Set<Cluster>();
  /**
   * Busy clusters the cache expired, to be put back once the cache operation that expired them has returned: a
   * `set` from inside lru-cache's own purge walk moves the entry to the head, which ends the walk (lru-cache 11.5), and
   * the other expired entries would stay in the cache stale, hidden from its iteration.
   */
  #expiredBusy: [host: string, cluster: Cluster][] = [];
  /** Armed while the cache holds more than `maxClusters` (clusters made while every one was busy). */
  #trim: NodeJS.Timeout | undefined;

  /**
   * @param options - the validated `discovery` options.
   * @param created - called with each cluster created, before it starts (the client subscribes to its health events).
   * @param closing - true once the client is closing: an idle cluster is then closed even with requests in flight.
   */
  constructor(options: ResolvedDiscoveryOptions, created: (cluster: Cluster) => void, closing: () => boolean) {
    this.#options = options;
    this.#created = created;
    this.#closing = closing;
    // The size bound is enforced in clusterFor(), which evicts idle clusters only: the cache must never evict by
    // itself (it would close a busy cluster). `maxSize` counting entries, set out of reach, only tells lru-cache the
    // cache is bounded, without `max` preallocating arrays of `maxClusters` slots. No `ttlAutopurge`: its per-entry
    // timers lose track of an entry put back from `disposeAfter` during their own purge (lru-cache 11.5), and the
    // lost timer then re-arms itself every millisecond forever (a TimeoutOverflowWarning of `Infinity` each time).
    // One sweep timer of our own purges instead.
    const cache: LRUCache<string, Cluster> = new LRUCache<string, Cluster>({
      maxSize: Number.MAX_SAFE_INTEGER,
      sizeCalculation: () => 1,
      ttl: options.idleTimeoutMs,
      updateAgeOnGet: true,
      disposeAfter: (cluster, host, reason) => {
        // Idle means no traffic: a cluster still serving a long stream (or with requests waiting) is kept for another
        // idle period rather than closed, which would fail them. Put back by #restore(), never from in here.
        if (reason === 'expire' && !closing() && cluster.busy) {
          this.#expiredBusy.push([host, cluster]);
          return;
        }
        this.#retire(cluster);
      },
    });
    this.#cache = cache;
    // A cluster is closed between one and one and a half idle periods after its last request. Unref'd: an idle
    // cluster's expiry never holds the process open.
    this.#sweep = setInterval(() => this.#purge(), Math.max(1, Math.ceil(options.idleTimeoutMs / 2)));
    this.#sweep.unref();
  }

  /**
   * The cluster of `host` (lower case), created and started on first use; `undefined` for a host outside the
   * domain. Throws when the target made for the host is refused, or when no cluster can be made for it (every one
   * busy, overflow used up): the request fails with that error.
   */
  clusterFor(host: string): Cluster | undefined {
    const { suffix, maxClusters } = this.#options;
    if (!host.endsWith(suffix) || host.length <= suffix.length) return undefined;
    // A second look: a get that finds the entry expired removes it, and a busy cluster is then put back.
    let cluster = this.#cache.get(host);
    if (cluster === undefined && this.#restore()) cluster = this.#cache.get(host);
    if (cluster === undefined) {
      let target;
      try {
        target = this.#options.target(host);
      } catch (err) {
        throw new ResolverError(`The discovery target function threw for host "${host}"`, { cause: err });
      }
      // target() and start() are the caller's code: one that closed the client must find no cluster made after close()
      // took its list of clusters (it would be started, sent the request and never closed).
      if (this.#closing()) throw new ClientClosedError();
      // Made (its options and target checked, a resolver object another cluster took refused) before another host's
      // idle cluster makes room for it: a host whose target is refused takes no cluster's place.
      cluster = new Cluster(host, withTarget(this.#options.template, target, TARGET_PATH), TARGET_PATH);
      const made = cluster;
      made.onIdle = () => this.#idle(host, made);
      this.#evictIdle(maxClusters - 1);
      if (this.#cache.size >= maxClusters + MAX_OVERFLOW) {
        // Nothing started: a resolver the library made is closed, a Resolver object of the caller's handed back.
        cluster.destroy().catch(() => {});
        throw new OverloadedError(host, 'maxClusters', maxClusters, MAX_OVERFLOW);
      }
      this.#created(cluster);
      try {
        cluster.start();
      } catch (err) {
        // As for a configured cluster at createClient: the resolver is closed (nothing it set up before throwing
        // stays behind) and the request fails with SIDECARLESS_RESOLVER_FAILED.
        cluster.destroy().catch(() => {});
        throw new ResolverError(`The resolver of discovered cluster "${host}" failed to start`, { cause: err });
      }
      if (this.#closing()) {
        cluster.destroy().catch(() => {});
        throw new ClientClosedError();
      }
      this.#live.add(cluster);
      this.#cache.set(host, cluster);
      if (this.#cache.size > maxClusters) this.#armTrim();
    }
    return cluster;
  }

  /**
   * `host`'s cluster has just ended its last request: its idle time, and its place in the LRU order, count from now
   * (a get refreshes both only as a request starts, and a long one would leave its cluster to be closed soon after it
   * ends). Only the cache's own entry: a cluster taken out (draining, or replaced) is not put back.
   */
  #idle(host: string, cluster: Cluster): void {
    if (this.#closing() || this.#cache.peek(host, { allowStale: true }) !== cluster) return;
    this.#cache.set(host, cluster);
  }

  /**
   * Clusters made above `maxClusters` (every one was busy) are closed as they fall idle, not only when the next new
   * host comes: a burst to many hosts does not keep their pools and connections for a whole idle period.
   */
  #armTrim(): void {
    if (this.#trim !== undefined) return;
    this.#trim = setTimeout(() => {
      this.#trim = undefined;
      this.#evictIdle(this.#options.maxClusters);
      if (this.#cache.size > this.#options.maxClusters) this.#armTrim();
    }, TRIM_INTERVAL_MS);
    this.#trim.unref();
  }

  /** Closes idle clusters, least recently used first, until at most `keep` remain (busy ones are never evicted). */
  #evictIdle(keep: number): void {
    if (this.#cache.size <= keep) return;
    const idle: string[] = [];
    let excess = this.#cache.size - keep;
    for (const host of this.#cache.rkeys()) {
      if (excess === 0) break;
      if (this.#cache.peek(host)?.busy !== false) continue;
      idle.push(host);
      excess--;
    }
    for (const host of idle) this.#cache.delete(host);
  }

  /**
   * The discovered clusters, least recently used last. Expired entries are purged first: the cache's iteration skips
   * an entry past its idle time that the sweep has not reached yet (late on a busy event loop), and a busy cluster
   * among them would be missing from stats until then; purging puts it back.
   */
  clusters(): IterableIterator<Cluster> {
    this.#purge();
    return this.#cache.values();
  }

  /** Closes idle expired clusters and puts busy ones back, for another idle period. */
  #purge(): void {
    this.#cache.purgeStale();
    this.#restore();
  }

  /** Puts back the busy clusters the cache expired; true when there were any. */
  #restore(): boolean {
    if (this.#expiredBusy.length === 0) return false;
    const kept = this.#expiredBusy;
    this.#expiredBusy = [];
    // In expiry order (least recently used first), so they keep their order among themselves. A host that got a new
    // cluster meanwhile keeps it, and this one is closed as any cluster taken out.
    for (const [host, cluster] of kept) {
      if (this.#cache.peek(host, { allowStale: true }) === undefined) this.#cache.set(host, cluster);
      else this.#retire(cluster);
    }
    return true;
  }

  /** Forgets every discovered cluster, closing each (gracefully). */
  clear(): void {
    clearInterval(this.#sweep);
    clearTimeout(this.#trim);
    this.#trim = undefined;
    this.#cache.clear();
    const kept = this.#expiredBusy;
    this.#expiredBusy = [];
    for (const [, cluster] of kept) this.#retire(cluster);
  }

  /**
   * Every discovered cluster not yet closed, whether the cache lists it or not (those an eviction, expiry or clear
   * took out are still draining): a client's close() waits for them and its destroy() fails their requests.
   */
  all(): Iterable<Cluster> {
    return this.#live;
  }

  #retire(cluster: Cluster): void {
    // Settles within drainTimeoutMs; forgotten either way (a rejection is not left unhandled).
    const forget = (): void => void this.#live.delete(cluster);
    cluster.close().then(forget, forget);
  }
}
