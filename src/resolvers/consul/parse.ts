/**
 * Parsing Consul's answers: the health API's entries to endpoints ({@link parseConsulHealth}) and Consul durations.
 * Pure functions: no I/O, no state. The mapping is described in `consul/resolver.ts`.
 *
 * @module
 */
import { createEndpoint, type Endpoint, MAX_ENDPOINT_WEIGHT } from '../../common/endpoint.js';
import { isRecord } from '../../common/options.js';
import { ConsulError } from '../errors.js';

/**
 * Which instances to balance to, by the worst status among their checks (node and service checks):
 * `passing` (all checks passing; sent to Consul as `passing=true`), `warning` (passing or warning; critical and
 * maintenance excluded), `any` (every registered instance).
 */
export type ConsulHealthFilter = 'passing' | 'warning' | 'any';

/** What {@link parseConsulHealth} needs besides the body. */
export interface ConsulParseOptions {
  /** @defaultValue 'passing' */
  readonly health?: ConsulHealthFilter | undefined;
  /** @defaultValue 'zone' */
  readonly zoneKey?: string | undefined;
  /** More entries than this are refused (a `limit` error) before any is read. @defaultValue unbounded */
  readonly maxEntries?: number | undefined;
}

/** The result of {@link parseConsulHealth}. */
export interface ConsulParseResult {
  /** The endpoint set, in Consul's order, keys unique. */
  readonly endpoints: Endpoint[];
  /** Entries of the wrong shape (or duplicates of an earlier `host:port`), skipped. */
  readonly skipped: number;
  /** Well-formed entries left out on purpose: filtered by health, or weight 0. */
  readonly excluded: number;
  /** Why the first skipped entry was skipped (e.g. an address no connection can be made to); `undefined` if none. */
  readonly firstProblem?: string | undefined;
}

type CheckStatus = 'passing' | 'warning' | 'critical';

function optionalString(value: unknown): string | undefined | null {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : null;
}

function stringMap(value: unknown): Record<string, string> | null {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) return null;
  for (const v of Object.values(value)) if (typeof v !== 'string') return null;
  // Consul allows a meta key named "__proto__": keep it (assigned, it would hit the setter and vanish).
  return value as Record<string, string>;
}

function worstStatus(checks: unknown): CheckStatus | null {
  if (checks === undefined || checks === null) return 'passing';
  if (!Array.isArray(checks)) return null;
  let worst: CheckStatus = 'passing';
  for (const check of checks) {
    if (!isRecord(check) || typeof check.Status !== 'string') return null;
    if (check.Status === 'passing') continue;
    if (check.Status === 'warning') worst = 'warning';
    else return 'critical'; // critical, maintenance, or anything unknown
  }
  return worst;
}

function weightOf(value: unknown): number | null {
  if (value === undefined || value === null) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return null;
  return Math.min(value, MAX_ENDPOINT_WEIGHT);
}

/** One entry to an endpoint; `null` for a malformed entry, `'excluded'` for one left out on purpose. */
function toEndpoint(
  entry: unknown,
  health: ConsulHealthFilter,
  zoneKey: string,
  seen: Set<string>,
  problems: string[],
): Endpoint | null | 'excluded' {
  if (!isRecord(entry) || !isRecord(entry.Node) || !isRecord(entry.Service)) return null;
  const node = entry.Node;
  const service = entry.Service;
  const status = worstStatus(entry.Checks);
  if (status === null) return null;
  const serviceAddress = optionalString(service.Address);
  const nodeAddress = optionalString(node.Address);
  const nodeName = optionalString(node.Node);
  const datacenter = optionalString(node.Datacenter);
  const serviceId = optionalString(service.ID);
  if (serviceAddress === null || nodeAddress === null || nodeName === null || datacenter === null) return null;
  if (serviceId === null) return null;
  const host = serviceAddress !== undefined && serviceAddress !== '' ? serviceAddress : nodeAddress;
  if (host === undefined || host === '') return null;
  const { Port: port } = service;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  const tags = service.Tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) return null;
  const meta = stringMap(service.Meta);
  const nodeMeta = stringMap(node.Meta);
  if (meta === null || nodeMeta === null) return null;
  let passingWeight: number | null = 1;
  let warningWeight: number | null = 1;
  if (service.Weights !== undefined && service.Weights !== null) {
    if (!isRecord(service.Weights)) return null;
    passingWeight = weightOf(service.Weights.Passing);
    warningWeight = weightOf(service.Weights.Warning);
  }
  if (passingWeight === null || warningWeight === null) return null;
  if (health === 'passing' && status !== 'passing') return 'excluded';
  if (health === 'warning' && status === 'critical') return 'excluded';
  const weight = status === 'passing' ? passingWeight : warningWeight;
  if (weight === 0) return 'excluded';
  const metadata: Record<string, string> = {};
  for (const tag of tags) metadata[`tag:${tag}`] = '';
  for (const [k, v] of Object.entries(meta)) metadata[`meta.${k}`] = v;
  if (serviceId !== undefined) metadata['consul.service-id'] = serviceId;
  if (nodeName !== undefined) metadata['consul.node'] = nodeName;
  if (datacenter !== undefined) metadata['consul.datacenter'] = datacenter;
  metadata['consul.health'] = status;
  const zone = meta[zoneKey] || nodeMeta[zoneKey] || undefined;
  let endpoint: Endpoint;
  try {
    endpoint = createEndpoint({ host, port, weight, zone, metadata });
  } catch (err) {
    // A registry entry that could never be connected to (e.g. Service.Address "999.1.1.1"): skipped, reported.
    problems.push(`${serviceId ?? host}: ${(err as Error).message}`);
    return null;
  }
  if (seen.has(endpoint.key)) {
    problems.push(`${serviceId ?? host}: repeats ${endpoint.key}`);
    return null;
  }
  seen.add(endpoint.key);
  return endpoint;
}

/**
 * Parses the body of `GET /v1/health/service/:name` into an endpoint set. Pure: no I/O, no state. Throws
 * {@link ConsulError} (`bad-response`) when the body is not a JSON array, or when it has entries and every one is
 * malformed; otherwise malformed entries are skipped and counted.
 *
 * @example
 * ```ts
 * const { endpoints } = parseConsulHealth(body, { health: 'warning', zoneKey: 'az' });
 * ```
 */
export function parseConsulHealth(body: string, options: ConsulParseOptions = {}): ConsulParseResult {
  const health = options.health ?? 'passing';
  const zoneKey = options.zoneKey ?? 'zone';
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    throw new ConsulError('bad-response', 'Consul answered with a body that is not valid JSON', { cause: err });
  }
  if (!Array.isArray(parsed)) {
    throw new ConsulError('bad-response', `Consul answered with JSON ${describeJson(parsed)} instead of an array`);
  }
  const max = options.maxEntries ?? Number.POSITIVE_INFINITY;
  if (parsed.length > max) {
    throw new ConsulError('limit', `Consul answered with ${parsed.length} entries, more than maxEndpoints (${max})`);
  }
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  let excluded = 0;
  const problems: string[] = [];
  for (const entry of parsed) {
    const result = toEndpoint(entry, health, zoneKey, seen, problems);
    if (result === null) {
      skipped++;
      if (problems.length < skipped) problems.push('an entry of the wrong shape');
    } else if (result === 'excluded') excluded++;
    else endpoints.push(result);
  }
  if (parsed.length > 0 && skipped === parsed.length) {
    throw new ConsulError(
      'bad-response',
      `Consul answered with ${skipped} entries, none usable (first: ${problems[0] ?? 'wrong shape'})`,
    );
  }
  return { endpoints, skipped, excluded, firstProblem: problems[0] };
}

function describeJson(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/**
 * Parses a Consul duration (`300ms`, `30s`, `5m`, `1h`; a bare number is seconds) into ms. Returns `undefined`
 * for anything else.
 */
export function parseConsulDuration(text: string): number | undefined {
  const match = /^(\d{1,9})(ms|s|m|h)?$/.exec(text);
  if (match === null) return undefined;
  const n = Number(match[1]);
  switch (match[2]) {
    case 'ms':
      return n;
    case 'm':
      return n * 60_000;
    case 'h':
      return n * 3_600_000;
    default:
      return n * 1000;
  }
}

/** Formats ms as a Consul duration (`30s`, `300ms`). */
export function formatConsulDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
