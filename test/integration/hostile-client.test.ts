// Regression tests for issue 15 (items 5, 9 to 12, 15 and 16: the client's fetch, discovery, mirroring and start-up),
// through the package entry point. Each test is named after the report it answers.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createClient, findSidecarlessError, type Resolver } from 'sidecarless';
import { type Backend, startBackend, startBackends, stopAll } from '../helpers/backends.js';

interface Echo {
  method: string;
  body: string;
  url: string;
}

async function echo(res: Response): Promise<Echo> {
  assert.equal(res.status, 200);
  return (await res.json()) as Echo;
}

describe('issue 15.9-15.12: client.fetch behaves as fetch does', () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(1);
  });
  after(() => stopAll(backends));

  it('15.9: inherited RequestInit members and getters are read, as fetch reads them', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    try {
      let got = await echo(await client.fetch('http://svc/', Object.create({ method: 'POST', body: 'hi' })));
      assert.deepEqual([got.method, got.body], ['POST', 'hi']);
      const withGetters = {
        get method() {
          return 'PATCH';
        },
        get body() {
          return 'from a getter';
        },
      };
      got = await echo(await client.fetch('http://svc/', withGetters));
      assert.deepEqual([got.method, got.body], ['PATCH', 'from a getter']);
      got = await echo(await client.fetch('http://svc/', new Request('http://svc/', { method: 'PUT' })));
      assert.equal(got.method, 'PUT');
      got = await echo(await client.fetch('http://svc/', new Request('http://svc/', { method: 'POST', body: 'req' })));
      assert.deepEqual([got.method, got.body], ['POST', 'req']);
      // A getter that throws rejects, as fetch does; nothing is thrown synchronously.
      const throwing = {
        get method(): string {
          throw new Error('getter failed');
        },
      };
      let promise: Promise<Response> | undefined;
      assert.doesNotThrow(() => {
        promise = client.fetch('http://svc/', throwing as RequestInit);
      });
      await assert.rejects(promise!, /getter failed/);
    } finally {
      await client.close();
    }
  });

  it('15.10: client.fetch works unbound (passed to an SDK, as globalThis.fetch) and never throws synchronously', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    try {
      const f = client.fetch;
      const got = await echo(await f('http://svc/unbound'));
      assert.equal(got.url, '/unbound');
      const sdk = { fetch: client.fetch };
      const res = await sdk.fetch('http://svc/');
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      let promise: Promise<Response> | undefined;
      assert.doesNotThrow(() => {
        promise = f.call(undefined, 'not a url');
      });
      await assert.rejects(promise!, TypeError);
      assert.doesNotThrow(() => {
        promise = f('http://svc/', 5 as unknown as RequestInit);
      });
      await assert.rejects(promise!, TypeError);
    } finally {
      await client.close();
    }
  });

  it('15.10: globalThis.fetch = client.fetch works, for single- and multi-service clients and for other clients', async () => {
    const single = createClient({ target: [backends[0]!.address] });
    const multi = createClient({ clusters: { svc: { target: [backends[0]!.address] } } });
    const other = createClient({ target: [backends[0]!.address] });
    const platform = globalThis.fetch;
    try {
      for (const installed of [single, multi]) {
        globalThis.fetch = installed.fetch;
        assert.equal((await echo(await fetch('http://svc/global'))).url, '/global');
        assert.equal((await echo(await installed.fetch('http://svc/direct'))).url, '/direct');
        assert.equal((await echo(await other.fetch('http://svc/other'))).url, '/other');
      }
    } finally {
      globalThis.fetch = platform;
      await Promise.all([single.close(), multi.close(), other.close()]);
    }
  });

  it('15.11: init.dispatcher is refused with a typed error rather than silently replaced', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    const other = createClient({ target: [backends[0]!.address] });
    try {
      const hits = backends[0]!.hits;
      await assert.rejects(client.fetch('http://svc/', { dispatcher: other.dispatcher } as unknown as RequestInit), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'dispatcher',
      });
      assert.equal(backends[0]!.hits, hits, 'nothing was sent for it');
      // The client's own dispatcher is what client.fetch uses anyway: allowed.
      const res = await client.fetch('http://svc/', { dispatcher: client.dispatcher } as unknown as RequestInit);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await client.close();
      await other.close();
    }
  });

  it('15.12: after close(), client.fetch rejects like any fetch failure: TypeError("fetch failed"), typed cause', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    await client.close();
    const f = client.fetch;
    const err = await f('http://svc/').catch((e: unknown) => e);
    assert.ok(err instanceof TypeError);
    assert.equal(err.message, 'fetch failed');
    assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_CLIENT_CLOSED');
  });
});

describe('issue 15.16: a resolver whose start() throws, in a multi-cluster client', () => {
  it('yields a typed error and closes every cluster already started', async () => {
    let closedFirst = 0;
    const first: Resolver = {
      start() {},
      close() {
        closedFirst++;
      },
    };
    const broken: Resolver = {
      start() {
        throw new Error('boom');
      },
      close() {},
    };
    assert.throws(
      () => createClient({ clusters: { a: { target: first }, b: { target: broken } } }),
      (err: unknown) => {
        const typed = findSidecarlessError(err);
        assert.equal(typed?.code, 'SIDECARLESS_RESOLVER_FAILED', String(err));
        assert.match((err as Error).message, /"b"/);
        assert.equal(((err as Error).cause as Error).message, 'boom');
        return true;
      },
    );
    // Closing is asynchronous (the clusters drain); bounded wait.
    for (let i = 0; i < 100 && closedFirst === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closedFirst, 1);
  });
});

describe('resolvers that fail in ways their type does not admit', () => {
  /** Collects unhandled rejections while `run` runs (and a turn after). */
  async function noUnhandled(run: () => Promise<void>): Promise<void> {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      await run();
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  }

  it('an async start() that rejects is a resolution failure: no crash, stats and the request say why', async () => {
    await noUnhandled(async () => {
      let closes = 0;
      const resolver = {
        async start() {
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('could not reach the registry');
        },
        close() {
          closes++;
        },
      };
      const client = createClient({ target: resolver, waitForReadyTimeoutMs: 100 });
      try {
        for (let i = 0; i < 200 && client.stats().clusters[0]?.resolver.errors === 0; i++) {
          await new Promise((r) => setTimeout(r, 5));
        }
        const { resolver: counters } = client.stats().clusters[0]!;
        assert.equal(counters.errors, 1);
        assert.equal(counters.lastError, 'could not reach the registry');
        const err = await client.fetch('http://svc/').catch((e: unknown) => e);
        const typed = findSidecarlessError(err);
        assert.equal(typed?.code, 'SIDECARLESS_NO_ENDPOINTS', String(err));
        assert.equal((typed?.cause as { code?: string } | undefined)?.code, 'SIDECARLESS_RESOLVER_FAILED');
      } finally {
        await client.close();
      }
      assert.equal(closes, 1);
    });
  });

  it('onError with something that is not an Error (an object without a prototype) is kept as a typed error', async () => {
    await noUnhandled(async () => {
      let listener: { onError(error: unknown): void } | undefined;
      const resolver = {
        start(l: { onError(error: unknown): void }) {
          listener = l;
        },
        close() {},
      };
      const client = createClient({ target: resolver as unknown as Resolver });
      try {
        listener?.onError(Object.create(null));
        listener?.onError('registry said no');
        const { resolver: counters } = client.stats().clusters[0]!;
        assert.equal(counters.errors, 2);
        assert.equal(counters.lastError, 'the resolver reported "registry said no"');
      } finally {
        await client.close();
      }
    });
  });

  it('a discovered cluster whose resolver start() throws: SIDECARLESS_RESOLVER_FAILED, and the resolver is closed', async () => {
    await noUnhandled(async () => {
      let made = 0;
      let closed = 0;
      const client = createClient({
        discovery: {
          domain: 'svc.local',
          target: () => {
            made++;
            return {
              start() {
                throw new Error('start boom');
              },
              close() {
                closed++;
              },
            };
          },
        },
      });
      try {
        for (let i = 0; i < 3; i++) {
          const err = await client.fetch('http://broken.svc.local/').catch((e: unknown) => e);
          const typed = findSidecarlessError(err);
          assert.equal(typed?.code, 'SIDECARLESS_RESOLVER_FAILED', String(err));
          assert.equal((typed?.cause as Error | undefined)?.message, 'start boom');
        }
        assert.deepEqual(client.stats().clusters, [], 'no cluster kept');
        for (let i = 0; i < 200 && closed < made; i++) await new Promise((r) => setTimeout(r, 5));
        assert.equal(closed, made, 'every resolver made was closed');
      } finally {
        await client.close();
      }
    });
  });
});

describe('discovery target functions that throw', () => {
  it('a discovery target function that throws fails the request with SIDECARLESS_RESOLVER_FAILED, its error as cause', async () => {
    const client = createClient({
      discovery: {
        domain: 'svc.local',
        target: () => {
          throw new TypeError('no target for you');
        },
      },
    });
    try {
      const err = await client.fetch('http://broken.svc.local/').catch((e: unknown) => e);
      const typed = findSidecarlessError(err);
      assert.equal(typed?.code, 'SIDECARLESS_RESOLVER_FAILED', String(err));
      assert.match(typed.message, /broken\.svc\.local/);
      assert.equal((typed.cause as Error | undefined)?.message, 'no target for you');
    } finally {
      await client.close();
    }
  });
});

describe('issue 15.15: mirrored copies have a deadline, and stats count the dropped ones', () => {
  it('a shadow that never answers no longer holds the 64 slots: copies are dropped at mirror.timeoutMs', async () => {
    const main = await startBackend('main');
    const hung: http.ServerResponse[] = [];
    const shadow = await startBackend('shadow', (req, res) => {
      req.resume();
      hung.push(res); // never answered
    });
    const client = createClient({
      clusters: { main: { target: [main.address] }, shadow: { target: [shadow.address], retry: false } },
      routes: [{ cluster: 'main', mirror: { cluster: 'shadow', timeoutMs: 100 } }],
    });
    try {
      for (let i = 0; i < 64; i++) await (await client.fetch('http://orders/')).arrayBuffer();
      // Bounded: the copies' deadlines free the slots.
      for (let i = 0; i < 500 && client.stats().mirrored.dropped < 64; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(client.stats().mirrored.dropped, 64);
      for (let i = 0; i < 10; i++) await (await client.fetch('http://orders/')).arrayBuffer();
      const { sent, skipped } = client.stats().mirrored;
      assert.deepEqual([sent, skipped], [74, 0], 'mirroring goes on after the hung copies were dropped');
    } finally {
      await client.destroy();
      for (const res of hung) res.destroy();
      await main.stop();
      await shadow.stop();
    }
  });

  it('mirror.timeoutMs is validated', () => {
    assert.throws(
      () =>
        createClient({
          clusters: { main: { target: ['127.0.0.1:1'] }, shadow: { target: ['127.0.0.1:2'] } },
          routes: [{ cluster: 'main', mirror: { cluster: 'shadow', timeoutMs: -1 } }],
        }),
      { code: 'SIDECARLESS_INVALID_OPTION', option: 'routes[0].mirror.timeoutMs' },
    );
  });
});

describe('issue 15.5: discovery eviction never fails a request waiting or in flight', () => {
  /** A backend that holds each request until `release()`, so that requests are in flight together. */
  async function gatedBackend(): Promise<{ backend: Backend; arrived: () => number; release: () => void }> {
    let held: http.ServerResponse[] = [];
    let open = false;
    let arrived = 0;
    const backend = await startBackend('gated', (req, res) => {
      arrived++;
      req.resume();
      req.on('end', () => {
        if (open) res.end('ok');
        else held.push(res);
      });
    });
    return {
      backend,
      arrived: () => arrived,
      release: () => {
        open = true;
        for (const res of held) res.end('ok');
        held = [];
      },
    };
  }

  async function until(predicate: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 2000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(predicate(), `timed out waiting for ${what}`);
  }

  it('three concurrent hosts with maxClusters 2: all three answered, no SIDECARLESS_CLIENT_CLOSED', async () => {
    const gate = await gatedBackend();
    const client = createClient({
      discovery: { domain: 'svc.local', maxClusters: 2, target: () => [gate.backend.address] },
    });
    try {
      const pending = ['a', 'b', 'c'].map((h) => client.fetch(`http://${h}.svc.local/`).then((r) => r.text()));
      await until(() => gate.arrived() === 3, 'three requests in flight');
      gate.release();
      assert.deepEqual(await Promise.all(pending), ['ok', 'ok', 'ok']);
      // Idle now: the next new host evicts the least recently used idle ones, back within maxClusters.
      assert.equal(await (await client.fetch('http://d.svc.local/')).text(), 'ok');
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['d.svc.local', 'c.svc.local'],
      );
    } finally {
      await client.close();
      await gate.backend.stop();
    }
  });

  it('clusters made above maxClusters in a burst are closed as they fall idle, without another new host', async () => {
    const gate = await gatedBackend();
    const client = createClient({
      discovery: { domain: 'svc.local', maxClusters: 2, target: () => [gate.backend.address] },
    });
    try {
      const hosts = ['a', 'b', 'c', 'd', 'e'];
      const pending = hosts.map((h) => client.fetch(`http://${h}.svc.local/`).then((r) => r.text()));
      await until(() => gate.arrived() === hosts.length, 'five requests in flight');
      assert.equal(client.stats().clusters.length, 5, 'every host got a cluster while all were busy');
      gate.release();
      assert.deepEqual(await Promise.all(pending), ['ok', 'ok', 'ok', 'ok', 'ok']);
      await until(() => client.stats().clusters.length <= 2, 'the cache back within maxClusters');
    } finally {
      await client.close();
      await gate.backend.stop();
    }
  });

  it('300 hosts, 30 at a time, maxClusters 5: every request answered, and the cache shrinks back', async () => {
    const backend = await startBackend('plain', (req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('ok'), 2));
    });
    const client = createClient({
      discovery: { domain: 'svc.local', maxClusters: 5, target: () => [backend.address] },
    });
    try {
      const failures: unknown[] = [];
      let next = 0;
      const worker = async () => {
        while (next < 300) {
          const host = `h${next++}.svc.local`;
          try {
            assert.equal(await (await client.fetch(`http://${host}/`)).text(), 'ok');
          } catch (err) {
            failures.push(findSidecarlessError(err)?.code ?? err);
          }
        }
      };
      await Promise.all(Array.from({ length: 30 }, worker));
      assert.deepEqual(failures, []);
      await client.fetch('http://last.svc.local/').then((r) => r.text());
      assert.ok(client.stats().clusters.length <= 5, `${client.stats().clusters.length} clusters kept`);
    } finally {
      await client.close();
      await backend.stop();
    }
  });
});
