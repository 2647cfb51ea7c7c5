// HTTP/2 to endpoints (issue 18): ALPN h2 over TLS and its fallback to HTTP/1.1, h2c with prior knowledge, stream
// counting in least-request, the stream limits (ours and the endpoint's SETTINGS_MAX_CONCURRENT_STREAMS), and GOAWAY
// as a drain. Real node:http2 servers on 127.0.0.1 with a certificate made here (openssl, test/helpers).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError, InvalidOptionError, seededRandom } from 'sidecarless';
import { assertFailingBodyIsCallers } from '../helpers/failing-body.js';
import { selfSigned } from '../helpers/kubernetes-api.js';
import { type RawH2Server, rawH2Server } from '../helpers/h2-raw-server.js';

interface Seen {
  readonly method: string;
  readonly version: string;
  readonly rid: string | undefined;
}

/** A node:http2 server (TLS unless `cleartext`) that records what it received and on how many sessions. */
class H2Server {
  readonly seen: Seen[] = [];
  sessions = 0;
  /** Streams open at once on one session, at most. */
  maxActive = 0;
  readonly server: http2.Http2SecureServer | http2.Http2Server;
  #active = new Map<http2.Http2Session, number>();
  readonly #sockets = new Set<import('node:net').Socket>();

  constructor(
    options: { cleartext?: boolean; allowHTTP1?: boolean; settings?: http2.Settings },
    handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, server: H2Server) => void = (_q, res) =>
      res.end('ok'),
  ) {
    const onRequest = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
      const session = req.stream?.session;
      if (session !== undefined && session !== null) {
        const n = (this.#active.get(session) ?? 0) + 1;
        this.#active.set(session, n);
        if (n > this.maxActive) this.maxActive = n;
        res.once('close', () => this.#active.set(session, (this.#active.get(session) ?? 1) - 1));
      }
      this.seen.push({ method: req.method, version: req.httpVersion, rid: req.headers['x-rid'] as string | undefined });
      handler(req, res, this);
    };
    const common = { settings: options.settings ?? {} };
    this.server = options.cleartext
      ? http2.createServer(common, onRequest)
      : http2.createSecureServer({ ...tls, ...common, allowHTTP1: options.allowHTTP1 ?? false }, onRequest);
    this.server.on('session', () => this.sessions++);
    // Counted, so a test can check the client closed its connections; close() destroys what is left.
    this.server.on('connection', (socket: import('node:net').Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Connections open on the server side. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.server.close();
  }
}

let tls: { cert: string; key: string };
const servers: Array<{ close(): void }> = [];
before(() => {
  tls = selfSigned('users', 'DNS:users,IP:127.0.0.1');
});
after(() => {
  for (const s of servers) s.close();
});

async function start(server: H2Server): Promise<string> {
  servers.push(server);
  return server.listen();
}

/** Resolves once `condition` holds, checking after each turn of the event loop; fails after `turns`. */
async function until(condition: () => boolean, what: string, turns = 20_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('HTTP/2 to endpoints', () => {
  it('speaks HTTP/2 over TLS when the endpoint offers h2 (ALPN), many requests on one connection', async () => {
    const server = new H2Server({ allowHTTP1: true }, (req, res) => res.end(`${req.httpVersion} ${req.method}`));
    const client = createClient({ target: [await start(server)], tls: { ca: tls.cert }, http2: true });
    try {
      const bodies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          client.fetch('https://users/', i % 2 ? { method: 'POST', body: 'x' } : {}).then((r) => r.text()),
        ),
      );
      assert.deepEqual(new Set(bodies), new Set(['2.0 GET', '2.0 POST']));
      assert.equal(server.sessions, 1, 'one connection per endpoint by default');
      assert.ok(server.maxActive > 1, 'POSTs and GETs multiplexed as streams');
    } finally {
      await client.close();
    }
  });

  it('falls back to HTTP/1.1 where the endpoint does not offer h2, without pipelining or a one-connection cap', async () => {
    let held: Array<() => void> = [];
    const server = https.createServer(tls, (req, res) => {
      held.push(() => res.end(`${req.httpVersion}`));
      if (req.url === '/now' || held.length === 8) {
        for (const release of held) release();
        held = [];
      }
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = createClient({ target: [address], tls: { ca: tls.cert }, http2: true });
    try {
      assert.equal(await (await client.fetch('https://users/now')).text(), '1.1');
      // Eight at once, answered only when all eight arrived: an HTTP/2 pool's single connection would deadlock.
      const bodies = await Promise.all(
        Array.from({ length: 8 }, () => client.fetch('https://users/').then((r) => r.text())),
      );
      assert.deepEqual(bodies, Array(8).fill('1.1'));
    } finally {
      await client.close();
    }
  });

  it('speaks h2c with prior knowledge to a cleartext endpoint', async () => {
    const server = new H2Server({ cleartext: true }, (req, res) => res.end(req.httpVersion));
    const client = createClient({ target: [await start(server)], http2: { maxConcurrentStreams: 10 } });
    try {
      const bodies = await Promise.all(
        Array.from({ length: 5 }, () => client.fetch('http://users/', { method: 'PUT', body: 'x' })),
      );
      assert.deepEqual(await Promise.all(bodies.map((r) => r.text())), Array(5).fill('2.0'));
      assert.equal(server.sessions, 1);
    } finally {
      await client.close();
    }
  });

  it('least-request counts streams in flight on one connection, not connections', async () => {
    const slowHeld: http2.Http2ServerResponse[] = [];
    const slow = new H2Server({}, (_req, res) => slowHeld.push(res));
    const fast = new H2Server({}, (_req, res) => res.end('fast'));
    const fastAddress = await start(fast);
    const client = createClient({
      target: [await start(slow), fastAddress],
      tls: { ca: tls.cert },
      http2: true,
      picker: 'least-request',
      random: seededRandom(7),
      retry: false,
    });
    try {
      const wave = (n: number) => Array.from({ length: n }, () => client.fetch('https://users/'));
      const first = wave(10);
      await until(() => slowHeld.length + fast.seen.length === 10, 'the first wave');
      const fastEndpoint = () => client.stats().clusters[0]!.endpoints.find((e) => e.key === fastAddress)!;
      await until(() => fastEndpoint().inFlight === 0, 'the fast half to finish'); // the slow half stays in flight
      const slowBefore = slowHeld.length;
      const fastBefore = fast.seen.length;
      assert.ok(slowBefore >= 4 && slowBefore <= 6, `the first wave is split about evenly (${slowBefore} slow)`);
      const second = wave(10);
      await until(() => slowHeld.length + fast.seen.length === 20, 'the second wave');
      // The slow endpoint has `slowBefore` streams in flight on its one connection, the fast one none: the fast
      // one takes the second wave until the loads are level, then they alternate.
      const toFast = fast.seen.length - fastBefore;
      assert.ok(toFast >= 7, `the second wave goes mostly to the endpoint with fewer streams (${toFast} of 10)`);
      assert.equal(slow.sessions, 1, 'all the slow endpoint streams share one connection');
      for (const res of slowHeld) res.end('slow');
      await Promise.all([...first, ...second].map((p) => p.then((r) => r.text())));
    } finally {
      await client.close();
    }
  });

  it('keeps at most maxConcurrentStreams streams open on a connection; the rest wait, none fails', async () => {
    const server = new H2Server({}, (_req, res) => setImmediate(() => res.end('ok')));
    const client = createClient({
      target: [await start(server)],
      tls: { ca: tls.cert },
      http2: { maxConcurrentStreams: 2 },
    });
    try {
      const bodies = await Promise.all(Array.from({ length: 12 }, () => client.fetch('https://users/')));
      assert.deepEqual(await Promise.all(bodies.map((r) => r.text())), Array(12).fill('ok'));
      assert.ok(server.maxActive <= 2, `at most 2 streams at once (saw ${server.maxActive})`);
      assert.equal(server.sessions, 1);
    } finally {
      await client.close();
    }
  });

  it("respects the endpoint's SETTINGS_MAX_CONCURRENT_STREAMS: the excess waits rather than fails", async () => {
    const server = new H2Server({ settings: { maxConcurrentStreams: 3 } }, (_req, res) =>
      setImmediate(() => res.end('ok')),
    );
    const client = createClient({ target: [await start(server)], tls: { ca: tls.cert }, http2: true, retry: false });
    try {
      await (await client.fetch('https://users/')).text(); // the connection has the endpoint's SETTINGS now
      const bodies = await Promise.all(Array.from({ length: 15 }, () => client.fetch('https://users/')));
      assert.deepEqual(await Promise.all(bodies.map((r) => r.text())), Array(15).fill('ok'));
      assert.ok(server.maxActive <= 3, `at most 3 streams at once (saw ${server.maxActive})`);
      assert.equal(client.stats().clusters[0]!.endpoints[0]!.errors, 0);
    } finally {
      await client.close();
    }
  });

  it('replays streams the endpoint refused (REFUSED_STREAM) whatever their method, each processed once', async () => {
    // The endpoint refuses its first three streams unprocessed (an overloaded server does); they are replayed.
    let refused = 0;
    const server = new H2Server({}, (req, res, self) => {
      if (refused < 3) {
        refused++;
        self.seen.pop(); // not processed
        req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      setImmediate(() => res.end('ok'));
    });
    const client = createClient({
      target: [await start(server)],
      tls: { ca: tls.cert },
      http2: true,
      retryBudget: false,
      retry: { maxAttempts: 5, backoff: { initialMs: 1, maxMs: 5 } },
    });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          client.fetch('https://users/', { method: 'POST', body: 'x', headers: { 'x-rid': `p${i}` } }),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed, [], 'no caller error');
      const rids = server.seen.map((s) => s.rid).sort();
      assert.deepEqual(rids, Array.from({ length: 8 }, (_, i) => `p${i}`).sort(), 'each POST processed once');
      const ep = client.stats().clusters[0]!.endpoints[0]!;
      assert.equal(ep.errorsByKind.reset + ep.errorsByKind.other, 0, 'refusals are not endpoint failures');
      assert.equal(ep.attempts, 8 + ep.errorsByKind.goaway, 'every refused stream sent again, once');
    } finally {
      await client.close();
    }
  });

  it('treats GOAWAY as a drain: unprocessed streams retried elsewhere (POSTs too), processed POSTs not replayed', async () => {
    // The draining endpoint takes six streams on its first connection, then sends GOAWAY with the third as the last
    // it processes. As RFC 9113 requires, it never processes a stream above that id.
    const processed: Array<{ rid: string; method: string }> = [];
    let lastId = -1;
    let firstSession: http2.Http2Session | undefined;
    const held: Array<{ id: number; req: http2.Http2ServerRequest; res: http2.Http2ServerResponse }> = [];
    const draining = new H2Server({}, (req, res) => {
      const stream = req.stream;
      firstSession ??= stream.session ?? undefined;
      const rid = req.headers['x-rid'] as string;
      if (stream.session !== firstSession) {
        processed.push({ rid, method: req.method });
        res.end('draining, second connection');
        return;
      }
      if (lastId >= 0) return; // above the last stream id: not processed
      held.push({ id: stream.id!, req, res });
      if (held.length < 6) return;
      lastId = held[2]!.id;
      firstSession!.goaway(http2.constants.NGHTTP2_NO_ERROR, lastId);
      for (const h of held) {
        if (h.id > lastId) continue;
        processed.push({ rid: h.req.headers['x-rid'] as string, method: h.req.method });
        setImmediate(() => {
          if (!h.res.closed) h.res.end('draining');
        });
      }
    });
    const other = new H2Server({}, (_req, res) => res.end('other'));
    const drainingAddress = await start(draining);
    const client = createClient({
      target: [drainingAddress, await start(other)],
      tls: { ca: tls.cert },
      http2: true,
      random: seededRandom(3),
      retryBudget: false,
      retry: { backoff: { initialMs: 1, maxMs: 5 } },
      outlierDetection: { consecutive5xx: 1, consecutiveGatewayFailure: 1, maxEjectionPercent: 100 },
    });
    try {
      const requests = Array.from({ length: 12 }, (_, i) => {
        const method = i % 4 < 2 ? 'GET' : 'POST';
        const rid = `r${i}`;
        return {
          rid,
          method,
          result: client
            .fetch('https://users/', { method, headers: { 'x-rid': rid }, body: method === 'POST' ? 'x' : null })
            .then((r) => r.text()),
        };
      });
      const settled = await Promise.allSettled(requests.map((r) => r.result));
      assert.equal(lastId >= 0, true, 'the endpoint sent GOAWAY');
      const processedFirst = new Set(processed.map((p) => p.rid));
      const otherRids = other.seen.map((s) => s.rid);
      for (const [i, r] of requests.entries()) {
        const outcome = settled[i]!;
        if (outcome.status === 'rejected') {
          // Only a POST the draining endpoint processed (below the last stream id) may fail: it is not replayed.
          assert.equal(r.method, 'POST', `${r.rid} failed: ${String(outcome.reason)}`);
          assert.ok(processedFirst.has(r.rid), `${r.rid} failed but was not processed`);
          assert.ok(!otherRids.includes(r.rid), `${r.rid} was replayed`);
        } else if (!processedFirst.has(r.rid)) {
          assert.ok(otherRids.includes(r.rid), `${r.rid} went elsewhere`);
        }
      }
      const unprocessed = held.filter((h) => h.id > lastId).map((h) => h.req.headers['x-rid'] as string);
      assert.equal(unprocessed.length, 3);
      for (const rid of unprocessed) {
        const i = requests.findIndex((r) => r.rid === rid);
        assert.equal(settled[i]!.status, 'fulfilled', `${rid} (not processed) reached the caller as an error`);
      }
      const posts = [...processed.map((p) => p.rid), ...otherRids].filter((rid) =>
        requests.some((r) => r.rid === rid && r.method === 'POST'),
      );
      assert.equal(new Set(posts).size, posts.length, 'no POST processed twice');

      const ep = client.stats().clusters[0]!.endpoints.find((e) => e.key === drainingAddress)!;
      assert.equal(ep.ejected, false, 'a draining endpoint is not ejected');
      assert.equal(ep.timesEjected, 0);
      assert.equal(ep.connectFailures, 0, 'GOAWAY is not a connection failure');
      assert.ok(ep.errorsByKind.goaway >= 3, `goaway outcomes: ${JSON.stringify(ep.errorsByKind)}`);
      assert.equal(ep.errorsByKind.reset, 0);

      // New requests open a new connection to it.
      const later = await Promise.all(Array.from({ length: 6 }, () => client.fetch('https://users/')));
      const texts = await Promise.all(later.map((r) => r.text()));
      assert.ok(texts.includes('draining, second connection'), texts.join(', '));
      assert.ok(draining.sessions >= 2, 'on a new connection');
    } finally {
      await client.close();
    }
    // Regression: undici 7's Pool dropped the Client that saw the GOAWAY without closing it, and that Client
    // reconnected: a connection nothing could close (close() and destroy() no longer reached it).
    await until(() => draining.openSockets === 0, 'every connection to the draining endpoint to close');
  });

  it('a POST cut by GOAWAY reaches the caller as a GOAWAY error (it may have been processed)', async () => {
    let session: http2.Http2Session | undefined;
    const server = new H2Server({}, (req) => {
      session = req.stream.session ?? undefined;
      session?.goaway(http2.constants.NGHTTP2_NO_ERROR, req.stream.id);
    });
    const client = createClient({ target: [await start(server)], tls: { ca: tls.cert }, http2: true });
    try {
      const err = await client.fetch('https://users/', { method: 'POST', body: 'x' }).catch((e: unknown) => e);
      assert.ok(err instanceof TypeError, 'fetch failed');
      assert.equal(findSidecarlessError(err), undefined, 'not a NotProcessedError');
      assert.equal(server.seen.length, 1, 'sent once');
      assert.equal(client.stats().clusters[0]!.endpoints[0]!.errorsByKind.goaway, 1);
    } finally {
      await client.close();
    }
  });

  it('is a client default every cluster inherits unless it sets its own', async () => {
    const h2 = new H2Server({ allowHTTP1: true }, (req, res) => res.end(req.httpVersion));
    const address = await start(h2);
    const client = createClient({
      http2: true,
      clusters: {
        users: { target: [address], tls: { ca: tls.cert } },
        legacy: { target: [address], tls: { ca: tls.cert, servername: 'users' }, http2: false },
      },
    });
    try {
      assert.equal(await (await client.fetch('https://users/')).text(), '2.0');
      assert.equal(await (await client.fetch('https://legacy/')).text(), '1.1');
    } finally {
      await client.close();
    }
  });

  it('refuses bad http2 options at construction, naming them', () => {
    const cases: Array<[unknown, string]> = [
      [{ target: ['127.0.0.1:1'], http2: 'yes' }, 'http2'],
      [{ target: ['127.0.0.1:1'], http2: { connections: 0 } }, 'http2.connections'],
      [{ target: ['127.0.0.1:1'], http2: { maxConcurrentStreams: 1.5 } }, 'http2.maxConcurrentStreams'],
      [{ target: ['127.0.0.1:1'], http2: { streams: 5 } }, 'http2.streams'],
      [{ target: ['127.0.0.1:1'], http2: true, pool: { allowH2: false } }, 'pool.allowH2'],
      [{ target: ['127.0.0.1:1'], http2: true, pool: { maxConcurrentStreams: 5 } }, 'pool.maxConcurrentStreams'],
      [{ clusters: { a: { target: ['127.0.0.1:1'], http2: { connections: -1 } } } }, 'clusters.a.http2.connections'],
      [{ http2: 1, clusters: { a: { target: ['127.0.0.1:1'] } } }, 'clusters.a.http2'],
    ];
    for (const [options, path] of cases) {
      assert.throws(
        () => createClient(options as never),
        (err: unknown) => err instanceof InvalidOptionError && err.option === path,
        `${JSON.stringify(options)} names ${path}`,
      );
    }
  });
});

/** A cleartext node:http2 server driven stream by stream; closed after the file's tests. */
async function rawServer(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  settings?: http2.Settings,
): Promise<RawH2Server> {
  const server = await rawH2Server(onStream, settings);
  servers.push(server);
  return server;
}

function answer(stream: http2.ServerHttp2Stream, body = 'ok'): void {
  stream.resume();
  const reply = (): void => {
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond({ ':status': 200 });
      stream.end(body);
    }
  };
  if (stream.readableEnded) reply();
  else stream.once('end', reply);
}

describe('HTTP/2: what the endpoint processed, and what the caller sent', () => {
  it('never replays a POST whose stream was at or below the GOAWAY last-stream-id (undici fails them all alike)', async () => {
    // Each connection drains after its third stream: GOAWAY with that stream as the last it processes, which it
    // answers; the streams above are not processed. The client's session refuses those (REFUSED_STREAM), and undici
    // fails every request it still holds with the first such error, the POSTs the endpoint processed included: those
    // must not be replayed. Rounds of five POSTs on a new connection each; how the frames interleave varies, so the
    // rounds repeat (bounded) to meet the case.
    const processed = new Map<string, number>();
    const server = await rawServer((stream, headers) => {
      const session = stream.session! as http2.ServerHttp2Session & { streams?: number; last?: number };
      const rid = String(headers['x-rid']);
      session.streams = (session.streams ?? 0) + 1;
      if (session.streams === 3) {
        session.last = stream.id!;
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!);
      }
      stream.resume();
      stream.once('end', () => {
        if (session.last !== undefined && stream.id! > session.last) return; // above the last stream: not processed
        processed.set(rid, (processed.get(rid) ?? 0) + 1);
        setTimeout(() => {
          if (!stream.destroyed) {
            stream.respond({ ':status': 200 });
            stream.end('created');
          }
        }, 2);
      });
    });
    const client = createClient({ target: [server.address], http2: true, retryBudget: false });
    try {
      let n = 0;
      for (let round = 0; round < 120; round++) {
        const rids = Array.from({ length: 5 }, () => `p${n++}`);
        const results = await Promise.allSettled(
          rids.map((rid) =>
            client
              .fetch('http://users/orders', { method: 'POST', body: rid, headers: { 'x-rid': rid } })
              .then((r) => r.text()),
          ),
        );
        const twice = rids.filter((rid) => (processed.get(rid) ?? 0) > 1);
        assert.deepEqual(twice, [], `round ${round}: no POST processed twice`);
        for (const [i, rid] of rids.entries()) {
          // A POST either succeeded, or failed without the endpoint having processed it twice; one the endpoint
          // never processed is not a failure unless its attempts ran out.
          const result = results[i]!;
          if (result.status === 'rejected' && (processed.get(rid) ?? 0) === 1) {
            const own = findSidecarlessError(result.reason);
            assert.notEqual(own?.code, 'SIDECARLESS_NOT_PROCESSED', `${rid} was processed`);
          }
        }
      }
    } finally {
      await client.close();
    }
  });

  it('refuses a header HTTP/2 forbids (te: gzip) as the caller error, cold or warm, and the endpoint keeps working', async () => {
    const server = await rawServer((stream) => answer(stream));
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 5000 });
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (err: unknown) => findSidecarlessError(err)?.code ?? String(err),
      );
    try {
      // Cold: the first request opens the connection (a throw there used to end the process).
      assert.equal(
        await codeOf(client.fetch('http://users/a', { headers: { te: 'gzip' } })),
        'SIDECARLESS_INVALID_REQUEST',
      );
      assert.equal(await (await client.fetch('http://users/b')).text(), 'ok');
      // Warm, and through the dispatcher.
      assert.equal(
        await codeOf(client.fetch('http://users/c', { headers: { te: 'gzip' } })),
        'SIDECARLESS_INVALID_REQUEST',
      );
      const viaDispatcher = request('http://users/d', {
        dispatcher: client.dispatcher,
        headers: { 'proxy-connection': 'keep-alive' },
      });
      assert.equal(await codeOf(viaDispatcher), 'SIDECARLESS_INVALID_REQUEST');
      assert.equal(await (await client.fetch('http://users/e', { headers: { te: 'trailers' } })).text(), 'ok');
      assert.equal(await (await client.fetch('http://users/f')).text(), 'ok');
      assert.equal(server.streams(), 3, 'the refused requests never reached the endpoint');
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.requests.callerErrors, 3);
      assert.equal(cluster.requests.retries, 0);
      const ep = cluster.endpoints[0]!;
      assert.equal(ep.errorsByKind.other + ep.errorsByKind.reset + ep.errorsByKind.timeout, 0);
    } finally {
      await client.close();
    }
  });

  it('refuses a body with a method undici 7 sends bodiless over HTTP/2 (DELETE, OPTIONS, custom, lower-case post/put/patch) as the caller error, and the endpoints keep working (probe 6: it broke every endpoint tried)', async () => {
    const servers = [await rawServer((stream) => answer(stream)), await rawServer((stream) => answer(stream))];
    const client = createClient({ target: servers.map((s) => s.address), http2: true, timeoutMs: 3000 });
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (err: unknown) => findSidecarlessError(err)?.code ?? `uncoded ${(err as { code?: string }).code}`,
      );
    async function* streamed(): AsyncGenerator<string> {
      yield 'a stream';
    }
    try {
      assert.equal(await (await client.fetch('http://users/warm')).text(), 'ok');
      const bodies: [string, unknown][] = [
        ['DELETE', 'ten bytes!'],
        ['OPTIONS', Buffer.from('x')],
        ['PURGE', 'x'],
        ['patch', 'x'],
        ['post', 'x'],
        ['put', Buffer.from('x')],
        ['DELETE', streamed()],
      ];
      for (const [method, body] of bodies) {
        const sent = request('http://users/x', { dispatcher: client.dispatcher, method, body: body as string });
        assert.equal(await codeOf(sent), 'SIDECARLESS_INVALID_REQUEST', method);
      }
      // Without a body (or an empty one), and with the methods undici sends a body with: sent.
      assert.equal(await codeOf(request('http://users/y', { dispatcher: client.dispatcher, method: 'DELETE' })), 'ok');
      const empty = request('http://users/y', { dispatcher: client.dispatcher, method: 'DELETE', body: '' });
      assert.equal(await codeOf(empty), 'ok');
      const put = request('http://users/y', { dispatcher: client.dispatcher, method: 'PUT', body: 'x' });
      assert.equal(await codeOf(put), 'ok');
      const later = await Promise.all(Array.from({ length: 6 }, (_, i) => client.fetch(`http://users/later-${i}`)));
      assert.deepEqual(await Promise.all(later.map((r) => r.text())), Array(6).fill('ok'));
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.requests.callerErrors, bodies.length);
      assert.equal(cluster.requests.retries, 0);
      for (const ep of cluster.endpoints) {
        const { other, reset, timeout, connect } = ep.errorsByKind;
        assert.equal(other + reset + timeout + connect, 0, `${ep.key}: ${JSON.stringify(ep.errorsByKind)}`);
        assert.equal(ep.ejected, false);
      }
    } finally {
      await client.close();
    }
  });

  it('a request undici refuses (UND_ERR_INVALID_ARG) does not wedge the endpoint on its one connection', async () => {
    const server = await rawServer((stream) => answer(stream));
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 5000 });
    try {
      assert.equal(await (await client.fetch('http://users/a')).text(), 'ok');
      const refused = await request('http://users/b', {
        dispatcher: client.dispatcher,
        headers: { 'x-bad': 'a\r\nb' },
      }).catch((err: unknown) => err);
      assert.equal((refused as { code?: string }).code, 'UND_ERR_INVALID_ARG');
      const later = await Promise.all(Array.from({ length: 3 }, () => client.fetch('http://users/c')));
      assert.deepEqual(await Promise.all(later.map((r) => r.text())), ['ok', 'ok', 'ok']);
    } finally {
      await client.close();
    }
  });

  it('a header block too large to send is the caller error: not retried, not against the endpoint', async () => {
    const server = await rawServer((stream) => answer(stream));
    const client = createClient({ target: [server.address], http2: true });
    try {
      const err = await client
        .fetch('http://users/', { headers: { 'x-forwarded-thing': 'b'.repeat(70_000) } })
        .catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_INVALID_REQUEST');
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.requests.callerErrors, 1);
      assert.equal(cluster.requests.retries, 0, 'not retried');
      assert.equal(server.streams(), 0, 'nothing reached the endpoint');
      // Node's session may not survive the failed header block; the next request gets a connection either way.
      assert.equal(await (await client.fetch('http://users/')).text(), 'ok');
      const ep = client.stats().clusters[0]!.endpoints[0]!;
      assert.equal(ep.errorsByKind.aborted, 1);
      assert.equal(ep.errorsByKind.other + ep.errorsByKind.reset, 0, JSON.stringify(ep.errorsByKind));
      assert.equal(ep.ejected, false);
    } finally {
      await client.close();
    }
  });

  it('replays of refused (unprocessed) streams do not spend the retry budget', async () => {
    let refused = 0;
    const server = await rawServer((stream) => {
      if (refused++ < 6) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      else answer(stream);
    });
    const client = createClient({
      target: [server.address],
      http2: true,
      retryBudget: { percent: 0, minRetriesPerSecond: 0 },
      retry: { maxAttempts: 5, backoff: { initialMs: 1, maxMs: 5 } },
    });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () =>
          client.fetch('http://users/', { method: 'POST', body: 'x' }).then((r) => r.text()),
        ),
      );
      assert.deepEqual(
        results.map((r) => (r.status === 'fulfilled' ? r.value : findSidecarlessError(r.reason)?.code)),
        Array(6).fill('ok'),
      );
      assert.ok(client.stats().clusters[0]!.requests.retries >= 1);
    } finally {
      await client.close();
    }
  });

  it('a new connection opens one stream until the endpoint SETTINGS arrive: a cold burst is not refused', async () => {
    let open = 0;
    let maxOpen = 0;
    const server = await rawServer(
      (stream) => {
        maxOpen = Math.max(maxOpen, ++open);
        stream.once('close', () => open--);
        setTimeout(() => answer(stream), 5);
      },
      { maxConcurrentStreams: 2 },
    );
    const client = createClient({ target: [server.address], http2: true, retry: false });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () =>
          client.fetch('http://users/', { method: 'POST', body: 'x' }).then((r) => r.text()),
        ),
      );
      assert.deepEqual(
        results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))),
        Array(8).fill('ok'),
      );
      assert.ok(maxOpen <= 2, `at most 2 streams at once (saw ${maxOpen})`);
      assert.equal(client.stats().clusters[0]!.endpoints[0]!.errorsByKind.goaway, 0, 'nothing refused');
    } finally {
      await client.close();
    }
  });

  it("a request body the dispatcher is given that fails is the caller's over HTTP/2 (retry: false)", async () => {
    const server = await rawServer((stream) => answer(stream));
    await assertFailingBodyIsCallers('h2', server.address);
  });
});
