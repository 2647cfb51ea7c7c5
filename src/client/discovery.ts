/**
 * Discovery (transparent mode): a host under the discovery domain gets a cluster of its own on first use, kept in
 * an LRU cache bounded by `maxClusters` and closed once idle for `idleTimeoutMs`.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { Cluster } from '../cluster/cluster.js';
import type { ResolvedDiscoveryOptions } from './options.js';

/** The option path discovered clusters report their option errors under. */
const TEMPLATE_PATH = 'discovery.cluster';

/** The lazily created clusters of a client's discovery domain. */
export class Discovery {
  readonly #options: ResolvedDiscoveryOptions;
  readonly #cache: LRUCache<string, Cluster>;
  readonly #created: (cluster: Cluster) => void;

  /**
   * @param options - the validated `discovery` options.
   * @param created - called with each cluster created, before it starts (the client subscribes to its health events).
   * @param closing - true once the client is closing: an idle cluster is then closed even with requests in flight.
   */
  constructor(options: ResolvedDiscoveryOptions, created: (cluster: Cluster) => void, closing: () => boolean) {
    this.#options = options;
    this.#created = created;
    const cache: LRUCache<string, Cluster> = new LRUCache<string, Cluster>({
      max: options.maxClusters,
      ttl: options.idleTimeoutMs,
      updateAgeOnGet: true,
      ttlAutopurge: true,
      // disposeAfter, not dispose: the entry is gone by then, so it may be put back.
      disposeAfter: (cluster, host, reason) => {
        // Idle means no traffic: a cluster still serving a long stream is kept for another idle period rather than
        // closed (which would cut the stream off after drainTimeoutMs). Evictions by `maxClusters` still close it.
        if (reason === 'expire' && !closing() && cluster.stats().inFlight > 0) {
          cache.set(host, cluster);
          return;
        }
        void cluster.close();
      },
    });
    this.#cache = cache;
  }

  /**
   * The cluster of `host` (lower case), created and started on first use; `undefined` for a host outside the
   * domain. Throws when the target made for the host is refused (the request fails with that error).
   */
  clusterFor(host: string): Cluster | undefined {
    const { suffix } = this.#options;
    if (!host.endsWith(suffix) || host.length <= suffix.length) return undefined;
    // A second look: a get that finds the entry expired removes it, and disposeAfter puts a busy cluster right back.
    let cluster = this.#cache.get(host) ?? this.#cache.get(host);
    if (cluster === undefined) {
      const target = this.#options.target(host);
      cluster = new Cluster(host, { ...this.#options.template, target }, TEMPLATE_PATH);
      this.#created(cluster);
      cluster.start();
      this.#cache.set(host, cluster);
    }
    return cluster;
  }

  /** The discovered clusters, least recently used last. */
  clusters(): IterableIterator<Cluster> {
    return this.#cache.values();
  }

  /** Forgets every discovered cluster, closing each (gracefully). */
  clear(): void {
    this.#cache.clear();
  }
}
