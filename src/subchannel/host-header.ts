/**
 * The `Host` an endpoint's HTTP/1.1 connections send by default, set once per connection pool instead of once per
 * request (issue 14).
 *
 * An attempt sends the logical service name as `Host` (`users`, not the endpoint's `10.0.0.7:8080`). Adding it to
 * each request costs a copy of the caller's options and of its headers, and undici's `Request` then parses the
 * header again. undici 7's HTTP/1.1 `Client` writes the string it keeps under an internal symbol (described
 * `'host header'`, set by its constructor from its URL: `host: 10.0.0.7:8080\r\n`) for every request that carries no
 * Host of its own. A subchannel's `Pool` gets a `factory` that makes each `Client` with that string replaced by
 * `host: <authority>\r\n`, so an attempt hands undici the caller's options object as it is, and a caller's own Host
 * header still wins (undici writes `request.host` when the request has one).
 *
 * Why relying on an internal symbol is acceptable here: sidecarless runs on its own undici 7 (a dependency with a
 * fixed major), not on the application's undici, and the symbol is looked for once, at load, on a throwaway `Client`
 * (no socket is opened). When it is not found (another undici build), {@link HOST_HEADER} is `undefined` and every
 * attempt adds its Host header to a copy of the options, as before (cluster.ts `#send`). HTTP/2 (`:authority` comes
 * from the request's Host or the origin) and TLS clusters (the SNI name follows the Host) always take the copy.
 *
 * @module
 */
import { Client, type Dispatcher, type Pool } from 'undici';

/** Finds the symbol under which an undici `Client` keeps its default Host line; `undefined` when there is none. */
export function findHostHeaderSymbol(client: object): symbol | undefined {
  for (const symbol of Object.getOwnPropertySymbols(client)) {
    const value = (client as Record<symbol, unknown>)[symbol];
    if (symbol.description === 'host header' && typeof value === 'string' && value.startsWith('host: ')) return symbol;
  }
  return undefined;
}

/**
 * What the subchannels use: the symbol when found at load (tests switch it off to exercise the fallback). Internal,
 * not exported from an entry point.
 */
export const HOST_HEADER: { symbol: symbol | undefined } = {
  symbol: findHostHeaderSymbol(new Client('http://127.0.0.1:1')),
};

/**
 * A `Pool` `factory` whose clients send `host: <authority>` for a request without a Host header. `authority` is a URL
 * authority or a validated header value (no CR, LF or whitespace), so it cannot break the header block.
 */
export function hostHeaderFactory(
  symbol: symbol,
  authority: string,
): (origin: URL, options: Client.Options) => Dispatcher {
  const line = `host: ${authority}\r\n`;
  return (origin, options) => {
    const client = new Client(origin, options);
    (client as unknown as Record<symbol, string>)[symbol] = line;
    return client;
  };
}

/** True when a pool not made yet may send its own Host: plain HTTP/1.1, on an undici with the symbol. */
export function poolMaySendHost(settings: { readonly protocol: string; readonly http2?: unknown }): boolean {
  return settings.protocol === 'http:' && settings.http2 === undefined && HOST_HEADER.symbol !== undefined;
}

/** `options` for an HTTP/1.1 pool whose clients send `host: <host>`; as they are for `host` `''` (none). */
export function withHostFactory(options: Pool.Options, host: string): Pool.Options {
  const symbol = HOST_HEADER.symbol;
  return host === '' || symbol === undefined ? options : { ...options, factory: hostHeaderFactory(symbol, host) };
}
