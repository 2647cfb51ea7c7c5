/**
 * A subchannel's connectivity state.
 *
 * @module
 */

/**
 * Connectivity state (after gRPC's, with draining added).
 * - `idle`: no open connection; the next request connects.
 * - `ready`: at least one connection is open.
 * - `transient-failure`: the last connection attempt failed; not picked until its backoff expires.
 * - `draining`: removed from the endpoint set; in-flight requests finish, no new ones.
 * - `closed`: the pool is closed (an endpoint removed before it was ever picked had none: it closes at once).
 *
 * @category Stats
 */
export type SubchannelState = 'idle' | 'ready' | 'transient-failure' | 'draining' | 'closed';
