// The retry budget pays for a hedge group's retry once, when the group fails (regression from the outside probe of
// wave 11: a hedged attempt answered with a retried status spent a token at once, although another attempt of its
// group then answered, so the retry never happened; and a group whose attempts all got a retried status paid once
// per attempt). Real servers on 127.0.0.1; each server holds its first attempt's answer until the hedge has been
// answered, so the order of the answers does not depend on the machine's speed.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { type Client, createClient, StaticResolver } from 'sidecarless';
import { FakeClock } from '../helpers/fake-clock.js';

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** A server answering request `n` (from 1) with `answer(n)`: a status, after the hedge's answer went out when `held`. */
async function serve(
  answer: (n: number) => { status: number; held?: boolean },
): Promise<{ address: string; count: () => number }> {
  let n = 0;
  let release: (() => void) | undefined;
  const hedgeAnswered = new Promise<void>((resolve) => (release = resolve));
  const server = http.createServer((req, res) => {
    const { status, held } = answer(++n);
    req.resume();
    const reply = () => {
      res.statusCode = status;
      res.end(String(status), () => {
        if (!held) release?.();
      });
    };
    // 100 ms after the hedge's answer left: the client has it first.
    if (held === true) void hedgeAnswered.then(() => setTimeout(reply, 100));
    else reply();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => n };
}

function hedged(address: string, minRetriesPerSecond: number): Client {
  return createClient({
    name: 'svc',
    target: [address],
    outlierDetection: false,
    // 1 % of requests plus minRetriesPerSecond x 10 s: about 2 (or 3) tokens for the whole test.
    retryBudget: { percent: 1, minRetriesPerSecond, windowMs: 10_000 },
    // Long enough that only a held attempt is hedged (every other answer is immediate).
    hedge: { delayMs: 200 },
    retry: { maxAttempts: 2, backoff: { initialMs: 1, maxMs: 2 } },
  });
}

const requests = (client: Client) => client.stats().clusters[0]?.requests;

describe('retry budget and hedging (probe 11)', () => {
  it('a hedge that lost with a retried status spends only the hedge: the next request may still retry', async () => {
    // A: attempt 1 answers 200 after its hedge (attempt 2) got a 503. B: 503, then 200 on its retry.
    const s = await serve(
      (n) => [{ status: 200, held: true }, { status: 503 }, { status: 503 }][n - 1] ?? { status: 200 },
    );
    const client = hedged(s.address, 0.2);
    try {
      const a = await request('http://svc/a', { dispatcher: client.dispatcher });
      assert.equal(a.statusCode, 200);
      await a.body.dump();
      assert.equal(requests(client)?.hedges, 1);
      const b = await request('http://svc/b', { dispatcher: client.dispatcher });
      await b.body.dump();
      assert.equal(b.statusCode, 200, 'B was retried: the budget (2 tokens) had spent one, on the hedge');
      assert.equal(requests(client)?.retries, 1);
      assert.equal(s.count(), 4);
    } finally {
      await client.close();
    }
  });

  it('a group whose attempts all got a retried status pays its retry once', async () => {
    // A: attempt 1 answers 503 after its hedge (attempt 2) got a 503; the retry (3) gets 200. B: 503, then 200.
    const s = await serve(
      (n) => [{ status: 503, held: true }, { status: 503 }, { status: 200 }, { status: 503 }][n - 1] ?? { status: 200 },
    );
    const client = hedged(s.address, 0.3);
    try {
      const a = await request('http://svc/a', { dispatcher: client.dispatcher });
      assert.equal(a.statusCode, 200);
      await a.body.dump();
      assert.deepEqual([requests(client)?.hedges, requests(client)?.retries], [1, 1]);
      const b = await request('http://svc/b', { dispatcher: client.dispatcher });
      await b.body.dump();
      assert.equal(b.statusCode, 200, 'B was retried: the budget (3 tokens) had spent two, on the hedge and one retry');
      assert.equal(s.count(), 5);
    } finally {
      await client.close();
    }
  });

  it('a retried status while another attempt runs is set aside even with the budget spent: that attempt may answer (probe 13)', async () => {
    // Attempt 1 answers 200 after its hedge (attempt 2) got a 503; the hedge spent the budget's only token.
    const s = await serve((n) => [{ status: 200, held: true }, { status: 503 }][n - 1] ?? { status: 200 });
    const client = hedged(s.address, 0.1);
    try {
      const a = await request('http://svc/a', { dispatcher: client.dispatcher });
      await a.body.dump();
      assert.equal(a.statusCode, 200, 'the 503 was not handed over while attempt 1 ran');
      assert.equal(requests(client)?.hedges, 1);
    } finally {
      await client.close();
    }
  });
});

/** Waits (bounded, in real time) until `done()`; the caller asserts what it waited for. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('a hedge that finds the wait queue full (probe 14)', () => {
  it('is not counted as overloaded, and gives its budget token back: the next request may hedge', async () => {
    // /slow is held until released; anything else answers at once. The hedge delay runs on a fake clock.
    const held: http.ServerResponse[] = [];
    let arrived: () => void = () => {};
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url === '/slow') {
        held.push(res);
        arrived();
      } else {
        res.end('ok');
      }
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const slowArrivals = (n: number) =>
      new Promise<void>((resolve) => {
        arrived = () => {
          if (held.length >= n) resolve();
        };
        arrived();
      });
    const release = () => {
      for (const res of held.splice(0)) res.end('slow');
    };
    const clock = new FakeClock();
    const resolver = new StaticResolver([address]);
    const client = createClient({
      name: 'svc',
      target: resolver,
      clock,
      outlierDetection: false,
      hedge: { delayMs: 100 },
      limits: { maxPending: 1 },
      waitForReadyTimeoutMs: 60_000,
      // 1 % of requests plus 0.1 a second over 10 s: one token for the whole test.
      retryBudget: { percent: 1, minRetriesPerSecond: 0.1, windowMs: 10_000 },
    });
    const get = (path: string) =>
      request(`http://svc${path}`, { dispatcher: client.dispatcher }).then(
        async (r) => [r.statusCode, await r.body.text()],
        (err: { code?: unknown }) => [0, err.code],
      );
    try {
      await client.ready();
      const a = get('/slow');
      await slowArrivals(1);
      // A's endpoint leaves: its attempt goes on, and its hedge will find no endpoint.
      resolver.update([]);
      await until(() => client.stats().clusters[0]?.endpoints.length === 0);
      const b = get('/b');
      await until(() => client.stats().clusters[0]?.pending === 1);
      assert.equal(client.stats().clusters[0]?.pending, 1, 'B waits for an endpoint and fills maxPending');
      clock.advance(100); // A's hedge is due: the queue is full.
      assert.equal(requests(client)?.overloaded, 0, 'no request was refused');
      assert.equal(requests(client)?.hedges, 0);
      resolver.update([address]);
      assert.deepEqual(await b, [200, 'ok']);
      release();
      assert.deepEqual(await a, [200, 'slow']);
      // C's hedge needs the budget's one token: the refused hedge gave it back.
      const c = get('/slow');
      await slowArrivals(1);
      clock.advance(100);
      assert.equal(requests(client)?.hedges, 1, "C's hedge was sent");
      await slowArrivals(2);
      release();
      assert.deepEqual(await c, [200, 'slow']);
      assert.equal(requests(client)?.overloaded, 0);
      assert.deepEqual(requests(client)?.errors, {});
    } finally {
      release();
      await client.destroy();
    }
  });
});
