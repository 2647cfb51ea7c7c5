// Issue 16, item 6: `setGlobalDispatcher(client.dispatcher)` captured every host in the process (a single-service
// client answered `fetch('http://api.stripe.example/...')` with the users backend). `client.globalDispatcher()` is
// made for the global slot: own names balance, every other host goes to an ordinary undici Agent.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent, getGlobalDispatcher, interceptors, request, setGlobalDispatcher } from 'undici';
import { ClientClosedError, createClient, isSidecarlessError } from 'sidecarless';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function backendOf(res: Promise<{ body: { json(): Promise<unknown> } }>): Promise<string> {
  return ((await (await res).body.json()) as { backend: string }).backend;
}

describe('client.globalDispatcher() (the global slot)', () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3);
  });
  after(async () => {
    await stopAll(backends);
  });

  it('global dispatcher of a single-service client sends other hosts to a plain agent, not to the service', async () => {
    const [a, b, elsewhere] = backends as [Backend, Backend, Backend];
    const client = createClient({ name: 'users', target: [a.address, b.address], random: () => 0 });
    const previous = getGlobalDispatcher();
    try {
      setGlobalDispatcher(client.globalDispatcher());
      // The service's own name balances (round robin over a and b).
      const own = [await backendOf(request('http://users/1')), await backendOf(request('http://USERS:80/2'))];
      assert.deepEqual(own.sort(), [a.id, b.id].sort());
      // Any other host, on another port, is answered by that server: the request left the balancer.
      assert.equal(await backendOf(request(`http://localhost:${elsewhere.port}/charges`)), elsewhere.id);
      assert.equal(elsewhere.hosts.at(-1), `localhost:${elsewhere.port}`);
      // Node's built-in fetch reads the same global slot.
      const res = await globalThis.fetch(`http://127.0.0.1:${elsewhere.port}/v1/charges`);
      assert.equal(((await res.json()) as { backend: string }).backend, elsewhere.id);
      const viaFetch = await globalThis.fetch('http://users/3');
      assert.ok([a.id, b.id].includes(((await viaFetch.json()) as { backend: string }).backend));
      assert.equal(client.stats().passthrough, 2);
      assert.equal(elsewhere.hits, 2);
    } finally {
      setGlobalDispatcher(previous);
      await client.close();
    }
  });

  it('global dispatcher of a multi-service client balances cluster names, route hosts and `hosts`, nothing else', async () => {
    const [a, b, elsewhere] = backends as [Backend, Backend, Backend];
    const client = createClient({
      clusters: { users: { target: [a.address] }, orders: { target: [b.address] } },
      routes: [
        { match: { host: '*.users.internal' }, cluster: 'users' },
        { match: { path: { prefix: '/' } }, cluster: 'orders' }, // host-less: applies to own names only
      ],
    });
    const previous = getGlobalDispatcher();
    try {
      setGlobalDispatcher(client.globalDispatcher({ hosts: ['legacy-orders'] }));
      assert.equal(await backendOf(request('http://eu.users.internal/x')), a.id);
      // The host-less rule applies to own names only: the cluster name `users` and the listed `legacy-orders`.
      assert.equal(await backendOf(request('http://users/x')), b.id);
      assert.equal(await backendOf(request('http://legacy-orders/x')), b.id);
      assert.equal(await backendOf(request(`http://localhost:${elsewhere.port}/x`)), elsewhere.id);
      assert.equal(client.stats().passthrough, 1);
    } finally {
      setGlobalDispatcher(previous);
      await client.close();
    }
  });

  it('sends other hosts to the `others` dispatcher given, and leaves it open at close', async () => {
    const [a, , elsewhere] = backends as [Backend, Backend, Backend];
    const client = createClient({ name: 'users', target: [a.address] });
    const others = new Agent();
    try {
      const dispatcher = client.globalDispatcher({ others });
      assert.equal(await backendOf(request(`http://localhost:${elsewhere.port}/x`, { dispatcher })), elsewhere.id);
      await client.close();
      assert.equal(others.closed, false);
      // After close, own names fail with SIDECARLESS_CLIENT_CLOSED.
      const err = await request('http://users/x', { dispatcher }).catch((e: unknown) => e);
      assert.ok(isSidecarlessError(err) && err.code === 'SIDECARLESS_CLIENT_CLOSED', String(err));
    } finally {
      await client.close();
      await others.close();
    }
  });

  // Probe 9: other hosts got undici's UND_ERR_DESTROYED after close() (the client's Agent was closed), not the
  // SIDECARLESS_CLIENT_CLOSED the README promises for any request after close().
  it('after close(), requests to other hosts fail with SIDECARLESS_CLIENT_CLOSED too, with or without `others`', async () => {
    const [a, , elsewhere] = backends as [Backend, Backend, Backend];
    const other = `http://127.0.0.1:${elsewhere.port}/x`;
    for (const withOthers of [false, true]) {
      const client = createClient({ name: 'users', target: [a.address] });
      const others = new Agent();
      try {
        const dispatcher = client.globalDispatcher(withOthers ? { others } : undefined);
        assert.equal(await backendOf(request(other, { dispatcher })), elsewhere.id);
        const hits = elsewhere.hits;
        const closing = client.close();
        for (const url of ['http://users/x', other]) {
          const err = await request(url, { dispatcher }).catch((e: unknown) => e);
          assert.ok(err instanceof ClientClosedError, `${url} (others: ${withOthers}): ${String(err)}`);
          assert.equal(err.code, 'SIDECARLESS_CLIENT_CLOSED');
        }
        await closing;
        const late = await request(other, { dispatcher }).catch((e: unknown) => e);
        assert.ok(isSidecarlessError(late) && late.code === 'SIDECARLESS_CLIENT_CLOSED', String(late));
        assert.equal(elsewhere.hits, hits, 'nothing sent after close()');
        assert.equal(client.stats().passthrough, 1, 'refused requests are not counted as passed through');
        // An `others` of the caller's is theirs: left open, and it still works on its own.
        assert.equal(others.closed, false);
        assert.equal(await backendOf(request(other, { dispatcher: others })), elsewhere.id);
      } finally {
        await client.close();
        await others.close();
      }
    }
  });

  it('rejects bad options and a single-service client without a host name', async () => {
    const unnamed = createClient({ target: 'static://127.0.0.1:1' });
    const named = createClient({ name: 'users', target: 'static://127.0.0.1:1' });
    try {
      assert.throws(
        () => unnamed.globalDispatcher(),
        (e: unknown) => isSidecarlessError(e) && e.code === 'SIDECARLESS_INVALID_OPTION' && /hosts/.test(e.message),
      );
      assert.doesNotThrow(() => unnamed.globalDispatcher({ hosts: ['users'] }));
      assert.throws(
        () => named.globalDispatcher({ hosts: ['users:8080'] }),
        (e: unknown) =>
          isSidecarlessError(e) && /globalDispatcher\.hosts\[0\]|globalDispatcher\.hosts\.0/.test(e.message),
      );
      assert.throws(
        () => named.globalDispatcher({ others: {} as never }),
        (e: unknown) => isSidecarlessError(e) && /globalDispatcher\.others/.test(e.message),
      );
      assert.throws(
        () => named.globalDispatcher({ nope: 1 } as never),
        (e: unknown) => isSidecarlessError(e) && e.code === 'SIDECARLESS_INVALID_OPTION',
      );
    } finally {
      await unnamed.close();
      await named.close();
    }
  });

  it('a redirect hop client.fetch sends out through this client global dispatcher is counted once (probe 11)', async () => {
    const elsewhere = backends[2] as Backend;
    const svc = http.createServer((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${elsewhere.port}/` });
      res.end();
    });
    await new Promise<void>((resolve) => svc.listen(0, '127.0.0.1', resolve));
    const client = createClient({ name: 'svc', target: [`127.0.0.1:${(svc.address() as AddressInfo).port}`] });
    const previous = getGlobalDispatcher();
    try {
      await (await client.fetch('http://svc/')).arrayBuffer();
      assert.equal(client.stats().passthrough, 1);
      setGlobalDispatcher(client.globalDispatcher());
      await (await client.fetch('http://svc/')).arrayBuffer();
      assert.equal(client.stats().passthrough, 2);
    } finally {
      setGlobalDispatcher(previous);
      await client.close();
      svc.closeAllConnections();
      svc.close();
    }
  });

  // Probe 23, defect 1: undici's compose() hands out close/destroy unbound, run with its Proxy as `this`: they threw a
  // raw TypeError (a `#` field read through the Proxy) and left the client open.
  it('close() and destroy() of a compose()d client.dispatcher or global dispatcher close the client (probe 23)', async () => {
    const [a] = backends as [Backend];
    type Composed = ReturnType<ReturnType<typeof createClient>['dispatcher']['compose']>;
    const ends: [string, (d: Composed) => Promise<unknown>][] = [
      ['close()', (d) => d.close()],
      ['close(callback)', (d) => new Promise<void>((resolve) => d.close(resolve))],
      ['destroy()', (d) => d.destroy()],
      ['destroy(err)', (d) => d.destroy(new Error('bye'))],
      ['destroy(callback)', (d) => new Promise<void>((resolve) => d.destroy(resolve))],
      ['destroy(err, callback)', (d) => new Promise<void>((resolve) => d.destroy(new Error('bye'), resolve))],
    ];
    for (const which of ['dispatcher', 'globalDispatcher()'] as const) {
      for (const [name, end] of ends) {
        const client = createClient({ name: 'users', target: [a.address] });
        const plain = which === 'dispatcher' ? client.dispatcher : client.globalDispatcher();
        const composed: Composed = plain.compose(interceptors.retry({ maxRetries: 1 }));
        try {
          // Through the Proxy: requests, and EventEmitter's methods (state in plain properties).
          assert.equal(await backendOf(request('http://users/', { dispatcher: composed })), a.id, `${which} ${name}`);
          let heard = 0;
          composed.once('x', () => heard++);
          composed.emit('x');
          assert.equal(heard, 1);
          await end(composed);
          await assert.rejects(
            request('http://users/', { dispatcher: plain }),
            { code: 'SIDECARLESS_CLIENT_CLOSED' },
            `${which} ${name} closed the client`,
          );
          await assert.rejects(client.ready(), { code: 'SIDECARLESS_CLIENT_CLOSED' });
        } finally {
          await client.close();
        }
      }
    }
  });

  // Probe 23, defect 3: the client kept every global dispatcher it handed out (each with an undici Agent of its own)
  // until close, and close() did not let go of them either: +1.9 KB a call, without bound.
  it('a global dispatcher dropped is collected, and sends other hosts through the one Agent of its client (probe 23)', async () => {
    const [a, , elsewhere] = backends as [Backend, Backend, Backend];
    const client = createClient({ name: 'users', target: [a.address] });
    try {
      // Made and used in a function of their own: the test's own frame holds none of them.
      const use = async (send: boolean): Promise<WeakRef<object>> => {
        const global = client.globalDispatcher();
        if (send) {
          // A balanced and a plain request before it is dropped.
          assert.equal(await backendOf(request('http://users/', { dispatcher: global })), a.id);
          const other = `http://127.0.0.1:${elsewhere.port}/`;
          assert.equal(await backendOf(request(other, { dispatcher: global })), elsewhere.id);
        }
        return new WeakRef(global);
      };
      const refs: WeakRef<object>[] = [];
      for (let i = 0; i < 20; i++) refs.push(await use(i % 2 === 0));
      const reachable = () => refs.filter((ref) => ref.deref() !== undefined).length;
      for (let i = 0; i < 50; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (reachable() === 0) break;
        // deref() keeps its target alive to the end of the job: collect in the next one.
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(reachable(), 0, 'every dropped global dispatcher is collected');
      assert.equal(client.stats().passthrough, 10);
    } finally {
      await client.close();
    }
  });
});
