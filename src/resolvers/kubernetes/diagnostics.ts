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
 * - `update`: a new endpoint set was built and delivered (`endpoints` is its size, `state` which endpoints it holds);
 * - `error`: a list or watch failed, or entries were skipped as unusable (`error`, a `bad-response` naming the
 *   first); after a failure the last set stays in use, and so it does when nothing usable is left.
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
  /**
   * Entries skipped as unusable, counted each time one is read (listed or watched): a malformed EndpointSlice counts
   * one, and so does each endpoint whose address no connection can be made to (`999.1.1.1`, `0.0.0.0`, a multicast
   * address).
   */
  readonly skipped: number;
  /** Errors reported: failed list or watch requests, and reports of skipped entries. */
  readonly errors: number;
  /** EndpointSlices currently held for the service. */
  readonly slices: number;
  /** The last resourceVersion seen, or `undefined` before the first listing (or after a 410). */
  readonly resourceVersion: string | undefined;
}
