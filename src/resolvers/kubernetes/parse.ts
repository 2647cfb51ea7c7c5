/**
 * Parsing the Kubernetes API's answers for `discovery.k8s.io/v1` EndpointSlices (a list, the lines of a watch
 * stream, a `Status`) and turning a service's slices into one endpoint set. Pure functions: no I/O, no state.
 *
 * Field meanings follow the API reference (EndpointSlice v1, discovery.k8s.io):
 * - `addressType` is `IPv4`, `IPv6` or `FQDN`; each endpoint's `addresses` are fungible and only the first is used;
 * - `conditions.ready` unset means ready ("an unknown state should be interpreted as ready"); `serving` unset
 *   means the same as `ready`; `terminating` unset means false;
 * - `ports[].port` unset means "all ports" and such a port cannot be used here; `ports[].name` may be empty;
 * - `hints.forZones` lists the zones that should consume the endpoint (topology-aware routing).
 *
 * @module
 */
import { isIP } from 'node:net';
import { createEndpoint, type Endpoint, endpointHostProblem } from '../../common/endpoint.js';
import { isRecord } from '../../common/options.js';
import { KubernetesError } from '../errors.js';

/** One port of a slice. */
export interface SlicePort {
  /** `''` when the port has no name. */
  readonly name: string;
  readonly port: number;
}

/** One endpoint of a slice, its conditions made explicit. */
export interface SliceEndpoint {
  readonly address: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zone: string | undefined;
  readonly nodeName: string | undefined;
  /** The pod (`targetRef.name`), when the slice names it. */
  readonly pod: string | undefined;
  /** `hints.forZones[].name`, or `undefined` when the endpoint has no hints. */
  readonly forZones: readonly string[] | undefined;
  /**
   * Why no connection can be made to `address` (`999.1.1.1`, `0.0.0.0`, a multicast address, an IPv6 zone index), or
   * `undefined` when it is usable. Such an endpoint is skipped: it is never part of a built set.
   */
  readonly problem: string | undefined;
}

/** A parsed EndpointSlice. */
export interface EndpointSlice {
  readonly name: string;
  readonly resourceVersion: string;
  readonly ports: readonly SlicePort[];
  readonly endpoints: readonly SliceEndpoint[];
}

/** A parsed list answer: the collection's resourceVersion, the raw items, and the continue token. */
export interface SliceList {
  readonly resourceVersion: string;
  readonly items: readonly unknown[];
  /** `metadata.continue`: more items follow (chunked list); `''` when this is the last chunk. */
  readonly continueToken: string;
}

/** A `Status` object (`kind: Status`), as the API answers errors. */
export interface KubernetesStatus {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
}

/** One parsed line of a watch stream. */
export type WatchEvent =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: unknown; readonly name: string | undefined }
  | { readonly type: 'BOOKMARK'; readonly resourceVersion: string }
  | { readonly type: 'ERROR'; readonly status: KubernetesStatus };

/** How the caller picks a port: by name, by number, or (`undefined`) the slice's only port. */
export type PortSpec = string | number | undefined;

/** A `bad-response` {@link KubernetesError}. @internal */
export function bad(message: string, cause?: unknown): KubernetesError {
  return new KubernetesError('bad-response', message, cause === undefined ? undefined : { cause });
}

/** Parses JSON, failing with a `bad-response` {@link KubernetesError} naming `what`. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw bad(`Kubernetes ${what} is not valid JSON`, err);
  }
}

/** Parses a list answer (`EndpointSliceList`). Throws a `bad-response` error for another shape. */
export function parseSliceList(text: string): SliceList {
  const value = parseJson(text, 'list answer');
  if (!isRecord(value) || !isRecord(value.metadata) || !Array.isArray(value.items)) {
    throw bad('Kubernetes list answer has no metadata or items');
  }
  const { resourceVersion } = value.metadata;
  if (typeof resourceVersion !== 'string' || resourceVersion.length === 0) {
    throw bad('Kubernetes list answer has no metadata.resourceVersion');
  }
  const next = value.metadata.continue;
  return { resourceVersion, items: value.items, continueToken: typeof next === 'string' ? next : '' };
}

/** The `Status` in `value`, when it is one (or looks enough like one to report). */
export function parseStatus(value: unknown): KubernetesStatus | undefined {
  if (!isRecord(value)) return undefined;
  if (value.kind !== 'Status' && typeof value.code !== 'number') return undefined;
  return {
    code: typeof value.code === 'number' ? value.code : 0,
    reason: typeof value.reason === 'string' ? value.reason : '',
    message: typeof value.message === 'string' ? value.message.slice(0, 300) : '',
  };
}

/** `metadata.name` of an object, when it is a non-empty string. */
export function objectName(value: unknown): string | undefined {
  if (!isRecord(value) || !isRecord(value.metadata)) return undefined;
  const { name } = value.metadata;
  return typeof name === 'string' && name.length > 0 ? name : undefined;
}

/**
 * Parses one line of a watch stream (`{"type": ..., "object": ...}`). Throws a `bad-response` error when the line
 * is not JSON or not an event; an event whose object is malformed is returned as is (the object is checked by
 * {@link parseSlice}, so that one bad object is skipped rather than ending the watch).
 */
export function parseWatchLine(line: string): WatchEvent {
  const value = parseJson(line, 'watch event');
  if (!isRecord(value) || typeof value.type !== 'string') throw bad('Kubernetes watch event has no type');
  const { type, object } = value;
  switch (type) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
      return { type, object, name: objectName(object) };
    case 'BOOKMARK': {
      const rv = isRecord(object) && isRecord(object.metadata) ? object.metadata.resourceVersion : undefined;
      if (typeof rv !== 'string' || rv.length === 0) throw bad('Kubernetes watch bookmark has no resourceVersion');
      return { type, resourceVersion: rv };
    }
    case 'ERROR':
      return { type, status: parseStatus(object) ?? { code: 0, reason: '', message: 'malformed ERROR event' } };
    default:
      throw bad(`Kubernetes watch event has an unknown type ${JSON.stringify(type.slice(0, 40))}`);
  }
}

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw bad(`EndpointSlice field ${field} is not a boolean`);
  return value;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw bad(`EndpointSlice field ${field} is not a string`);
  return value;
}

function parsePort(value: unknown): SlicePort | undefined {
  if (!isRecord(value)) throw bad('EndpointSlice port is not an object');
  const name = optionalString(value.name, 'ports[].name') ?? '';
  if (value.port === undefined || value.port === null) return undefined; // "all ports": not usable here
  const { port } = value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad('EndpointSlice ports[].port is not a port number');
  }
  if (value.protocol !== undefined && value.protocol !== null && value.protocol !== 'TCP') return undefined;
  return { name, port };
}

function parseSliceEndpoint(value: unknown, addressType: AddressType): SliceEndpoint {
  if (!isRecord(value)) throw bad('EndpointSlice endpoint is not an object');
  const { addresses } = value;
  if (!Array.isArray(addresses) || addresses.length === 0 || typeof addresses[0] !== 'string') {
    throw bad('EndpointSlice endpoint has no addresses');
  }
  const conditions = value.conditions ?? {};
  if (!isRecord(conditions)) throw bad('EndpointSlice endpoint conditions is not an object');
  const ready = optionalBoolean(conditions.ready, 'conditions.ready') ?? true;
  const serving = optionalBoolean(conditions.serving, 'conditions.serving') ?? ready;
  const terminating = optionalBoolean(conditions.terminating, 'conditions.terminating') ?? false;
  let forZones: string[] | undefined;
  if (value.hints !== undefined && value.hints !== null) {
    if (!isRecord(value.hints)) throw bad('EndpointSlice endpoint hints is not an object');
    const zones = value.hints.forZones;
    if (zones !== undefined && zones !== null) {
      if (!Array.isArray(zones)) throw bad('EndpointSlice hints.forZones is not an array');
      forZones = zones.map((z) => {
        if (!isRecord(z) || typeof z.name !== 'string') throw bad('EndpointSlice hints.forZones[].name is missing');
        return z.name;
      });
    }
  }
  const targetRef = isRecord(value.targetRef) ? value.targetRef : undefined;
  return {
    address: addresses[0],
    ready,
    serving,
    terminating,
    zone: optionalString(value.zone, 'zone'),
    nodeName: optionalString(value.nodeName, 'nodeName'),
    pod: targetRef?.kind === 'Pod' ? optionalString(targetRef.name, 'targetRef.name') : undefined,
    forZones,
    problem: endpointHostProblem(addresses[0]) ?? addressTypeProblem(addresses[0], addressType),
  };
}

/** An EndpointSlice's `addressType`: what every address of the slice is. */
type AddressType = 'IPv4' | 'IPv6' | 'FQDN';

/**
 * Why `address` (a host endpointHostProblem accepted) cannot be an address of a slice of `addressType`: an `IPv4`
 * slice holds IPv4 literals only, an `IPv6` slice IPv6 literals, an `FQDN` slice names. The API server enforces
 * this; one that does not (or a proxy in between) would otherwise have a name resolved, wherever the system's
 * resolver sends it, where the slice promised an address (probe 20).
 */
function addressTypeProblem(address: string, addressType: AddressType): string | undefined {
  const family = isIP(address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address);
  const expected = addressType === 'IPv4' ? 4 : addressType === 'IPv6' ? 6 : 0;
  if (family === expected) return undefined;
  return `address ${JSON.stringify(address)} is not ${addressType === 'FQDN' ? 'a name' : `an ${addressType} address`} (the slice's addressType is ${addressType})`;
}

/** Parses one EndpointSlice object. Throws a `bad-response` error naming what is wrong. */
export function parseSlice(value: unknown): EndpointSlice {
  if (!isRecord(value) || !isRecord(value.metadata)) throw bad('EndpointSlice has no metadata');
  const name = objectName(value);
  if (name === undefined) throw bad('EndpointSlice has no metadata.name');
  const rv = value.metadata.resourceVersion;
  const { addressType } = value;
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    throw bad(`EndpointSlice ${name} has an unknown addressType`);
  }
  const ports = value.ports ?? [];
  const endpoints = value.endpoints ?? [];
  if (!Array.isArray(ports) || !Array.isArray(endpoints))
    throw bad(`EndpointSlice ${name} ports or endpoints malformed`);
  return {
    name,
    resourceVersion: typeof rv === 'string' ? rv : '',
    ports: ports.map(parsePort).filter((p): p is SlicePort => p !== undefined),
    endpoints: endpoints.map((e) => parseSliceEndpoint(e, addressType)),
  };
}

/** The port number `spec` names in `slice`, or `undefined` when the slice has none that fits. */
export function slicePort(slice: EndpointSlice, spec: PortSpec): number | undefined {
  if (typeof spec === 'number') return spec;
  if (spec === undefined) return slice.ports.length === 1 ? (slice.ports[0] as SlicePort).port : undefined;
  return slice.ports.find((p) => p.name === spec)?.port;
}

/** What {@link buildEndpoints} returns besides the set. */
export interface BuiltSet {
  readonly endpoints: Endpoint[];
  /** `ready` (ready endpoints), `terminating` (no ready one: serving terminating ones used), or `empty`. */
  readonly state: 'ready' | 'terminating' | 'empty';
  /** Whether `hints.forZones` narrowed the set to the caller's zone. */
  readonly hinted: boolean;
  /**
   * Endpoints that would serve (ready, or serving and terminating) but were left out because they could not become
   * an {@link Endpoint}: an unusable address (see {@link SliceEndpoint.problem}), e.g. a bad FQDN.
   */
  readonly invalid: number;
}

interface Candidate {
  readonly slice: EndpointSlice;
  readonly endpoint: SliceEndpoint;
  readonly port: number;
}

/**
 * Merges a service's slices into one endpoint set, as kube-proxy chooses endpoints:
 * 1. ready endpoints (ready and not terminating) serve;
 * 2. when there is none, serving terminating endpoints are used rather than none;
 * 3. when `zone` is known and every chosen endpoint carries `hints.forZones`, and some are meant for `zone`, only
 *    those are kept (topology-aware routing); otherwise the hints are ignored.
 *
 * Endpoints whose address no connection can be made to ({@link SliceEndpoint.problem}) are left out before choosing
 * (and counted in `invalid` when they would have served). Slices are merged in name order; an address:port present
 * in two slices is kept once (the first). Each endpoint
 * keeps its `zone` (for zone-aware routing) and gets the metadata `kubernetes.pod`, `kubernetes.node` (when known),
 * `kubernetes.slice` and `kubernetes.state` (`ready` or `terminating`).
 */
export function buildEndpoints(
  slices: ReadonlyMap<string, EndpointSlice>,
  port: PortSpec,
  zone: string | undefined,
): BuiltSet {
  const ready: Candidate[] = [];
  const fallback: Candidate[] = [];
  let invalid = 0;
  for (const name of [...slices.keys()].sort()) {
    const slice = slices.get(name) as EndpointSlice;
    const number = slicePort(slice, port);
    if (number === undefined) continue;
    for (const endpoint of slice.endpoints) {
      const serves = endpoint.ready && !endpoint.terminating;
      const fallsBack = endpoint.serving && endpoint.terminating;
      if (endpoint.problem !== undefined) {
        if (serves || fallsBack) invalid++;
      } else if (serves) ready.push({ slice, endpoint, port: number });
      else if (fallsBack) fallback.push({ slice, endpoint, port: number });
    }
  }
  const state = ready.length > 0 ? 'ready' : fallback.length > 0 ? 'terminating' : 'empty';
  let chosen = ready.length > 0 ? ready : fallback;
  let hinted = false;
  if (zone !== undefined && chosen.length > 0 && chosen.every((c) => c.endpoint.forZones !== undefined)) {
    const local = chosen.filter((c) => c.endpoint.forZones?.includes(zone) === true);
    if (local.length > 0) {
      chosen = local;
      hinted = true;
    }
  }
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  for (const { slice, endpoint, port: number } of chosen) {
    const metadata: Record<string, string> = {
      'kubernetes.slice': slice.name,
      'kubernetes.state': endpoint.terminating ? 'terminating' : 'ready',
    };
    if (endpoint.pod !== undefined) metadata['kubernetes.pod'] = endpoint.pod;
    if (endpoint.nodeName !== undefined) metadata['kubernetes.node'] = endpoint.nodeName;
    let created: Endpoint;
    try {
      created = createEndpoint({ host: endpoint.address, port: number, zone: endpoint.zone, metadata });
    } catch {
      invalid++;
      continue;
    }
    if (seen.has(created.key)) continue;
    seen.add(created.key);
    endpoints.push(created);
  }
  return { endpoints, state, hinted, invalid };
}
