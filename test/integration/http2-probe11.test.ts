// HTTP/2 defects found by probe 11: a repeated `te: trailers` Node refuses once joined, a header block too large for
// the endpoint (it used to take the connection down), close() during a streamed body's read, and a graceful GOAWAY
// sent right after a complete response. Real node:http2 servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, describe, it } from 'node:test';
import { Pool, request } from 'undici';
import { createClient, createEndpoint, findSidecarlessError } from 'sidecarless';
import { http2PoolOptions, TrackedAttempt } from '../../src/subchannel/http2.js';
import { PushResolver } from '../helpers/push-resolver.js';
import { type RawH2Server, rawH2Server } from '../helpers/h2-raw-server.js';

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});

async function rawServer(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  settings?: http2.Settings,
): Promise<RawH2Server> {
  const server = await rawH2Server(onStream, settings);
  closers.push(server.close);
  return server;
}

/** Answers `body` once the request has ended. */
function answer(stream: http2.ServerHttp2Stream, body = 'ok'): void {
  let received = 0;
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  const reply = (): void => {
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond({ ':status': 200 });
      stream.end(body === '' ? `got ${received}` : body);
    }
  };
  if (stream.readableEnded) reply();
  else stream.once('end', reply);
}

const codeOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (err: unknown) => findSidecarlessError(err)?.code ?? `uncoded ${(err as { code?: string }).code}`,
  );

/** The outcome of one attempt dispatched on a bare HTTP/2 pool through a TrackedAttempt. */
function dispatchTracked(pool: Pool, headers: string[]): Promise<string> {
  return new Promise((resolve) => {
    let status = 0;
    const inner = {
      onConnect() {},
      onHeaders(code: number) {
        status = code;
        return true;
      },
      onData() {
        return true;
      },
      onComplete() {
        resolve(String(status));
      },
      onError(err: Error) {
        resolve(findSidecarlessError(err)?.code ?? `uncoded ${(err as { code?: string }).code}`);
      },
    };
    pool.dispatch({ method: 'GET', path: '/', headers }, new TrackedAttempt(inner, 'users') as never);
  });
}

async function* slowBody(): AsyncGenerator<string> {
  for (let i = 0; i < 4; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    yield 'abcd';
  }
}

describe('HTTP/2: probe 11', () => {
  it("refuses `te: trailers` given twice (Node joins it to 'trailers, trailers') as the caller error, cold or warm; the endpoint keeps working", async () => {
    const server = await rawServer((stream) => answer(stream));
    const twice = ['te', 'trailers', 'TE', 'trailers'];
    for (const warm of [false, true]) {
      const client = createClient({ target: [server.address], http2: true, timeoutMs: 3000 });
      try {
        if (warm) assert.equal(await codeOf(request('http://users/', { dispatcher: client.dispatcher })), 'ok');
        const refused = request('http://users/', { dispatcher: client.dispatcher, headers: twice });
        assert.equal(await codeOf(refused), 'SIDECARLESS_INVALID_REQUEST');
        const later = request('http://users/', { dispatcher: client.dispatcher, headers: ['te', 'trailers'] });
        assert.equal(await codeOf(later), 'ok');
        assert.equal(await codeOf(client.fetch('http://users/', { headers: { te: ['trailers'] } })), 'ok');
        const ep = client.stats().clusters[0]!.endpoints[0]!;
        assert.equal(ep.errorsByKind.other + ep.errorsByKind.reset + ep.errorsByKind.timeout, 0);
      } finally {
        await client.destroy();
      }
    }
    assert.equal(server.streams(), 5, 'the refused requests never reached the endpoint');
  });

  it("a throw from Node's session.request fails that attempt (a header error as the caller's), never the process or the connection", async () => {
    const server = await rawServer((stream) => answer(stream));
    for (const warm of [false, true]) {
      const pool = new Pool(
        `http://${server.address}`,
        http2PoolOptions({}, { connections: 1, maxConcurrentStreams: 10 }, 'http:', { onFallback() {} }),
      );
      try {
        if (warm) assert.equal(await dispatchTracked(pool, []), '200');
        // Straight to the pool, past the subchannel's own check: Node's session.request throws.
        assert.equal(await dispatchTracked(pool, ['te', 'trailers', 'te', 'trailers']), 'SIDECARLESS_INVALID_REQUEST');
        assert.deepEqual(await Promise.all([dispatchTracked(pool, []), dispatchTracked(pool, ['te', 'trailers'])]), [
          '200',
          '200',
        ]);
      } finally {
        await pool.destroy();
      }
    }
  });

  it('refuses a header block too large to send before dispatch: the connection and a POST in flight on it survive, no endpoint charged', async () => {
    let posts = 0;
    const server = await rawServer((stream, headers) => {
      if (headers[':method'] === 'POST') posts++;
      stream.resume();
      setTimeout(() => {
        if (!stream.destroyed) {
          stream.respond({ ':status': 200 });
          stream.end('ok');
        }
      }, 200);
    });
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 3000 });
    try {
      assert.equal(await codeOf(request('http://users/', { dispatcher: client.dispatcher })), 'ok');
      const post = codeOf(
        request('http://users/', { dispatcher: client.dispatcher, method: 'POST', body: 'order-42' }),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const big = request('http://users/', { dispatcher: client.dispatcher, headers: { 'x-big': 'a'.repeat(70_000) } });
      assert.equal(await codeOf(big), 'SIDECARLESS_INVALID_REQUEST');
      assert.equal(await post, 'ok', 'the POST in flight was answered');
      assert.equal(posts, 1);
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.requests.retries, 0);
      const ep = cluster.endpoints[0]!;
      assert.equal(ep.errorsByKind.reset + ep.errorsByKind.other + ep.errorsByKind.goaway, 0, JSON.stringify(ep));
      assert.equal(server.streams(), 2, 'the large one never reached the endpoint');
    } finally {
      await client.close();
    }
  });

  it("refuses a header list over the endpoint's SETTINGS_MAX_HEADER_LIST_SIZE before dispatch; the connection keeps working", async () => {
    const server = await rawServer((stream) => answer(stream), { maxHeaderListSize: 4096 });
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 3000 });
    try {
      assert.equal(await codeOf(request('http://users/', { dispatcher: client.dispatcher })), 'ok');
      const big = request('http://users/', { dispatcher: client.dispatcher, headers: { 'x-big': 'a'.repeat(5000) } });
      assert.equal(await codeOf(big), 'SIDECARLESS_INVALID_REQUEST');
      const fits = request('http://users/', { dispatcher: client.dispatcher, headers: { 'x-big': 'a'.repeat(3000) } });
      assert.equal(await codeOf(fits), 'ok');
      assert.equal(server.streams(), 2, 'the large one never reached the endpoint');
      const ep = client.stats().clusters[0]!.endpoints[0]!;
      assert.equal(ep.errorsByKind.reset + ep.errorsByKind.other, 0, JSON.stringify(ep.errorsByKind));
    } finally {
      await client.close();
    }
  });

  it('close() drains a request whose streamed body is still being read: it is sent and answered, close() resolves after it', async () => {
    const server = await rawServer((stream) => answer(stream, ''));
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 5000 });
    assert.equal(await codeOf(request('http://users/', { dispatcher: client.dispatcher })), 'ok');
    async function* slow(): AsyncGenerator<string> {
      for (let i = 0; i < 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        yield 'abcd';
      }
    }
    const events: string[] = [];
    const sent = request('http://users/', {
      dispatcher: client.dispatcher,
      method: 'POST',
      body: slow() as never,
    }).then(
      async (res) => events.push(`${res.statusCode} ${await res.body.text()}`),
      (err: unknown) => events.push(`ERR ${findSidecarlessError(err)?.code ?? String(err)}`),
    );
    await new Promise((resolve) => setTimeout(resolve, 75));
    await client.close().then(() => events.push('closed'));
    await sent;
    assert.deepEqual(events, ['200 got 16', 'closed']);
  });

  it('an endpoint removed by the resolver drains a request whose streamed body is still being read: it is sent and answered', async () => {
    const server = await rawServer((stream) => answer(stream, ''));
    const port = Number(server.address.split(':')[1]);
    const resolver = new PushResolver();
    const client = createClient({ name: 'users', target: resolver, http2: true, timeoutMs: 5000 });
    try {
      resolver.push([createEndpoint({ host: '127.0.0.1', port })]);
      assert.equal(await codeOf(request('http://users/', { dispatcher: client.dispatcher })), 'ok');
      const sent = request('http://users/', {
        dispatcher: client.dispatcher,
        method: 'POST',
        body: slowBody() as never,
      });
      await new Promise((resolve) => setTimeout(resolve, 75));
      resolver.push([]);
      const res = await sent;
      assert.equal(`${res.statusCode} ${await res.body.text()}`, '200 got 16');
    } finally {
      await client.close();
    }
  });

  it('a health check answered and then cut by a graceful GOAWAY (keepalive_requests) is made again, not counted as failed', async () => {
    const server = await rawServer((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('hello');
      stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
    });
    const client = createClient({
      target: [server.address],
      http2: true,
      timeoutMs: 3000,
      healthCheck: { path: '/health', intervalMs: 50, intervalJitterPercent: 0, unhealthyThreshold: 1 },
    });
    const events: string[] = [];
    client.onHealthEvent((e) => events.push(e.type));
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(server.streams() >= 4, `checks were made (${server.streams()})`);
      assert.deepEqual(
        events.filter((e) => e !== 'healthy'),
        [],
      );
      assert.equal(client.stats().clusters[0]!.endpoints[0]!.healthy, true);
    } finally {
      await client.close();
    }
  });

  it('a health check cut by a graceful GOAWAY is made again at once on a new connection, and passes there', async () => {
    let streams = 0;
    const sessions = new Set<unknown>();
    const server = await rawServer((stream) => {
      sessions.add(stream.session);
      stream.respond({ ':status': 200 });
      stream.end('hello');
      if (streams++ === 0) stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
    });
    const client = createClient({
      target: [server.address],
      http2: true,
      healthCheck: { path: '/health', intervalMs: 60_000, unhealthyThreshold: 1 },
    });
    const events: string[] = [];
    client.onHealthEvent((e) => events.push(e.type));
    try {
      for (let i = 0; i < 200 && server.streams() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(server.streams(), 2, 'the check was made again at once');
      assert.equal(sessions.size, 2, 'on a new connection');
      assert.deepEqual(events, [], 'not marked unhealthy');
      assert.equal(client.stats().clusters[0]!.endpoints[0]!.healthy, true);
    } finally {
      await client.close();
    }
  });

  it('a health check that a graceful GOAWAY cuts before any answer still fails (a draining server that answers nothing)', async () => {
    const server = await rawServer((stream) => {
      stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
    });
    const client = createClient({
      target: [server.address],
      http2: true,
      healthCheck: { path: '/health', intervalMs: 60_000, timeoutMs: 2000, unhealthyThreshold: 1 },
    });
    const events: string[] = [];
    client.onHealthEvent((e) => events.push(e.type));
    try {
      for (let i = 0; i < 400 && events.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(events, ['unhealthy']);
      assert.equal(server.streams(), 2, 'made twice');
    } finally {
      await client.close();
    }
  });
});
