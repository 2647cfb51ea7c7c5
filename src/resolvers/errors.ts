/**
 * Errors of the resolvers that read a discovery server (Consul, etcd, Kubernetes, ZooKeeper): one base, {@link DiscoveryError},
 * with the kind of failure in {@link DiscoveryError.reason}; one subclass per server, so that `instanceof` tells them
 * apart. Every one has the code `SIDECARLESS_RESOLVER_FAILED` (a {@link ResolverError}).
 *
 * @module
 */
import { ResolverError } from '../common/errors.js';

/**
 * Why a Consul or etcd resolution failed, in {@link DiscoveryError.reason}:
 * - `http-status`: the server answered with a non-2xx status that is not an auth failure (see `status`);
 * - `forbidden`: 401 or 403, a missing or invalid token (Consul ACL), or bad or missing credentials or a missing
 *   permission (etcd auth, which answers 400 for failed authentication: told apart by etcd's message; also a watch
 *   etcd cancelled for such a reason);
 * - `bad-response`: the body is not valid JSON, has the wrong shape, or is too large;
 * - `timeout`: no complete answer within the client timeout;
 * - `connection`: the connection failed (refused, reset, TLS) or the stream broke;
 * - `server-error`: the server reported an error inside a 200 answer (etcd watch `error` message, or a watch etcd
 *   cancelled for a reason that is neither compaction nor auth, in the message), or ZooKeeper
 *   answered an operation with an error other than those above (see {@link ZooKeeperError.zooKeeperCode});
 * - `session-expired`: the ZooKeeper session expired (the ensemble was out of reach for longer than the session
 *   timeout); a new session is opened and the service listed again;
 * - `limit`: the registry sent more endpoints than the resolver's `maxEndpoints`; the excess was not taken, the last
 *   good set stays, and the registry is read afresh after the backoff.
 */
export type DiscoveryFailureReason =
  | 'http-status'
  | 'forbidden'
  | 'bad-response'
  | 'timeout'
  | 'connection'
  | 'server-error'
  | 'session-expired'
  | 'limit';

/**
 * A discovery server (Consul, etcd) could not be read. Code `SIDECARLESS_RESOLVER_FAILED`; match on
 * {@link DiscoveryError.reason} for the kind. Messages never contain tokens or passwords.
 */
export class DiscoveryError extends ResolverError {
  /** The kind of failure. */
  readonly reason: DiscoveryFailureReason;
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;

  constructor(reason: DiscoveryFailureReason, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.status = options?.status;
  }
}

/**
 * The Consul resolver could not read the service's instances. Code `SIDECARLESS_RESOLVER_FAILED`; match on
 * {@link DiscoveryError.reason} for the kind. The message never contains the ACL token.
 */
export class ConsulError extends DiscoveryError {}

/**
 * The etcd resolver could not list or watch its key prefix. Code `SIDECARLESS_RESOLVER_FAILED`; match on
 * {@link DiscoveryError.reason} for the kind. The message never contains the password or the auth token.
 */
export class EtcdError extends DiscoveryError {}

/**
 * The Kubernetes resolver could not list or watch the service's EndpointSlices. Code `SIDECARLESS_RESOLVER_FAILED`;
 * match on {@link DiscoveryError.reason} for the kind. A 401 or 403 (`forbidden`) names the RBAC rule the caller's
 * identity needs: `get`, `list` and `watch` on `endpointslices` in the API group `discovery.k8s.io`. The message
 * never contains the bearer token.
 */
export class KubernetesError extends DiscoveryError {}

/**
 * The ZooKeeper resolver (`sidecarless/zookeeper`) could not list or watch its service. Code
 * `SIDECARLESS_RESOLVER_FAILED`; match on {@link DiscoveryError.reason} for the kind, and on
 * {@link ZooKeeperError.zooKeeperCode} for ZooKeeper's own error:
 * - `connection`: the connection to the ensemble was lost (`CONNECTION_LOSS`), the session is being re-established;
 * - `timeout`: no member of the ensemble answered within `connectTimeoutMs`, or an operation took longer than
 *   `requestTimeoutMs`;
 * - `session-expired`: the session expired (`SESSION_EXPIRED`): a new one is opened and the service listed again;
 * - `forbidden`: the node's ACL refuses the credentials (`NO_AUTH`), or the server refused them (`AUTH_FAILED`);
 * - `bad-response`: an instance node holds data that is not an endpoint (reported, the node skipped);
 * - `server-error`: any other ZooKeeper error (its name in `zooKeeperCode`);
 * - `limit`: the node has more children than `maxEndpoints`; none is read, the last good set stays.
 *
 * The message never contains the digest credentials.
 *
 * @category Errors
 */
export class ZooKeeperError extends DiscoveryError {
  /**
   * ZooKeeper's name for the error (the Java client's `KeeperException.Code` names, as node-zookeeper-client spells
   * them: `CONNECTION_LOSS`, `SESSION_EXPIRED`, `NO_AUTH`, `AUTH_FAILED`, `OPERATION_TIMEOUT`, ...), when ZooKeeper
   * or its client raised one; `undefined` for the resolver's own timeouts and for bad node data.
   */
  readonly zooKeeperCode: string | undefined;

  constructor(
    reason: DiscoveryFailureReason,
    message: string,
    options?: { cause?: unknown; zooKeeperCode?: string | undefined },
  ) {
    super(reason, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.zooKeeperCode = options?.zooKeeperCode;
  }
}
