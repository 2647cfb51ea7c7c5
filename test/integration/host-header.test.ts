/**
 * The Host an attempt sends: set once per endpoint pool (subchannel/host-header.ts, issue 14) for a request that
 * carries none, added to a copy of the options otherwise. Either way the backend sees the same Host.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { type Dispatcher, Pool, request } from 'undici';
import { createClient } from 'sidecarless';
import { HOST_HEADER } from '../../src/subchannel/host-header.js';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';

/** The Host each undici `Request` carried in its own headers (`null`: none, the client's default line is sent). */
function watchRequests(): { hosts: Array<string | null>; stop(): void } {
  const hosts: Array<string | null> = [];
  const listener = (message: unknown): void => {
    hosts.push((message as { request: { host: string | null } }).request.host);
  };
  diagnosticsChannel.subscribe('undici:request:create', listener);
  return { hosts, stop: () => diagnosticsChannel.unsubscribe('undici:request:create', listener) };
}

/** The Host the backend saw for one request through `dispatcher.request()` (options of one shape). */
async function hostSeen(url: string, dispatcher: object, headers?: Record<string, string>): Promise<string> {
  const { origin, pathname } = new URL(url);
  const options = { origin, path: pathname, method: 'GET', ...(headers === undefined ? {} : { headers }) };
  const { body } = await (dispatcher as Dispatcher).request(options);
  return ((await body.json()) as { host: string }).host;
}

/** The options objects the endpoints' pools were given, while `fn` runs. */
async function poolOptions(fn: () => Promise<void>): Promise<object[]> {
  const seen: object[] = [];
  const original = Object.getOwnPropertyDescriptor(Pool.prototype, 'dispatch');
  const inherited = Pool.prototype.dispatch;
  Pool.prototype.dispatch = function (this: Pool, options: Dispatcher.DispatchOptions, handler: never) {
    seen.push(options);
    return inherited.call(this, options, handler);
  };
  try {
    await fn();
  } finally {
    if (original === undefined) delete (Pool.prototype as { dispatch?: unknown }).dispatch;
    else Object.defineProperty(Pool.prototype, 'dispatch', original);
  }
  return seen;
}

describe('Host header per endpoint pool', () => {
  let backends: Backend[];
  const symbol = HOST_HEADER.symbol;
  before(async () => {
    backends = await startBackends(2);
  });
  after(async () => {
    await stopAll(backends);
  });
  afterEach(() => {
    HOST_HEADER.symbol = symbol;
  });

  it('finds the symbol of the undici it runs on', () => {
    assert.equal(typeof symbol, 'symbol');
  });

  it('sends the logical name from the pool, with the caller options unchanged', async () => {
    const client = createClient({ target: backends.map((b) => b.address) });
    const watch = watchRequests();
    try {
      const options = { origin: 'http://users', path: '/a', method: 'GET' };
      const seen = await poolOptions(async () => {
        for (let i = 0; i < 4; i++) {
          const { body } = await client.dispatcher.request(options);
          assert.equal(((await body.json()) as { host: string }).host, 'users');
        }
      });
      assert.equal(seen.length, 4);
      for (const o of seen) assert.equal(o, options, "the caller's own options object");
      assert.deepEqual(watch.hosts, [null, null, null, null], 'no Host header added to the requests');
    } finally {
      watch.stop();
      await client.close();
    }
  });

  it("copies undici's top-level request() options (a hidden class each), with the Host still from the pool", async () => {
    const client = createClient({ target: [backends[0]!.address] });
    const watch = watchRequests();
    try {
      const seen = await poolOptions(async () => {
        for (let i = 0; i < 2; i++) {
          const { body } = await request('http://users/a', { dispatcher: client.dispatcher as never });
          assert.equal(((await body.json()) as { host: string }).host, 'users');
        }
      });
      assert.equal(seen.length, 2);
      for (const o of seen)
        assert.equal((o as { origin?: unknown }).origin, `http://${backends[0]!.address}`, 'a copy');
      assert.deepEqual(watch.hosts, [null, null]);
    } finally {
      watch.stop();
      await client.close();
    }
  });

  it("lets a caller's Host header win", async () => {
    const client = createClient({ target: [backends[0]!.address] });
    try {
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
      assert.equal(await hostSeen('http://users/a', client.dispatcher, { Host: 'mine.example' }), 'mine.example');
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
    } finally {
      await client.close();
    }
  });

  it('adds the Host to a copy when the authority differs from the one the pool was made with', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    const watch = watchRequests();
    try {
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
      assert.equal(await hostSeen('http://users:8080/a', client.dispatcher), 'users:8080');
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
      assert.deepEqual(watch.hosts, [null, 'users:8080', null]);
    } finally {
      watch.stop();
      await client.close();
    }
  });

  it('falls back to a copy with the Host header when undici has no such symbol', async () => {
    HOST_HEADER.symbol = undefined;
    const client = createClient({ target: backends.map((b) => b.address) });
    const watch = watchRequests();
    try {
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
      assert.equal(await hostSeen('http://users/a', client.dispatcher), 'users');
      assert.equal(await hostSeen('http://users/a', client.dispatcher, { host: 'mine.example' }), 'mine.example');
      assert.deepEqual(watch.hosts, ['users', 'users', 'mine.example']);
    } finally {
      watch.stop();
      await client.close();
    }
  });

  it('sends the configured host, or with host: false the endpoint address, without a copy', async () => {
    const fixed = createClient({ target: [backends[0]!.address], host: 'api.internal' });
    const raw = createClient({ target: [backends[1]!.address], host: false });
    const watch = watchRequests();
    try {
      assert.equal(await hostSeen('http://users/a', fixed.dispatcher), 'api.internal');
      assert.equal(await hostSeen('http://users/a', raw.dispatcher), backends[1]!.address);
      assert.deepEqual(watch.hosts, [null, null]);
    } finally {
      watch.stop();
      await Promise.all([fixed.close(), raw.close()]);
    }
  });

  it('keeps the logical Host on a retry whose body was recorded (a copy with the replayed body)', async () => {
    let failed = 0;
    const hosts: string[] = [];
    const flaky = await startBackends(1, (req, res) => {
      hosts.push(String(req.headers.host));
      req.resume();
      req.on('end', () => {
        if (failed++ === 0) res.writeHead(503).end();
        else res.end('ok');
      });
    });
    const client = createClient({ target: [flaky[0]!.address], random: () => 0 });
    try {
      const { statusCode, body } = await request('http://users/p', {
        dispatcher: client.dispatcher as never,
        method: 'PUT',
        body: Readable.from(['a', 'b']),
      });
      await body.text();
      assert.equal(statusCode, 200);
      assert.deepEqual(hosts, ['users', 'users']);
    } finally {
      await client.close();
      await stopAll(flaky);
    }
  });

  it('sends the logical name as HTTP/2 :authority', async () => {
    const authorities: string[] = [];
    const server = http2.createServer((req, res) => {
      authorities.push(String(req.headers[':authority']));
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = createClient({ target: [`127.0.0.1:${(server.address() as AddressInfo).port}`], http2: true });
    try {
      for (let i = 0; i < 2; i++) {
        const { body } = await request('http://users/a', { dispatcher: client.dispatcher as never });
        await body.text();
      }
      assert.deepEqual(authorities, ['users', 'users']);
    } finally {
      await client.close();
      server.close();
    }
  });
});
