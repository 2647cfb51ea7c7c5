/**
 * The Kubernetes resolver's diagnostics channel and statistics types.
 *
 * @module
 */
import diagnostics from 'node:diagnostics_channel';

/**
 * What the `sidecarless:kubernetes` diagnostics channel publishes, once per step of the list-and-watch cycle:
 * - `list`: a listing completed (`resourceVersion` is the list's);
 * - `watch`: a watch was accepted by the API server and streams from `resourceVersion`;
 * - `watch-end`: the server ended the watch (its `timeoutSeconds` elapsed); it resumes from `resourceVersion`;
 * - `expired`: the resourceVersion is too old (410 Gone, or an ERROR event with a 410 Status): the resolver lists again;
 * - `update`: a new endpoint set was built (`endpoints` is its size, `state` which endpoints it holds);
 * - `error`: a list or watch failed (`error`); the last set stays in use.
 *
 * @category Observability
 */
export interface KubernetesResolverEvent {
  /** The step (see above). */
  readonly kind: 'list' | 'watch' | 'watch-end' | 'expired' | 'update' | 'error';
  /** The Service's namespace. */
  readonly namespace: string;
  /** The Service. */
  readonly service: string;
  /** The resourceVersion the resolver holds after the step (`undefined` before a listing, or after a 410). */
  readonly resourceVersion: string | undefined;
  /** For `update`: the number of endpoints delivered. */
  readonly endpoints?: number | undefined;
  /**
   * For `update`: `ready` (ready endpoints), `terminating` (none ready: serving terminating ones are used) or
   * `empty`.
   */
  readonly state?: 'ready' | 'terminating' | 'empty' | undefined;
  /** For `error`. */
  readonly error?: Error | undefined;
}

/** The channel, `sidecarless:kubernetes`. @internal */
export const kubernetesChannel = diagnostics.channel('sidecarless:kubernetes');

/**
 * Counters of a {@link KubernetesResolver} (its {@link KubernetesResolver.stats}).
 *
 * @category Observability
 */
export interface KubernetesResolverStats {
  /** Listings completed (the first, and each after a 410 Gone or a refresh). */
  readonly lists: number;
  /** Watches the API server accepted. */
  readonly watches: number;
  /** ADDED, MODIFIED and DELETED events received. */
  readonly events: number;
  /** BOOKMARK events received. */
  readonly bookmarks: number;
  /** Times the resourceVersion had expired (410 Gone) and the service was listed again. */
  readonly expired: number;
  /** Malformed EndpointSlices skipped (counted each time one is read). */
  readonly skipped: number;
  /** Failed list or watch requests. */
  readonly errors: number;
  /** EndpointSlices currently held for the service. */
  readonly slices: number;
  /** The last resourceVersion seen, or `undefined` before the first listing (or after a 410). */
  readonly resourceVersion: string | undefined;
}
