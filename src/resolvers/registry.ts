import { consulResolverFactory } from './consul/resolver.js';
import { dnsResolverFactory } from './dns/resolver.js';
import { etcdResolverFactory } from './etcd/resolver.js';
import { ResolverRegistry } from './resolver.js';
import { srvResolverFactory } from './dns/srv.js';
import { staticResolverFactory } from './static.js';

/**
 * A new registry holding the built-in schemes (`static`, `dns`, `srv`, `consul`, `etcd`). Register your own
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
    .register('etcd', etcdResolverFactory);
}
