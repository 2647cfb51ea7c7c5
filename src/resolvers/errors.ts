/**
 * Errors of the resolvers that read an HTTP discovery server (Consul, etcd): one base, {@link DiscoveryError},
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
 *   permission (etcd auth, which answers 400 for failed authentication: told apart by etcd's message);
 * - `bad-response`: the body is not valid JSON, has the wrong shape, or is too large;
 * - `timeout`: no complete answer within the client timeout;
 * - `connection`: the connection failed (refused, reset, TLS) or the stream broke;
 * - `server-error`: the server reported an error inside a 200 answer (etcd watch `error` message).
 */
export type DiscoveryFailureReason =
  'http-status' | 'forbidden' | 'bad-response' | 'timeout' | 'connection' | 'server-error';

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
