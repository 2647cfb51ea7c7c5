/**
 * The URL-scheme registry resolvers plug into, and the registry of the built-in schemes.
 *
 * @module
 */
import {
  InvalidOptionError,
  InvalidTargetError,
  isSidecarlessError,
  ResolverError,
  UnknownSchemeError,
} from '../common/errors.js';
import { describe } from '../common/options.js';
import { asError, thrownMessage } from '../common/thrown.js';
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
   * Registers (or replaces) the factory for `scheme` (without the colon). Schemes are case-insensitive (RFC 3986
   * §3.1): `Fleet` and `fleet` are one scheme, and a target's scheme finds it however it is written.
   * Throws {@link InvalidOptionError} (`SIDECARLESS_INVALID_OPTION`) for a scheme that is not a string of the URL
   * scheme syntax, or a factory that is not a function.
   */
  register(scheme: string, factory: ResolverFactory): this {
    if (typeof scheme !== 'string' || !SCHEME.test(scheme)) {
      throw new InvalidOptionError('scheme', `expected a URL scheme like "consul", got ${describe(scheme)}`);
    }
    if (typeof factory !== 'function') {
      throw new InvalidOptionError('factory', `expected a function, got ${describe(factory)}`);
    }
    this.#factories.set(scheme.toLowerCase(), factory);
    return this;
  }

  /** True when `scheme` has a factory (case-insensitive); false for anything but a string. */
  has(scheme: string): boolean {
    return typeof scheme === 'string' && this.#factories.has(scheme.toLowerCase());
  }

  /** The registered schemes, sorted. */
  schemes(): string[] {
    return [...this.#factories.keys()].sort();
  }

  /**
   * Parses `target` (a target string, or a {@link Target} as {@link parseTarget} returns it) and creates its
   * resolver with the factory registered for its scheme (case-insensitive).
   *
   * Throws {@link InvalidTargetError} (`SIDECARLESS_INVALID_TARGET`) for a target that does not parse or is neither
   * a string nor a `Target`, {@link UnknownSchemeError} for a scheme nothing is registered for, and what the factory
   * throws: a sidecarless error (such as the `InvalidTargetError` a factory throws for a bad target) as it is,
   * anything else as a {@link ResolverError} (`SIDECARLESS_RESOLVER_FAILED`) with what was thrown as `cause`.
   */
  create(target: string | Target, context: ResolverContext): Resolver {
    const parsed = typeof target === 'string' ? parseTarget(target) : checkTarget(target);
    const scheme = parsed.scheme.toLowerCase();
    const factory = this.#factories.get(scheme);
    if (factory === undefined) {
      throw new UnknownSchemeError(
        scheme,
        this.schemes(),
        Object.hasOwn(ELSEWHERE, scheme) ? ELSEWHERE[scheme] : undefined,
      );
    }
    try {
      return factory(scheme === parsed.scheme ? parsed : { ...parsed, scheme }, context);
    } catch (err) {
      if (isSidecarlessError(err)) throw err;
      throw new ResolverError(`The resolver factory of scheme "${scheme}:" threw: ${thrownMessage(err)}`, {
        cause: asError(err),
      });
    }
  }
}

/** The syntax of a URL scheme (RFC 3986 §3.1). */
const SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]*$/;

/** `target` if it is a {@link Target} (an object with a string `scheme`), else an {@link InvalidTargetError}. */
function checkTarget(target: unknown): Target {
  let scheme: unknown;
  try {
    scheme = typeof target === 'object' && target !== null ? (target as Target).scheme : undefined;
  } catch {
    // a getter or Proxy trap that throws: not a Target
  }
  if (typeof scheme !== 'string' || !SCHEME.test(scheme)) {
    throw new InvalidTargetError(
      describe(target),
      'expected a target string ("scheme:...") or a parsed Target (parseTarget)',
    );
  }
  return target as Target;
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
