// A FormData body of a class undici 7 does not encode itself (Node's global FormData, undici 8's) through the
// dispatcher (probe 18, wrong): it failed with an untyped `TypeError: action is not a function`, was retried and
// counted against the endpoint, which was ejected. Real node:http and node:http2 servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { FormData as UndiciFormData, request } from 'undici';
import { createClient, findSidecarlessError } from '../../../src/index.js';
import { withHeader } from '../../../src/request/headers.js';

interface Received {
  readonly contentType: string | undefined;
  readonly body: Buffer;
}

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});

/**
 * A server recording each request's content-type and body. With `resetFirst`, it destroys the first request's
 * connection once that request's body has arrived (a reset after the body was sent: the PUT is replayed).
 */
async function recorder(protocol: 'h1' | 'h2', resetFirst = false): Promise<{ address: string; seen: Received[] }> {
  const seen: Received[] = [];
  const handle = (req: http.IncomingMessage | http2.Http2ServerRequest, answer: (fail: boolean) => void): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ contentType: req.headers['content-type'], body: Buffer.concat(chunks) });
      answer(resetFirst && seen.length === 1);
    });
  };
  let server: http.Server | http2.Http2Server;
  if (protocol === 'h1') {
    server = http.createServer((req, res) => handle(req, (fail) => (fail ? req.socket.destroy() : res.end('ok'))));
  } else {
    server = http2.createServer((req, res) =>
      handle(req, (fail) => (fail ? req.stream.session?.destroy() : res.end('ok'))),
    );
    server.on('session', (session) => session.on('error', () => {}));
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    (server as http.Server).closeAllConnections?.();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** The entries of a multipart body, as a fetch `Response` parses it. */
async function entries(received: Received): Promise<unknown[]> {
  const form = await new Response(received.body, {
    headers: { 'content-type': received.contentType ?? '' },
  }).formData();
  const out: unknown[] = [];
  for (const [name, value] of form) {
    out.push(typeof value === 'string' ? [name, value] : [name, value.name, value.type, await value.text()]);
  }
  return out;
}

function globalForm(): FormData {
  const form = new FormData();
  form.set('a', 'hello');
  form.append('line"s', 'one\ntwo');
  form.append('file', new File(['file bytes'], 'f "1".txt', { type: 'text/plain' }));
  form.append('blob', new Blob([new Uint8Array([1, 2, 3])]));
  return form;
}

const EXPECTED = [
  ['a', 'hello'],
  ['line"s', 'one\r\ntwo'],
  ['file', 'f "1".txt', 'text/plain', 'file bytes'],
  ['blob', 'blob', 'application/octet-stream', '\u0001\u0002\u0003'],
];

const code = (err: unknown): string =>
  findSidecarlessError(err)?.code ?? (err as { code?: string }).code ?? (err as Error).constructor.name;

describe("a FormData body of another class than undici 7's own is sent (probe 18)", () => {
  for (const protocol of ['h1', 'h2'] as const) {
    it(`Node's global FormData through the dispatcher (${protocol}): sent as multipart, the endpoint charged nothing`, async () => {
      const server = await recorder(protocol);
      const client = createClient({ target: [server.address], http2: protocol === 'h2', timeoutMs: 0 });
      try {
        for (let i = 0; i < 8; i++) {
          const res = await request('http://svc/', {
            dispatcher: client.dispatcher,
            method: 'PUT',
            body: globalForm() as never,
          });
          assert.equal(await res.body.text(), 'ok');
        }
        assert.equal(server.seen.length, 8);
        const first = server.seen[0]!;
        assert.match(String(first.contentType), /^multipart\/form-data; boundary=/);
        assert.deepEqual(await entries(first), EXPECTED);
        const endpoint = client.stats().clusters[0]?.endpoints[0];
        assert.equal(endpoint?.errors, 0);
        assert.equal(endpoint?.ejected, false);
      } finally {
        await client.close();
      }
    });

    it(`is replayed byte for byte after a reset (${protocol})`, async () => {
      const server = await recorder(protocol, true);
      const client = createClient({ target: [server.address], http2: protocol === 'h2', timeoutMs: 0 });
      try {
        const res = await request('http://svc/', {
          dispatcher: client.dispatcher,
          method: 'PUT',
          body: globalForm() as never,
        });
        assert.equal(await res.body.text(), 'ok');
        assert.equal(server.seen.length, 2);
        assert.deepEqual(server.seen[1], server.seen[0]);
        assert.deepEqual(await entries(server.seen[1]!), EXPECTED);
      } finally {
        await client.close();
      }
    });
  }

  it("keeps the caller's content-type, and leaves undici 7's own FormData to undici", async () => {
    const server = await recorder('h1');
    const client = createClient({ target: [server.address], timeoutMs: 0 });
    try {
      await request('http://svc/', {
        dispatcher: client.dispatcher,
        method: 'PUT',
        headers: { 'Content-Type': 'multipart/mixed' },
        body: globalForm() as never,
      }).then((res) => res.body.text());
      assert.equal(server.seen[0]?.contentType, 'multipart/mixed');
      const own = new UndiciFormData();
      own.set('a', 'hello');
      await request('http://svc/', { dispatcher: client.dispatcher, method: 'PUT', body: own }).then((res) =>
        res.body.text(),
      );
      assert.match(String(server.seen[1]?.contentType), /^multipart\/form-data; boundary=----formdata-undici-/);
      assert.deepEqual(await entries(server.seen[1]!), [['a', 'hello']]);
    } finally {
      await client.close();
    }
  });

  it("refuses a FormData it cannot encode as the caller's error: not sent, not retried, not charged", async () => {
    const server = await recorder('h1');
    const client = createClient({ target: [server.address], timeoutMs: 0 });
    // A FormData-like whose entry is neither a string nor a Blob.
    const odd = Object.assign(new FormData(), {
      *[Symbol.iterator]() {
        yield ['n', 42];
      },
    });
    try {
      const failed = await request('http://svc/', {
        dispatcher: client.dispatcher,
        method: 'PUT',
        body: odd as never,
      }).then(() => 'answered', code);
      assert.equal(failed, 'SIDECARLESS_INVALID_REQUEST');
      assert.equal(server.seen.length, 0);
      const endpoint = client.stats().clusters[0]?.endpoints[0];
      assert.equal(endpoint?.errors, 0);
      assert.equal(endpoint?.attempts, 0);
    } finally {
      await client.close();
    }
  });
});

describe('withHeader', () => {
  it('adds a header in every form undici takes, unless one of that name (any case) is there', () => {
    assert.deepEqual(withHeader(null, 'content-type', 'x'), ['content-type', 'x']);
    assert.deepEqual(withHeader(['a', '1'], 'content-type', 'x'), ['a', '1', 'content-type', 'x']);
    assert.deepEqual(withHeader(['Content-Type', 'y'], 'content-type', 'x'), ['Content-Type', 'y']);
    assert.deepEqual(withHeader({ a: '1' }, 'content-type', 'x'), { a: '1', 'content-type': 'x' });
    assert.deepEqual(withHeader({ 'CONTENT-TYPE': 'y' }, 'content-type', 'x'), { 'CONTENT-TYPE': 'y' });
    assert.deepEqual(withHeader(new Map([['a', '1']]) as never, 'content-type', 'x'), ['a', '1', 'content-type', 'x']);
    const own = JSON.parse('{"__proto__": "p"}') as Record<string, string>;
    const copy = withHeader(own, 'content-type', 'x') as Record<string, string>;
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.deepEqual(Object.keys(copy), ['__proto__', 'content-type']);
  });
});
