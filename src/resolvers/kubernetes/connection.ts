/**
 * The connection to the Kubernetes API server, shared: one per API server origin and TLS identity
 * (CA, client certificate and key, verification, server name), reference counted across every
 * {@link KubernetesResolver} in the process. A client with many services therefore talks to the API server over
 * one pool; it speaks HTTP/2 when the server offers it (the API server does), so every list and watch is a stream
 * on one TCP connection. Over HTTP/1.1 each open watch holds a connection of that pool. The bearer token is not part
 * of the identity: it is a header, read per request. The pool is destroyed when its last resolver closes.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { buildConnector, Client, type Dispatcher, Pool } from 'undici';
import type { ResolverTlsOptions } from '../options.js';
import type { ApiServerConfig } from './credentials.js';

interface Shared {
  /** The first connection, HTTP/2 when the server agrees (ALPN). */
  readonly client: Client;
  /** HTTP/1.1 connections, one per concurrent request, used once the first connection turned out to be HTTP/1.1. */
  pool: Pool | undefined;
  readonly origin: string;
  readonly poolOptions: Pool.Options;
  /** `probing` until the first response is over, then what the first connection speaks. */
  mode: 'probing' | 'h2' | 'h1';
  /** The ALPN protocol the first connection negotiated. */
  alpn: string | undefined;
  /** The first request in flight; the others wait for it. */
  first: Promise<unknown> | undefined;
  refs: number;
}

const shared = new Map<string, Shared>();

function digest(value: ResolverTlsOptions[keyof ResolverTlsOptions]): string {
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
    digest(tls.passphrase),
    String(tls.rejectUnauthorized ?? true),
    tls.servername ?? '',
  ].join('|');
}

/** A handle on a shared connection; {@link ApiConnection.release} once, when the resolver closes. */
export interface ApiConnection {
  readonly key: string;
  /**
   * Sends a request. The first one goes alone and tells what the server speaks: over HTTP/2 every later request is
   * a stream on that same connection; over HTTP/1.1 they go through a pool (an open watch holds a connection).
   */
  request(options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  release(): Promise<void>;
}

/** How many resolvers share each connection, and its protocol (for tests and diagnostics). @internal */
export function sharedConnections(): Map<string, { refs: number; mode: string }> {
  return new Map([...shared].map(([key, s]) => [key, { refs: s.refs, mode: s.mode }]));
}

function create(server: ApiServerConfig, headersTimeoutMs: number): Shared {
  const tls: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(server.tls)) if (value !== undefined) tls[field] = value;
  const options = { headersTimeout: headersTimeoutMs, bodyTimeout: 0 }; // watches are long-lived
  const https = server.origin.startsWith('https:');
  const connector = buildConnector({ ...tls, allowH2: https });
  const entry: Shared = {
    client: new Client(server.origin, {
      ...options,
      allowH2: https,
      // Streams at once on the HTTP/2 connection (undici's default stream limit); an HTTP/1.1 first connection
      // carries only the first request, so this never pipelines HTTP/1.1.
      pipelining: 100,
      connect: (opts, callback) =>
        connector(opts, (err, socket) => {
          if (err === null) entry.alpn = (socket as { alpnProtocol?: string | false }).alpnProtocol || undefined;
          callback(err, socket as never);
        }),
    }),
    pool: undefined,
    origin: server.origin,
    poolOptions: { ...options, connect: tls },
    mode: 'probing',
    alpn: undefined,
    first: undefined,
    refs: 0,
  };
  return entry;
}

/** Takes a reference on the shared connection for `server`, creating it if needed. */
export function acquireConnection(server: ApiServerConfig, headersTimeoutMs: number): ApiConnection {
  const key = connectionKey(server);
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = create(server, headersTimeoutMs);
    shared.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  const request = async (options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> => {
    const signal = options.signal as AbortSignal | undefined;
    while (held.mode === 'probing' && held.first !== undefined) {
      await Promise.race([held.first.catch(() => {}), aborted(signal)]);
      signal?.throwIfAborted();
    }
    if (held.mode === 'h1') {
      held.pool ??= new Pool(held.origin, held.poolOptions);
      return held.pool.request(options);
    }
    const sent = held.client.request(options);
    if (held.mode === 'probing') {
      // Over once the first response is: then the protocol is known and the connection free for more.
      const first = sent.then(
        (res) =>
          new Promise<void>((resolve) => {
            res.body.once('close', () => {
              held.mode = held.alpn === 'h2' ? 'h2' : 'h1';
              setImmediate(resolve);
            });
          }),
      );
      held.first = first;
      first
        .catch(() => {})
        .finally(() => {
          if (held.first === first) held.first = undefined;
        });
    }
    return sent;
  };
  return {
    key,
    request,
    release: async () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs > 0) return;
      if (shared.get(key) === held) shared.delete(key);
      await Promise.all([held.client.destroy().catch(() => {}), held.pool?.destroy().catch(() => {})]);
    },
  };
}

/** Resolves when `signal` aborts (never without one). */
function aborted(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => {});
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
