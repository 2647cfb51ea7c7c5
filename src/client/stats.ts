/**
 * What a client reports: the {@link ClientStats} type, and its clusters' snapshots taken with one reading of the
 * caller's {@link StatsOptions}.
 *
 * @module
 */
import type { Cluster, ClusterStats } from '../cluster/cluster.js';
import { includesEndpoints, type StatsOptions, WITHOUT_ENDPOINTS } from '../cluster/stats.js';

export type { StatsOptions } from '../cluster/stats.js';

/** A point-in-time snapshot of a client. @category Stats */
export interface ClientStats {
  /** Configured clusters first, then discovered ones. */
  readonly clusters: readonly ClusterStats[];
  /**
   * Requests sent to the passthrough dispatcher, and, on a single-service client, redirects `fetch` followed to
   * another origin (sent as plain fetch would send them).
   */
  readonly passthrough: number;
  /** Mirrored copies sent, and skipped (body not replayable or over 1 MiB, or 64 already in flight). */
  readonly mirrored: {
    /** Shadow copies dispatched to the mirror cluster. */
    readonly sent: number;
    /** Requests picked for mirroring whose copy was not sent. */
    readonly skipped: number;
    /** Copies sent but aborted at their deadline (the route's `mirror.timeoutMs`) with no complete response. */
    readonly dropped: number;
  };
}

/**
 * Each cluster's snapshot. The options are read (and refused, when bad) once, also when there is no cluster yet, and
 * handed on as a constant each cluster reads without validating again: a getter in them is not read per cluster.
 */
export function statsOfClusters(clusters: readonly Cluster[], options: StatsOptions | undefined): ClusterStats[] {
  const each = includesEndpoints(options) ? undefined : WITHOUT_ENDPOINTS;
  return clusters.map((c) => c.stats(each));
}
