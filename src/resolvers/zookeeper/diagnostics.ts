/**
 * The ZooKeeper resolver's diagnostics channel and statistics types.
 *
 * @module
 */
import diagnostics from 'node:diagnostics_channel';

/**
 * What the `sidecarless:zookeeper` diagnostics channel publishes:
 * - `session`: a new session is being opened (the first, or after one expired or was refused);
 * - `connected`: the session is connected (to any member of the ensemble), first or again;
 * - `disconnected`: the connection was lost; the client reconnects on its own, the last set stays in use;
 * - `expired`: the session expired; a new one is opened and the service listed again;
 * - `list`: the service node was listed (all children and their data read);
 * - `update`: a new endpoint set was built (`endpoints` is its size);
 * - `error`: a cycle failed (`error`); the last set stays in use.
 *
 * @category Observability
 */
export interface ZooKeeperResolverEvent {
  /** The step (see above). */
  readonly kind: 'session' | 'connected' | 'disconnected' | 'expired' | 'list' | 'update' | 'error';
  /** The watched node (under the chroot). */
  readonly path: string;
  /** The ensemble's members, `host:port`. */
  readonly servers: readonly string[];
  /** For `update`: the number of endpoints delivered. */
  readonly endpoints?: number | undefined;
  /** For `error`. */
  readonly error?: Error | undefined;
}

/** The channel, `sidecarless:zookeeper`. @internal */
export const zooKeeperChannel = diagnostics.channel('sidecarless:zookeeper');

/**
 * Counters of a {@link ZooKeeperResolver} (its {@link ZooKeeperResolver.stats}).
 *
 * @category Observability
 */
export interface ZooKeeperResolverStats {
  /** The session's state now: `connecting`, `connected`, `disconnected`, `expired`, `auth-failed` or `closed`. */
  readonly state: 'connecting' | 'connected' | 'disconnected' | 'expired' | 'auth-failed' | 'closed';
  /** Sessions opened (the first, and one after each expiry or refusal). */
  readonly sessions: number;
  /** Sessions that expired. */
  readonly expirations: number;
  /** Connections lost (the session survived them unless it expired meanwhile). */
  readonly disconnections: number;
  /** Full listings of the service node (the first, after each reconnection or new session, and each refresh). */
  readonly lists: number;
  /** Children watches that fired (an instance came or went). */
  readonly childEvents: number;
  /** Data watches that fired (an instance's data changed or its node was deleted). */
  readonly dataEvents: number;
  /** Unusable instance nodes skipped, counted each time one is read. */
  readonly skipped: number;
  /** Failed cycles (each reported to the cluster, which keeps the last set). */
  readonly errors: number;
  /** Children of the service node held now (including skipped and disabled ones). */
  readonly nodes: number;
}
