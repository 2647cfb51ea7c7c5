import { consulResolverFactory } from './consul.js';
import { dnsResolverFactory } from './dns.js';
import { etcdResolverFactory } from './etcd.js';
import { ResolverRegistry } from './resolver.js';
import { srvResolverFactory } from './srv.js';
import { staticResolverFactory } from './static.js';

/**
 * A new registry holding the built-in schemes (`static`, `dns`, `srv`, `consul`, `etcd`). Register your own
 * schemes on it and pass it as the `resolvers` option.
 */
export function createResolverRegistry(): ResolverRegistry {
  return new ResolverRegistry()
    .register('static', staticResolverFactory)
    .register('dns', dnsResolverFactory)
    .register('srv', srvResolverFactory)
    .register('consul', consulResolverFactory)
    .register('etcd', etcdResolverFactory);
}
