/**
 * Cluster ids: unique in the process, whatever copies of the library it holds.
 *
 * @module
 */

/**
 * The process-wide counter behind cluster ids. On `globalThis` under a registered symbol, not in this module: two
 * copies of the library in one process (an application's and a dependency's) share the diagnostics channels, and
 * the exporters tell their client's clusters by id, so ids must not repeat across copies.
 */
const NEXT_CLUSTER_ID = Symbol.for('sidecarless.nextClusterId');

/** The next cluster id: 1, 2, 3 ... across every copy of the library in the process. */
export function nextClusterId(): number {
  const slot = globalThis as { [NEXT_CLUSTER_ID]?: unknown };
  const next = slot[NEXT_CLUSTER_ID];
  const id = typeof next === 'number' && Number.isSafeInteger(next) && next >= 1 ? next : 1;
  slot[NEXT_CLUSTER_ID] = id + 1;
  return id;
}
