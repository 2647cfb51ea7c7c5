// HTTP/2 clusters found wrong by probe 20 (soak): every attempt caught by a graceful GOAWAY kept its memory for
// undici's 300 s stream timeout, after close() too, with a listener on the caller's long-lived AbortSignal. undici 7
// destroys the session on a GOAWAY, and Node destroys the streams still open on it without clearing their timeouts:
// each timer then held its stream, undici's request, the attempt and the caller's objects. Real node:http2 servers
// on 127.0.0.1, in clear text and over TLS.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient } from 'sidecarless';
import { selfSigned } from '../helpers/kubernetes-api.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let tls: { cert: string; key: string };
const closers: Array<() => void> = [];
before(() => {
  tls = selfSigned('users', 'DNS:users,IP:127.0.0.1');
});
after(() => {
  for (const close of closers) close();
});

const BODY = Buffer.alloc(16 * 1024, 'b');

/**
 * A server that drains each connection, as `keepalive_requests` or `max_requests_per_connection` do: after the
 * `every`th stream of a session it sends a graceful GOAWAY naming the last stream it took, and closes the session once
 * its streams are over. `/hang` is never answered.
 */
async function drainingServer(secure: boolean, every: number): Promise<string> {
  const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    stream.on('error', () => {});
    if (headers[':path'] === '/hang') return;
    const session = stream.session;
    if (session === undefined) return;
    const count = ((session as { served?: number }).served ?? 0) + 1;
    (session as { served?: number }).served = count;
    if (count % every === 0) {
      // GOAWAY first, then close once the streams it let through are over (never a close mid-response).
      stream.once('close', () => {
        if (session.closed || session.destroyed) return;
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id ?? 0);
        session.close();
      });
    }
    stream.respond({ ':status': 200 });
    stream.write(BODY);
    // The rest a moment later, so that requests sent meanwhile are caught by the GOAWAY.
    setTimeout(() => {
      if (!stream.destroyed) stream.end(BODY);
    }, 5);
  };
  const server = secure ? http2.createSecureServer({ ...tls }) : http2.createServer();
  server.on('stream', onStream);
  const sessions = new Set<http2.Http2Session>();
  server.on('session', (session) => {
    session.on('error', () => {});
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const session of sessions) session.destroy();
    server.close();
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Collects garbage until `done` holds, a few turns of the event loop at a time (FinalizationRegistry, timers). */
async function collectUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !done(); i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Weak references to per-request objects, to check none outlives its request. */
class Tracked {
  readonly #refs: Array<WeakRef<object>> = [];
  track<T extends object>(value: T): T {
    this.#refs.push(new WeakRef(value));
    return value;
  }
  get alive(): number {
    return this.#refs.filter((ref) => ref.deref() !== undefined).length;
  }
}

for (const secure of [false, true]) {
  const url = secure ? 'https://users' : 'http://users';
  describe(`HTTP/2 ${secure ? 'over TLS' : 'in clear text (h2c)'}: an endpoint that drains its connections`, () => {
    it('releases every attempt a GOAWAY catches: no listener left on the caller signal, the requests collected', async () => {
      const address = await drainingServer(secure, 5);
      const client = createClient({
        target: [address],
        http2: true,
        outlierDetection: false,
        ...(secure ? { tls: { ca: tls.cert } } : {}),
      });
      const signal = new AbortController().signal; // the caller's, long-lived, never aborted
      const tracked = new Tracked();
      let ok = 0;
      for (let round = 0; round < 20; round++) {
        await Promise.all(
          Array.from({ length: 5 }, async (_, i) => {
            const res =
              i % 2 === 0
                ? await client.fetch(`${url}/`, tracked.track({ signal, headers: { 'x-round': `${round}` } }))
                : await request(`${url}/`, tracked.track({ dispatcher: client.dispatcher, signal }));
            if ('arrayBuffer' in res) {
              await res.arrayBuffer();
              if (res.status === 200) ok++;
            } else {
              await res.body.arrayBuffer();
              if (res.statusCode === 200) ok++;
            }
          }),
        );
      }
      assert.equal(ok, 100, 'every request succeeds (the drained ones are replayed)');
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
      await collectUntil(() => getEventListeners(signal, 'abort').length === 0 && tracked.alive === 0);
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'abort listeners left on the caller signal');
      assert.equal(tracked.alive, 0, 'per-request objects still reachable');
      await client.close();
    });

    for (const end of ['close', 'destroy'] as const) {
      it(`${end}() releases the streams it cuts`, async () => {
        const address = await drainingServer(secure, 5);
        const client = createClient({
          target: [address],
          http2: true,
          outlierDetection: false,
          drainTimeoutMs: 100, // what close() leaves to the requests in flight: these are never answered
          ...(secure ? { tls: { ca: tls.cert } } : {}),
        });
        const signal = new AbortController().signal;
        const tracked = new Tracked();
        const opened = (): boolean => client.stats().clusters[0]?.inFlight === 10;
        const pending = Array.from({ length: 10 }, () =>
          client.fetch(`${url}/hang`, tracked.track({ signal })).then(
            () => 'answered',
            () => 'failed',
          ),
        );
        await collectUntil(opened);
        assert.ok(opened(), 'the requests are in flight');
        await client[end]();
        assert.deepEqual(new Set(await Promise.all(pending)), new Set(['failed']));
        await collectUntil(() => getEventListeners(signal, 'abort').length === 0 && tracked.alive === 0);
        assert.equal(getEventListeners(signal, 'abort').length, 0, 'abort listeners left on the caller signal');
        assert.equal(tracked.alive, 0, 'per-request objects still reachable');
      });
    }
  });
}
