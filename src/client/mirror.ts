/**
 * Request mirroring, like Envoy's: a request picked for mirroring is dispatched as usual, and a shadow copy goes to
 * the mirror cluster with `-shadow` appended to its host; the copy's response is discarded. Bounded: at most
 * {@link MAX_MIRRORS_IN_FLIGHT} copies at once, and a body is copied only up to {@link MAX_MIRROR_BODY} bytes.
 *
 * @module
 */
import type { Dispatcher } from 'undici';
import type { Cluster } from '../cluster/cluster.js';
import { type LegacyHandler, toLegacyHandler } from '../common/handler.js';
import { findHeader, iteratesPairs } from '../common/headers.js';
import { flatPairs, replaceHostHeader } from '../request/headers.js';
import { type ParsedOrigin, tlsServerName } from '../request/origin.js';
import { bodyReplay } from '../request/policy.js';
import type { RouteDecision } from '../routing/router.js';

/** Shadow copies in flight at once; a request picked beyond it is not mirrored (counted as skipped). */
export const MAX_MIRRORS_IN_FLIGHT = 64;
/** A copy's deadline when the route sets none, ms (`mirror.timeoutMs`). */
const DEFAULT_MIRROR_TIMEOUT_MS = 5000;
/** The largest streamed body copied, bytes. */
export const MAX_MIRROR_BODY = 1024 * 1024;

const MIRROR_HANDLER_BASE = {
  onConnect() {},
  onHeaders: () => true,
  onData: () => true,
};

/** About the bytes of a body undici sends as it is (`bodyReplay` says `buffered`). */
function bodySize(body: unknown): number {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return body.byteLength;
  if (Array.isArray(body)) {
    let size = 0;
    for (const chunk of body) size += bodySize(chunk);
    return size;
  }
  if (typeof Blob !== 'undefined' && body instanceof Blob) return body.size;
  if (typeof FormData !== 'undefined' && body instanceof FormData) {
    // Its parts (the multipart framing around them adds a few hundred bytes).
    let size = 0;
    for (const [, value] of body) size += typeof value === 'string' ? Buffer.byteLength(value) : value.size;
    return size;
  }
  return 0;
}

/** `handler`, also calling `end` when the request completes or fails (before the handler hears of it). */
function withEnd(handler: LegacyHandler, end: () => void): LegacyHandler {
  const wrapped: LegacyHandler = {
    onConnect: (abort, context) => handler.onConnect?.(abort, context),
    onResponseStarted: () => handler.onResponseStarted?.(),
    onHeaders: (statusCode, headers, resume, statusText) =>
      handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true,
    onData: (chunk) => handler.onData?.(chunk) ?? true,
    onComplete: (trailers) => {
      end();
      handler.onComplete?.(trailers);
    },
    onError: (err) => {
      end();
      handler.onError?.(err);
    },
    onBodySent: (chunkSize, totalBytesSent) => handler.onBodySent?.(chunkSize, totalBytesSent),
    onRequestSent: () => handler.onRequestSent?.(),
  };
  // undici refuses upgrade requests to handlers without onUpgrade: keep its absence visible.
  if (handler.onUpgrade !== undefined) {
    wrapped.onUpgrade = (statusCode, headers, socket) => handler.onUpgrade?.(statusCode, headers, socket);
  }
  return wrapped;
}

/**
 * The shadow's name for a request's own Host header (`svc:8080` -> `svc-shadow:8080`, lower case, without a trailing
 * dot); `undefined` for an IPv6 literal, of which no `<host>-shadow` name can be made.
 */
function shadowHost(hostHeader: string): string | undefined {
  const value = hostHeader.trim().toLowerCase();
  if (value.startsWith('[')) return undefined;
  const colon = value.lastIndexOf(':');
  const name = (colon < 0 ? value : value.slice(0, colon)).replace(/\.$/, '');
  return `${name}-shadow${colon < 0 ? '' : value.slice(colon)}`;
}

/** A client's mirroring: the copies in flight, and the counts of copies sent and skipped. */
export class Mirror {
  #inFlight = 0;
  #sent = 0;
  #skipped = 0;
  #dropped = 0;

  /** Shadow copies aborted at their deadline (the route's `mirror.timeoutMs`) with no complete response. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Shadow copies dispatched. */
  get sent(): number {
    return this.#sent;
  }

  /** Requests picked for mirroring whose copy was not sent. */
  get skipped(): number {
    return this.#skipped;
  }

  /**
   * Dispatches a request picked for mirroring to `cluster` and sends a shadow copy to `mirror`. A streamed body
   * (which is what fetch always hands over) is teed, so the copy goes out once the main request has sent the whole
   * body; bodies above {@link MAX_MIRROR_BODY} are not mirrored.
   *
   * @param origin - the request's parsed origin, and `host` the host of its authority (lower case).
   */
  dispatch(
    cluster: Cluster,
    mirror: Cluster,
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
    decision: RouteDecision,
    origin: ParsedOrigin,
    host: string,
  ): boolean {
    // The request and its copy both read the headers: a generator of pairs gives them only once.
    const { headers: given } = options;
    if (given != null && !Array.isArray(given) && iteratesPairs(given)) {
      options = { ...options, headers: flatPairs(given as Iterable<unknown>) };
    }
    const { body } = options;
    const replay = bodyReplay(body);
    const shadowAuthority = `${host}-shadow${origin.authority.slice(host.length)}`;
    // The Host the request carries names the shadow (as Envoy rewrites a shadow's authority): a caller's own Host
    // header wins over the origin at the endpoint, so the copy's is replaced. An empty one would reach the shadow as
    // it is: the copy gets the origin's shadow name then.
    const own = findHeader(options.headers, 'host');
    const copyHost = own === undefined || own.length === 0 ? shadowAuthority : shadowHost(own);
    // No copy: the slots are taken; an IPv6 literal host has no `<host>-shadow` name; a body known to be larger than
    // the copy limit (a streamed one is measured as it is teed).
    if (
      this.#inFlight >= MAX_MIRRORS_IN_FLIGHT ||
      host.startsWith('[') ||
      copyHost === undefined ||
      (replay === 'buffered' && bodySize(body) > MAX_MIRROR_BODY)
    ) {
      this.#skipped++;
      return cluster.dispatch(options, handler, decision);
    }
    const shadowOrigin = `${origin.protocol}//${shadowAuthority}`;
    // The slot is taken before any body is buffered, so the cap also bounds the memory held for copies.
    this.#inFlight++;
    let state: 'pending' | 'sent' | 'released' = 'pending';
    const release = () => {
      if (state !== 'pending') return;
      state = 'released';
      this.#inFlight--;
      this.#skipped++;
    };
    const send = (copyBody: Dispatcher.DispatchOptions['body']) => {
      if (state !== 'pending') return;
      state = 'sent';
      let abort: ((reason?: Error) => void) | undefined;
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#inFlight--;
      };
      // A shadow that never answers must not hold its slot: at the deadline the slot is freed and the copy aborted.
      const timeoutMs = decision.mirror?.timeoutMs ?? DEFAULT_MIRROR_TIMEOUT_MS;
      const timer = setTimeout(() => {
        if (finished) return;
        this.#dropped++;
        done();
        abort?.(new Error(`mirrored copy got no complete response within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      const copyHandler: LegacyHandler = {
        ...MIRROR_HANDLER_BASE,
        onConnect: (a) => {
          abort = a;
        },
        onComplete: done,
        onError: done,
      };
      const copy: Dispatcher.DispatchOptions & { servername?: string } = { ...options, origin: shadowOrigin };
      if (copyBody !== undefined) copy.body = copyBody;
      if (own !== undefined) copy.headers = replaceHostHeader(options.headers, copyHost);
      // The copy's Host names the shadow (`<host>-shadow`); its TLS name stays the service's, as the request's was
      // (the shadow cluster's own `tls.servername` still wins).
      const servername = origin.protocol === 'https:' ? tlsServerName(undefined, options, origin.authority) : undefined;
      if (servername !== undefined) copy.servername = servername;
      // Counted as sent once the mirror cluster took it: one it refused at once (closed, overloaded) is skipped.
      if (mirror.dispatch(copy, copyHandler as Dispatcher.DispatchHandler)) this.#sent++;
      else this.#skipped++;
    };
    if (replay !== 'once') {
      send(undefined);
      return cluster.dispatch(options, handler, decision);
    }
    if (typeof body !== 'object' || body === null || !(Symbol.asyncIterator in body)) {
      release();
      return cluster.dispatch(options, handler, decision);
    }
    const source = body as AsyncIterable<Uint8Array | string>;
    const teed = {
      async *[Symbol.asyncIterator]() {
        const chunks: Buffer[] = [];
        let size = 0;
        try {
          for await (const chunk of source) {
            if (state === 'pending') {
              const bytes = Buffer.from(chunk);
              size += bytes.length;
              if (size <= MAX_MIRROR_BODY) chunks.push(bytes);
              else {
                chunks.length = 0;
                release();
              }
            }
            yield chunk;
          }
          send(Buffer.concat(chunks));
        } finally {
          // The main request stopped sending its body part-way: there is nothing whole to copy.
          release();
        }
      },
    };
    // A main request that ends without reading its body (refused, no endpoint, an early response) frees the slot.
    const main = withEnd(toLegacyHandler(handler), release);
    const sent = { ...options, body: teed as unknown as NonNullable<Dispatcher.DispatchOptions['body']> };
    return cluster.dispatch(sent, main as Dispatcher.DispatchHandler, decision);
  }
}
