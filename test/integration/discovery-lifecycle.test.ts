// Discovery mode (a cluster per host) at the edges of a cluster's life. Regressions (probe 6): close() did not wait
// for a cluster an idle expiry had just taken out; a host whose target was refused evicted another host's cluster;
// a fully qualified host (trailing dot) was not discovered; a bad target was named under an option that does not
// exist.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, createEndpoint, findSidecarlessError, type Resolver, StaticResolver } from 'sidecarless';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('discovered clusters: lifecycle', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('ok');
  });
  after(async () => {
    await stopAll([backend]);
  });

  it('close() waits for a cluster an idle expiry took out just before (its resolver and connections)', async () => {
    let resolverClosed = false;
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        idleTimeoutMs: 50,
        // A resolver whose close() takes a while (a watch being torn down).
        target: (): Resolver => ({
          start(listener) {
            setTimeout(() => listener.onUpdate([createEndpoint({ host: '127.0.0.1', port: backend.port })]), 1);
          },
          close: () =>
            new Promise<void>((resolve) =>
              setTimeout(() => {
                resolverClosed = true;
                resolve();
              }, 300),
            ),
        }),
      },
    });
    const res = await request('http://users.svc.test/', { dispatcher: client.dispatcher });
    await res.body.text();
    // Past the idle time and the sweep (half of it): the cluster is out of the cache, closing.
    for (let i = 0; i < 100 && client.stats().clusters.length > 0; i++) await sleep(20);
    assert.equal(client.stats().clusters.length, 0, 'expired');
    assert.equal(resolverClosed, false, 'still closing');
    await client.close();
    assert.equal(resolverClosed, true, "close() resolved only after the expired cluster's resolver closed");
  });

  it("a host whose target is refused, or whose target function throws, takes no cluster's place", async () => {
    let made = 0;
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        maxClusters: 2,
        target: (host) => {
          if (host.startsWith('bad')) return 'static://not a target';
          if (host.startsWith('throw')) throw new Error('no such tenant');
          made++;
          return new StaticResolver([backend.address]);
        },
      },
    });
    try {
      for (const h of ['a', 'b']) {
        await (await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher })).body.text();
      }
      const codes = [];
      for (const h of ['bad1', 'throw1', 'bad2']) {
        const err = await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher }).catch((e: unknown) => e);
        codes.push(findSidecarlessError(err)?.code);
      }
      assert.deepEqual(codes, [
        'SIDECARLESS_INVALID_TARGET',
        'SIDECARLESS_RESOLVER_FAILED',
        'SIDECARLESS_INVALID_TARGET',
      ]);
      assert.deepEqual(
        client
          .stats()
          .clusters.map((c) => c.name)
          .sort(),
        ['a.svc.test', 'b.svc.test'],
      );
      for (const h of ['a', 'b']) {
        await (await request(`http://${h}.svc.test/`, { dispatcher: client.dispatcher })).body.text();
      }
      assert.equal(made, 2, 'a and b kept their clusters');
    } finally {
      await client.close();
    }
  });

  it('a fully qualified host (trailing dot) is the same service', async () => {
    const hosts: string[] = [];
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        target: (host) => {
          hosts.push(host);
          return new StaticResolver([backend.address]);
        },
      },
    });
    try {
      for (const url of ['http://users.svc.test./a', 'http://users.svc.test/b', 'http://USERS.svc.test.:80/c']) {
        const res = await request(url, { dispatcher: client.dispatcher });
        await res.body.text();
        assert.equal(res.statusCode, 200, url);
      }
      assert.deepEqual(hosts, ['users.svc.test']);
    } finally {
      await client.close();
    }
  });

  it('a target the discovery function makes that is no target names discovery.target', async () => {
    const client = createClient({
      discovery: { domain: 'svc.test', target: (() => Promise.resolve('static://127.0.0.1:1')) as never },
    });
    try {
      const err = await request('http://users.svc.test/', { dispatcher: client.dispatcher }).catch((e: unknown) => e);
      const typed = findSidecarlessError(err) as { code?: string; option?: string } | undefined;
      assert.equal(typed?.code, 'SIDECARLESS_INVALID_OPTION');
      assert.equal(typed?.option, 'discovery.target');
    } finally {
      await client.close();
    }
  });
});
