// HTTP/2 clusters found wrong by probe 17: close() waiting drainTimeoutMs for a request its caller gave up on while
// its streamed body was read ahead, and the first burst to a TLS endpoint that picks HTTP/1.1 run one request at a
// time on one connection. Real node:http2 and node:https servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError } from 'sidecarless';
import { selfSigned } from '../helpers/kubernetes-api.js';
import { rawH2ServersForFile } from '../helpers/h2-raw-server.js';

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});
const rawServer = rawH2ServersForFile();

/** Answers once the request has ended. */
function answer(stream: http2.ServerHttp2Stream): void {
  stream.resume();
  stream.once('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
}

/** Rejects with a HANG error after `ms`, so a promise that never settles fails the test instead of stalling it. */
function bounded<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

const code = (err: unknown): string =>
  findSidecarlessError(err)?.code ?? (err as { name?: string }).name ?? String(err);

/** Yields 1000 bytes, then never yields again nor ends (a stalled upload). */
async function* stalled(): AsyncGenerator<Buffer> {
  yield Buffer.alloc(1000);
  await new Promise(() => {});
}

describe('HTTP/2: an attempt given up while its body is read ahead holds up no drain (probe 17, hang)', () => {
  for (const end of ['abort', 'deadline'] as const) {
    it(`close() ends at once after the caller's ${end}, though drainTimeoutMs is long`, async () => {
      const server = await rawServer(answer);
      const client = createClient({
        target: [server.address],
        http2: true,
        drainTimeoutMs: 60_000,
        timeoutMs: end === 'deadline' ? 200 : 0,
      });
      try {
        const failed = await request('http://svc/', {
          dispatcher: client.dispatcher,
          method: 'POST',
          body: stalled() as never,
          ...(end === 'abort' ? { signal: AbortSignal.timeout(200) } : {}),
        }).then(
          () => 'answered',
          (err: unknown) => code(err),
        );
        assert.equal(failed, end === 'abort' ? 'TimeoutError' : 'SIDECARLESS_DEADLINE_EXCEEDED');
        assert.equal(client.stats().clusters[0]?.endpoints[0]?.inFlight, 0);
      } finally {
        await bounded(client.close(), 'close()');
      }
      assert.equal(server.streams(), 0, 'the abandoned attempt was never sent');
    });
  }

  it('client.fetch: a stalled ReadableStream body, aborted: close() ends at once', async () => {
    const server = await rawServer(answer);
    const client = createClient({ target: [server.address], http2: true, drainTimeoutMs: 60_000, timeoutMs: 0 });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(1000)); // and nothing after, nor an end
      },
    });
    try {
      const failed = await client
        .fetch('http://svc/', { method: 'POST', body, duplex: 'half', signal: AbortSignal.timeout(200) } as RequestInit)
        .then(
          () => 'answered',
          (err: unknown) => code(err),
        );
      assert.equal(failed, 'TimeoutError');
    } finally {
      await bounded(client.close(), 'close()');
    }
  });
});

describe('HTTP/2 over TLS: the first burst to an endpoint that picks HTTP/1.1 (probe 17, wrong)', () => {
  let tls: { cert: string; key: string };
  before(() => {
    tls = selfSigned('users', 'DNS:users,IP:127.0.0.1');
  });

  /** An HTTP/1.1-only TLS server that answers nothing until `batch` requests have arrived, then all of them. */
  async function batchServer(batch: number): Promise<{ address: string; seen: string[]; connections(): number }> {
    const seen: string[] = [];
    let connections = 0;
    let waiting: Array<() => void> = [];
    const server = https.createServer(tls, (req, res) => {
      seen.push(`${req.method} ${String(req.headers['x-rid'])}`);
      req.resume();
      waiting.push(() => res.end(req.httpVersion));
      if (waiting.length >= batch) {
        for (const release of waiting) release();
        waiting = [];
      }
    });
    server.on('secureConnection', () => connections++);
    closers.push(() => {
      server.closeAllConnections();
      server.close();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
      seen,
      connections: () => connections,
    };
  }

  it('a burst sent as the client starts runs on HTTP/1.1 connections at once, each request sent once', async () => {
    const server = await batchServer(8);
    const client = createClient({ target: [server.address], tls: { ca: tls.cert }, http2: true, timeoutMs: 0 });
    try {
      // Answered only once all eight have arrived: one at a time on the HTTP/2 pool's one connection, they never are.
      const bodies = await bounded(
        Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            request('https://users/', {
              dispatcher: client.dispatcher,
              method: i % 2 === 0 ? 'GET' : 'POST',
              headers: { 'x-rid': String(i) },
              ...(i % 2 === 0 ? {} : { body: `body ${i}` }),
            }).then((r) => r.body.text()),
          ),
        ),
        'the burst',
      );
      assert.deepEqual(bodies, Array(8).fill('1.1'));
      assert.deepEqual(
        [...server.seen].sort(),
        Array.from({ length: 8 }, (_, i) => `${i % 2 === 0 ? 'GET' : 'POST'} ${i}`).sort(),
      );
      assert.ok(server.connections() >= 8, `${server.connections()} connections`);
    } finally {
      await client.close();
    }
  });

  it('an endpoint that refuses connections fails the whole burst, not one request per connect attempt', async () => {
    const server = await batchServer(1);
    const address = server.address;
    closers.pop()?.(); // nothing listens on the port any more
    await new Promise((resolve) => setTimeout(resolve, 50));
    const client = createClient({
      target: [address],
      tls: { ca: tls.cert },
      http2: true,
      timeoutMs: 0,
      retry: { maxAttempts: 1 },
    });
    try {
      const codes = await bounded(
        Promise.all(
          Array.from({ length: 5 }, () =>
            request('https://users/', { dispatcher: client.dispatcher }).then(
              () => 'answered',
              (err: unknown) => code(err),
            ),
          ),
        ),
        'the burst',
      );
      assert.ok(
        codes.every((c) => c !== 'answered'),
        codes.join(),
      );
    } finally {
      await bounded(client.close(), 'close()');
    }
  });

  // Probe 19: a TLS failure of the first connection (a certificate for another name, a reset handshake) passed the
  // next held request on from inside undici's error handling (an assertion there killed the process), one at a time.
  for (const failure of ['a certificate for another name', 'a handshake the endpoint resets'] as const) {
    it(`the first connection failing (${failure}) fails the held burst with its error, at once`, async () => {
      // Counts TCP connections: one at a time, each held request would make its own.
      let connections = 0;
      const sockets = new Set<import('node:net').Socket>();
      const net = await import('node:net');
      const server =
        failure === 'a certificate for another name'
          ? https.createServer(tls, (_req, res) => res.end('x'))
          : net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
      server.on('connection', (socket: import('node:net').Socket) => {
        connections++;
        sockets.add(socket);
      });
      closers.push(() => {
        for (const socket of sockets) socket.destroy();
        server.close();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const client = createClient({
        target: [address],
        tls: { ca: tls.cert, servername: 'other' },
        http2: true,
        retry: { maxAttempts: 1 },
        outlierDetection: false,
      });
      try {
        const codes = await bounded(
          Promise.all(
            Array.from({ length: 6 }, () =>
              request('https://users/', { dispatcher: client.dispatcher }).then(
                () => 'answered',
                (err: unknown) => code(err),
              ),
            ),
          ),
          'the burst',
        );
        assert.ok(
          codes.every((c) => c !== 'answered' && c !== 'SIDECARLESS_DEADLINE_EXCEEDED'),
          codes.join(),
        );
        assert.ok(connections <= 2, `${connections} connections: the burst went one at a time`);
      } finally {
        await bounded(client.close(), 'close()');
      }
    });
  }

  it('a first request undici refuses does not hold back those behind it', async () => {
    const server = await batchServer(1);
    const client = createClient({ target: [server.address], tls: { ca: tls.cert }, http2: true, timeoutMs: 0 });
    try {
      const outcomes = await bounded(
        Promise.all(
          Array.from({ length: 4 }, (_, i) =>
            request('https://users/', {
              dispatcher: client.dispatcher,
              headers: { 'x-rid': i === 0 ? 'bad\nvalue' : String(i) },
            }).then(
              (r) => r.body.text(),
              (err: unknown) => `failed ${(err as { code?: string }).code}`,
            ),
          ),
        ),
        'the burst',
      );
      assert.match(outcomes[0] ?? '', /^failed /);
      assert.deepEqual(outcomes.slice(1), ['1.1', '1.1', '1.1']);
    } finally {
      await client.close();
    }
  });
});
