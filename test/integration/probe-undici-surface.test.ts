// Regressions found by the outside probe of wave 9 (undici's API surface through `client.dispatcher`): upgrades and
// CONNECT, undici's `idempotent` option, and controller-style handlers, compared with a plain undici Pool. Real
// sockets on 127.0.0.1.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient } from 'sidecarless';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

/** An HTTP server on 127.0.0.1 that `after` closes (its connections too); returns its address. */
async function serve(
  onRequest: http.RequestListener,
  setup?: (server: http.Server) => void,
): Promise<{ address: string; server: http.Server }> {
  const server = http.createServer(onRequest);
  setup?.(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Rejects with a HANG error after `ms`, so a request that never settles fails the test instead of stalling it. */
function bounded<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

describe('upgrades and CONNECT (probe 9)', () => {
  it('a handler whose onUpgrade throws gets onError, and its request leaves the in-flight count', async () => {
    const { address } = await serve(
      (_req, res) => res.end('ok'),
      (server) =>
        server.on('upgrade', (_req, socket: Duplex) => {
          socket.on('error', () => {});
          socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n');
        }),
    );
    const client = createClient({ name: 'svc', target: [address], limits: { maxInFlight: 2 } });
    try {
      for (let i = 0; i < 3; i++) {
        const err = await bounded(
          new Promise<Error>((resolve) => {
            client.dispatcher.dispatch(
              { origin: 'http://svc', path: '/', method: 'GET', upgrade: 'foo' } as never,
              {
                onConnect() {},
                onUpgrade(_status: number, _headers: unknown, socket: Duplex) {
                  socket.destroy();
                  throw new Error('handler bug');
                },
                onError: resolve,
              } as never,
            );
          }),
        );
        assert.equal(err.message, 'handler bug');
      }
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
      // With the requests stuck in flight, maxInFlight (2) refused every later request.
      const res = await bounded(request('http://svc/', { dispatcher: client.dispatcher }));
      assert.equal(await res.body.text(), 'ok');
    } finally {
      await bounded(client.close());
    }
  });

  it('a CONNECT whose handler has no onUpgrade is refused at once, as by undici, and sends nothing', async () => {
    let connects = 0;
    const { address } = await serve(
      (_req, res) => res.end('ok'),
      (server) =>
        server.on('connect', (_req, socket: Duplex) => {
          connects++;
          socket.on('error', () => {});
          socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        }),
    );
    const client = createClient({ name: 'svc', target: [address] });
    try {
      const err = await bounded(
        new Promise<Error & { code?: string }>((resolve, reject) => {
          client.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'CONNECT' }, {
            onConnect() {},
            onHeaders: () => true,
            onData: () => true,
            onComplete: () => reject(new Error('completed')),
            onError: resolve,
          } as never);
        }),
      );
      assert.equal(err.code, 'UND_ERR_INVALID_ARG');
      assert.match(err.message, /onUpgrade/);
      assert.equal(connects, 0);
    } finally {
      await bounded(client.close());
    }
  });
});

describe("undici's idempotent: false (probe 9, replay)", () => {
  it('a GET marked idempotent: false that reached the server is not sent again after a reset', async () => {
    let hits = 0;
    const reset: http.RequestListener = (req) => {
      hits++;
      req.socket.destroy(); // reached the server, then reset
    };
    const a = await serve(reset);
    const b = await serve(reset);
    const client = createClient({ name: 'svc', target: [a.address, b.address], outlierDetection: false });
    try {
      await assert.rejects(
        bounded(request('http://svc/charge', { dispatcher: client.dispatcher, method: 'GET', idempotent: false })),
      );
      assert.equal(hits, 1);
      // The same GET without the option is replayed (the control: the rule is the option's, not the endpoint's).
      hits = 0;
      await assert.rejects(bounded(request('http://svc/charge', { dispatcher: client.dispatcher, method: 'GET' })));
      assert.ok(hits > 1, `the plain GET was sent ${hits} time(s)`);
    } finally {
      await bounded(client.close());
    }
  });

  it('wins over retry.retryNonIdempotent: a POST marked idempotent: false is not sent again, one without is', async () => {
    let hits = 0;
    const reset: http.RequestListener = (req) => {
      hits++;
      req.socket.destroy();
    };
    const a = await serve(reset);
    const b = await serve(reset);
    const client = createClient({
      name: 'svc',
      target: [a.address, b.address],
      outlierDetection: false,
      retry: { retryNonIdempotent: true },
    });
    try {
      const post = (idempotent?: boolean) =>
        request('http://svc/charge', {
          dispatcher: client.dispatcher,
          method: 'POST',
          body: 'x',
          ...(idempotent === undefined ? {} : { idempotent }),
        });
      await assert.rejects(bounded(post(false)));
      assert.equal(hits, 1);
      hits = 0;
      await assert.rejects(bounded(post()));
      assert.ok(hits > 1, `the opted-in POST was sent ${hits} time(s)`);
    } finally {
      await bounded(client.close());
    }
  });

  it('is not hedged', async () => {
    let hits = 0;
    const slow: http.RequestListener = (_req, res) => {
      hits++;
      setTimeout(() => res.end('done'), 200);
    };
    const a = await serve(slow);
    const b = await serve(slow);
    const client = createClient({ name: 'svc', target: [a.address, b.address], hedge: { delayMs: 20 } });
    try {
      const res = await bounded(
        request('http://svc/job', { dispatcher: client.dispatcher, method: 'GET', idempotent: false }),
      );
      assert.equal(await res.body.text(), 'done');
      assert.equal(hits, 1);
      assert.equal(client.stats().clusters[0]?.requests.hedges, 0);
    } finally {
      await bounded(client.close());
    }
  });
});

describe('controller-style handlers (probe 9)', () => {
  it('get onResponseStarted before onResponseStart, as from a plain Pool (undici 8 fetch times responses by it)', async () => {
    const { address } = await serve((_req, res) => res.end('ok'));
    const client = createClient({ name: 'svc', target: [address] });
    try {
      const events = await bounded(
        new Promise<string[]>((resolve, reject) => {
          const ev: string[] = [];
          client.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, {
            onRequestStart: () => ev.push('onRequestStart'),
            onResponseStarted: () => ev.push('onResponseStarted'),
            onResponseStart: (_c: unknown, status: number) => ev.push(`onResponseStart ${status}`),
            onResponseData() {},
            onResponseEnd: () => resolve([...ev, 'onResponseEnd']),
            onResponseError: (_c: unknown, e: Error) => reject(e),
          } as never);
        }),
      );
      assert.deepEqual(events, ['onRequestStart', 'onResponseStarted', 'onResponseStart 200', 'onResponseEnd']);
    } finally {
      await bounded(client.close());
    }
  });
});

describe('streamed body chunks of any byte view (probe 11)', () => {
  it('a PUT whose stream yields a Uint16Array and a DataView is recorded byte for byte and replayed after a reset', async () => {
    const received: string[] = [];
    let requests = 0;
    const { address } = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(chunks).toString('hex'));
        if (requests++ === 0)
          req.socket.destroy(); // the first attempt read whole, then reset
        else res.end('ok');
      });
    });
    const client = createClient({ name: 'svc', target: [address], outlierDetection: false });
    try {
      const view = new DataView(new ArrayBuffer(4));
      view.setUint32(0, 0xdeadbeef);
      const body = new ReadableStream({
        start(c) {
          c.enqueue(new Uint16Array([1, 2, 3, 4]));
          c.enqueue(view);
          c.close();
        },
      });
      const res = await bounded(client.fetch('http://svc/', { method: 'PUT', body, duplex: 'half' } as RequestInit));
      assert.equal(await res.text(), 'ok');
      const expected = Buffer.concat([
        Buffer.from(new Uint16Array([1, 2, 3, 4]).buffer),
        Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      ]).toString('hex');
      assert.deepEqual(received, [expected, expected]);
    } finally {
      await bounded(client.close());
    }
  });
});
