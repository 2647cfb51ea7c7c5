/**
 * The connection to the Kubernetes API server, shared: one undici `Pool` per API server origin and TLS identity
 * (CA, client certificate and key, verification, server name), reference counted across every
 * {@link KubernetesResolver} in the process. A client with many services therefore talks to the API server over
 * one pool; it speaks HTTP/2 when the server offers it (the API server does), so every list and watch is a stream
 * on one TCP connection. Over HTTP/1.1 each open watch holds a connection of that pool. The bearer token is not part
 * of the identity: it is a header, read per request. The pool is destroyed when its last resolver closes.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { ApiServerConfig, ApiTls } from './credentials.js';

interface Shared {
  readonly pool: Pool;
  refs: number;
}

const shared = new Map<string, Shared>();

function digest(value: ApiTls[keyof ApiTls]): string {
  if (value === undefined) return '-';
  const parts = Array.isArray(value) ? value : [value];
  const hash = createHash('sha256');
  for (const part of parts as Array<string | Buffer>) hash.update(part).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** The identity a pool is shared by: origin and TLS material (hashed), never the token. */
export function connectionKey(server: ApiServerConfig): string {
  const { tls } = server;
  return [
    server.origin,
    digest(tls.ca),
    digest(tls.cert),
    digest(tls.key),
    String(tls.rejectUnauthorized ?? true),
    tls.servername ?? '',
  ].join('|');
}

/** A handle on a shared pool; {@link ApiConnection.release} once, when the resolver closes. */
export interface ApiConnection {
  readonly pool: Pool;
  readonly key: string;
  release(): Promise<void>;
}

/** How many resolvers share each pool (for tests and diagnostics). @internal */
export function sharedConnectionCounts(): Map<string, number> {
  return new Map([...shared].map(([key, s]) => [key, s.refs]));
}

/** Takes a reference on the pool for `server`, creating it if needed. */
export function acquireConnection(server: ApiServerConfig, headersTimeoutMs: number): ApiConnection {
  const key = connectionKey(server);
  let entry = shared.get(key);
  if (entry === undefined) {
    const { tls } = server;
    const connect: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(tls)) if (value !== undefined) connect[field] = value;
    entry = {
      pool: new Pool(server.origin, {
        allowH2: true,
        headersTimeout: headersTimeoutMs,
        bodyTimeout: 0, // watches are long-lived; list bodies are bounded by the resolver's own timer
        connect,
      }),
      refs: 0,
    };
    shared.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    pool: held.pool,
    key,
    release: async () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs > 0) return;
      if (shared.get(key) === held) shared.delete(key);
      await held.pool.destroy().catch(() => {});
    },
  };
}
