/**
 * The URL-scheme registry resolvers plug into, and the registry of the built-in schemes.
 *
 * @module
 */
import { InvalidOptionError, UnknownSchemeError } from '../common/errors.js';
import { consulResolverFactory } from './consul/resolver.js';
import { dnsResolverFactory } from './dns/resolver.js';
import { etcdResolverFactory } from './etcd/resolver.js';
import { kubernetesResolverFactory } from './kubernetes/resolver.js';
import type { Resolver, ResolverContext, ResolverFactory, Target } from './resolver.js';
import { srvResolverFactory } from './dns/srv.js';
import { staticResolverFactory } from './static.js';
import { parseTarget } from './target.js';

/** Schemes whose resolver ships in its own entry point (its client library is optional): how to register them. */
const ELSEWHERE: Readonly<Record<string, string>> = {
  zookeeper:
    "its resolver is in the 'sidecarless/zookeeper' entry point: pass " +
    '`resolvers: registerZooKeeper(createResolverRegistry())` (and install node-zookeeper-client)',
};

/**
 * Maps URL schemes to resolver factories. Each client uses its own registry, so registering a scheme never
 * affects another client. {@link createResolverRegistry} returns one with the built-in schemes.
 *
 * @example
 * ```ts
 * const resolvers = createResolverRegistry();
 * resolvers.register('fleet', (target) => new StaticResolver(lookUpFleet(target.path)));
 * const client = createClient({ target: 'fleet:///checkout', resolvers });
 * ```
 */
export class ResolverRegistry {
  readonly #factories = new Map<string, ResolverFactory>();

  /**
   * Registers (or replaces) the factory for `scheme` (without the colon, case-insensitive).
   * Throws {@link InvalidOptionError} for a malformed scheme.
   */
  register(scheme: string, factory: ResolverFactory): this {
    if (typeof scheme !== 'string' || !/^[a-zA-Z][a-zA-Z0-9+.-]*$/.test(scheme)) {
      throw new InvalidOptionError('scheme', `expected a URL scheme like "consul", got ${JSON.stringify(scheme)}`);
    }
    if (typeof factory !== 'function') throw new InvalidOptionError('factory', 'expected a function');
    this.#factories.set(scheme.toLowerCase(), factory);
    return this;
  }

  /** True when `scheme` has a factory. */
  has(scheme: string): boolean {
    return this.#factories.has(scheme.toLowerCase());
  }

  /** The registered schemes, sorted. */
  schemes(): string[] {
    return [...this.#factories.keys()].sort();
  }

  /**
   * Parses `target` and creates its resolver. Throws {@link InvalidTargetError} or {@link UnknownSchemeError}.
   */
  create(target: string | Target, context: ResolverContext): Resolver {
    const parsed = typeof target === 'string' ? parseTarget(target) : target;
    const factory = this.#factories.get(parsed.scheme);
    if (factory === undefined) {
      throw new UnknownSchemeError(
        parsed.scheme,
        this.schemes(),
        Object.hasOwn(ELSEWHERE, parsed.scheme) ? ELSEWHERE[parsed.scheme] : undefined,
      );
    }
    return factory(parsed, context);
  }
}

/**
 * A new registry holding the built-in schemes (`static`, `dns`, `srv`, `consul`, `etcd`,
 * `kubernetes`). Register your own
 * schemes on it and pass it as the `resolvers` option.
 *
 * @category Resolvers
 */
export function createResolverRegistry(): ResolverRegistry {
  return new ResolverRegistry()
    .register('static', staticResolverFactory)
    .register('dns', dnsResolverFactory)
    .register('srv', srvResolverFactory)
    .register('consul', consulResolverFactory)
    .register('etcd', etcdResolverFactory)
    .register('kubernetes', kubernetesResolverFactory);
}
