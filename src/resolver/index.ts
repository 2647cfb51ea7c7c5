import { ResolverRegistry } from './resolver.js';
import { staticResolverFactory } from './static.js';

/**
 * A new registry holding the built-in schemes (`static`). Register your own schemes on it and pass it as the
 * `resolvers` option.
 */
export function createResolverRegistry(): ResolverRegistry {
  return new ResolverRegistry().register('static', staticResolverFactory);
}
