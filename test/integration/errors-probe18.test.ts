// Retries of streamed request bodies found wrong by probe 18 (the README "Errors" table): over HTTP/2 a body over
// `retry.bufferBody` was sent again for any retry once the read-ahead held it whole, not only for a stream the
// endpoint did not process; and with `request()` the caller's body stream failing while a retried 503 was set aside
// gave SIDECARLESS_RESPONSE_DISCARDED (no cause) instead of the stream's own error. Real node:http and node:http2
// servers on 127.0.0.1.
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError, statusForError } from 'sidecarless';
import { rawH2Server } from '../helpers/h2-raw-server.js';

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});

/** 1800 bytes in three chunks: over the 1024-byte `retry.bufferBody` of these tests. */
const overLimit = (): Readable =>
  Readable.from(
    (function* () {
      for (let i = 0; i < 3; i++) yield Buffer.alloc(600, 97);
    })(),
  );

type Mode = '503' | 'reset';

/** A server (HTTP/2 or 1.1) that reads each request whole, records its size, then answers 503 or resets the stream. */
async function upstream(h2: boolean, mode: Mode): Promise<{ address: string; received: number[] }> {
  const received: number[] = [];
  const onRequest = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    let n = 0;
    req.on('data', (chunk: Buffer) => (n += chunk.length));
    req.on('end', () => {
      received.push(n);
      if (mode === 'reset' && 'stream' in res) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else {
        res.statusCode = 503;
        res.end('busy');
      }
    });
  };
  const server = h2 ? http2.createServer(onRequest) : http.createServer(onRequest);
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

async function send(h2: boolean, method: string, mode: Mode, retryNonIdempotent = false) {
  const server = await upstream(h2, mode);
  const client = createClient({
    target: [server.address],
    http2: h2,
    outlierDetection: false,
    retry: { bufferBody: 1024, retryNonIdempotent, backoff: { initialMs: 10, maxMs: 10 } },
  });
  try {
    const outcome = await request('http://svc/x', { dispatcher: client.dispatcher, method, body: overLimit() }).then(
      async (res) => `${res.statusCode} ${await res.body.text()}`,
      (err: unknown) => `error ${findSidecarlessError(err)?.code ?? (err as { code?: string }).code}`,
    );
    return { outcome, received: server.received };
  } finally {
    await client.close();
  }
}

describe('a streamed body over retry.bufferBody is sent once, also over HTTP/2 (probe 18, wrong)', () => {
  for (const [h2, method, retryNonIdempotent] of [
    [true, 'PUT', false],
    [true, 'POST', true],
    [false, 'PUT', false],
    [false, 'POST', true],
  ] as const) {
    it(`${h2 ? 'HTTP/2' : 'HTTP/1.1'} ${method}${retryNonIdempotent ? ' (retryNonIdempotent)' : ''}: a retried 503 goes to the caller`, async () => {
      const { outcome, received } = await send(h2, method, '503', retryNonIdempotent);
      assert.equal(outcome, '503 busy');
      // Before the fix, HTTP/2 sent it maxAttempts (3) times.
      assert.deepEqual(received, [1800]);
    });
  }

  it('HTTP/2 PUT: a stream reset after the endpoint read the whole body is not retried', async () => {
    const { outcome, received } = await send(true, 'PUT', 'reset');
    assert.match(outcome, /^error /);
    assert.deepEqual(received, [1800]);
  });

  for (const [method, retryNonIdempotent] of [
    ['PUT', false],
    ['POST', true],
    ['POST', false],
  ] as const) {
    it(`HTTP/2 ${method}${retryNonIdempotent ? ' (retryNonIdempotent)' : ''}: a refused stream is still sent again whole`, async () => {
      let streams = 0;
      const server = await rawH2Server((stream) => {
        // The first stream is refused unprocessed; the next is answered with what it carried.
        if (streams++ === 0) {
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.once('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(String(Buffer.concat(chunks).length));
        });
      });
      closers.push(server.close);
      const client = createClient({
        target: [server.address],
        http2: true,
        outlierDetection: false,
        retry: { bufferBody: 1024, retryNonIdempotent, backoff: { initialMs: 10, maxMs: 10 } },
      });
      try {
        const res = await request('http://svc/x', { dispatcher: client.dispatcher, method, body: overLimit() });
        assert.deepEqual([res.statusCode, await res.body.text()], [200, '1800']);
        assert.equal(streams, 2);
      } finally {
        await client.close();
      }
    });
  }
});

describe("request(): the caller's body stream failing while a retried 503 is set aside (probe 18, wrong)", () => {
  it("gives the stream's own error, the caller's, as client.fetch does: not SIDECARLESS_RESPONSE_DISCARDED", async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('busy');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const client = createClient({
      target: [`127.0.0.1:${(server.address() as AddressInfo).port}`],
      outlierDetection: false,
      // A wait long enough that the stream fails during it.
      retry: { backoff: { initialMs: 1000, maxMs: 1000, jitter: 0 } },
    });
    const body = new PassThrough();
    body.write(Buffer.alloc(600, 97)); // never ended
    const failure = new Error('producer failed');
    // Once the 503's headers have arrived (the response is being set aside), the caller's stream fails.
    const onHeaders = (message: unknown) => {
      const { response } = message as { response: { statusCode: number } };
      if (response.statusCode === 503) setImmediate(() => body.destroy(failure));
    };
    dc.subscribe('undici:request:headers', onHeaders);
    try {
      const err = await request('http://svc/', { dispatcher: client.dispatcher, method: 'PUT', body }).then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.equal(findSidecarlessError(err)?.code, undefined, 'not a sidecarless error');
      assert.equal(err, failure);
      assert.equal(statusForError(err), 499, "the caller's failure, not the endpoint's (502)");
    } finally {
      dc.unsubscribe('undici:request:headers', onHeaders);
      body.destroy();
      await client.close();
    }
  });
});
