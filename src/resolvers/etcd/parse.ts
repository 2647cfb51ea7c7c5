/**
 * Parsing etcd's JSON gateway answers (`/v3/kv/range`, `/v3/watch` lines, error bodies) and the stored endpoint
 * values. Pure functions: no I/O, no state. The value format is described in `etcd/resolver.ts`.
 *
 * @module
 */
import { createEndpoint, type Endpoint, parseHostPort } from '../../common/endpoint.js';
import { isRecord } from '../../common/options.js';
import { EtcdError } from '../errors.js';

/** One key-value pair from a range response or a watch event. */
export interface EtcdKeyValue {
  /** The key, decoded as UTF-8 (for metadata and messages: two keys that are not UTF-8 may decode alike). */
  readonly key: string;
  /**
   * The key's bytes, one character each (latin1): what tells keys apart, losslessly, and sorts them in byte order
   * with a plain string comparison.
   */
  readonly id: string;
  /** The raw value bytes (empty for DELETE events). */
  readonly value: Buffer;
  /** The revision of the last change to this key (0 when absent). */
  readonly modRevision: number;
}

/** A parsed `/v3/kv/range` response. */
export interface EtcdRangeResult {
  /** The store revision the listing reflects. */
  readonly revision: number;
  readonly kvs: readonly EtcdKeyValue[];
}

/** A parsed watch event. */
export interface EtcdWatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: EtcdKeyValue;
}

/** One parsed line of the `/v3/watch` stream. */
export type EtcdWatchMessage =
  | { readonly kind: 'created'; readonly revision: number }
  | { readonly kind: 'events'; readonly revision: number; readonly events: readonly EtcdWatchEvent[] }
  | { readonly kind: 'compacted'; readonly compactRevision: number }
  | { readonly kind: 'canceled'; readonly reason: string }
  | { readonly kind: 'progress'; readonly revision: number };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const INT64 = /^\d{1,16}$/;

/** A `bad-response` {@link EtcdError}. @internal */
export function bad(message: string, cause?: unknown): EtcdError {
  return new EtcdError('bad-response', message, cause === undefined ? undefined : { cause });
}

/** int64 fields arrive as JSON strings (grpc-gateway); absent means 0 (proto3 default). */
function revisionOf(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && INT64.test(value)) return Number(value);
  throw bad(`etcd field ${field} is not a revision`);
}

function bytesOf(value: unknown, field: string): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw bad(`etcd field ${field} is not base64`);
  }
  return Buffer.from(value, 'base64');
}

function keyValueOf(value: unknown): EtcdKeyValue {
  if (!isRecord(value)) throw bad('etcd key-value is not an object');
  const key = bytesOf(value.key, 'kv.key');
  if (key.length === 0) throw bad('etcd key-value has no key');
  return {
    key: key.toString('utf8'),
    id: key.toString('latin1'),
    value: bytesOf(value.value, 'kv.value'),
    modRevision: revisionOf(value.mod_revision, 'kv.mod_revision'),
  };
}

/** Parses JSON, failing with a `bad-response` {@link EtcdError} naming `what`. @internal */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw bad(`etcd ${what} is not valid JSON`, err);
  }
}

/** A gateway error object (`{"error": ..., "code": n, "message": ...}`) as an {@link EtcdError}. */
function gatewayError(body: Record<string, unknown>): EtcdError | undefined {
  const error = body.error;
  if (error === undefined) return undefined;
  const detail = isRecord(error) ? error.message : (body.message ?? error);
  const text = typeof detail === 'string' ? detail.slice(0, 200) : 'unknown error';
  return new EtcdError('server-error', `etcd reported an error: ${JSON.stringify(text)}`);
}

/**
 * Parses a `/v3/kv/range` response body. Pure. Throws {@link EtcdError} (`bad-response` or `server-error`) when the
 * body is not the expected JSON.
 */
export function parseEtcdRange(body: string): EtcdRangeResult {
  const parsed = parseJson(body, 'range response');
  if (!isRecord(parsed)) throw bad('etcd range response is not an object');
  const error = gatewayError(parsed);
  if (error !== undefined) throw error;
  if (!isRecord(parsed.header)) throw bad('etcd range response has no header');
  const revision = revisionOf(parsed.header.revision, 'header.revision');
  const kvs = parsed.kvs ?? [];
  if (!Array.isArray(kvs)) throw bad('etcd range response kvs is not an array');
  return { revision, kvs: kvs.map(keyValueOf) };
}

/**
 * Parses one line of the `/v3/watch` stream (`{"result": {...}}` or `{"error": {...}}`). Pure. Throws
 * {@link EtcdError}: `server-error` for an error message, `bad-response` for anything malformed.
 */
export function parseEtcdWatchLine(line: string): EtcdWatchMessage {
  const parsed = parseJson(line, 'watch message');
  if (!isRecord(parsed)) throw bad('etcd watch message is not an object');
  const error = gatewayError(parsed);
  if (error !== undefined) throw error;
  const result = parsed.result;
  if (!isRecord(result)) throw bad('etcd watch message has no result');
  const header = result.header;
  if (header !== undefined && !isRecord(header)) throw bad('etcd watch header is not an object');
  const revision = revisionOf(header?.revision, 'header.revision');
  // Only a compact revision says the watch's start was compacted: etcd also cancels a watch it refuses (an expired
  // token, a missing permission), with compact_revision 0 and the reason in cancel_reason.
  const compactRevision = revisionOf(result.compact_revision, 'compact_revision');
  if (compactRevision > 0) return { kind: 'compacted', compactRevision };
  if (result.canceled === true) {
    const reason = typeof result.cancel_reason === 'string' ? result.cancel_reason.slice(0, 200) : '';
    return { kind: 'canceled', reason };
  }
  if (result.created === true) return { kind: 'created', revision };
  const events = result.events;
  if (events === undefined || events === null) return { kind: 'progress', revision };
  if (!Array.isArray(events)) throw bad('etcd watch events is not an array');
  return {
    kind: 'events',
    revision,
    events: events.map((event): EtcdWatchEvent => {
      if (!isRecord(event)) throw bad('etcd watch event is not an object');
      const type = event.type ?? 'PUT'; // proto3 omits the default enum value, PUT
      if (type !== 'PUT' && type !== 'DELETE') throw bad('etcd watch event has an unknown type');
      return { type, kv: keyValueOf(event.kv) };
    }),
  };
}

/**
 * Parses one stored value (see the module documentation for the format) into an endpoint whose metadata includes
 * `etcd.key`. Pure. Throws {@link EtcdError} (`bad-response`) for a malformed value.
 *
 * @example
 * ```ts
 * parseEtcdEndpoint('/services/users/a', Buffer.from('{"host":"10.0.0.1","port":8080,"weight":2}'));
 * parseEtcdEndpoint('/services/users/b', Buffer.from('10.0.0.2:8080'));
 * ```
 */
export function parseEtcdEndpoint(key: string, value: Buffer | string, maxValueBytes = 65_536): Endpoint {
  const size = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  if (size > maxValueBytes) throw bad(`etcd value at ${JSON.stringify(key)} is larger than ${maxValueBytes} bytes`);
  const text = (typeof value === 'string' ? value : value.toString('utf8')).trim();
  try {
    if (text.startsWith('{')) {
      const parsed = parseJson(text, 'value');
      if (!isRecord(parsed)) throw bad('not an object');
      const { host, port, weight, priority, zone, metadata } = parsed;
      if (metadata !== undefined && metadata !== null && !isRecord(metadata)) throw bad('metadata is not an object');
      return createEndpoint({
        host: host as string,
        port: port as number,
        weight: (weight ?? undefined) as number | undefined,
        priority: (priority ?? undefined) as number | undefined,
        zone: (zone ?? undefined) as string | undefined,
        metadata: { ...((metadata ?? {}) as Record<string, string>), 'etcd.key': key },
      });
    }
    if (text.length === 0 || /\s/.test(text)) throw bad('expected a JSON object or host:port');
    return createEndpoint({ ...parseHostPort(text), metadata: { 'etcd.key': key } });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw bad(`etcd value at ${JSON.stringify(key)} is not a valid endpoint: ${detail}`, err);
  }
}

/** The exclusive end of the range of keys that start with `prefix` (etcd's `clientv3.GetPrefixRangeEnd`). */
export function etcdPrefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

/**
 * What an etcd error says about auth: `not-enabled` (credentials were given but etcd auth is off: go on without a
 * token, as etcd's Go client does), `token` (the token is missing, expired or older than the auth store: a new login
 * fixes it), `denied` (bad credentials or a missing permission: a new login does not). @internal
 */
export type EtcdAuthFault = 'not-enabled' | 'token' | 'denied';

// etcd's own messages (its rpctypes), matched because its gateway's statuses do not tell the faults apart: failed
// authentication and an empty user name are 400 (InvalidArgument), "not enabled" 412 (FailedPrecondition, 400 on
// newer gateways), a bad token 401, a missing permission 403; a refused watch carries the same text in cancel_reason.
const AUTH_FAULTS: ReadonlyArray<readonly [RegExp, EtcdAuthFault]> = [
  [/authentication is not enabled/i, 'not-enabled'],
  [/invalid auth token|auth revision is old|user name is empty/i, 'token'],
  [/authentication failed|permission denied/i, 'denied'],
];

/** The auth fault an etcd message names, if any. @internal */
export function etcdAuthFault(message: string): EtcdAuthFault | undefined {
  for (const [pattern, fault] of AUTH_FAULTS) if (pattern.test(message)) return fault;
  return undefined;
}

const faults = new WeakMap<EtcdError, EtcdAuthFault>();

/** The auth fault behind an error made here (a non-200 answer, a refused watch), if any. @internal */
export function authFaultOf(error: unknown): EtcdAuthFault | undefined {
  return error instanceof EtcdError ? faults.get(error) : undefined;
}

function withFault(error: EtcdError, fault: EtcdAuthFault | undefined): EtcdError {
  if (fault !== undefined) faults.set(error, fault);
  return error;
}

/** The {@link EtcdError} for a non-200 answer: `forbidden` for auth failures, else `http-status`. @internal */
export function statusError(status: number, body: string): EtcdError {
  let detail = '';
  let fault: EtcdAuthFault | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed)) {
      const message = isRecord(parsed.error) ? parsed.error.message : (parsed.message ?? parsed.error);
      if (typeof message === 'string') {
        detail = `: ${JSON.stringify(message.slice(0, 200))}`;
        fault = etcdAuthFault(message);
      }
    }
  } catch {
    // not JSON: no detail
  }
  // The gateway maps only Unauthenticated (a bad token) to 401.
  fault ??= status === 401 ? 'token' : undefined;
  const reason = status === 403 || fault !== undefined ? 'forbidden' : 'http-status';
  return withFault(new EtcdError(reason, `etcd answered HTTP ${status}${detail}`, { status }), fault);
}

/**
 * The {@link EtcdError} for a watch etcd cancelled for a reason other than compaction: `forbidden` when the reason
 * is an auth one, else `server-error`. @internal
 */
export function watchCanceledError(reason: string): EtcdError {
  const fault = etcdAuthFault(reason);
  const why = reason.length > 0 ? `: ${JSON.stringify(reason)}` : ' without a reason';
  return withFault(
    new EtcdError(fault === undefined ? 'server-error' : 'forbidden', `etcd cancelled the watch${why}`),
    fault,
  );
}
