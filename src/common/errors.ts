/**
 * Errors raised by sidecarless.
 *
 * Every error a user can see is a {@link SidecarlessError} with a stable {@link SidecarlessError.code}. Match on
 * `code` (or use {@link isSidecarlessError}), never on message text: messages may be reworded between releases,
 * codes may not.
 *
 * @module
 */
const BRAND = Symbol.for('sidecarless.error');

/**
 * Every stable error code. New codes may be added in minor releases; existing ones never change meaning.
 *
 * @category Errors
 */
export type ErrorCode =
  | 'SIDECARLESS_INVALID_OPTION'
  | 'SIDECARLESS_INVALID_TARGET'
  | 'SIDECARLESS_UNKNOWN_SCHEME'
  | 'SIDECARLESS_INVALID_ENDPOINT'
  | 'SIDECARLESS_DUPLICATE_ENDPOINT'
  | 'SIDECARLESS_NO_ENDPOINTS'
  | 'SIDECARLESS_PROTOCOL_MISMATCH'
  | 'SIDECARLESS_CLIENT_CLOSED'
  | 'SIDECARLESS_RESOLVER_FAILED'
  | 'SIDECARLESS_DEADLINE_EXCEEDED'
  | 'SIDECARLESS_PER_TRY_TIMEOUT'
  | 'SIDECARLESS_RETRY_BUDGET_EXHAUSTED'
  | 'SIDECARLESS_CIRCUIT_OPEN'
  | 'SIDECARLESS_OVERLOADED'
  | 'SIDECARLESS_ALL_EJECTED'
  | 'SIDECARLESS_EMPTY_SUBSET'
  | 'SIDECARLESS_NO_ROUTE'
  | 'SIDECARLESS_PICKER_FAILED'
  | 'SIDECARLESS_REDIRECT_REFUSED'
  | 'SIDECARLESS_NOT_PROCESSED'
  | 'SIDECARLESS_RESPONSE_DISCARDED'
  | 'SIDECARLESS_INVALID_REQUEST'
  | 'SIDECARLESS_DNS_NXDOMAIN'
  | 'SIDECARLESS_DNS_NODATA'
  | 'SIDECARLESS_DNS_SERVFAIL'
  | 'SIDECARLESS_DNS_REFUSED'
  | 'SIDECARLESS_DNS_TIMEOUT'
  | 'SIDECARLESS_DNS_MALFORMED'
  | 'SIDECARLESS_DNS_NETWORK';

/**
 * Base class of every error sidecarless raises. `cause` keeps the underlying error, if any.
 *
 * @example
 * ```ts
 * try {
 *   await client.fetch('http://users/');
 * } catch (err) {
 *   if (isSidecarlessError(err) && err.code === 'SIDECARLESS_NO_ENDPOINTS') {
 *     // no endpoint became available within waitForReadyTimeoutMs
 *   }
 * }
 * ```
 *
 * @category Errors
 */
export class SidecarlessError extends Error {
  /** A stable, machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** The concrete class name (e.g. `NoEndpointsError`), so subclasses need no override of their own. */
  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * True when `value` is an error raised by any copy of sidecarless (the check is by a global symbol, so it works
 * across duplicated installs where `instanceof` does not).
 *
 * @category Errors
 */
export function isSidecarlessError(value: unknown): value is SidecarlessError {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return (value as Record<symbol, unknown>)[BRAND] === true;
  } catch {
    return false; // a Proxy whose `get` trap throws (plugin code may hand over anything)
  }
}

/**
 * Finds the first {@link SidecarlessError} in `error` or its `cause` chain. `fetch` wraps network failures in
 * `TypeError('fetch failed')` with the real error as `cause`; this digs it out.
 *
 * @example
 * ```ts
 * const res = await client.fetch(url).catch((err) => {
 *   if (findSidecarlessError(err)?.code === 'SIDECARLESS_NO_ENDPOINTS') return fallbackResponse();
 *   throw err;
 * });
 * ```
 *
 * @category Errors
 */
export function findSidecarlessError(error: unknown): SidecarlessError | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (isSidecarlessError(current)) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * An option passed to a constructor or factory is invalid. `option` names it (dotted path for nested options).
 *
 * @category Errors
 */
export class InvalidOptionError extends SidecarlessError {
  /** The option's name, e.g. `waitForReadyTimeoutMs` or `picker.choiceCount`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_OPTION', `Invalid option \`${option}\`: ${message}`, options);
    this.option = option;
  }
}

/** A target string could not be parsed, or its scheme's resolver rejected it. @category Errors */
export class InvalidTargetError extends SidecarlessError {
  /** The target as given. */
  readonly target: string;

  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_TARGET', `Invalid target ${JSON.stringify(target)}: ${message}`, options);
    this.target = target;
  }
}

/** A target names a URL scheme no resolver is registered for. @category Errors */
export class UnknownSchemeError extends SidecarlessError {
  /** The scheme without the colon, e.g. `consul`. */
  readonly scheme: string;

  /** `hint`, when given, ends the message (how to register a scheme that ships in another entry point). */
  constructor(scheme: string, known: readonly string[], hint?: string) {
    super(
      'SIDECARLESS_UNKNOWN_SCHEME',
      `No resolver is registered for scheme "${scheme}:" (registered: ${known.join(', ') || 'none'})` +
        (hint === undefined ? '' : `; ${hint}`),
    );
    this.scheme = scheme;
  }
}

/** An endpoint's host, port, weight, priority, zone or metadata is invalid. @category Errors */
export class InvalidEndpointError extends SidecarlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_ENDPOINT', message, options);
  }
}

/** The same endpoint key (`host:port`) appears twice in one endpoint set. @category Errors */
export class DuplicateEndpointError extends SidecarlessError {
  /** The repeated key. */
  readonly key: string;

  constructor(key: string) {
    super('SIDECARLESS_DUPLICATE_ENDPOINT', `Endpoint ${key} appears more than once in the endpoint set`);
    this.key = key;
  }
}

/**
 * No endpoint could take the request within the wait-for-ready bound: the resolver has produced none yet, produced
 * an empty set, or every endpoint is unusable. `cause` is the resolver's latest state when that is not a healthy
 * set: its error (a failure since its last good answer), or a {@link ServiceNotFoundError} (named in the message)
 * when it answered that the service has no instance; else the error of the request's earlier attempt, if one failed.
 *
 * @category Errors
 */
export class NoEndpointsError extends SidecarlessError {
  /** The cluster the request was meant for. */
  readonly cluster: string;
  /** How long the request waited for an endpoint, ms. */
  readonly waitedMs: number;

  constructor(cluster: string, waitedMs: number, options?: { cause?: unknown }) {
    // "No such service" is the answer, not a wait that ran out: say so, naming the service.
    const cause = options?.cause;
    const detail = cause instanceof ServiceNotFoundError ? `: ${cause.message}` : '';
    super(
      'SIDECARLESS_NO_ENDPOINTS',
      `No endpoint of cluster "${cluster}" became available within ${waitedMs} ms${detail}`,
      options,
    );
    this.cluster = cluster;
    this.waitedMs = waitedMs;
  }
}

/** The request's URL scheme does not match the cluster's transport (e.g. `https:` to plaintext). @category Errors */
export class ProtocolMismatchError extends SidecarlessError {
  constructor(message: string) {
    super('SIDECARLESS_PROTOCOL_MISMATCH', message);
  }
}

/**
 * The client was closed; no new request is accepted, and a request that would have been retried is not. `cause` is
 * then the failure that would have been retried.
 *
 * @category Errors
 */
export class ClientClosedError extends SidecarlessError {
  constructor(options?: { cause?: unknown }) {
    super('SIDECARLESS_CLIENT_CLOSED', 'The client is closed', options);
  }
}

/**
 * An endpoint did not process the request, so it is safe to send again whatever its method: over HTTP/2 the endpoint
 * refused the stream (`REFUSED_STREAM`), or closed the connection with `GOAWAY` before reaching it (the stream was
 * above the frame's last-stream-id, or never left the client). sidecarless retries such an attempt on another
 * endpoint; the caller sees this error only when no attempt is left. `cause` is undici's error.
 *
 * @category Errors
 */
export class NotProcessedError extends SidecarlessError {
  constructor(endpoint: string, why: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_NOT_PROCESSED', `Endpoint ${endpoint} did not process the request (${why})`, options);
  }
}

/**
 * The caller's request cannot be sent as it is, and sidecarless refused it before it left the process: over HTTP/2, a
 * header HTTP/2 forbids (a connection-specific one, RFC 9113 §8.2.2: `te` other than `trailers`, `proxy-connection`,
 * `http2-settings`, `keep-alive`, `upgrade`, `transfer-encoding`; `te` by its joined values), a header list over 65536
 * octets or the endpoint's `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 7541 §4.1 sizes), another header Node refuses to send,
 * or a body with a method undici 7 sends bodiless; on any protocol, a request body chunk that is neither a string nor
 * bytes. The caller's failure: not retried, counted against no endpoint. `header` names the header (lower-case) when one is to
 * blame; `cause` is the underlying error, if any.
 *
 * @category Errors
 */
export class InvalidRequestError extends SidecarlessError {
  /** The header at fault (lower-case), when one is. */
  readonly header: string | undefined;

  constructor(message: string, header?: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_REQUEST', message, options);
    this.header = header;
  }
}

/**
 * A resolver could not produce an endpoint set. This travels as a value into the balancer (the working set is kept)
 * and surfaces to users as the `cause` of a {@link NoEndpointsError}; it is thrown only when a resolver cannot be
 * made or started: `createClient` (or a request to a discovered host) fails with it when a resolver factory throws
 * anything but a sidecarless error, or a resolver's `start()` throws. `cause` is what was thrown.
 *
 * @category Errors
 */
export class ResolverError extends SidecarlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_RESOLVER_FAILED', message, options);
  }
}

/** The stable codes a {@link DnsError} can carry. */
export type DnsErrorCode = Extract<ErrorCode, `SIDECARLESS_DNS_${string}`>;

/**
 * The resolver answered that the service does not exist or has no instance: DNS NXDOMAIN or NODATA, a Consul
 * service with no instance (passing the health filter), an empty etcd prefix, or an empty set from a custom resolver.
 * Not thrown by requests: it is the `cause` of `SIDECARLESS_NO_ENDPOINTS` while it is the resolver's latest answer.
 * Code `SIDECARLESS_RESOLVER_FAILED` (a {@link ResolverError}); tell it apart with `instanceof`.
 *
 * @category Errors
 */
export class ServiceNotFoundError extends ResolverError {
  /** The service looked up: the DNS name, the Consul service, the etcd prefix, or the cluster's name. */
  readonly service: string;

  constructor(service: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.service = service;
  }
}

/**
 * A DNS query failed. One class, told apart by {@link SidecarlessError.code}:
 *
 * - `SIDECARLESS_DNS_NXDOMAIN`: the name does not exist (RCODE 3, RFC 1035 §4.1.1). Authoritative: the DNS
 *   resolvers deliver it as an empty endpoint set rather than as an error.
 * - `SIDECARLESS_DNS_NODATA`: the name exists but has no record of the type asked (RCODE 0 with no matching
 *   answer and no referral, RFC 2308 §2.2). Also delivered as an empty set.
 * - `SIDECARLESS_DNS_SERVFAIL`: the server reported a failure (SERVFAIL, and FORMERR, NOTIMP or any other RCODE
 *   that is neither NOERROR, NXDOMAIN nor REFUSED); `rcode` says which. Also a referral instead of an answer
 *   (`rcode` `NOERROR`: NS and no SOA in the authority section, or nothing at all with AA and RA clear).
 * - `SIDECARLESS_DNS_REFUSED`: the server refused the query (RCODE 5), typically a recursion or ACL problem.
 * - `SIDECARLESS_DNS_TIMEOUT`: no valid reply within the per-try timeout on any try.
 * - `SIDECARLESS_DNS_MALFORMED`: replies arrived but none could be decoded (garbage, truncated, bad pointers).
 * - `SIDECARLESS_DNS_NETWORK`: a socket error (TCP connection refused, no nameserver configured, ...).
 *
 * When several tries fail differently, the error of the last try is reported.
 *
 * @category Errors
 */
export class DnsError extends SidecarlessError {
  declare readonly code: DnsErrorCode;
  /** The name queried (without trailing dot). */
  readonly queryName: string;
  /** The record type queried: `A`, `AAAA` or `SRV`. */
  readonly queryType: string;
  /** The reply's RCODE mnemonic (`NXDOMAIN`, `SERVFAIL`, ...), when a reply was received. */
  readonly rcode: string | undefined;
  /** The nameserver (`host:port`) whose answer or silence this error reports, when known. */
  readonly nameserver: string | undefined;
  /**
   * For NXDOMAIN and NODATA: how long the negative answer may be cached, seconds, from the SOA record in the
   * authority section (RFC 2308 §5: the smaller of the SOA's TTL and its MINIMUM field). `undefined` without SOA.
   */
  readonly negativeTtl: number | undefined;
  /**
   * Every name asked, in order: the query name itself, or for a `dns:`/`srv:` name expanded through the
   * `resolv.conf` search list, each candidate (`users.shop.svc.cluster.local`, ..., `users`).
   */
  readonly triedNames: readonly string[];

  constructor(
    code: DnsErrorCode,
    message: string,
    details: {
      queryName: string;
      queryType: string;
      rcode?: string | undefined;
      nameserver?: string | undefined;
      negativeTtl?: number | undefined;
      triedNames?: readonly string[] | undefined;
      cause?: unknown;
    },
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.queryName = details.queryName;
    this.queryType = details.queryType;
    this.rcode = details.rcode;
    this.nameserver = details.nameserver;
    this.negativeTtl = details.negativeTtl;
    this.triedNames = Object.freeze([...(details.triedNames ?? [details.queryName])]);
  }
}
