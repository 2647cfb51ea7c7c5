/**
 * ZooKeeper discovery for sidecarless: the {@link ZooKeeperResolver} and the `zookeeper:` scheme. A separate entry
 * point so that its client library, `node-zookeeper-client` (an optional peer dependency), is loaded only by those
 * who use it: the root entry never imports it.
 *
 * Importing this entry registers nothing by itself (each client has its own resolver registry): construct a
 * {@link ZooKeeperResolver} as a cluster's `target`, or register the scheme with {@link registerZooKeeper} and pass
 * the registry as the `resolvers` option.
 *
 * **Target:** `zookeeper://zk1:2181,zk2:2181/services/users[?chroot=/apps&layout=curator&curatorPort=sslPort]`: the
 * members (any of them is used; 2181 when no port is given; `zookeeper:///...` means `127.0.0.1:2181`), then the node
 * whose children are the instances. Credentials are never accepted in the target: use the options form
 * (`digest: 'user:password'`).
 *
 * **Layouts** (`layout`, `auto` by default, which reads each child on its own):
 * - Apache Curator service discovery: `<basePath>/<service>/<instance id>`, each instance node holding a
 *   `ServiceInstance` as JSON (`address`, `port`, `sslPort`, `payload`, `serviceType`, ...). The endpoint's port is
 *   `port`, or `sslPort` with `curatorPort: 'sslPort'`; an instance without the chosen port is skipped; one with
 *   `"enabled": false` is left out.
 * - Plain children named `host:port`, or holding `host:port` as their data.
 * - Dubbo 2.x providers (`/dubbo/<interface>/providers`): children named by their URL-encoded provider URL
 *   (`dubbo%3A%2F%2F10.0.0.1%3A20880%2F…`), read for its `host:port`; one with `enabled=false` is left out.
 *
 * Unusable children are skipped, counted (`stats.skipped`) and reported to the cluster as a `bad-response`
 * {@link ZooKeeperError}; the rest of the set is used.
 *
 * @example
 * ```ts
 * import { createClient, createResolverRegistry } from 'sidecarless';
 * import { registerZooKeeper, ZooKeeperResolver } from 'sidecarless/zookeeper';
 *
 * // A target string, once the scheme is registered:
 * const users = createClient({
 *   name: 'users',
 *   target: 'zookeeper://zk1:2181,zk2:2181,zk3:2181/services/users',
 *   resolvers: registerZooKeeper(createResolverRegistry()),
 * });
 * // Or the resolver itself, with credentials and a chroot:
 * const billing = createClient({
 *   name: 'billing',
 *   target: new ZooKeeperResolver({
 *     connect: 'zk1:2181,zk2:2181/apps',
 *     path: '/services/billing',
 *     digest: `reader:${process.env.ZK_PASSWORD}`,
 *   }),
 * });
 * ```
 *
 * @packageDocumentation
 * @module sidecarless/zookeeper
 */
export type { ZooKeeperLayout, ZooKeeperResolverOptions } from './resolvers/zookeeper/options.js';
export type { ZooKeeperResolverEvent, ZooKeeperResolverStats } from './resolvers/zookeeper/diagnostics.js';
export { registerZooKeeper, ZooKeeperResolver, zooKeeperResolverFactory } from './resolvers/zookeeper/resolver.js';
export { ZooKeeperError } from './resolvers/errors.js';
