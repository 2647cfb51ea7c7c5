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
  | { readonly kind: 'canceled'; readonly compactRevision: number; readonly reason: string }
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
  if (result.canceled === true) {
    const reason = typeof result.cancel_reason === 'string' ? result.cancel_reason.slice(0, 200) : '';
    return { kind: 'canceled', compactRevision: revisionOf(result.compact_revision, 'compact_revision'), reason };
  }
  if (result.compact_revision !== undefined && revisionOf(result.compact_revision, 'compact_revision') > 0) {
    return { kind: 'canceled', compactRevision: revisionOf(result.compact_revision, 'compact_revision'), reason: '' };
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

// etcd's gateway answers failed authentication with HTTP 400 (gRPC InvalidArgument), not 401: tell auth failures
// apart by etcd's own messages so they surface as `forbidden`, like a permission error (403).
const AUTH_FAILURE =
  /authentication failed|user name is empty|invalid auth token|permission denied|auth is not enabled/i;

/** The {@link EtcdError} for a non-200 answer: `forbidden` for auth failures, else `http-status`. @internal */
export function statusError(status: number, body: string): EtcdError {
  let detail = '';
  let authFailure = false;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed)) {
      const message = isRecord(parsed.error) ? parsed.error.message : (parsed.message ?? parsed.error);
      if (typeof message === 'string') {
        detail = `: ${JSON.stringify(message.slice(0, 200))}`;
        authFailure = AUTH_FAILURE.test(message);
      }
    }
  } catch {
    // not JSON: no detail
  }
  const reason = status === 401 || status === 403 || authFailure ? 'forbidden' : 'http-status';
  return new EtcdError(reason, `etcd answered HTTP ${status}${detail}`, { status });
}
