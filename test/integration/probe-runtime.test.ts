// Regression tests from an adversarial pass over the public entry points (wave 4 probe): custom resolvers that break
// their contract, and undici callers misusing the dispatcher, must not crash, hang or leave a socket behind.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, type Resolver, type ResolverListener } from 'sidecarless';

let server: http.Server;
let port: number;
const sockets = new Set<Socket>();

before(async () => {
  server = http.createServer((_req, res) => res.end('ok'));
  server.on('upgrade', (_req, socket: Socket) => {
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n');
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** A resolver delivering one set, with the given refresh() and close(). */
function resolverOf(endpointPort: number, extra: Pick<Resolver, 'close'> & Partial<Resolver>): Resolver {
  return {
    start(listener: ResolverListener) {
      setImmediate(() => listener.onUpdate([{ host: '127.0.0.1', port: endpointPort } as never]));
    },
    ...extra,
  };
}

/** Waits (bounded in count and time) until `predicate` holds. */
async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !predicate(); i++) {
    if (Date.now() > deadline || i > 10_000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('probe: a custom resolver whose refresh() throws', () => {
  it('is not an uncaught exception when an endpoint refuses connections (the cluster hints a refresh)', async () => {
    // A port nothing listens on: the refused connection puts the subchannel in transient-failure, which hints.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    let hints = 0;
    const client = createClient({
      target: resolverOf(deadPort, {
        refresh() {
          hints++;
          throw new Error('refresh boom');
        },
        close() {},
      }),
      retry: false,
    });
    try {
      await assert.rejects(client.fetch('http://svc/'), TypeError);
      await until(() => hints > 0, 'a refresh hint');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(uncaught, []);
    } finally {
      process.off('uncaughtException', onUncaught);
      await client.close();
    }
  });
});

describe('probe: a custom resolver whose close() throws, rejects or never settles', () => {
  for (const [name, close] of [
    [
      'throws',
      () => {
        throw new Error('close boom');
      },
    ],
    ['rejects', () => Promise.reject(new Error('async close boom'))],
    ['never settles', () => new Promise<void>(() => {})],
  ] as const) {
    it(`${name}: client.close() still resolves and closes every connection`, async () => {
      const client = createClient({ target: resolverOf(port, { close }), drainTimeoutMs: 200 });
      const res = await client.fetch('http://svc/');
      assert.equal(await res.text(), 'ok');
      assert.ok(sockets.size > 0, 'a keep-alive connection is open');
      await client.close();
      await until(() => sockets.size === 0, 'the connections to close');
    });
  }
});

describe('probe: client.dispatcher.dispatch() with options or a handler that are not objects', () => {
  it('fails as undici dispatchers do (InvalidArgumentError), not with a TypeError from inside the client', async () => {
    const client = createClient({ target: `static://127.0.0.1:${port}`, name: 'svc' });
    try {
      for (const dispatcher of [client.dispatcher, client.globalDispatcher()]) {
        for (const handler of [null, 5, undefined]) {
          assert.throws(
            () => dispatcher.dispatch({ path: '/', method: 'GET', origin: 'http://svc' }, handler as never),
            (err: Error & { code?: string }) => err.code === 'UND_ERR_INVALID_ARG',
          );
        }
        for (const options of [null, 5]) {
          const errors: (Error & { code?: string })[] = [];
          dispatcher.dispatch(options as never, { onError: (err: Error) => void errors.push(err) } as never);
          assert.equal(errors.length, 1);
          assert.equal(errors[0]!.code, 'UND_ERR_INVALID_ARG');
        }
      }
    } finally {
      await client.close();
    }
  });
});

describe('probe: undici request() with `upgrade` through client.dispatcher', () => {
  it('is refused as undici refuses it ("invalid onUpgrade method"), rather than hanging with the socket leaked', async () => {
    const client = createClient({ target: `static://127.0.0.1:${port}`, name: 'svc' });
    try {
      await assert.rejects(
        request('http://svc/', { dispatcher: client.dispatcher, upgrade: 'websocket' }),
        (err: Error & { code?: string }) => err.code === 'UND_ERR_INVALID_ARG',
      );
    } finally {
      await client.close();
    }
    await until(() => sockets.size === 0, 'no connection left open');
  });
});
