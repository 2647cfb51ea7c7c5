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
import { type Client, createClient } from 'sidecarless';

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
