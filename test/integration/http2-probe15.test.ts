// Streamed request bodies found wrong by probe 15: close() giving up on an HTTP/2 body still being read ahead, a
// refused stream whose read-ahead body was over the retry recorder's limit, and a producer that reuses its chunk
// buffer. Real node:http and node:http2 servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError } from 'sidecarless';
import { backendsForFile } from '../helpers/backends.js';
import { rawH2ServersForFile } from '../helpers/h2-raw-server.js';

const backend = backendsForFile();
const rawServer = rawH2ServersForFile();

/** Answers what it received once the request has ended. */
function echo(stream: http2.ServerHttp2Stream): void {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.once('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200 });
    stream.end(Buffer.concat(chunks));
  });
}

/** Rejects with a HANG error after `ms`, so a request that never settles fails the test instead of stalling it. */
function bounded<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

const outcome = (p: Promise<Awaited<ReturnType<typeof request>>>): Promise<string> =>
  p.then(
    async (res) => `${res.statusCode} ${(await res.body.text()).length}`,
    (err: unknown) => findSidecarlessError(err)?.code ?? `uncoded ${(err as { code?: string }).code}`,
  );

/** `size` bytes in 16 KiB chunks. */
async function* sized(size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < size; at += 16384) yield Buffer.alloc(Math.min(16384, size - at), 1);
}

/** Yields `aaaa`, `bbbb`, `cccc`, each written into the same buffer when asked for (safe with undici alone). */
async function* reusing(): AsyncGenerator<Buffer> {
  const buf = Buffer.alloc(4);
  for (const s of ['aaaa', 'bbbb', 'cccc']) {
    buf.write(s);
    yield buf;
  }
}

describe('HTTP/2: close() gives up on a body still being read ahead (probe 15, hang)', () => {
  for (const timeoutMs of [0, undefined]) {
    it(`the request fails with SIDECARLESS_CLIENT_CLOSED when the drain times out (timeoutMs ${timeoutMs ?? 'default'})`, async () => {
      const server = await rawServer(echo);
      const client = createClient({
        target: [server.address],
        http2: true,
        drainTimeoutMs: 200,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      });
      const body = new PassThrough();
      body.write('start'); // the upload is never ended
      try {
        const sent = outcome(request('http://svc/', { dispatcher: client.dispatcher, method: 'PUT', body }));
        await new Promise((resolve) => setTimeout(resolve, 100));
        await client.close();
        // Before the fix it stayed pending (timeoutMs 0), or failed at its deadline, 15 s after close() returned.
        assert.equal(await bounded(sent), 'SIDECARLESS_CLIENT_CLOSED');
        assert.equal(server.streams(), 0, 'nothing of it was sent');
      } finally {
        body.destroy();
      }
    });
  }
});

describe('HTTP/2: a refused stream is replayed from the read-ahead, over the retry recorder limit (probe 15, loss)', () => {
  it('a streamed PUT of 100 KiB, and a fetch body of 100 KiB, are sent again to the other endpoint; one over 1 MiB is not', async () => {
    const refusing = await rawServer((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const healthy = await rawServer(echo);
    const options = {
      target: [refusing.address, healthy.address],
      http2: true,
      picker: 'round-robin',
      outlierDetection: false,
      timeoutMs: 10_000,
    } as const;
    const client = createClient(options);
    try {
      const seen: string[] = [];
      // Round robin: at least one of each pair lands on the refusing endpoint first.
      for (let i = 0; i < 2; i++) {
        const body = sized(100 * 1024) as never;
        seen.push(await outcome(request('http://svc/', { dispatcher: client.dispatcher, method: 'PUT', body })));
      }
      for (let i = 0; i < 2; i++) {
        const res = await client.fetch('http://svc/', { method: 'PUT', body: 'x'.repeat(100 * 1024) });
        seen.push(`${res.status} ${(await res.text()).length}`);
      }
      assert.deepEqual(seen, ['200 102400', '200 102400', '200 102400', '200 102400']);
      assert.ok(client.stats().clusters[0]!.requests.extraAttempts >= 2);
    } finally {
      await client.close();
    }
    // Past the read-ahead (1 MiB) the rest is streamed: what was sent is not held, so it is never replayed. A new
    // client: of two requests, exactly one lands on the refusing endpoint first.
    const fresh = createClient(options);
    try {
      const big: string[] = [];
      for (let i = 0; i < 2; i++) {
        const body = sized(1536 * 1024) as never;
        big.push(await outcome(request('http://svc/', { dispatcher: fresh.dispatcher, method: 'PUT', body })));
      }
      assert.deepEqual(big.sort(), [`200 ${1536 * 1024}`, 'SIDECARLESS_NOT_PROCESSED']);
    } finally {
      await fresh.close();
    }
  });
});

describe('a producer that reuses its chunk buffer (probe 15, wrong)', () => {
  it('HTTP/1.1: the retry after a 503 sends the bytes as they were yielded', async () => {
    let n = 0;
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (++n === 1) {
          res.statusCode = 503;
          res.end();
          return;
        }
        res.end(Buffer.concat(chunks));
      });
    };
    const a = await backend('reuse-a', handler);
    const b = await backend('reuse-b', handler);
    const client = createClient({ target: [a.address, b.address], outlierDetection: false, retryBudget: false });
    try {
      const res = await request('http://svc/', {
        dispatcher: client.dispatcher,
        method: 'PUT',
        body: reusing() as never,
      });
      assert.equal(`${res.statusCode} ${await res.body.text()}`, '200 aaaabbbbcccc');
      assert.equal(n, 2);
    } finally {
      await client.close();
    }
  });

  for (const retry of [false, undefined]) {
    it(`HTTP/2 (retry ${retry === false ? 'off' : 'on'}): the only attempt sends the bytes as they were yielded`, async () => {
      const server = await rawServer(echo);
      const client = createClient({ target: [server.address], http2: true, ...(retry === false ? { retry } : {}) });
      try {
        const res = await request('http://svc/', {
          dispatcher: client.dispatcher,
          method: 'PUT',
          body: reusing() as never,
        });
        assert.equal(`${res.statusCode} ${await res.body.text()}`, '200 aaaabbbbcccc');
      } finally {
        await client.close();
      }
    });
  }
});
