/**
 * Child process for the "token never in a log line" test: runs a ConsulResolver with NODE_DEBUG on (set by the
 * parent) against the double at CONSUL_ADDR, with the token from CONSUL_HTTP_TOKEN. Prints READY after the first
 * set (the parent then switches a fault on) and exits after the first error.
 */
import { ConsulResolver } from '../../src/resolvers/consul/resolver.js';

const resolver = new ConsulResolver({
  address: process.env.CONSUL_ADDR as string,
  service: 'web',
  waitMs: 2000,
  minRequestIntervalMs: 10,
  backoff: { initialMs: 20, maxMs: 50 },
});
const timer = setTimeout(() => {
  console.log('TIMEOUT');
  process.exit(2);
}, 10_000);
resolver.start({
  onUpdate(endpoints) {
    console.log(`READY ${endpoints.length}`);
  },
  onError(error) {
    console.log(`ERROR ${error.message}`);
    clearTimeout(timer);
    void resolver.close().then(() => process.exit(0));
  },
});
