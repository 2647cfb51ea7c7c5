/** A resolver a test drives by hand: `push(set)` delivers `set` to the cluster at once (synchronously). */
import type { Endpoint } from '../../src/common/endpoint.js';
import type { Resolver, ResolverListener } from '../../src/resolvers/resolver.js';

export class PushResolver implements Resolver {
  listener: ResolverListener | undefined;
  start(listener: ResolverListener): void {
    this.listener = listener;
  }
  /** Delivers `set` (anything: the cluster validates it, so tests may push bad entries). */
  push(set: readonly (Endpoint | object | string)[]): void {
    this.listener?.onUpdate(set as Endpoint[]);
  }
  refresh(): void {}
  close(): void {
    this.listener = undefined;
  }
}
