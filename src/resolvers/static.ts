/**
 * The static resolver: a fixed list, or a list the user replaces by hand (like gRPC's manual resolver).
 *
 * Target form: `static://host1:port1,host2:port2` (IPv6 bracketed: `static://[::1]:8080`).
 *
 * @module
 */
import { createEndpointSet, type Endpoint, type EndpointInit } from '../common/endpoint.js';
import { InvalidTargetError, isSidecarlessError } from '../common/errors.js';
import type { Resolver, ResolverFactory, ResolverListener } from './resolver.js';

/**
 * Serves a fixed endpoint list; {@link StaticResolver.update} replaces it at runtime.
 *
 * @example
 * ```ts
 * const resolver = new StaticResolver(['127.0.0.1:8081', { host: '127.0.0.1', port: 8082, weight: 2 }]);
 * const client = createClient({ target: resolver });
 * resolver.update(['127.0.0.1:8082']); // 8081 drains, then closes
 * ```
 *
 * @category Resolvers
 */
export class StaticResolver implements Resolver {
  #endpoints: readonly Endpoint[];
  #listener: ResolverListener | undefined;
  #closed = false;
  #scheduled = false;

  /** Validates the list at once: throws `SIDECARLESS_INVALID_ENDPOINT` or `SIDECARLESS_DUPLICATE_ENDPOINT`. */
  constructor(endpoints: Iterable<EndpointInit | Endpoint | string>) {
    this.#endpoints = createEndpointSet(endpoints);
  }

  /** The current list. */
  get endpoints(): readonly Endpoint[] {
    return this.#endpoints;
  }

  start(listener: ResolverListener): void {
    this.#listener = listener;
    this.#schedule();
  }

  /**
   * Replaces the whole list (validated first; on a bad list nothing changes and the error is thrown). The new set
   * is delivered on a later microtask.
   */
  update(endpoints: Iterable<EndpointInit | Endpoint | string>): void {
    this.#endpoints = createEndpointSet(endpoints);
    this.#schedule();
  }

  refresh(): void {
    // A static list has nothing to re-resolve.
  }

  close(): void {
    this.#closed = true;
    this.#listener = undefined;
  }

  #schedule(): void {
    if (this.#listener === undefined || this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (!this.#closed) this.#listener?.onUpdate(this.#endpoints);
    });
  }
}

/**
 * Factory for `static://h1:p1,h2:p2` (or `static:///h1:p1,h2:p2`). Throws `SIDECARLESS_INVALID_TARGET` for a
 * malformed list, a path after the list or a query (the static scheme has no settings, and dropping them silently
 * would hide a mistake such as `?weight=3`), and `SIDECARLESS_DUPLICATE_ENDPOINT` for a repeated endpoint, as an
 * endpoint list does.
 *
 * @category Resolvers
 */
export const staticResolverFactory: ResolverFactory = (target) => {
  if (target.authority.length > 0 && target.path.length > 0) {
    throw new InvalidTargetError(target.raw, `a static target has no path (got "/${target.path}")`);
  }
  if (target.query.size > 0 || target.raw.includes('?')) {
    throw new InvalidTargetError(target.raw, 'a static target takes no query; endpoint weights need an endpoint list');
  }
  const list = target.authority || target.path;
  if (list.length === 0) throw new InvalidTargetError(target.raw, 'a static target lists at least one host:port');
  const entries = list.split(',');
  if (entries.some((e) => e.length === 0)) throw new InvalidTargetError(target.raw, 'empty entry in the address list');
  try {
    return new StaticResolver(entries);
  } catch (err) {
    if (!isSidecarlessError(err) || err.code === 'SIDECARLESS_DUPLICATE_ENDPOINT') throw err;
    throw new InvalidTargetError(target.raw, err.message, { cause: err });
  }
};
