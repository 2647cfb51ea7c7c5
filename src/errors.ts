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
  | 'SIDECARLESS_RESOLVER_FAILED';

/**
 * Base class of every error sidecarless raises. `cause` keeps the underlying error, if any.
 *
 * @example
 * ```ts
 * try {
 *   await client.fetch('http://users/');
 * } catch (err) {
 *   if (isSidecarlessError(err) && err.code === 'SIDECARLESS_NO_ENDPOINTS') {
 *     // no endpoint became available within waitForReadyTimeout
 *   }
 * }
 * ```
 */
export class SidecarlessError extends Error {
  /** A stable, machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * True when `value` is an error raised by any copy of sidecarless (the check is by a global symbol, so it works
 * across duplicated installs where `instanceof` does not).
 */
export function isSidecarlessError(value: unknown): value is SidecarlessError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
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
 */
export function findSidecarlessError(error: unknown): SidecarlessError | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (isSidecarlessError(current)) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** An option passed to a constructor or factory is invalid. `option` names it (dotted path for nested options). */
export class InvalidOptionError extends SidecarlessError {
  /** The option's name, e.g. `waitForReadyTimeout` or `picker.choiceCount`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_OPTION', `Invalid option \`${option}\`: ${message}`, options);
    this.option = option;
  }
}

/** A target string could not be parsed, or its scheme's resolver rejected it. */
export class InvalidTargetError extends SidecarlessError {
  /** The target as given. */
  readonly target: string;

  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_TARGET', `Invalid target ${JSON.stringify(target)}: ${message}`, options);
    this.target = target;
  }
}

/** A target names a URL scheme no resolver is registered for. */
export class UnknownSchemeError extends SidecarlessError {
  /** The scheme without the colon, e.g. `consul`. */
  readonly scheme: string;

  constructor(scheme: string, known: readonly string[]) {
    super(
      'SIDECARLESS_UNKNOWN_SCHEME',
      `No resolver is registered for scheme "${scheme}:" (registered: ${known.join(', ') || 'none'})`,
    );
    this.scheme = scheme;
  }
}

/** An endpoint's host, port, weight, priority, zone or metadata is invalid. */
export class InvalidEndpointError extends SidecarlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_INVALID_ENDPOINT', message, options);
  }
}

/** The same endpoint key (`host:port`) appears twice in one endpoint set. */
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
 * an empty set, or every endpoint is unusable. `cause` is the last resolver error, if there was one.
 */
export class NoEndpointsError extends SidecarlessError {
  /** The cluster the request was meant for. */
  readonly cluster: string;

  constructor(cluster: string, waitedMs: number, options?: { cause?: unknown }) {
    super(
      'SIDECARLESS_NO_ENDPOINTS',
      `No endpoint of cluster "${cluster}" became available within ${waitedMs} ms`,
      options,
    );
    this.cluster = cluster;
  }
}

/** A request's URL scheme does not match the cluster's transport (e.g. `https:` to a plaintext cluster). */
export class ProtocolMismatchError extends SidecarlessError {
  constructor(message: string) {
    super('SIDECARLESS_PROTOCOL_MISMATCH', message);
  }
}

/** The client was closed; no new request is accepted. */
export class ClientClosedError extends SidecarlessError {
  constructor() {
    super('SIDECARLESS_CLIENT_CLOSED', 'The client is closed');
  }
}

/**
 * A resolver could not produce an endpoint set. This travels as a value into the balancer (the working set is kept)
 * and surfaces to users only as the `cause` of a {@link NoEndpointsError}.
 */
export class ResolverError extends SidecarlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SIDECARLESS_RESOLVER_FAILED', message, options);
  }
}
