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

/** True for an endpoint a bare `host:port` makes: weight 1, priority 0, no zone, no metadata. */
function isPlain(endpoint: Endpoint): boolean {
  return (
    endpoint.weight === 1 &&
    endpoint.priority === 0 &&
    endpoint.zone === undefined &&
    Object.keys(endpoint.metadata).length === 0
  );
}

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
  /** The endpoint each `host:port` string of the current list made (see #reusing). */
  #byText = new Map<string, Endpoint>();
  #listener: ResolverListener | undefined;
  #closed = false;
  #scheduled = false;

  /** Validates the list at once: throws `SIDECARLESS_INVALID_ENDPOINT` or `SIDECARLESS_DUPLICATE_ENDPOINT`. */
  constructor(endpoints: Iterable<EndpointInit | Endpoint | string>) {
    this.#endpoints = this.#build(endpoints);
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
    this.#endpoints = this.#build(endpoints);
    this.#schedule();
  }

  /** Validates `entries` into a set (throwing, and changing nothing, on a bad one) and remembers its strings. */
  #build(entries: Iterable<EndpointInit | Endpoint | string>): Endpoint[] {
    const list = Array.isArray(entries) ? (entries as readonly (EndpointInit | Endpoint | string)[]) : undefined;
    const set = createEndpointSet(list === undefined ? entries : this.#reusing(list));
    const byText = new Map<string, Endpoint>();
    // What a `host:port` string makes: the endpoint whose key it is, with no weight, priority, zone or metadata of
    // its own; and each string of the list as written (`B:2`, `[::0001]:2` name the same endpoint as their key).
    for (const endpoint of set) if (isPlain(endpoint)) byText.set(endpoint.key, endpoint);
    if (list !== undefined && list.length === set.length) {
      for (let i = 0; i < list.length; i++) {
        const entry = list[i];
        if (typeof entry === 'string') byText.set(entry, set[i] as Endpoint);
      }
    }
    this.#byText = byText;
    return set;
  }

  /**
   * The entries, with each `host:port` string of the current list replaced by the endpoint it made: an update
   * changing 1 % of a long list of strings parses that 1 %, and the unchanged endpoints stay the same objects.
   */
  #reusing(entries: readonly (EndpointInit | Endpoint | string)[]): (EndpointInit | Endpoint | string)[] {
    const byText = this.#byText;
    return entries.map((e) => (typeof e === 'string' ? (byText.get(e) ?? e) : e));
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
