// Regression tests for issue 15 (items 1, 7 and 8: what resolvers deliver, and what errors say about it), through
// the package entry point. Each test is named after the report it answers.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import {
  createClient,
  createEndpoint,
  findSidecarlessError,
  NoEndpointsError,
  ResolverError,
  ServiceNotFoundError,
  type Endpoint,
  type Resolver,
  type ResolverListener,
} from 'sidecarless';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { type ConsulDouble, startConsulDouble } from '../helpers/consul-double.js';
import { reply, startFakeDns, type FakeDnsServer } from '../helpers/dns-fake-server.js';
import { parseEtcdEndpoint } from '../../src/resolvers/etcd/parse.js';
import { EtcdError } from '../../src/resolvers/errors.js';

/** A resolver the test drives by hand, through the public listener. */
class HandResolver implements Resolver {
  listener: ResolverListener | undefined;
  start(listener: ResolverListener): void {
    this.listener = listener;
  }
  close(): void {
    this.listener = undefined;
  }
}

/** Waits (bounded in count and time) until `predicate` holds. */
async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !predicate(); i++) {
    if (Date.now() > deadline || i > 10_000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  return assert.fail('expected a rejection');
}

describe('issue 15.1: an invalid entry from a resolver is skipped, reported, and the rest delivered', () => {
  let backends: Backend[];
  let consul: ConsulDouble;
  before(async () => {
    backends = await startBackends(1);
    consul = await startConsulDouble();
  });
  after(async () => {
    await stopAll(backends);
    await consul.close();
  });

  it('a Consul Service.Address the URL parser refuses neither crashes the process nor keeps the good ones out', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const resolves: { error?: Error | undefined }[] = [];
    const onResolve = (message: unknown) => resolves.push(message as { error?: Error });
    diagnostics.subscribe('sidecarless:resolve', onResolve);
    const port = Number(backends[0]!.address.split(':')[1]);
    consul.setService('web', [
      { nodeAddress: '10.0.0.1', address: '999.1.1.1', port: 80 },
      { nodeAddress: '10.0.0.2', address: 'foo.123', port: 80 },
      { nodeAddress: '127.0.0.1', port },
    ]);
    const client = createClient({ target: `consul://${consul.address}/web` });
    try {
      const res = await client.fetch('http://web/');
      assert.equal(res.status, 200);
      await res.text();
      const [stats] = client.stats().clusters;
      assert.deepEqual(
        stats!.endpoints.map((e) => e.key),
        [`127.0.0.1:${port}`],
      );
      assert.ok(stats!.resolver.errors >= 1, 'the skipped entries are reported as a resolver error');
      assert.match(stats!.resolver.lastError ?? '', /skipped 2 unusable entries/);
      assert.ok(resolves.some((m) => m.error instanceof ResolverError && /999\.1\.1\.1/.test(m.error.message)));
      assert.deepEqual(rejections, []);
    } finally {
      diagnostics.unsubscribe('sidecarless:resolve', onResolve);
      process.off('unhandledRejection', onRejection);
      await client.close();
    }
  });

  it('a custom resolver delivering an invalid entry: skipped (counted in stats.resolver.skipped), the rest used', async () => {
    const resolver = new HandResolver();
    const client = createClient({ target: resolver });
    try {
      await until(() => resolver.listener !== undefined, 'start');
      const good = backends[0]!.address;
      resolver.listener!.onUpdate([
        { host: '999.1.1.1', port: 80 } as unknown as Endpoint,
        good as unknown as Endpoint,
        good as unknown as Endpoint,
      ]);
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 200);
      await res.text();
      const [stats] = client.stats().clusters;
      assert.equal(stats!.resolver.skipped, 2, 'the invalid host and the repeated key');
      assert.equal(stats!.resolver.updates, 1);
      assert.equal(stats!.endpoints.length, 1);
      // A set with nothing usable keeps the last known good one.
      resolver.listener!.onUpdate([{ host: 'foo.123', port: 80 } as unknown as Endpoint]);
      assert.equal(client.stats().clusters[0]!.endpoints.length, 1);
      assert.equal(client.stats().clusters[0]!.resolver.skipped, 3);
    } finally {
      await client.close();
    }
  });

  it('etcd: a value whose host the URL parser refuses is a typed bad-response error for that key only', () => {
    for (const value of ['999.1.1.1:80', '{"host":"foo.123","port":80}', '[fe80::1%eth0]:80']) {
      assert.throws(
        () => parseEtcdEndpoint('/services/web/bad', Buffer.from(value)),
        (err: unknown) => err instanceof EtcdError && err.reason === 'bad-response',
      );
    }
    assert.equal(parseEtcdEndpoint('/services/web/good', Buffer.from('127.0.0.1:80')).key, '127.0.0.1:80');
  });
});

describe('issue 15.7: SIDECARLESS_NO_ENDPOINTS carries the latest resolver state, and says "no such service"', () => {
  let consul: ConsulDouble;
  let dns: FakeDnsServer;
  before(async () => {
    consul = await startConsulDouble();
    dns = await startFakeDns((q) => q.send(reply(q, { rcode: 3 }))); // NXDOMAIN for every name
  });
  after(async () => {
    await consul.close();
    await dns.close();
  });

  it('a resolver error followed by an empty answer: the cause is the empty answer, not the stale error', async () => {
    const resolver = new HandResolver();
    const client = createClient({ target: resolver, name: 'users', waitForReadyTimeoutMs: 0 });
    try {
      await until(() => resolver.listener !== undefined, 'start');
      resolver.listener!.onError(new ResolverError('registry timed out'));
      let err = findSidecarlessError(await rejection(client.fetch('http://users/')));
      assert.ok(err instanceof NoEndpointsError);
      assert.equal((err.cause as Error).message, 'registry timed out');
      resolver.listener!.onUpdate([]);
      err = findSidecarlessError(await rejection(client.fetch('http://users/')));
      assert.ok(err instanceof NoEndpointsError);
      assert.ok(err.cause instanceof ServiceNotFoundError, String(err.cause));
      assert.match(err.message, /users/);
    } finally {
      await client.close();
    }
  });

  it("onUpdate([], 'nope'): the cause is a ServiceNotFoundError saying what was passed, its cause an Error (regression)", async () => {
    const resolver = new HandResolver();
    const client = createClient({ target: resolver, name: 'users', waitForReadyTimeoutMs: 0 });
    try {
      await until(() => resolver.listener !== undefined, 'start');
      resolver.listener!.onUpdate([], 'nope' as never);
      let err = findSidecarlessError(await rejection(client.fetch('http://users/')));
      assert.ok(err instanceof NoEndpointsError, String(err));
      assert.ok(
        err.cause instanceof ServiceNotFoundError,
        `the cause is a ServiceNotFoundError, not ${typeof err.cause}`,
      );
      assert.equal(err.cause.service, 'users');
      assert.match(err.cause.message, /nope/);
      assert.ok(err.cause.cause instanceof Error, 'the kept cause is an Error, not the raw string');
      assert.equal(err.cause.cause.message, 'nope');
      assert.match(err.message, /users.*nope/);
      // A plain Error as notFound is kept as the cause of a typed one; onError with a string is an Error cause too.
      const plain = new Error('registry says gone');
      resolver.listener!.onUpdate([], plain as never);
      err = findSidecarlessError(await rejection(client.fetch('http://users/')));
      assert.ok(err?.cause instanceof ServiceNotFoundError, 'a plain Error as notFound: a ServiceNotFoundError');
      assert.equal(err.cause.cause, plain);
      resolver.listener!.onError('registry said no' as never);
      err = findSidecarlessError(await rejection(client.fetch('http://users/')));
      assert.ok(err?.cause instanceof ResolverError, 'onError with a string: a ResolverError');
      assert.ok(err.cause.cause instanceof Error, 'whose cause is an Error');
      assert.equal(err.cause.cause.message, 'registry said no');
    } finally {
      await client.close();
    }
  });

  it('DNS NXDOMAIN: the error says there is no such service and names it', async () => {
    const client = createClient({ target: `dns://${dns.address}/users.test:80`, waitForReadyTimeoutMs: 1 });
    try {
      await client.ready(5000);
      const err = findSidecarlessError(await rejection(client.fetch('http://users.test/')));
      assert.ok(err instanceof NoEndpointsError);
      assert.ok(err.cause instanceof ServiceNotFoundError);
      assert.equal(err.cause.service, 'users.test');
      assert.equal((err.cause.cause as { code?: string }).code, 'SIDECARLESS_DNS_NXDOMAIN');
      assert.match(err.message, /no such service: users\.test does not exist \(NXDOMAIN/);
    } finally {
      await client.close();
    }
  });

  it('Consul answering [] after an outage: the error names the Consul service rather than the old ECONNREFUSED', async () => {
    consul.setService('billing', []);
    const client = createClient({ target: `consul://${consul.address}/billing`, waitForReadyTimeoutMs: 1 });
    try {
      await client.ready(5000);
      const err = findSidecarlessError(await rejection(client.fetch('http://billing/')));
      assert.ok(err instanceof NoEndpointsError);
      assert.ok(err.cause instanceof ServiceNotFoundError);
      assert.equal(err.cause.service, 'billing');
      assert.match(err.message, /Consul has no instance of service "billing"/);
    } finally {
      await client.close();
    }
  });

  it('ready(timeoutMs, { minEndpoints: 1 }) waits for an endpoint, and its timeout says why there is none', async () => {
    const resolver = new HandResolver();
    const client = createClient({ target: resolver, name: 'users' });
    try {
      await until(() => resolver.listener !== undefined, 'start');
      resolver.listener!.onUpdate([]);
      await client.ready(1000); // the first answer is in, though empty
      const err = await rejection(client.ready(20, { minEndpoints: 1 }));
      assert.ok(err instanceof NoEndpointsError);
      assert.ok(err.cause instanceof ServiceNotFoundError);
      const waiting = client.ready(5000, { minEndpoints: 1 });
      resolver.listener!.onUpdate(['127.0.0.1:1' as unknown as Endpoint]);
      await waiting;
      await assert.rejects(client.ready(10, { minEndpoints: -1 }), { code: 'SIDECARLESS_INVALID_OPTION' });
      await assert.rejects(client.ready(10, { min: 1 } as never), { code: 'SIDECARLESS_INVALID_OPTION' });
    } finally {
      await client.close();
    }
  });
});

describe('issue 15.8: the default cluster name names the service, not the registry', () => {
  const cases: [string, string][] = [
    ['srv://127.0.0.1:53/_http._tcp.users.internal', '_http._tcp.users.internal'],
    ['srv:///_http._tcp.users.internal', '_http._tcp.users.internal'],
    ['consul://127.0.0.1:8500/web?health=any', 'web'],
    ['consul://127.0.0.1:8500/billing', 'billing'],
    ['dns://127.0.0.1:53/users.internal:8080', 'users.internal'],
    ['dns:///users.internal', 'users.internal'],
    ['etcd://127.0.0.1:2379/services/users/', '/services/users/'],
  ];
  for (const [target, name] of cases) {
    it(`${target} -> "${name}"`, async () => {
      const client = createClient({ target });
      try {
        assert.equal(client.stats().clusters[0]!.name, name);
      } finally {
        await client.close();
      }
    });
  }
});

describe('a custom resolver that throws what is not an Error', () => {
  it('refresh() throwing a prototype-less object is logged, close() rejecting one still closes the client', async () => {
    const live = await startBackends(1);
    const dead = (await startBackends(1))[0]!;
    await stopAll([dead]);
    let refreshes = 0;
    const client = createClient({
      target: {
        start(listener) {
          queueMicrotask(() =>
            listener.onUpdate([
              createEndpoint({ host: '127.0.0.1', port: live[0]!.port }),
              createEndpoint({ host: '127.0.0.1', port: dead.port }),
            ]),
          );
        },
        refresh() {
          refreshes++;
          throw Object.create(null);
        },
        close() {
          return Promise.reject(Object.create(null));
        },
      },
      outlierDetection: false,
    });
    try {
      // The refused endpoint enters transient-failure: the cluster hints its resolver, which throws.
      for (let i = 0; i < 6; i++) assert.equal((await client.fetch('http://svc/')).status, 200);
      assert.ok(refreshes >= 1, 'the hint reached the resolver');
    } finally {
      await client.close();
      await stopAll(live);
    }
  });
});
