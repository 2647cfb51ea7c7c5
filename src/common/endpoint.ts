/**
 * Endpoints: one network address of a service, with the attributes balancing needs.
 *
 * @module
 */
import { isIP } from 'node:net';
import { DuplicateEndpointError, InvalidEndpointError, isSidecarlessError } from './errors.js';
import { thrownMessage } from './thrown.js';
import { describe } from './options.js';

/**
 * The largest weight an endpoint may carry. Larger values are rejected so weight sums stay exact in doubles.
 *
 * @category Endpoints
 */
export const MAX_ENDPOINT_WEIGHT = 1_000_000;

/** The largest priority level (0 is the highest priority, as in Envoy and SRV). @category Endpoints */
export const MAX_ENDPOINT_PRIORITY = 127;

/**
 * One address of a service. Immutable: create with {@link createEndpoint}, which validates and normalizes.
 *
 * @category Endpoints
 */
export interface Endpoint {
  /** Hostname (lower-cased) or IP literal; IPv6 without brackets. */
  readonly host: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
  /** Relative weight for weighted policies, in (0, {@link MAX_ENDPOINT_WEIGHT}]. @defaultValue 1 */
  readonly weight: number;
  /** Priority level; 0 is the highest. @defaultValue 0 */
  readonly priority: number;
  /** Locality zone, if known. */
  readonly zone: string | undefined;
  /** Free-form string attributes (tags, version, ...), used for subsets and diagnostics. */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Stable identity, `host:port` (`[v6]:port` for IPv6). Endpoint sets are reconciled by this key: an endpoint
   * whose key stays keeps its connections, load and health history even when its weight or metadata change.
   */
  readonly key: string;
}

/** What {@link createEndpoint} accepts. @category Endpoints */
export interface EndpointInit {
  /** Hostname or IP literal; IPv6 may be bracketed. */
  readonly host: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
  /** @defaultValue 1 */
  readonly weight?: number | undefined;
  /** @defaultValue 0 */
  readonly priority?: number | undefined;
  /** Locality zone (a non-empty string), used by zone-aware routing; unknown when omitted. */
  readonly zone?: string | undefined;
  /** Free-form string attributes, used for subsets and diagnostics. @defaultValue `{}` */
  readonly metadata?: Readonly<Record<string, string>> | undefined;
}

const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function normalizeHost(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new InvalidEndpointError(`Endpoint host must be a non-empty string, got ${describe(raw)}`);
  }
  let host = raw;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const family = isIP(host);
  if (family === 6) {
    if (host.includes('%')) {
      // undici connects through a WHATWG URL, which has no syntax for a zone index: such an endpoint could never
      // be reached, and building its pool would throw.
      throw new InvalidEndpointError(
        `Endpoint host ${JSON.stringify(raw)} has an IPv6 zone index, which HTTP URLs cannot carry; use a global address`,
      );
    }
    return unicast(raw, canonicalIPv6(host));
  }
  if (family === 4) return unicast(raw, host);
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  // `0.0.0.0.` is `0.0.0.0` to the URL parser: judged as that address.
  if (isIP(host) === 4) return unicast(raw, host);
  if (host.length > 253 || !host.split('.').every((label) => HOST_LABEL.test(label))) {
    throw new InvalidEndpointError(
      `Endpoint host ${JSON.stringify(raw)} is neither an IP address nor a valid hostname`,
    );
  }
  return connectable(raw, host);
}

/**
 * `host` (a normalized IP literal) if a connection can be made to it, else an error: the unspecified address
 * (`0.0.0.0`, `::`), the limited broadcast address (`255.255.255.255`) and multicast addresses (`224.0.0.0/4`,
 * `ff00::/8`), IPv4-mapped ones (`::ffff:224.0.0.1`) included, are no unicast destination. A registry may hand them
 * out (an instance that registered the address it listens on, `0.0.0.0`), and connecting to one either fails or, for
 * the unspecified address on Linux, reaches the caller's own host rather than the instance. Envoy refuses them as
 * upstream addresses too.
 */
function unicast(raw: string, host: string): string {
  const kind = nonUnicastKind(host);
  if (kind !== undefined) {
    throw new InvalidEndpointError(
      `Endpoint host ${JSON.stringify(raw)} is ${kind}, not an address a connection can be made to`,
    );
  }
  return host;
}

/** What kind of non-unicast address `host` (a normalized IP literal) is, or `undefined` for a unicast one. */
function nonUnicastKind(host: string): string | undefined {
  let v4 = host;
  if (host.includes(':')) {
    if (host === '::') return 'the unspecified address';
    if (/^ff[0-9a-f]{2}:/.test(host)) return 'a multicast address';
    // IPv4-mapped (`::ffff:a.b.c.d`, which the URL serializer writes as two hex groups): judged as the IPv4 address.
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
    if (mapped === null) return undefined;
    const high = Number.parseInt(mapped[1] as string, 16);
    const low = Number.parseInt(mapped[2] as string, 16);
    v4 = `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  if (v4 === '0.0.0.0') return 'the unspecified address';
  if (v4 === '255.255.255.255') return 'the broadcast address';
  const first = Number(v4.slice(0, v4.indexOf('.')));
  if (first >= 224 && first <= 239) return 'a multicast address';
  return undefined;
}

/**
 * The reason {@link createEndpoint} would refuse `host` as an endpoint's host, or `undefined` when it is usable: for
 * a resolver that checks an address before it knows the rest of the endpoint. @internal
 */
export function endpointHostProblem(host: unknown): string | undefined {
  try {
    normalizeHost(host);
    return undefined;
  } catch (err) {
    return thrownMessage(err);
  }
}

/**
 * `host` if the URL parser (which undici connects through) reads it as exactly this host, else an error. Accepting
 * exactly what can be connected to: `999.1.1.1`, `foo.123` (a last label of digits is parsed as IPv4) and invalid
 * punycode (`xn--a`) are refused by the parser, and `0x7f.1` or `1.2.3` are legacy IPv4 spellings that the parser
 * silently turns into another address (127.0.0.1, 1.2.0.3): refused too, rather than connecting somewhere else than
 * the resolver said.
 */
function connectable(raw: string, host: string): string {
  let parsed: string;
  try {
    parsed = new URL(`http://${host}/`).hostname;
  } catch {
    throw new InvalidEndpointError(`Endpoint host ${JSON.stringify(raw)} is not a host an HTTP URL can name`);
  }
  if (parsed !== host) {
    throw new InvalidEndpointError(
      `Endpoint host ${JSON.stringify(raw)} is ambiguous: URL parsers read it as ${JSON.stringify(parsed)}; write that instead`,
    );
  }
  return host;
}

/**
 * One spelling per IPv6 address (RFC 5952 style, as the WHATWG URL serializer writes it: lower case, longest zero
 * run compressed), so `0:0::1` and `::1` get the same key and a set cannot hold one address twice.
 */
function canonicalIPv6(host: string): string {
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

/** The key of an endpoint at `host:port`, as {@link Endpoint.key}. `host` must already be normalized. */
export function endpointKey(host: string, port: number): string {
  if (typeof host !== 'string') throw new InvalidEndpointError(`Endpoint host must be a string, got ${describe(host)}`);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The metadata of every endpoint without any: one frozen object, not one per endpoint. */
const NO_METADATA: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * Validates and normalizes an endpoint. Throws {@link InvalidEndpointError} naming the bad field.
 *
 * @example
 * ```ts
 * const ep = createEndpoint({ host: '10.0.0.7', port: 8080, weight: 3, zone: 'eu-west-1a' });
 * ep.key; // '10.0.0.7:8080'
 * ```
 *
 * @category Endpoints
 */
export function createEndpoint(init: EndpointInit): Endpoint {
  try {
    return readEndpoint(init);
  } catch (err) {
    throw unreadable(err);
  }
}

/** A getter or `Proxy` trap that threw while an entry was read: the entry is invalid, with that error as `cause`. */
function unreadable(err: unknown): unknown {
  if (isSidecarlessError(err)) return err;
  return new InvalidEndpointError(`Endpoint could not be read: ${thrownMessage(err)}`, {
    cause: err,
  });
}

function readEndpoint(init: EndpointInit): Endpoint {
  if (typeof init !== 'object' || init === null) {
    throw new InvalidEndpointError(`Endpoint must be an object, got ${describe(init)}`);
  }
  const host = normalizeHost(init.host);
  const { port } = init;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidEndpointError(
      `Endpoint ${init.host} port must be an integer from 1 to 65535, got ${describe(port)}`,
    );
  }
  // `null` is refused as every option's is (common/options.ts nullOption), not taken as the default.
  const weight = init.weight === undefined ? 1 : init.weight;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > MAX_ENDPOINT_WEIGHT) {
    throw new InvalidEndpointError(
      `Endpoint ${init.host}:${port} weight must be a finite number in (0, ${MAX_ENDPOINT_WEIGHT}], got ${describe(weight)}`,
    );
  }
  const priority = init.priority === undefined ? 0 : init.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > MAX_ENDPOINT_PRIORITY) {
    throw new InvalidEndpointError(
      `Endpoint ${init.host}:${port} priority must be an integer from 0 to ${MAX_ENDPOINT_PRIORITY}, got ${describe(priority)}`,
    );
  }
  const { zone } = init;
  if (zone !== undefined && (typeof zone !== 'string' || zone.length === 0)) {
    throw new InvalidEndpointError(`Endpoint ${init.host}:${port} zone must be a non-empty string when given`);
  }
  let metadata: Record<string, string> = NO_METADATA;
  if (init.metadata !== undefined) {
    if (typeof init.metadata !== 'object' || init.metadata === null) {
      throw new InvalidEndpointError(`Endpoint ${init.host}:${port} metadata must be an object of strings`);
    }
    for (const [k, v] of Object.entries(init.metadata)) {
      if (typeof v !== 'string') {
        throw new InvalidEndpointError(
          `Endpoint ${init.host}:${port} metadata "${k}" must be a string, got ${describe(v)}`,
        );
      }
      if (metadata === NO_METADATA) metadata = {};
      // An own "__proto__" key (a Consul meta key may be named so) stays a key, rather than hitting the setter.
      if (k === '__proto__') Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true });
      else metadata[k] = v;
    }
  }
  const endpoint: Endpoint = Object.freeze({
    host,
    port,
    weight,
    priority,
    zone,
    metadata: metadata === NO_METADATA ? metadata : Object.freeze(metadata),
    key: endpointKey(host, port),
  });
  created.add(endpoint);
  return endpoint;
}

/** Every endpoint {@link createEndpoint} returned: frozen (and its metadata too), so valid for good. */
const created = new WeakSet<object>();

/**
 * True when `value` is an endpoint {@link createEndpoint} returned (not a copy of one): validating it again would
 * give an equal object. The built-in resolvers make theirs with it, so a set skips validating them twice.
 */
export function isCreatedEndpoint(value: unknown): value is Endpoint {
  return typeof value === 'object' && value !== null && created.has(value);
}

/**
 * Parses `host:port`, `[v6]:port` or (with `defaultPort`) a bare host. Throws {@link InvalidEndpointError}.
 *
 * @category Endpoints
 */
export function parseHostPort(
  text: string,
  defaultPort?: number,
): {
  /** The host as written, brackets of an IPv6 literal removed; not yet normalized or validated. */
  host: string;
  /** The port, or `defaultPort` when the text has none; digits only, not range-checked. */
  port: number;
} {
  if (typeof text !== 'string') throw new InvalidEndpointError(`Address must be a string, got ${describe(text)}`);
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new InvalidEndpointError(`Unclosed "[" in address ${JSON.stringify(text)}`);
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(':')) throw new InvalidEndpointError(`Unexpected text after "]" in ${JSON.stringify(text)}`);
      portText = rest.slice(1);
    }
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') !== colon) {
      // More than one colon without brackets: a bare IPv6 literal, no port.
      host = s;
    } else if (colon >= 0) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    } else {
      host = s;
    }
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw new InvalidEndpointError(`Address ${JSON.stringify(text)} has no port`);
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) {
      throw new InvalidEndpointError(`Address ${JSON.stringify(text)} has an invalid port ${JSON.stringify(portText)}`);
    }
    port = Number(portText);
  }
  return { host, port };
}

/**
 * Validates a whole endpoint set: each entry is turned into an {@link Endpoint} and keys must be unique
 * ({@link DuplicateEndpointError} otherwise). Strings are parsed as `host:port`; an endpoint {@link createEndpoint}
 * made is taken as it is (the same object).
 *
 * @category Endpoints
 */
export function createEndpointSet(entries: Iterable<EndpointInit | Endpoint | string>): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  try {
    if (typeof (entries as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function') {
      throw new InvalidEndpointError(`An endpoint set must be an iterable (an array), got ${describe(entries)}`);
    }
    for (const entry of entries) {
      // An endpoint createEndpoint made is frozen and valid for good: taken as it is, not parsed and copied again
      // (a resolver that hands the same objects back at every update keeps its update cost to what changed).
      const endpoint = isCreatedEndpoint(entry)
        ? entry
        : typeof entry === 'string'
          ? createEndpoint(parseHostPort(entry))
          : createEndpoint(entry);
      if (seen.has(endpoint.key)) throw new DuplicateEndpointError(endpoint.key);
      seen.add(endpoint.key);
      out.push(endpoint);
    }
  } catch (err) {
    throw unreadable(err);
  }
  return out;
}
