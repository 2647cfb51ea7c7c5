// A resolver object serves one cluster, once (the Resolver contract). Regressions (probe 9):
// - one resolver given to two users (two clients, two clusters of one client, a discovery target returning one object
//   for two hosts, a new client after the first closed it) was accepted, and one user silently got no endpoints: a
//   second start() replaced the first listener, and a closed resolver never called again;
// - a multi-cluster createClient that threw on a later cluster's option (or a bad route) closed the caller's resolver
//   objects of the earlier clusters, never started: a retry with fixed options and the same resolver got a client
//   that never had an endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  createClient,
  createEndpoint,
  createResolverRegistry,
  findSidecarlessError,
  type Resolver,
  type ResolverListener,
  StaticResolver,
} from 'sidecarless';
import { assertCode } from '../helpers/assert-code.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A custom resolver (not a StaticResolver) that counts the calls the library makes, serving `address`. */
function countingResolver(address: string): Resolver & { starts: number; closes: number } {
  const [host, port] = address.split(':') as [string, string];
  const resolver = {
    starts: 0,
    closes: 0,
    start(listener: ResolverListener) {
      resolver.starts++;
      queueMicrotask(() => listener.onUpdate([createEndpoint({ host, port: Number(port) })]));
    },
    close() {
      resolver.closes++;
    },
  };
  return resolver;
}

async function status(promise: Promise<Response>): Promise<number | string | undefined> {
  return promise.then(
    async (res) => {
      await res.arrayBuffer();
      return res.status;
    },
    (err: unknown) => findSidecarlessError(err)?.code,
  );
}

describe('a resolver object serves one cluster, once', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('ok');
  });
  after(async () => {
    await stopAll([backend]);
  });

  it('a resolver given to a second client is refused with SIDECARLESS_INVALID_OPTION naming `target`; the first keeps it', async () => {
    for (const resolver of [new StaticResolver([backend.address]), countingResolver(backend.address)]) {
      const first = createClient({ target: resolver, waitForReadyTimeoutMs: 1000 });
      try {
        assertCode(() => createClient({ target: resolver }), 'SIDECARLESS_INVALID_OPTION', 'target');
        assertCode(
          () => createClient({ clusters: { users: { target: resolver } } }),
          'SIDECARLESS_INVALID_OPTION',
          'clusters.users.target',
        );
        assert.equal(await status(first.fetch('http://users/')), 200);
      } finally {
        await first.close();
      }
    }
  });

  it('a resolver closed with its client is refused for a new client', async () => {
    const resolver = new StaticResolver([backend.address]);
    const first = createClient({ target: resolver });
    assert.equal(await status(first.fetch('http://users/')), 200);
    await first.close();
    assertCode(() => createClient({ target: resolver }), 'SIDECARLESS_INVALID_OPTION', 'target');
  });

  it('two clusters of one client sharing a resolver are refused, naming the second; a retry with one works', async () => {
    const resolver = countingResolver(backend.address);
    assertCode(
      () => createClient({ clusters: { one: { target: resolver }, two: { target: resolver } } }),
      'SIDECARLESS_INVALID_OPTION',
      'clusters.two.target',
    );
    assert.deepEqual([resolver.starts, resolver.closes], [0, 0], 'neither started nor closed');
    const client = createClient({ clusters: { one: { target: resolver, waitForReadyTimeoutMs: 1000 } } });
    try {
      assert.equal(await status(client.fetch('http://one/')), 200);
    } finally {
      await client.close();
    }
    assert.deepEqual([resolver.starts, resolver.closes], [1, 1]);
  });

  it('a registry factory returning one resolver object for two targets is refused for the second', async () => {
    const shared = new StaticResolver([backend.address]);
    const resolvers = createResolverRegistry().register('pool', () => shared);
    const first = createClient({ target: 'pool:///a', resolvers });
    try {
      assertCode(() => createClient({ target: 'pool:///b', resolvers }), 'SIDECARLESS_INVALID_OPTION', 'target');
      assertCode(
        () => createClient({ clusters: { a: { target: 'pool:///a' }, b: { target: 'pool:///b' } }, resolvers }),
        'SIDECARLESS_INVALID_OPTION',
        'clusters.a.target',
      );
      assert.equal(await status(first.fetch('http://a/')), 200, "the first client's resolver was not closed");
    } finally {
      await first.close();
    }
  });

  it('a discovery target returning one resolver for two hosts: the second host is refused, nobody evicted', async () => {
    const shared = new StaticResolver([backend.address]);
    const client = createClient({ discovery: { domain: 'svc', maxClusters: 1, target: () => shared } });
    try {
      const first = await request('http://a.svc/', { dispatcher: client.dispatcher });
      await first.body.text();
      assert.equal(first.statusCode, 200);
      const err = await request('http://b.svc/', { dispatcher: client.dispatcher }).catch((e: unknown) => e);
      const refused = findSidecarlessError(err);
      assert.equal(refused?.code, 'SIDECARLESS_INVALID_OPTION', String(err));
      assert.equal((refused as { option?: string }).option, 'discovery.target');
      // a.svc's cluster is still there and still follows its resolver.
      shared.update([backend.address, `127.0.0.2:${backend.port}`]);
      await sleep(20);
      assert.deepEqual(
        client.stats().clusters.map((c) => `${c.name}=${c.endpoints.length}`),
        ['a.svc=2'],
      );
    } finally {
      await client.close();
    }
  });
});

describe('a failed createClient leaves the caller resolvers untouched', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('ok');
  });
  after(async () => {
    await stopAll([backend]);
  });

  it("a later cluster's bad option or a bad route neither starts nor closes the earlier clusters' resolvers; a retry works", async () => {
    const bad = [
      (r: Resolver) => ({
        clusters: { users: { target: r }, other: { target: [backend.address], retry: { maxAttempts: 9 } } },
      }),
      (r: Resolver) => ({ clusters: { users: { target: r } }, routes: [{ match: { host: 'x' }, cluster: 'nope' }] }),
    ];
    for (const options of bad) {
      for (const resolver of [new StaticResolver([backend.address]), countingResolver(backend.address)]) {
        assertCode(() => createClient(options(resolver)), 'SIDECARLESS_INVALID_OPTION');
        if ('starts' in resolver) assert.deepEqual([resolver.starts, resolver.closes], [0, 0]);
        const client = createClient({ clusters: { users: { target: resolver, waitForReadyTimeoutMs: 1000 } } });
        try {
          assert.equal(await status(client.fetch('http://users/')), 200, 'the retry with fixed options gets endpoints');
        } finally {
          await client.close();
        }
      }
    }
  });

  it('resolvers the library made from target strings are closed; unstarted ones of the caller are not', async () => {
    const made: ReturnType<typeof countingResolver>[] = [];
    const resolvers = createResolverRegistry().register('counted', () => {
      made.push(countingResolver(backend.address));
      return made.at(-1)!;
    });
    const mine = countingResolver(backend.address);
    assertCode(
      () =>
        createClient({
          clusters: {
            a: { target: 'counted:///a' },
            b: { target: mine },
            c: { target: [backend.address], picker: 'nope' },
          },
          resolvers,
        }),
      'SIDECARLESS_INVALID_OPTION',
      'clusters.c.picker.name',
    );
    await sleep(10); // a resolver's close() is called on a later microtask
    assert.deepEqual(
      made.map((r) => [r.starts, r.closes]),
      [[0, 1]],
      'the made one closed, never started',
    );
    assert.deepEqual([mine.starts, mine.closes], [0, 0]);
  });

  it("a resolver whose start() throws closes the started clusters' resolvers and hands back the unstarted ones", async () => {
    const before = countingResolver(backend.address);
    const throwing: Resolver = {
      start() {
        throw new Error('no registry');
      },
      close() {},
    };
    const later = countingResolver(backend.address);
    assertCode(
      () => createClient({ clusters: { a: { target: before }, b: { target: throwing }, c: { target: later } } }),
      'SIDECARLESS_RESOLVER_FAILED',
    );
    await sleep(10);
    assert.deepEqual([before.starts, before.closes], [1, 1], 'started, then closed');
    assert.deepEqual([later.starts, later.closes], [0, 0], 'never started: handed back');
    const client = createClient({ target: later, waitForReadyTimeoutMs: 1000 });
    try {
      assert.equal(await status(client.fetch('http://users/')), 200);
    } finally {
      await client.close();
    }
    assertCode(() => createClient({ target: before }), 'SIDECARLESS_INVALID_OPTION', 'target');
  });
});
