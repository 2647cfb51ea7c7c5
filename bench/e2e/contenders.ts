/**
 * The clients measured by the e2e benchmark, each as a {@link Send} function over the same backends: sidecarless
 * through its public API (the balanced dispatcher, the balanced fetch), and the peers: raw undici (one `Pool` per
 * backend, taken in turn by a counter: the least a client can do), undici `BalancedPool`, and a plain undici `Pool`
 * to a local sidecar proxy.
 *
 * Every contender reads the whole response body the same way for its API: `body.dump()` for `request`-style
 * dispatchers, `arrayBuffer()` for fetch. The fetch contenders both use the platform's `fetch` (Node's bundled
 * undici, which is what `client.fetch` calls) with an npm-undici dispatcher, so the ratio isolates sidecarless.
 *
 * @module
 */
import { BalancedPool, type Dispatcher, Pool } from 'undici';
import { type Client, type ClientOptions, createClient } from '../../src/index.js';
import type { Send, SendResult } from './load.js';

export interface Contender {
  readonly name: string;
  readonly send: Send;
  /** The sidecarless client, for the contenders that have one. */
  readonly client: Client | undefined;
  close(): Promise<void>;
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function viaRequest(d: Dispatcher, opts: Dispatcher.RequestOptions): Promise<SendResult> {
  const { statusCode, headers, body } = await d.request(opts);
  await body.dump();
  return { status: statusCode, backend: header(headers['x-backend']) };
}

async function viaFetch(res: Promise<Response>): Promise<SendResult> {
  const r = await res;
  await r.arrayBuffer();
  return { status: r.status, backend: r.headers.get('x-backend') ?? undefined };
}

const PATH = '/bench';

/** Raw undici `request`: one Pool per backend, in turn. */
export function rawRequest(addresses: readonly string[]): Contender {
  const pools = addresses.map((a) => new Pool(`http://${a}`));
  let i = 0;
  return {
    name: 'undici request (raw)',
    client: undefined,
    send: () => viaRequest(pools[i++ % pools.length] as Pool, { path: PATH, method: 'GET' }),
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

/** Raw `fetch`: the platform fetch with one undici Pool per backend as its dispatcher, in turn. */
export function rawFetch(addresses: readonly string[]): Contender {
  const pools = addresses.map((a) => new Pool(`http://${a}`));
  const urls = addresses.map((a) => `http://${a}${PATH}`);
  let i = 0;
  return {
    name: 'fetch (raw undici Pool)',
    client: undefined,
    send: () => {
      const k = i++ % pools.length;
      return viaFetch(fetch(urls[k] as string, { dispatcher: pools[k] } as unknown as RequestInit));
    },
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

/**
 * sidecarless `client.dispatcher` with `request`; `create` is another copy's `createClient` (a baseline for a
 * before/after in one run).
 */
export function balancedDispatcher(
  options: ClientOptions,
  name = 'sidecarless dispatcher',
  create: (options: ClientOptions) => Client = createClient,
): Contender {
  const client = create(options);
  const d = client.dispatcher;
  return {
    name,
    client,
    send: () => viaRequest(d, { origin: 'http://svc', path: PATH, method: 'GET' }),
    close: () => client.close(),
  };
}

/** sidecarless `client.fetch`; `create` as for {@link balancedDispatcher}. */
export function balancedFetch(
  options: ClientOptions,
  name = 'sidecarless fetch',
  create: (options: ClientOptions) => Client = createClient,
): Contender {
  const client = create(options);
  const url = `http://svc${PATH}`;
  return { name, client, send: () => viaFetch(client.fetch(url)), close: () => client.close() };
}

/** undici `BalancedPool` over the backends, with `request`. */
export function balancedPool(addresses: readonly string[]): Contender {
  const bp = new BalancedPool(addresses.map((a) => `http://${a}`));
  return {
    name: 'undici BalancedPool',
    client: undefined,
    send: () => viaRequest(bp, { path: PATH, method: 'GET' }),
    close: () => bp.close(),
  };
}

/** A plain undici Pool to a proxy (the sidecar), with `request`. */
export function viaProxy(address: string, name: string): Contender {
  const pool = new Pool(`http://${address}`);
  return {
    name,
    client: undefined,
    send: () => viaRequest(pool, { path: PATH, method: 'GET' }),
    close: () => pool.close(),
  };
}
