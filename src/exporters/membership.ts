/**
 * Which clusters are one client's, for an exporter listening on the process-wide diagnostics channels: every
 * client's requests pass there, told apart by cluster id (process-unique; clusters appear lazily in discovery mode).
 * And the stats options of an exporter reading cluster figures only.
 *
 * @module
 */
import type { Client, StatsOptions } from '../client/client.js';

/**
 * `stats()` without the endpoints' figures, for a read of cluster figures (O(1) in the endpoints, not O(N)). The
 * public option, not the client's internal constant: the exporters use the client through its public methods (the
 * layering rule), and a client of another copy of sidecarless reads it as well.
 */
export const CLUSTERS_ONLY: StatsOptions = Object.freeze({ endpoints: false });

/** Ids remembered of each kind at most: past this, that memory starts again (discovery makes a cluster per host). */
const REMEMBERED = 10_000;

/**
 * A test of whether a cluster id is `client`'s: looked up in its stats the first time an id is seen, then remembered
 * either way (a cluster exists before its first request, and never changes client), within a bound: the hosts that
 * make discovered clusters are the callers' to choose.
 */
export function clusterMembership(client: Client): (clusterId: number) => boolean {
  const known = new Set<number>();
  const foreign = new Set<number>();
  return (clusterId) => {
    if (known.has(clusterId)) return true;
    if (foreign.has(clusterId)) return false;
    const mine = client.stats(CLUSTERS_ONLY).clusters.some((c) => c.id === clusterId);
    const set = mine ? known : foreign;
    if (set.size >= REMEMBERED) set.clear();
    set.add(clusterId);
    return mine;
  };
}
