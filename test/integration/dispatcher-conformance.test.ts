// Regressions found by the outside probe of wave 5 (HTTP/1.1): `client.dispatcher` must treat undici's handler
// callbacks, bodies and header shapes as a plain undici `Pool` does. Real sockets on 127.0.0.1.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { interceptors, request } from 'undici';
import { type Client, createClient } from 'sidecarless';
import { backendsForFile } from '../helpers/backends.js';

const backend = backendsForFile();
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

/** A raw TCP server: `onRequest(socket, head, connection)` once per request head received (bodies are not parsed). */
async function rawServer(onRequest: (socket: net.Socket, data: string, connection: number) => void): Promise<string> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      onRequest(socket, data, connection);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Rejects with a HANG error after `ms`, so a request that never settles fails the test instead of stalling it. */
function bounded<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

interface Calls {
  readonly calls: string[];
  readonly done: Promise<void>;
}

/** Dispatches a GET with a legacy handler recording its callbacks; `onComplete` throws when `throwOnComplete`. */
function dispatchRecorded(client: Client, origin: string, throwOnComplete = false): Calls {
  const calls: string[] = [];
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  client.dispatcher.dispatch({ origin, path: '/', method: 'GET' }, {
    onConnect() {},
    onResponseStarted() {
      calls.push('onResponseStarted');
    },
    onHeaders(status: number) {
      calls.push(`onHeaders ${status}`);
      return true;
    },
    onData() {
      return true;
    },
    onComplete() {
      calls.push('onComplete');
      if (throwOnComplete) throw new Error('boom from onComplete');
      finish();
    },
    onError(err: Error) {
      calls.push(`onError ${err.message}`);
      finish();
    },
  } as never);
  return { calls, done };
}

function endpointErrors(client: Client): number[] {
  return (client.stats().clusters[0]?.endpoints ?? []).map((e) => e.errors);
}

describe('a caller handler whose onComplete throws (probe 5, hang)', () => {
  it('gets the throw in onError exactly once, and the endpoint keeps its success', async () => {
    const b = await backend('complete-throws');
    const client = createClient({ name: 'svc', target: [b.address] });
    try {
      const { calls, done } = dispatchRecorded(client, 'http://svc', true);
      await bounded(done);
      await new Promise((r) => setTimeout(r, 50)); // nothing more comes
      assert.deepEqual(calls, ['onResponseStarted', 'onHeaders 200', 'onComplete', 'onError boom from onComplete']);
      assert.deepEqual(endpointErrors(client), [0]);
      assert.equal(client.stats().clusters[0]?.requests.statusClasses['2xx'], 1);
    } finally {
      await client.close();
    }
  });

  it("undici's retry interceptor over a 503 settles (it throws from onComplete)", async () => {
    const b = await backend('retry-interceptor', (req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('busy');
    });
    const client = createClient({ name: 'svc', target: [b.address], retry: false });
    try {
      const dispatcher = client.dispatcher.compose(interceptors.retry({ maxRetries: 1, minTimeout: 10 }));
      await assert.rejects(bounded(request('http://svc/', { dispatcher })), { code: 'UND_ERR_REQ_RETRY' });
    } finally {
      await client.close();
    }
  });

  it("the breaker fallback's response: a handler throwing in onComplete or onHeaders gets onError once", async () => {
    const b = await backend('fallback-throws', (req, res) => {
      req.resume();
      res.writeHead(503);
      res.end();
    });
    const client = createClient({
      name: 'svc',
      target: [b.address],
      retry: false,
      breaker: { volumeThreshold: 1, resetTimeoutMs: 60_000, fallback: () => ({ status: 200, body: 'cached' }) },
    });
    try {
      for (let i = 0; i < 5 && client.stats().clusters[0]?.breaker !== 'open'; i++) {
        await (await client.fetch('http://svc/')).arrayBuffer();
      }
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
      const { calls, done } = dispatchRecorded(client, 'http://svc', true);
      await bounded(done);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(calls, ['onHeaders 200', 'onComplete', 'onError boom from onComplete']);
      const errors: string[] = [];
      await bounded(
        new Promise<void>((resolve) => {
          client.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, {
            onConnect() {},
            onHeaders() {
              throw new Error('boom from onHeaders');
            },
            onError(err: Error) {
              errors.push(err.message);
              resolve();
            },
          } as never);
        }),
      );
      assert.deepEqual(errors, ['boom from onHeaders']);
    } finally {
      await client.close();
    }
  });

  it("the breaker fallback's answer to a HEAD, and a 204 or 304 one, carries no body (probe 15, wrong)", async () => {
    const b = await backend('fallback-bodiless', (req, res) => {
      req.resume();
      res.writeHead(500);
      res.end();
    });
    let status = 200;
    const client = createClient({
      name: 'svc',
      target: [b.address],
      retry: false,
      outlierDetection: false,
      breaker: {
        volumeThreshold: 1,
        errorThresholdPercentage: 1,
        resetTimeoutMs: 60_000,
        fallback: () => ({ status, body: 'fallback-body' }),
      },
    });
    try {
      await (await request('http://svc/open', { dispatcher: client.dispatcher })).body.text();
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
      const seen: string[] = [];
      for (const [method, st] of [
        ['HEAD', 200],
        ['GET', 204],
        ['GET', 304],
        ['GET', 200],
      ] as const) {
        status = st;
        const res = await bounded(request('http://svc/x', { method, dispatcher: client.dispatcher }));
        seen.push(`${method} ${res.statusCode} ${String(res.headers['content-length'])} ${await res.body.text()}`);
      }
      assert.deepEqual(seen, [
        'HEAD 200 13 ', // HTTP lets a HEAD answer give the length a GET would have had
        'GET 204 undefined ',
        'GET 304 undefined ',
        'GET 200 13 fallback-body',
      ]);
    } finally {
      await client.close();
    }
  });
});

describe('a sync iterable body is single-use (probe 5, loss)', () => {
  /** Resets the first connection once a whole chunked PUT arrived; echoes the body on the others. */
  async function resettingServer(seen: string[]): Promise<string> {
    return rawServer((socket, data, connection) => {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.slice(0, end);
      const rest = data.slice(end + 4);
      const chunked = /transfer-encoding: chunked/i.test(head);
      if (chunked && !rest.endsWith('0\r\n\r\n')) return;
      const body = chunked ? rest.replace(/([0-9a-f]+)\r\n([^]*?)\r\n/gi, (_, _n, c: string) => c) : rest;
      const framing = chunked ? 'chunked' : `length ${/content-length: (\d+)/i.exec(head)?.[1] ?? '?'}`;
      seen.push(`${framing} ${JSON.stringify(body.replace(/0\r\n\r\n$/, ''))}`);
      if (connection === 0) socket.resetAndDestroy();
      else socket.end(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok`);
    });
  }

  function* chunks(): Generator<Buffer> {
    yield Buffer.from('important-');
    yield Buffer.from('payload');
  }

  it('a generator read by a reset attempt is not replayed empty: recorded, the retry sends it whole', async () => {
    const seen: string[] = [];
    const client = createClient({ name: 'svc', target: [await resettingServer(seen)] });
    try {
      const res = await bounded(
        request('http://svc/doc', { dispatcher: client.dispatcher, method: 'PUT', body: chunks() as never }),
      );
      assert.equal(res.statusCode, 200);
      await res.body.text();
      assert.deepEqual(seen, ['chunked "important-payload"', 'chunked "important-payload"']);
    } finally {
      await client.close();
    }
  });

  it('without recording (retry.bufferBody 0), the reset goes to the caller and nothing is sent again', async () => {
    const seen: string[] = [];
    const client = createClient({ name: 'svc', target: [await resettingServer(seen)], retry: { bufferBody: 0 } });
    try {
      await assert.rejects(
        bounded(request('http://svc/doc', { dispatcher: client.dispatcher, method: 'PUT', body: chunks() as never })),
        (err: { code?: string }) => err.code === 'UND_ERR_SOCKET' || err.code === 'ECONNRESET',
      );
      assert.deepEqual(seen, ['chunked "important-payload"']);
    } finally {
      await client.close();
    }
  });

  it('an Array of chunks is replayable, as undici iterates it anew for each attempt', async () => {
    const seen: string[] = [];
    const client = createClient({ name: 'svc', target: [await resettingServer(seen)], retry: { bufferBody: 0 } });
    try {
      const body = [Buffer.from('important-'), Buffer.from('payload')];
      const res = await bounded(
        request('http://svc/doc', { dispatcher: client.dispatcher, method: 'PUT', body: body as never }),
      );
      assert.equal(res.statusCode, 200);
      await res.body.text();
      assert.deepEqual(seen, ['chunked "important-payload"', 'chunked "important-payload"']);
    } finally {
      await client.close();
    }
  });

  it('an Array of chunks is retried on a retried status too (a 503), sent whole again', async () => {
    const bodies: string[] = [];
    const b = await backend('array-503', (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push(body);
        res.statusCode = bodies.length === 1 ? 503 : 200;
        res.end();
      });
    });
    const client = createClient({ name: 'svc', target: [b.address] });
    try {
      const body = [Buffer.from('important-'), Buffer.from('payload')];
      const res = await bounded(
        request('http://svc/doc', { dispatcher: client.dispatcher, method: 'PUT', body: body as never }),
      );
      assert.equal(res.statusCode, 200);
      await res.body.text();
      assert.deepEqual(bodies, ['important-payload', 'important-payload']);
    } finally {
      await client.close();
    }
  });
  it('an Array with a chunk that is not bytes fails once as the caller error: not retried, against no endpoint (probe 8)', async () => {
    let seen = 0;
    const servers = await Promise.all(
      ['array-bad-1', 'array-bad-2', 'array-bad-3'].map((id) =>
        backend(id, (req, res) => {
          seen++;
          req.resume();
          req.on('end', () => res.end('ok'));
        }),
      ),
    );
    const client = createClient({ name: 'svc', target: servers.map((b) => b.address) });
    try {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(
          bounded(request('http://svc/doc', { dispatcher: client.dispatcher, method: 'PUT', body: ['a', 5] as never })),
          /chunks must be strings or bytes/,
        );
      }
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.requests.callerErrors, 5);
      assert.equal(cluster.requests.retries, 0);
      for (const ep of cluster.endpoints) {
        assert.equal(ep.errorsByKind.other + ep.errorsByKind.reset, 0, ep.key);
        assert.equal(ep.ejected, false, ep.key);
      }
      assert.ok(seen <= 5, `each request reached at most one endpoint (${seen})`);
    } finally {
      await client.close();
    }
  });
});

describe('request headers in every form undici accepts (probe 5)', () => {
  const echo = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    res.end(`host=${req.headers.host} x-a=${req.headers['x-a']}`);
  };
  const forms: Array<[string, () => unknown]> = [
    ['a Map', () => new Map([['x-a', '1']])],
    ['a Headers', () => new Headers({ 'x-a': '1' })],
    [
      'a generator of pairs',
      function* () {
        yield ['x-a', '1'];
      },
    ],
    ['an object', () => ({ 'x-a': '1' })],
    ['a flat array', () => ['x-a', '1']],
  ];

  for (const [form, make] of forms) {
    it(`${form}, with the Host header sidecarless adds (an authority the pool does not send)`, async () => {
      const b = await backend(`headers-${form}`, echo);
      const client = createClient({ name: 'svc', target: [b.address] });
      try {
        for (const url of ['http://svc/', 'http://svc:8080/']) {
          const res = await request(url, { dispatcher: client.dispatcher, headers: make() as never });
          assert.equal(await res.body.text(), `host=${new URL(url).host} x-a=1`, url);
        }
      } finally {
        await client.close();
      }
    });
  }

  it('a Map and a Headers over HTTP/2 (every request copies its headers)', async () => {
    const server = http2.createServer((req, res) =>
      res.end(`host=${req.headers[':authority']} x-a=${req.headers['x-a']}`),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = createClient({ name: 'svc', target: [address], http2: true });
    try {
      for (const headers of [new Map([['x-a', '1']]), new Headers({ 'x-a': '1' })]) {
        const res = await request('http://svc/', { dispatcher: client.dispatcher, headers: headers as never });
        assert.equal(await res.body.text(), 'host=svc x-a=1');
      }
    } finally {
      await client.close();
    }
  });

  // undici refuses a request's options at dispatch, synchronously: the caller's error, as with a plain Pool.
  const refused: Array<[string, unknown, RegExp]> = [
    ['a Map with a name that is not a string (TypeError)', new Map([[1, 'x']]), /TypeError/],
    [
      'an array of pairs, which undici reads as a flat list (TypeError)',
      [
        ['x-a', '1'],
        ['x-b', '2'],
      ],
      /TypeError/,
    ],
    ['an invalid header value (UND_ERR_INVALID_ARG)', { 'x-a': 'a\r\nb' }, /UND_ERR_INVALID_ARG/],
  ];
  for (const [what, headers, expected] of refused) {
    it(`${what} fails once, not retried, against no endpoint, and the pool is not wedged`, async () => {
      const one = await backend(`refused-1-${what}`, echo);
      const two = await backend(`refused-2-${what}`, echo);
      const client = createClient({
        name: 'svc',
        target: [one.address, two.address],
        pool: { connections: 1 },
        outlierDetection: { consecutive5xx: 1 },
      });
      try {
        for (const url of ['http://svc/', 'http://svc:8080/']) {
          const err = await bounded(
            request(url, { dispatcher: client.dispatcher, headers: headers as never }).then(
              () => assert.fail('not refused'),
              (e: Error & { code?: string }) => e,
            ),
          );
          assert.match(`${err.name} ${err.code ?? ''}`, expected, url);
        }
        const stats = client.stats().clusters[0];
        assert.equal(stats?.requests.extraAttempts, 0, 'not retried');
        assert.equal(stats?.requests.callerErrors, 2);
        for (const e of stats?.endpoints ?? []) {
          assert.equal(e.errors, e.errorsByKind.aborted, 'counted as the caller’s');
          assert.equal(e.ejected, false);
        }
        // The refusal did not leave the one connection marked busy for good.
        for (let i = 0; i < 4; i++) {
          const res = await bounded(request('http://svc/', { dispatcher: client.dispatcher }));
          assert.equal(res.statusCode, 200);
          await res.body.text();
        }
      } finally {
        await client.close();
      }
    });
  }
});

describe('informational responses and onResponseStarted (probe 5)', () => {
  /** Answers `103 Early Hints` then 200 to every request (or what `answer` says for request `n`, from 0). */
  async function earlyHints(answer: (n: number) => string = () => '200 OK'): Promise<string> {
    let requests = 0;
    return rawServer((socket, data) => {
      if (!data.endsWith('\r\n\r\n')) return;
      const n = requests++;
      socket.write(`HTTP/1.1 103 Early Hints\r\nlink: </c${n}.css>; rel=preload\r\n\r\n`);
      setTimeout(() => socket.write(`HTTP/1.1 ${answer(n)}\r\ncontent-length: 2\r\n\r\nok`), 10);
    });
  }

  it("a 103 reaches request()'s onInfo, as from a plain Pool", async () => {
    const client = createClient({ name: 'svc', target: [await earlyHints()], retry: false });
    try {
      const infos: string[] = [];
      const res = await bounded(
        request('http://svc/', {
          dispatcher: client.dispatcher,
          onInfo: ({ statusCode, headers }) => infos.push(`${statusCode} ${String(headers.link)}`),
        }),
      );
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'ok');
      assert.deepEqual(infos, ['103 </c0.css>; rel=preload']);
    } finally {
      await client.close();
    }
  });

  it('a retried request delivers the 103 of the attempt whose 503 was discarded, then the retry’s', async () => {
    const client = createClient({ name: 'svc', target: [await earlyHints((n) => (n === 0 ? '503 Busy' : '200 OK'))] });
    try {
      const infos: string[] = [];
      const res = await bounded(
        request('http://svc/', {
          dispatcher: client.dispatcher,
          onInfo: ({ headers }) => infos.push(String(headers.link)),
        }),
      );
      assert.equal(res.statusCode, 200);
      await res.body.text();
      assert.deepEqual(infos, ['</c0.css>; rel=preload', '</c1.css>; rel=preload']);
    } finally {
      await client.close();
    }
  });

  it('an onInfo that throws ends the request with its error, as the caller’s', async () => {
    const client = createClient({ name: 'svc', target: [await earlyHints()] });
    try {
      await assert.rejects(
        bounded(
          request('http://svc/', {
            dispatcher: client.dispatcher,
            onInfo: () => {
              throw new Error('onInfo threw');
            },
          }),
        ),
        /onInfo threw/,
      );
      const stats = client.stats().clusters[0];
      assert.equal(stats?.requests.extraAttempts, 0);
      assert.equal(stats?.requests.callerErrors, 1);
      assert.deepEqual(
        stats?.endpoints.map((e) => e.errors - e.errorsByKind.aborted),
        [0],
      );
    } finally {
      await client.close();
    }
  });

  it('onResponseStarted is forwarded once, before the first headers the handler gets', async () => {
    const plain = await backend('response-started');
    const client = createClient({ name: 'svc', target: [plain.address] });
    const hinted = createClient({ name: 'svc', target: [await earlyHints()], retry: false });
    try {
      const direct = dispatchRecorded(client, 'http://svc');
      await bounded(direct.done);
      assert.deepEqual(direct.calls, ['onResponseStarted', 'onHeaders 200', 'onComplete']);
      const withInfo = dispatchRecorded(hinted, 'http://svc');
      await bounded(withInfo.done);
      assert.deepEqual(withInfo.calls, ['onResponseStarted', 'onHeaders 103', 'onHeaders 200', 'onComplete']);
    } finally {
      await client.close();
      await hinted.close();
    }
  });

  it("fetch's resource timing gets its responseStart", async () => {
    const b = await backend('resource-timing');
    const client = createClient({ name: 'svc', target: [b.address] });
    try {
      await (await client.fetch('http://svc/timed-by-sidecarless')).text();
      await new Promise((r) => setTimeout(r, 20));
      const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/timed-by-sidecarless')) as
        { responseStart: number; responseEnd: number } | undefined;
      assert.ok(entry !== undefined, 'a resource timing entry');
      assert.ok(entry.responseStart > 0, `responseStart ${entry.responseStart}`);
      assert.ok(entry.responseStart <= entry.responseEnd);
    } finally {
      await client.close();
    }
  });
});
