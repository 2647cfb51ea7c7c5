/**
 * The histogram series one client registered with the Prometheus exporter observed: a request duration series per
 * cluster, an endpoint latency series per endpoint within the bound, and which of them go when.
 *
 * The histograms observe as requests and attempts end, so their series are made as traffic comes, and removed here,
 * bounded whether or not the registry is ever read:
 * - an endpoint's series goes when the endpoint leaves its cluster's first `maxEndpointsPerCluster` (found when the
 *   cluster next gets an endpoint series, or at the next collection);
 * - a cluster's series stays while the client is open, also after the cluster has gone (a discovered cluster closed
 *   when idle): made again under the same name, it goes on counting. At most `max(100, the most clusters the client
 *   has had at once)` clusters that have gone keep theirs, the longest gone dropped first.
 *
 * @module
 */
import type { Histogram } from 'prom-client';
import type { ClientStats } from '../client/client.js';
import type { ClusterStats, EndpointStats, Labels } from './prometheus-series.js';

/** The exporter's two histograms on one registry (the endpoint one only once a client there asked for it). */
export interface Histograms {
  readonly requestDuration?: Histogram | undefined;
  readonly endpointLatency?: Histogram | undefined;
}

/** A cluster's histogram series: its labels, its endpoints' (within the bound), endpoints found outside it. */
interface Series {
  readonly labels: Labels;
  readonly endpoints: Map<string, Labels>;
  /** Endpoints past the bound, not looked up again until the next collection (the set's order may change). */
  readonly outside: Set<string>;
}

/** Clusters that have gone whose request duration series are kept, at the least. */
const DEPARTED_MIN = 100;
/** Endpoints remembered outside the bound, per cluster, before the memory is cleared. */
const OUTSIDE_MAX = 1_000;

/** The endpoints of `c` that get series: the first `max`, in resolver order. */
export const shownEndpoints = (c: ClusterStats, max: number): readonly EndpointStats[] =>
  c.endpoints.length > max ? c.endpoints.slice(0, max) : c.endpoints;

/** The histogram series of one registered client. */
export class ClientSeries {
  /** By cluster id: the client's clusters, and clusters that went since the last {@link sync}. */
  readonly #live = new Map<number, Series>();
  /** By name, longest gone first: clusters that went, whose request duration series are kept. */
  readonly #departed = new Map<string, Series>();
  #peak = 0;

  constructor(
    private readonly label: string,
    private readonly maxEndpoints: number,
    private readonly histograms: Histograms,
    private readonly stats: () => ClientStats,
  ) {}

  /**
   * The labels of cluster `id`'s request duration series, made (at zero) on first use. A cluster that went and came
   * back under the same name (a discovered cluster closed when idle, then made again) takes over the series the old
   * one left: they have the same labels, and go on.
   */
  cluster(id: number, name: string): Labels {
    return this.#entry(id, name, true).labels;
  }

  /** The labels of `endpoint`'s latency series in cluster `id`, or `undefined` when it is outside the bound. */
  endpoint(id: number, name: string, endpoint: string): Labels | undefined {
    const entry = this.#entry(id, name, true);
    const known = entry.endpoints.get(endpoint);
    if (known !== undefined) return known;
    if (entry.outside.has(endpoint)) return undefined;
    // The bound keeps the first endpoints in resolver order, as the counters do. The set is read again for an endpoint
    // not seen yet (it may have joined since), and the series of endpoints no longer in it go now: without this, an
    // endpoint set that churns keeps every endpoint it ever had until the registry is read.
    const c = this.stats().clusters.find((x) => x.id === id);
    const shown = new Set(c === undefined ? [] : shownEndpoints(c, this.maxEndpoints).map((e) => e.key));
    this.#dropEndpoints(entry, shown);
    if (!shown.has(endpoint)) {
      if (entry.outside.size >= OUTSIDE_MAX) entry.outside.clear();
      entry.outside.add(endpoint);
      return undefined;
    }
    const labels = { ...entry.labels, upstream_endpoint: endpoint };
    entry.endpoints.set(endpoint, labels);
    return labels;
  }

  /**
   * Brings the series in line with the client, as a histogram is collected: a cluster's request duration series
   * exists (at zero) from its first scrape, and the series of endpoints that left go, as do those of clusters that
   * went past the bound.
   */
  sync(): void {
    const clusters = new Map(this.stats().clusters.map((c) => [c.id, c]));
    for (const c of clusters.values()) this.#entry(c.id, c.name, false);
    for (const [id, entry] of this.#live) {
      entry.outside.clear();
      const c = clusters.get(id);
      if (c === undefined) {
        this.#depart(id, entry);
        continue;
      }
      this.#dropEndpoints(entry, new Set(shownEndpoints(c, this.maxEndpoints).map((e) => e.key)));
    }
    this.#peak = Math.max(this.#peak, clusters.size);
    this.#trim();
  }

  /** Removes every series (the registration ends). */
  clear(): void {
    for (const entry of [...this.#live.values(), ...this.#departed.values()]) {
      this.histograms.requestDuration?.remove(entry.labels);
      for (const labels of entry.endpoints.values()) this.histograms.endpointLatency?.remove(labels);
    }
    this.#live.clear();
    this.#departed.clear();
  }

  #entry(id: number, name: string, bounded: boolean): Series {
    const entry = this.#live.get(id);
    if (entry !== undefined) return entry;
    const left = this.#departed.get(name) ?? this.#liveNamed(name);
    if (left !== undefined) {
      this.#departed.delete(name);
      for (const [other, e] of this.#live) if (e === left) this.#live.delete(other);
      this.#live.set(id, left);
      return left;
    }
    // A new cluster: with no scrape to notice the clusters that went, look now, once there are twice as many as
    // kept (as many gone as live): this one may be among those the look finds.
    if (bounded && this.#live.size + this.#departed.size >= 2 * this.#max()) {
      this.sync();
      return this.#entry(id, name, false);
    }
    const made: Series = {
      labels: { client: this.label, upstream_cluster: name },
      endpoints: new Map(),
      outside: new Set(),
    };
    this.#live.set(id, made);
    this.histograms.requestDuration?.zero(made.labels);
    return made;
  }

  #liveNamed(name: string): Series | undefined {
    for (const e of this.#live.values()) if (e.labels.upstream_cluster === name) return e;
    return undefined;
  }

  #dropEndpoints(entry: Series, keep: ReadonlySet<string>): void {
    for (const [key, labels] of entry.endpoints) {
      if (keep.has(key)) continue;
      this.histograms.endpointLatency?.remove(labels);
      entry.endpoints.delete(key);
    }
  }

  /** Cluster `id` went: its endpoints' series go, its own stays (see the module comment). */
  #depart(id: number, entry: Series): void {
    this.#live.delete(id);
    this.#dropEndpoints(entry, new Set());
    entry.outside.clear();
    this.#departed.delete(entry.labels.upstream_cluster as string);
    this.#departed.set(entry.labels.upstream_cluster as string, entry);
  }

  /** Clusters that went whose series are kept (and, when no scrape looks, live ones too). */
  #max(): number {
    return Math.max(DEPARTED_MIN, this.#peak);
  }

  #trim(): void {
    const max = this.#max();
    for (const [name, entry] of this.#departed) {
      if (this.#departed.size <= max) break;
      this.histograms.requestDuration?.remove(entry.labels);
      this.#departed.delete(name);
    }
  }
}
