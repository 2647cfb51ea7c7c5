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

/**
 * This copy's own count, used only when `globalThis` cannot hold the shared one (frozen or sealed, in a hardened
 * sandbox): from a random start far above the shared count, so two copies there are still unlikely to meet.
 */
let localNext = 2 ** 40 + Math.floor(Math.random() * 2 ** 40);

/** The next cluster id: 1, 2, 3 ... across every copy of the library in the process. */
export function nextClusterId(): number {
  const slot = globalThis as { [NEXT_CLUSTER_ID]?: unknown };
  const next = slot[NEXT_CLUSTER_ID];
  const id = typeof next === 'number' && Number.isSafeInteger(next) && next >= 1 ? next : 1;
  try {
    slot[NEXT_CLUSTER_ID] = id + 1;
    return id;
  } catch {
    return localNext++;
  }
}
