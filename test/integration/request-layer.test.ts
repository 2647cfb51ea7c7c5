import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import {
  createClient,
  createEndpoint,
  findSidecarlessError,
  type PickMessage,
  type ResolverListener,
  seededRandom,
  StaticResolver,
} from '../../src/index.js';
import { type Handler, backendsForFile, startBackend } from '../helpers/backends.js';
import { FakeClock } from '../helpers/fake-clock.js';

const ok: Handler = (req, res, b) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('x-backend', b.id);
    res.end(JSON.stringify({ backend: b.id, body: Buffer.concat(chunks).toString() }));
  });
};
const status =
  (code: number, headers: Record<string, string> = {}): Handler =>
  (req, res, b) => {
    req.resume();
    res.writeHead(code, { 'x-backend': b.id, ...headers });
    res.end(`status ${code} from ${b.id}`);
  };
const reset: Handler = (req) => {
  req.resume();
  req.on('end', () => req.socket.destroy());
};
const stall: Handler = (req) => {
  req.resume();
};

/** Polls `condition` every 5 ms, at most `max` times; true once it holds. */
async function until(condition: () => boolean, max = 400): Promise<boolean> {
  for (let i = 0; i < max && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  return condition();
}

/** Timers keeping the process alive. */
const liveTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function deadAddress(): Promise<string> {
  const b = await startBackend('dead');
  await b.stop();
  return b.address;
}

const backend = backendsForFile();

describe('retries', () => {
  it('retries a 503 on a different endpoint and returns the healthy answer', async () => {
    const bad = await backend('bad', status(503));
    const good = await backend('good', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0 });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-backend'), 'good');
      assert.equal(bad.hits, 1);
      assert.equal(client.stats().clusters[0]?.requests.extraAttempts, 1);
    } finally {
      await client.close();
    }
  });

  it('never retries a POST that got a 503: the response goes to the caller', async () => {
    const bad = await backend('bad-post', status(503));
    const good = await backend('good-post', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0 });
    try {
      const res = await client.fetch('http://svc/', { method: 'POST', body: 'x' });
      assert.equal(res.status, 503);
      assert.equal(good.hits, 0);
    } finally {
      await client.close();
    }
  });

  it('replays a POST only when the connection was refused (it was never sent)', async () => {
    const good = await backend('good-refused', ok);
    const client = createClient({ target: [await deadAddress(), good.address], random: () => 0 });
    try {
      const res = await client.fetch('http://svc/', { method: 'POST', body: 'payload' });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { body: string }).body, 'payload');
      // A streamed body that no attempt started reading is replayable too.
      const streamed = await request('http://svc/', {
        dispatcher: client.dispatcher,
        method: 'POST',
        body: Readable.from(['a', 'b']),
      });
      assert.equal(((await streamed.body.json()) as { body: string }).body, 'ab');
    } finally {
      await client.close();
    }
  });

  it('retries a GET after a reset, but fails a POST after a reset without replaying it', async () => {
    const flaky = await backend('flaky', reset);
    const good = await backend('good-reset', ok);
    const client = createClient({ target: [flaky.address, good.address], random: () => 0 });
    try {
      const get = await client.fetch('http://svc/');
      assert.equal(get.headers.get('x-backend'), 'good-reset');
      const before = flaky.hits;
      const goodBefore = good.hits;
      // Round robin now points at flaky again.
      const err = await client.fetch('http://svc/', { method: 'POST', body: 'once' }).catch((e: unknown) => e);
      assert.ok(err instanceof TypeError, 'the POST fails');
      assert.equal(flaky.hits, before + 1);
      assert.equal(good.hits, goodBefore, 'and is not replayed elsewhere');
    } finally {
      await client.close();
    }
  });

  it('honours Retry-After up to maxRetryAfterMs, and hands back a 503 that asks for longer', async () => {
    const wait = await backend('wait', status(503, { 'retry-after': '0' }));
    const good = await backend('good-ra', ok);
    const long = await backend('long', status(503, { 'retry-after': '3600' }));
    const client = createClient({ target: [wait.address, good.address], random: () => 0 });
    const strict = createClient({ target: [long.address, good.address], random: () => 0 });
    try {
      assert.equal((await client.fetch('http://svc/')).status, 200);
      const res = await strict.fetch('http://svc/');
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '3600');
    } finally {
      await Promise.all([client.close(), strict.close()]);
    }
  });

  it('the retry budget caps retries when every endpoint fails', async () => {
    const a = await backend('down-a', status(503));
    const b = await backend('down-b', status(503));
    const client = createClient({
      target: [a.address, b.address],
      retry: { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 1 } },
      retryBudget: { percent: 20, minRetriesPerSecond: 0 },
    });
    try {
      for (let i = 0; i < 50; i++) assert.equal((await client.fetch('http://svc/')).status, 503);
      const hits = a.hits + b.hits;
      // Without a budget: 150 attempts. With 20 %: at most 50 + 10.
      assert.ok(hits >= 50 && hits <= 60, `attempts ${hits}`);
    } finally {
      await client.close();
    }
  });

  it('fails with SIDECARLESS_RETRY_BUDGET_EXHAUSTED when a failure could be retried but the budget is spent', async () => {
    const flaky = await backend('reset-budget', reset);
    const client = createClient({
      target: [flaky.address],
      retryBudget: { percent: 0, minRetriesPerSecond: 0 },
    });
    try {
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      const typed = findSidecarlessError(err);
      assert.equal(typed?.code, 'SIDECARLESS_RETRY_BUDGET_EXHAUSTED');
      assert.ok(typed?.cause, 'keeps the underlying error');
    } finally {
      await client.close();
    }
  });

  for (const picker of ['random', 'least-request', { name: 'ring-hash', hashKey: { header: 'x-key' } }] as const) {
    const name = typeof picker === 'string' ? picker : picker.name;
    it(`regression: a retry never goes back to the endpoint that failed (${name})`, async () => {
      const bad = await backend(`bad-${name}`, status(503));
      const good = await backend(`good-${name}`, ok);
      const client = createClient({
        target: [bad.address, good.address],
        picker,
        random: seededRandom(6),
        outlierDetection: false,
        retryBudget: false,
        retry: { backoff: { initialMs: 1, maxMs: 1 } },
      });
      const id = client.stats().clusters[0]?.id;
      let firstToBad = 0;
      const onPick = (message: unknown) => {
        const m = message as PickMessage;
        if (m.clusterId === id && m.attempt === 1 && m.endpoint === bad.address) firstToBad++;
      };
      diagnostics.subscribe('sidecarless:pick', onPick);
      try {
        for (let i = 0; i < 40; i++) {
          const res = await client.fetch('http://svc/', { headers: { 'x-key': `key-${i}` } });
          await res.arrayBuffer();
          assert.equal(res.status, 200, `request ${i}`);
        }
        const attempts = client.stats().clusters[0]?.endpoints.find((e) => e.key === bad.address)?.attempts;
        assert.ok(firstToBad > 0, 'some requests went to the failing endpoint first');
        assert.equal(attempts, firstToBad, 'and none of their retries went back to it');
      } finally {
        diagnostics.unsubscribe('sidecarless:pick', onPick);
        await client.close();
      }
    });
  }

  it('keeps the earlier attempt error as the cause when a retry finds no endpoint left', async () => {
    const client = createClient({
      target: [await deadAddress()],
      // The refused connection ejects the only endpoint; with panic off, the retry has nowhere to go.
      outlierDetection: { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 1 },
      panicThreshold: 0,
    });
    try {
      const typed = findSidecarlessError(await client.fetch('http://svc/').catch((e: unknown) => e));
      assert.equal(typed?.code, 'SIDECARLESS_ALL_EJECTED');
      assert.equal((typed?.cause as { code?: string } | undefined)?.code, 'ECONNREFUSED');
    } finally {
      await client.close();
    }
  });

  it('retries only the statuses in retryOn', async () => {
    const e500 = await backend('e500', status(500));
    const e503 = await backend('e503-not-retried', status(503));
    const good = await backend('good-retry-on', ok);
    const retryOn = { retry: { retryOn: [500] }, random: () => 0 };
    const on500 = createClient({ target: [e500.address, good.address], ...retryOn });
    const on503 = createClient({ target: [e503.address, good.address], ...retryOn });
    try {
      const retried = await on500.fetch('http://svc/');
      assert.equal(retried.status, 200);
      assert.equal(retried.headers.get('x-backend'), 'good-retry-on');
      const kept = await on503.fetch('http://svc/');
      assert.equal(kept.status, 503, 'a 503 is not in retryOn: it goes to the caller');
      await kept.arrayBuffer();
      assert.equal(good.hits, 1);
    } finally {
      await Promise.all([on500.close(), on503.close()]);
    }
  });

  it('maxAttempts: 2 against three failing endpoints makes exactly two attempts', async () => {
    const down = [await backend('two-a', status(503)), await backend('two-b', status(503))];
    down.push(await backend('two-c', status(503)));
    const client = createClient({
      target: down.map((b) => b.address),
      retry: { maxAttempts: 2, backoff: { initialMs: 1, maxMs: 1 } },
      retryBudget: false,
    });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 503);
      await res.arrayBuffer();
      assert.equal(
        down.reduce((n, b) => n + b.hits, 0),
        2,
      );
      assert.ok(
        down.every((b) => b.hits <= 1),
        'on two different endpoints',
      );
    } finally {
      await client.close();
    }
  });
});

describe('retry waits on the injected clock', () => {
  /** True once `b` has answered its `hits`-th attempt and the request waits to retry. */
  const waiting = (client: ReturnType<typeof createClient>, b: { address: string; hits: number }, hits: number) => () =>
    b.hits === hits && client.stats().clusters[0]?.endpoints.find((e) => e.key === b.address)?.inFlight === 0;

  it('waits out the backoff on the client clock before retrying', async () => {
    const bad = await backend('clock-bad', status(503));
    const good = await backend('clock-good', ok);
    const clock = new FakeClock();
    // random 0: the first pick is the first endpoint, and the first retry waits 25 ms - 20 % jitter = 20 ms.
    const client = createClient({ target: [bad.address, good.address], clock, random: () => 0 });
    try {
      const result = client.fetch('http://svc/');
      assert.ok(await until(waiting(client, bad, 1)), 'the first attempt was answered');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(good.hits, 0, 'real time passing does not end the wait');
      clock.advance(19);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(good.hits, 0, 'nor does the client clock short of 20 ms');
      clock.advance(1);
      const res = await result;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-backend'), 'clock-good');
    } finally {
      await client.close();
    }
  });

  it('waits the larger of Retry-After and the backoff on the client clock', async () => {
    const asks = await backend('clock-ra', status(503, { 'retry-after': '2' }));
    const good = await backend('clock-ra-good', ok);
    const clock = new FakeClock();
    const target = [asks.address, good.address];
    const longBackoff = createClient({
      target,
      clock,
      random: () => 0,
      retry: { backoff: { initialMs: 5_000, maxMs: 5_000 } },
    });
    const shortBackoff = createClient({ target, clock, random: () => 0 });
    try {
      for (const [client, wait, hits] of [
        [longBackoff, 4_000, 1],
        [shortBackoff, 2_000, 2],
      ] as const) {
        const result = client.fetch('http://svc/');
        assert.ok(await until(waiting(client, asks, hits)), 'the first attempt was answered');
        clock.advance(wait - 1);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(good.hits, hits - 1, `no retry before ${wait} ms of the client clock`);
        clock.advance(1);
        assert.equal((await result).status, 200);
      }
    } finally {
      await Promise.all([longBackoff.close(), shortBackoff.close()]);
    }
  });
});

describe('streamed request bodies (fetch hands every body over as a stream)', () => {
  it('replays an idempotent PUT body after a 503, recorded as it was sent', async () => {
    const bad = await backend('put-503', status(503));
    const good = await backend('put-503-good', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0 });
    try {
      const res = await client.fetch('http://svc/', { method: 'PUT', body: 'the body' });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { backend: 'put-503-good', body: 'the body' });
      assert.equal(bad.hits, 1);
    } finally {
      await client.close();
    }
  });

  it('replays an idempotent PUT body after a reset, a multi-chunk stream included', async () => {
    const flaky = await backend('put-reset', reset);
    const good = await backend('put-reset-good', ok);
    const client = createClient({ target: [flaky.address, good.address], random: () => 0 });
    try {
      const res = await client.fetch('http://svc/', { method: 'PUT', body: new Uint8Array([1, 2, 3]) });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { body: string }).body, '\u0001\u0002\u0003');
      let n = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (n < 8) controller.enqueue(new TextEncoder().encode(`chunk${n++};`));
          else controller.close();
        },
      });
      // Round robin is back at the resetting endpoint.
      const streamed = await client.fetch('http://svc/', {
        method: 'PUT',
        body: stream,
        duplex: 'half',
      } as RequestInit);
      assert.equal(streamed.status, 200);
      const expected = Array.from({ length: 8 }, (_, i) => `chunk${i};`).join('');
      assert.deepEqual(await streamed.json(), { backend: 'put-reset-good', body: expected });
      assert.equal(flaky.hits, 2);
    } finally {
      await client.close();
    }
  });

  it('a body cut off mid-upload is replayed whole: the recorded part, then the rest of the stream', async () => {
    const cut = await backend('put-cut', (req) => {
      req.once('data', () => req.socket.destroy());
    });
    const good = await backend('put-cut-good', ok);
    const client = createClient({ target: [cut.address, good.address], random: () => 0 });
    const chunk = 'x'.repeat(1000);
    let n = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // Slow enough that the first endpoint resets the connection while the body is still being produced.
        await new Promise((r) => setTimeout(r, 5));
        if (n++ < 20) controller.enqueue(new TextEncoder().encode(chunk));
        else controller.close();
      },
    });
    try {
      const res = await client.fetch('http://svc/', { method: 'PUT', body: stream, duplex: 'half' } as RequestInit);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { body: string }).body, chunk.repeat(20));
      assert.equal(cut.hits, 1);
    } finally {
      await client.close();
    }
  });

  it('a body that passes retry.bufferBody just after its attempt failed is still replayed whole', async () => {
    // The first endpoint resets once it has the whole recorded part (8 chunks of 1000 bytes, the limit); the read of
    // the 9th chunk is pending then, and completes after the failure, taking the body past the limit. The retry used
    // to find the recorded chunks gone ("the request body is being sent by a newer attempt", no code). The 9th chunk
    // waits for undici to report the attempt's failure, so that its read completes after it however loaded the
    // machine (with a timer alone, a slow run read it first: the body then passed the limit before the failure, and
    // the request was rightly not replayed).
    let failed!: () => void;
    const failure = new Promise<void>((resolve) => (failed = resolve));
    const onError = (): void => failed();
    diagnostics.subscribe('undici:request:error', onError);
    let received = 0;
    const cut = await backend('limit-cut', (req) => {
      req.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= 8000) req.socket.destroy();
      });
    });
    const good = await backend('limit-good', ok);
    const client = createClient({
      target: [cut.address, good.address],
      random: () => 0,
      retry: { bufferBody: 8000 },
    });
    const chunk = 'c'.repeat(1000);
    async function* body(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 16; i++) {
        if (i === 8) await failure;
        await new Promise((r) => setTimeout(r, 5));
        yield Buffer.from(chunk);
      }
    }
    try {
      const res = await request('http://svc/', {
        dispatcher: client.dispatcher,
        method: 'PUT',
        body: Readable.from(body()),
      });
      assert.equal(res.statusCode, 200);
      const answer = (await res.body.json()) as { backend: string; body: string };
      assert.equal(answer.backend, 'limit-good');
      assert.equal(answer.body, chunk.repeat(16), 'the whole body, once');
      assert.equal(cut.hits, 1);
    } finally {
      diagnostics.unsubscribe('undici:request:error', onError);
      await client.close();
    }
  });

  it('does not replay a body over retry.bufferBody: the failure goes to the caller', async () => {
    const flaky = await backend('big-reset', reset);
    const bad = await backend('big-503', status(503));
    const good = await backend('big-good', ok);
    const body = 'y'.repeat(4096);
    const afterReset = createClient({
      target: [flaky.address, good.address],
      random: () => 0,
      retry: { bufferBody: 1024 },
    });
    const after503 = createClient({
      target: [bad.address, good.address],
      random: () => 0,
      retry: { bufferBody: 1024 },
    });
    try {
      const err = await afterReset.fetch('http://svc/', { method: 'PUT', body }).catch((e: unknown) => e);
      assert.ok(err instanceof TypeError, 'the reset reaches the caller');
      const res = await after503.fetch('http://svc/', { method: 'PUT', body });
      assert.equal(res.status, 503, 'the 503 reaches the caller');
      await res.arrayBuffer();
      assert.equal(good.hits, 0, 'nothing was replayed');
      // Within the limit the same body is replayed.
      const within = await after503.fetch('http://svc/', { method: 'PUT', body: body.slice(0, 1024) });
      assert.equal(within.status, 200);
      await within.arrayBuffer();
    } finally {
      await Promise.all([afterReset.close(), after503.close()]);
    }
  });

  it('retry.bufferBody: 0 turns recording off: a PUT body read by a failed attempt is not replayed', async () => {
    const bad = await backend('nobuf-503', status(503));
    const good = await backend('nobuf-good', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0, retry: { bufferBody: 0 } });
    try {
      const res = await client.fetch('http://svc/', { method: 'PUT', body: 'z' });
      assert.equal(res.status, 503);
      await res.arrayBuffer();
      assert.equal(good.hits, 0);
    } finally {
      await client.close();
    }
  });

  it('still never replays a POST that may have been sent, unless retryNonIdempotent opts in', async () => {
    const flaky = await backend('post-reset-rec', reset);
    const good = await backend('post-reset-rec-good', ok);
    const strict = createClient({ target: [flaky.address, good.address], random: () => 0 });
    const optedIn = createClient({
      target: [flaky.address, good.address],
      random: () => 0,
      retry: { retryNonIdempotent: true },
    });
    try {
      const err = await strict.fetch('http://svc/', { method: 'POST', body: 'once' }).catch((e: unknown) => e);
      assert.ok(err instanceof TypeError);
      assert.equal(good.hits, 0, 'the POST was not replayed');
      const res = await optedIn.fetch('http://svc/', { method: 'POST', body: 'again' });
      assert.deepEqual(await res.json(), { backend: 'post-reset-rec-good', body: 'again' });
    } finally {
      await Promise.all([strict.close(), optedIn.close()]);
    }
  });
});

describe('close and destroy during a retry wait', () => {
  for (const how of ['close', 'destroy'] as const) {
    it(`${how}() fails a request waiting out Retry-After at once, and leaves no timer behind`, async () => {
      const waiting = await backend(`ra-${how}`, status(503, { 'retry-after': '3' }));
      const client = createClient({ target: [waiting.address] });
      const before = liveTimers();
      let settled = false;
      const result = client.fetch('http://svc/').then(
        (res) => res,
        (err: unknown) => err,
      );
      void result.then(() => {
        settled = true;
      });
      // The first attempt was answered and has ended; the request waits for its retry.
      const between = () => {
        const stats = client.stats().clusters[0];
        const endpoint = stats?.endpoints[0];
        return stats?.inFlight === 1 && endpoint?.attempts === 1 && endpoint.inFlight === 0;
      };
      assert.ok(await until(between), 'the request is between attempts');
      assert.ok(liveTimers() > before, 'its wait holds a timer');
      await client[how]();
      await new Promise((r) => setImmediate(r));
      assert.ok(settled, `the fetch settled when ${how}() did`);
      assert.equal(findSidecarlessError(await result)?.code, 'SIDECARLESS_CLIENT_CLOSED');
      assert.equal(liveTimers(), before, 'no timer left');
      assert.equal(waiting.hits, 1, 'no retry was sent');
    });
  }

  it('close() lets an attempt in flight finish, and does not retry its failure', async () => {
    let answer: (() => void) | undefined;
    const slow = await backend('close-in-flight', (req, res) => {
      req.resume();
      answer = () => {
        res.writeHead(503);
        res.end();
      };
    });
    const good = await backend('close-in-flight-good', ok);
    const client = createClient({ target: [slow.address, good.address], random: () => 0 });
    const result = client.fetch('http://svc/');
    assert.ok(await until(() => answer !== undefined));
    const closed = client.close();
    answer?.();
    const res = await result;
    assert.equal(res.status, 503, 'the in-flight answer goes to the caller, not to a retry');
    await res.arrayBuffer();
    await closed;
    assert.equal(good.hits, 0);
  });
});

describe('endpointHeader', () => {
  it('names the endpoint that answered, after a retry and through the dispatcher too; absent when off', async () => {
    const bad = await backend('bad-named', status(503));
    const good = await backend('good-named', ok);
    const client = createClient({
      target: [bad.address, good.address],
      random: () => 0,
      endpointHeader: 'X-Sidecarless-Endpoint',
    });
    const plain = createClient({ target: [good.address] });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-backend'), 'good-named');
      assert.equal(res.headers.get('x-sidecarless-endpoint'), good.address, 'the retried-to endpoint, not the first');
      const viaDispatcher = await request('http://svc/', { dispatcher: client.dispatcher });
      await viaDispatcher.body.text();
      assert.match(String(viaDispatcher.headers['x-sidecarless-endpoint']), /^127\.0\.0\.1:\d+$/);
      const off = await plain.fetch('http://svc/');
      await off.arrayBuffer();
      assert.equal(off.headers.get('x-sidecarless-endpoint'), null);
    } finally {
      await Promise.all([client.close(), plain.close()]);
    }
  });

  it("replaces a header of that name the endpoint sent: the caller reads the endpoint's address, not its say-so", async () => {
    const liar = await backend('endpoint-header-liar', (req, res) => {
      req.resume();
      res.setHeader('X-Endpoint', 'spoofed:1');
      res.end('ok');
    });
    const client = createClient({ target: [liar.address], endpointHeader: 'x-endpoint' });
    try {
      const res = await client.fetch('http://svc/');
      await res.arrayBuffer();
      assert.equal(res.headers.get('x-endpoint'), liar.address);
      const raw = await request('http://svc/', { dispatcher: client.dispatcher });
      await raw.body.text();
      assert.equal(raw.headers['x-endpoint'], liar.address);
    } finally {
      await client.close();
    }
  });

  it('names the hedge that won', async () => {
    const slow = await backend('slow-named', (req, res, b) => {
      req.resume();
      setTimeout(() => {
        if (!res.destroyed) res.end(b.id);
      }, 1_000);
    });
    const fast = await backend('fast-named', ok);
    const client = createClient({
      target: [slow.address, fast.address],
      random: () => 0,
      hedge: { delayMs: 50 },
      endpointHeader: 'x-endpoint',
    });
    try {
      const res = await client.fetch('http://svc/');
      await res.arrayBuffer();
      assert.equal(res.headers.get('x-endpoint'), fast.address);
    } finally {
      await client.close();
    }
  });

  it('rejects a header name that is not a token at construction', () => {
    for (const bad of ['', 'x endpoint', 'x-endpoint:', 42]) {
      assert.throws(
        () => createClient({ target: ['127.0.0.1:1'], endpointHeader: bad as string }),
        (err: unknown) =>
          findSidecarlessError(err)?.code === 'SIDECARLESS_INVALID_OPTION' &&
          (err as { option?: string }).option === 'endpointHeader',
      );
    }
  });
});

describe('deadlines and timeouts', () => {
  it('the overall deadline bounds the total time, with a typed error', async () => {
    const slow = await backend('stall-deadline', stall);
    const client = createClient({ target: [slow.address], timeoutMs: 150 });
    try {
      const started = Date.now();
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_DEADLINE_EXCEEDED');
      assert.ok(Date.now() - started < 5_000);
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
    } finally {
      await client.close();
    }
  });

  it('waits out Retry-After before retrying: a deadline shorter than the wait ends the request', async () => {
    const waiting = await backend('ra-deadline', status(503, { 'retry-after': '1' }));
    const good = await backend('ra-deadline-good', ok);
    const client = createClient({ target: [waiting.address, good.address], random: () => 0, timeoutMs: 300 });
    try {
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_DEADLINE_EXCEEDED');
      assert.equal(good.hits, 0, 'the retry was still waiting');
    } finally {
      await client.close();
    }
  });

  it('a deadline from the signal ends a retry loop as fetch would, leaving nothing in flight', async () => {
    const waiting = await backend('ra-signal', status(503, { 'retry-after': '5' }));
    const client = createClient({ target: [waiting.address], retry: { maxRetryAfterMs: 60_000 } });
    try {
      const err = await client.fetch('http://svc/', { signal: AbortSignal.timeout(200) }).catch((e: unknown) => e);
      assert.equal((err as Error).name, 'TimeoutError');
      assert.ok(await until(() => client.stats().clusters[0]?.inFlight === 0), 'the request ended');
      assert.equal(waiting.hits, 1);
    } finally {
      await client.close();
    }
  });

  it('a per-try timeout moves an idempotent request to another endpoint', async () => {
    const slow = await backend('stall-try', stall);
    const good = await backend('good-try', ok);
    const client = createClient({
      target: [slow.address, good.address],
      random: () => 0,
      retry: { perTryTimeoutMs: 100 },
    });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.headers.get('x-backend'), 'good-try');
    } finally {
      await client.close();
    }
  });

  it('never retries a POST after a per-try timeout (it may have reached the server)', async () => {
    const slow = await backend('stall-try-post', stall);
    const good = await backend('good-try-post', ok);
    const client = createClient({
      target: [slow.address, good.address],
      random: () => 0,
      retry: { perTryTimeoutMs: 100 },
    });
    try {
      const err = await client.fetch('http://svc/', { method: 'POST', body: 'p' }).catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_PER_TRY_TIMEOUT');
      assert.equal(good.hits, 0);
    } finally {
      await client.close();
    }
  });
});

describe('hedging', () => {
  it('sends a hedge after the delay, returns the faster answer and aborts the slower attempt', async () => {
    let slowClosedEarly = false;
    const slow = await backend('slow-hedge', (req, res, b) => {
      req.resume();
      res.on('close', () => {
        if (!res.writableEnded) slowClosedEarly = true;
      });
      setTimeout(() => {
        if (!res.destroyed) res.end(b.id);
      }, 1_000);
    });
    const fast = await backend('fast-hedge', ok);
    const client = createClient({ target: [slow.address, fast.address], random: () => 0, hedge: { delayMs: 50 } });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.headers.get('x-backend'), 'fast-hedge');
      await res.arrayBuffer();
      const deadline = Date.now() + 2_000;
      while (!slowClosedEarly && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(slowClosedEarly, 'the losing attempt was aborted');
      const { requests } = client.stats().clusters[0] ?? {};
      assert.equal(requests?.hedges, 1, 'counted as a hedge');
      assert.equal(requests?.retries, 0, 'not as a retry');
    } finally {
      await client.close();
    }
  });

  it('a request waiting for its first endpoint ends (no hedge is queued beside it): NO_ENDPOINTS, or sent once one comes', async () => {
    // No endpoint at all: the wait times out as without hedging (a hedge used to take over the queued attempt's
    // callback while both counted as outstanding, and the request never ended).
    const empty = createClient({
      target: { start() {}, close() {} },
      waitForReadyTimeoutMs: 300,
      timeoutMs: 0,
      hedge: { delayMs: 20 },
    });
    try {
      const err = await empty.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_NO_ENDPOINTS');
      assert.equal(empty.stats().clusters[0]?.pending, 0);
    } finally {
      await empty.close();
    }
    // The endpoint comes late and resets the first attempt: retried (a GET), answered.
    let hits = 0;
    const flaky = await backend('hedge-late-reset', (req, res, b) => {
      if (hits++ === 0) req.socket.destroy();
      else ok(req, res, b);
    });
    let listener: ResolverListener | undefined;
    const late = createClient({
      target: { start: (l) => void (listener = l), close() {} },
      timeoutMs: 0,
      hedge: { delayMs: 20 },
      outlierDetection: false,
    });
    try {
      const [host, port] = flaky.address.split(':') as [string, string];
      setTimeout(() => listener?.onUpdate([createEndpoint({ host, port: Number(port) })]), 150);
      const res = await late.fetch('http://svc/');
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(hits, 2);
      assert.equal(late.stats().clusters[0]?.inFlight, 0);
    } finally {
      await late.close();
    }
  });

  it('a hedge waiting for an endpoint leaves the queue when the request is answered (its maxPending slot is free)', async () => {
    const slow = await backend('hedge-queued-slow', (req, res) => {
      req.resume();
      setTimeout(() => res.end('slow'), 300);
    });
    const [host, port] = slow.address.split(':') as [string, string];
    const endpoint = createEndpoint({ host, port: Number(port) });
    let listener: ResolverListener | undefined;
    const client = createClient({
      target: {
        start(l) {
          listener = l;
          queueMicrotask(() => l.onUpdate([endpoint]));
        },
        close() {},
      },
      hedge: { delayMs: 50 },
      limits: { maxPending: 1 },
      waitForReadyTimeoutMs: 5_000,
      outlierDetection: false,
    });
    try {
      await client.ready();
      const first = client.fetch('http://svc/');
      // The endpoint leaves (it drains: the first attempt goes on); the hedge due at 50 ms waits in the queue.
      setTimeout(() => listener?.onUpdate([]), 10);
      const res = await first;
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(client.stats().clusters[0]?.pending, 0, 'the waiting hedge left with its request');
      const second = client.fetch('http://svc/');
      setTimeout(() => listener?.onUpdate([endpoint]), 50);
      const again = await second;
      assert.equal(again.status, 200, 'not refused by maxPending');
      await again.arrayBuffer();
    } finally {
      await client.close();
    }
  });

  it('never hedges a POST', async () => {
    const slow = await backend('slow-post-hedge', (req, res, b) => {
      req.resume();
      setTimeout(() => {
        if (!res.destroyed) res.end(b.id);
      }, 300);
    });
    const fast = await backend('fast-post-hedge', ok);
    const client = createClient({ target: [slow.address, fast.address], random: () => 0, hedge: { delayMs: 20 } });
    try {
      const res = await client.fetch('http://svc/', { method: 'POST', body: 'p' });
      assert.equal(await res.text(), 'slow-post-hedge');
      assert.equal(fast.hits, 0);
      assert.equal(client.stats().clusters[0]?.requests.hedges, 0);
    } finally {
      await client.close();
    }
  });
});

describe('circuit breaker', () => {
  it('opens on 5xx, fails fast, lets a half-open probe through and closes again', async () => {
    let mode = 500;
    const b = await backend('breaker', (req, res, self) => {
      req.resume();
      res.writeHead(mode, { 'x-backend': self.id });
      res.end();
    });
    const client = createClient({
      target: [b.address],
      retry: false,
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 200 },
    });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await client.fetch('http://svc/')).status, 500);
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
      const hits = b.hits;
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_CIRCUIT_OPEN');
      assert.equal(b.hits, hits, 'fails fast without touching the backend');
      mode = 200;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await client.fetch('http://svc/')).status, 200);
      assert.equal(client.stats().clusters[0]?.breaker, 'closed');
    } finally {
      await client.close();
    }
  });

  it('does not count 4xx as failures, and answers with the fallback while open', async () => {
    let mode = 404;
    const b = await backend('breaker-4xx', (req, res) => {
      req.resume();
      res.writeHead(mode);
      res.end();
    });
    const client = createClient({
      target: [b.address],
      retry: false,
      breaker: {
        volumeThreshold: 3,
        resetTimeoutMs: 60_000,
        fallback: () => ({ status: 299, headers: { 'x-fallback': 'yes' }, body: 'cached' }),
      },
    });
    try {
      for (let i = 0; i < 6; i++) assert.equal((await client.fetch('http://svc/')).status, 404);
      assert.equal(client.stats().clusters[0]?.breaker, 'closed');
      mode = 503;
      for (let i = 0; i < 12 && client.stats().clusters[0]?.breaker === 'closed'; i++) {
        await (await client.fetch('http://svc/')).arrayBuffer();
      }
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 299);
      assert.equal(res.headers.get('x-fallback'), 'yes');
      assert.equal(await res.text(), 'cached');
    } finally {
      await client.close();
    }
  });
});

describe('circuit breaker and caller aborts', () => {
  it('counts caller aborts neither as successes nor as failures', async () => {
    let answer = 0;
    const b = await backend('breaker-abort', (req, res) => {
      req.resume();
      if (answer > 0) {
        res.writeHead(answer);
        res.end();
      }
    });
    const client = createClient({
      target: [b.address],
      retry: false,
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
    });
    try {
      for (let i = 0; i < 10; i++) {
        const controller = new AbortController();
        const hits = b.hits;
        const pending = client.fetch('http://svc/', { signal: controller.signal }).catch((e: unknown) => e);
        assert.ok(await until(() => b.hits > hits), 'the request reached the backend');
        controller.abort();
        assert.equal(((await pending) as Error).name, 'AbortError');
      }
      // Ten aborts counted as failures would have opened it.
      assert.equal(client.stats().clusters[0]?.breaker, 'closed');
      answer = 500;
      for (let i = 0; i < 4; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      // Counted as successes, the aborts would make these four failures 4 of 14 (29 %), under the threshold.
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
    } finally {
      await client.close();
    }
  });
});

describe("attempts undici has not started (queued in the endpoint's pool, or connecting)", () => {
  it('a deadline or per-try timeout while queued in the pool is not held against the endpoint', async () => {
    // One connection, each answer 150 ms: most of the ten concurrent requests wait in the pool's queue, in this
    // process, and their deadline passes there. The endpoint never saw them: they count as `aborted`, not `timeout`
    // (before, every one was a timeout against the endpoint, and outlier detection ejected it).
    let seen = 0;
    const slow = await backend('queued', (req, res, b) => {
      seen++;
      req.resume();
      setTimeout(() => res.end(b.id), 150);
    });
    for (const retry of [{ maxAttempts: 1 }, { maxAttempts: 1, perTryTimeoutMs: 400 }]) {
      seen = 0;
      const client = createClient({ target: [slow.address], timeoutMs: 400, retry, pool: { connections: 1 } });
      try {
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            request('http://svc/', { dispatcher: client.dispatcher }).then(
              async (r) => `${r.statusCode} ${await r.body.text()}`,
              (e: unknown) => findSidecarlessError(e)?.code ?? String(e),
            ),
          ),
        );
        const failed = results.filter((r) => r !== '200 queued').length;
        assert.ok(failed >= 3, `most requests time out waiting (${JSON.stringify(results)})`);
        assert.ok(await until(() => client.stats().clusters[0]?.inFlight === 0));
        const endpoint = client.stats().clusters[0]!.endpoints[0]!;
        assert.equal(endpoint.attempts, 10);
        // At most one attempt at a time is on the one connection, started but not yet seen by the server.
        assert.ok(
          endpoint.errorsByKind.timeout <= seen + 1 - (10 - failed),
          `${endpoint.errorsByKind.timeout} timeouts held against an endpoint that saw ${seen} requests (${10 - failed} answered)`,
        );
        assert.ok(endpoint.errorsByKind.aborted >= failed - (seen + 1 - (10 - failed)), JSON.stringify(endpoint));
      } finally {
        await client.destroy();
      }
    }
  });

  it("a stream body of an attempt timed out in the pool's queue is not replayed (undici still holds it) unless recorded", async () => {
    // The endpoint's one connection is busy with a slow GET: the PUT waits in its pool's queue past the per-try
    // timeout. Unrecorded, its stream still belongs to that queued attempt, which undici aborts (destroying the
    // stream) once it dequeues it: a retry sending it elsewhere was cut off mid-upload (an uncoded AbortError). The
    // request now fails with the per-try timeout; recorded (the default), it is retried whole.
    const received: string[] = [];
    const handler: Handler = (req, res, b) => {
      if (req.headers['x-rid'] === 'slow') {
        // Headers at once (no per-try timeout for it), the end later: the connection stays busy 500 ms.
        req.resume();
        res.writeHead(200).flushHeaders();
        setTimeout(() => res.end('slow'), 500);
        return;
      }
      // Headers at once, then the upload is read: the attempt commits before its body is sent.
      res.writeHead(200).flushHeaders();
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => {
        received.push(`${b.id} ${n}`);
        res.end(String(n));
      });
    };
    const x = await backend('queued-body-x', handler);
    const y = await backend('queued-body-y', handler);
    for (const bufferBody of [0, 65_536]) {
      received.length = 0;
      const client = createClient({
        target: [x.address, y.address],
        picker: { name: 'ring-hash', hashKey: { header: 'x-k' } },
        pool: { connections: 1 },
        retry: { perTryTimeoutMs: 150, bufferBody },
        outlierDetection: false,
      });
      try {
        const headers = { 'x-k': 'k' };
        const slow = request('http://svc/', {
          dispatcher: client.dispatcher,
          headers: { ...headers, 'x-rid': 'slow' },
        });
        await new Promise((r) => setTimeout(r, 20));
        const chunk = Buffer.alloc(4096, 1);
        // An upload still going when the slow GET ends and undici dequeues the stale attempt.
        async function* upload() {
          for (let i = 0; i < 16; i++) {
            await new Promise((r) => setTimeout(r, 50));
            yield chunk;
          }
        }
        const outcome = await request('http://svc/', {
          dispatcher: client.dispatcher,
          method: 'PUT',
          body: Readable.from(upload()),
          headers: { ...headers, 'x-rid': 'put' },
        }).then(
          async (r) => `${r.statusCode} ${await r.body.text()}`,
          (e: unknown) => findSidecarlessError(e)?.code ?? `uncoded ${String(e)}`,
        );
        await (await slow).body.text();
        if (bufferBody === 0) {
          assert.equal(outcome, 'SIDECARLESS_PER_TRY_TIMEOUT');
          assert.deepEqual(received, [], 'no endpoint got a part of the body');
        } else {
          assert.equal(outcome, '200 65536');
          assert.equal(received.length, 1);
          assert.match(received[0]!, / 65536$/);
        }
      } finally {
        await client.destroy();
      }
    }
  });

  it('bounds the attempts given up that undici still holds: past 128, refused at once (not processed) until let go', async () => {
    // One connection, held by a slow request: every other request waits in the pool's queue, and its deadline
    // passes there. undici keeps each until the connection frees (against an endpoint dropping connection attempts,
    // each would hold a connecting socket of its own: thousands within seconds). Past the bound, attempts are
    // refused at once, and once undici has let go of them, requests go through again.
    let slowSeen = false;
    const slow = await backend('held-unstarted', (req, res, b) => {
      req.resume();
      if (slowSeen) return ok(req, res, b);
      slowSeen = true;
      setTimeout(() => res.end('slow'), 1_000);
    });
    const client = createClient({ target: [slow.address], pool: { connections: 1 }, retry: false, timeoutMs: 5_000 });
    try {
      const first = request('http://svc/', { dispatcher: client.dispatcher });
      await until(() => slowSeen);
      const codes = async (n: number) =>
        Promise.all(
          Array.from({ length: n }, () =>
            request('http://svc/', { dispatcher: client.dispatcher, signal: AbortSignal.timeout(50) }).then(
              () => 'answered',
              (e: unknown) => findSidecarlessError(e)?.code ?? (e as Error).name,
            ),
          ),
        );
      const given = await codes(140);
      assert.ok(
        given.every((c) => c === 'TimeoutError'),
        JSON.stringify([...new Set(given)]),
      );
      const refused = await codes(5);
      assert.deepEqual(refused, Array(5).fill('SIDECARLESS_NOT_PROCESSED'), 'past the bound: refused at once');
      assert.equal(await (await first).body.text(), 'slow');
      // undici lets go of the given-up attempts as the connection frees (each aborted there): then requests pass.
      let answered = false;
      for (let i = 0; i < 100 && !answered; i++) {
        answered = await request('http://svc/', { dispatcher: client.dispatcher }).then(
          async (r) => (await r.body.text()) !== '',
          () => false,
        );
        if (!answered) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(answered, 'requests go through once undici has let go');
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
    } finally {
      await client.destroy();
    }
  });

  it('an endpoint that answers takes attempts past that bound (probe 5: a burst of hedges lost while connecting failed requests to a healthy endpoint)', async () => {
    // As above, but the endpoint has just answered a request: what undici holds is a burst on its way, not a pile-up
    // against an endpoint that drops connections. The clock stands still after that answer, so "just" holds on a
    // loaded machine too.
    let frozen: number | undefined;
    const clock = {
      now: () => frozen ?? performance.now(),
      setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
      clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
    };
    let slowNext = false;
    const slow = await backend('held-answering', (req, res, b) => {
      req.resume();
      if (!slowNext) return ok(req, res, b);
      slowNext = false;
      setTimeout(() => res.end('slow'), 500);
    });
    const client = createClient({
      target: [slow.address],
      pool: { connections: 1 },
      retry: false,
      timeoutMs: 0,
      clock,
    });
    try {
      await (await request('http://svc/', { dispatcher: client.dispatcher })).body.text();
      frozen = performance.now();
      slowNext = true;
      const first = request('http://svc/', { dispatcher: client.dispatcher });
      await until(() => !slowNext);
      const given = await Promise.all(
        Array.from({ length: 140 }, () =>
          request('http://svc/', { dispatcher: client.dispatcher, signal: AbortSignal.timeout(50) }).then(
            () => 'answered',
            (e: unknown) => findSidecarlessError(e)?.code ?? (e as Error).name,
          ),
        ),
      );
      assert.ok(
        given.every((c) => c === 'TimeoutError'),
        JSON.stringify([...new Set(given)]),
      );
      const later = await Promise.all(
        Array.from({ length: 5 }, () =>
          request('http://svc/', { dispatcher: client.dispatcher }).then(
            async (r) => `${r.statusCode}`,
            (e: unknown) => findSidecarlessError(e)?.code ?? (e as Error).name,
          ),
        ),
      );
      assert.deepEqual(later, Array(5).fill('200'), 'sent (queued behind the slow request), not refused');
      assert.equal(await (await first).body.text(), 'slow');
    } finally {
      await client.destroy();
    }
  });

  it('a POST whose connection was reset before anything was written is replayed on another endpoint', async () => {
    // A listener that resets every connection as it accepts it: the request is never written.
    const resetting = net.createServer((socket) => socket.resetAndDestroy());
    await new Promise<void>((r) => resetting.listen(0, '127.0.0.1', r));
    const good = await backend('after-connect-reset', ok);
    const client = createClient({
      target: [`127.0.0.1:${(resetting.address() as AddressInfo).port}`, good.address],
      random: () => 0,
    });
    try {
      const res = await request('http://svc/', { dispatcher: client.dispatcher, method: 'POST', body: 'once' });
      assert.deepEqual(await res.body.json(), { backend: 'after-connect-reset', body: 'once' });
      assert.equal(good.hits, 1);
    } finally {
      await client.close();
      await new Promise((r) => resetting.close(r));
    }
  });
});

describe('concurrency limits', () => {
  it('regression: requests the caller aborted before they started leave inFlight at 0, and maxInFlight holds', async () => {
    const slow = await backend('stall-preabort', stall);
    const client = createClient({ target: [slow.address], limits: { maxInFlight: 1 } });
    const aborted = AbortSignal.abort(new Error('aborted before it started'));
    try {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(request('http://svc/', { dispatcher: client.dispatcher, signal: aborted }), /before it/);
        await assert.rejects(client.fetch('http://svc/', { signal: aborted }), /before it/);
      }
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
      const held = client.fetch('http://svc/').catch(() => {});
      assert.ok(await until(() => slow.hits === 1));
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_OVERLOADED');
      await client.destroy();
      await held;
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
    } finally {
      await client.destroy();
    }
  });

  it('a handler that throws in onConnect or onRequestStart gets onError once, dispatch returns, no slot is held', async () => {
    const b = await backend('onconnect-throws', ok);
    const client = createClient({ target: [b.address], limits: { maxInFlight: 2 }, timeoutMs: 0 });
    try {
      const handlers = (log: string[]) => [
        {
          onConnect() {
            throw new Error('boom');
          },
          onHeaders: () => true,
          onData: () => true,
          onComplete: () => log.push('complete'),
          onError: (e: Error) => log.push(`error ${e.message}`),
        },
        {
          onRequestStart() {
            throw new Error('boom');
          },
          onResponseStart() {},
          onResponseData() {},
          onResponseEnd: () => log.push('complete'),
          onResponseError: (_c: unknown, e: Error) => log.push(`error ${e.message}`),
        },
      ];
      for (let i = 0; i < 3; i++) {
        const log: string[] = [];
        for (const handler of handlers(log)) {
          client.dispatcher.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, handler);
        }
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(log, ['error boom', 'error boom'], 'exactly one onError each, and no throw out of dispatch');
      }
      const cluster = client.stats().clusters[0]!;
      assert.equal(cluster.inFlight, 0);
      assert.equal(cluster.requests.callerErrors, 6);
      assert.equal(b.hits, 0, 'nothing was sent');
      // maxInFlight (2) is free: these requests were not left holding it.
      const res = await request('http://svc/', { dispatcher: client.dispatcher });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    } finally {
      await client.close();
    }
  });

  it('fails fast with SIDECARLESS_OVERLOADED past maxInFlight and maxPending', async () => {
    const slow = await backend('stall-limit', stall);
    const client = createClient({ target: [slow.address], limits: { maxInFlight: 2 }, timeoutMs: 2_000 });
    try {
      const held = [client.fetch('http://svc/').catch(() => {}), client.fetch('http://svc/').catch(() => {})];
      await new Promise((r) => setTimeout(r, 20));
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      const typed = findSidecarlessError(err);
      assert.equal(typed?.code, 'SIDECARLESS_OVERLOADED');
      assert.equal((typed as { limit?: string }).limit, 'maxInFlight');
      void held;
    } finally {
      await client.destroy();
    }
    const empty = createClient({ target: new StaticResolver([]), limits: { maxPending: 1 } });
    try {
      const waiting = empty.fetch('http://svc/').catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 20));
      const err = await empty.fetch('http://svc/').catch((e: unknown) => e);
      assert.equal((findSidecarlessError(err) as { limit?: string } | undefined)?.limit, 'maxPending');
      assert.equal(empty.stats().clusters[0]?.pending, 1);
      await empty.close();
      assert.equal(findSidecarlessError(await waiting)?.code, 'SIDECARLESS_CLIENT_CLOSED');
    } finally {
      await empty.close();
    }
  });

  it('with the default limits, the request past a full wait queue is refused naming maxPending (probe 5: it said maxInFlight)', async () => {
    const empty = createClient({ target: new StaticResolver([]) });
    const settled: Promise<unknown>[] = [];
    try {
      for (let i = 0; i < 1024; i++) {
        settled.push(
          new Promise((resolve) => {
            empty.dispatcher.dispatch(
              { origin: 'http://svc', path: '/', method: 'GET' },
              { onConnect: () => {}, onHeaders: () => true, onData: () => true, onComplete: resolve, onError: resolve },
            );
          }),
        );
      }
      assert.equal(empty.stats().clusters[0]?.pending, 1024);
      const err = await empty.fetch('http://svc/').catch((e: unknown) => e);
      const typed = findSidecarlessError(err) as { code?: string; limit?: string } | undefined;
      assert.equal(typed?.code, 'SIDECARLESS_OVERLOADED');
      assert.equal(typed?.limit, 'maxPending');
    } finally {
      await empty.close();
      await Promise.all(settled);
    }
  });
});

describe('TLS', () => {
  let dir: string;
  const servers: https.Server[] = [];
  let address: string;
  let ca: string;
  let billingAddress: string;
  let billingCa: string;
  /** A self-signed certificate for `name` (its own CA) and an HTTPS server presenting it. */
  async function tlsServer(name: string): Promise<{ address: string; cert: string }> {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=DNS:${name}`,
        '-keyout',
        join(dir, `${name}-key.pem`),
        '-out',
        join(dir, `${name}-cert.pem`),
      ],
      { stdio: 'ignore' },
    );
    const cert = readFileSync(join(dir, `${name}-cert.pem`), 'utf8');
    const server = https.createServer({ key: readFileSync(join(dir, `${name}-key.pem`)), cert }, (req, res) => {
      res.end(`tls ok, host ${req.headers.host}, sni ${(req.socket as import('node:tls').TLSSocket).servername}`);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, cert };
  }
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-tls-'));
    ({ address, cert: ca } = await tlsServer('users'));
    ({ address: billingAddress, cert: billingCa } = await tlsServer('billing'));
  });
  after(() => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes TLS options per cluster: each service verified against its own CA', async () => {
    const client = createClient({
      clusters: {
        users: { target: [address], tls: { ca } },
        billing: { target: [billingAddress], tls: { ca: billingCa } },
      },
    });
    const swapped = createClient({
      clusters: {
        users: { target: [address], tls: { ca: billingCa }, retry: false },
        billing: { target: [billingAddress], tls: { ca }, retry: false },
      },
    });
    try {
      assert.equal(await (await client.fetch('https://users/')).text(), 'tls ok, host users, sni users');
      assert.equal(await (await client.fetch('https://billing/')).text(), 'tls ok, host billing, sni billing');
      for (const host of ['users', 'billing']) {
        const err = await swapped.fetch(`https://${host}/`).catch((e: unknown) => e);
        assert.ok(err instanceof TypeError, `${host}: the other service's CA does not vouch for it`);
      }
    } finally {
      await Promise.all([client.close(), swapped.close()]);
    }
  });

  it('verifies the certificate against the logical name, sent as SNI and Host', async () => {
    const client = createClient({ target: [address], tls: { ca } });
    try {
      const res = await client.fetch('https://users/');
      assert.equal(await res.text(), 'tls ok, host users, sni users');
      const wrong = await client.fetch('https://billing/').catch((e: unknown) => e);
      assert.ok(wrong instanceof TypeError, 'a certificate for another name is refused');
      const plain = await client.fetch('http://users/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(plain)?.code, 'SIDECARLESS_PROTOCOL_MISMATCH');
    } finally {
      await client.close();
    }
  });

  it("the name checked is the URL's, whatever the Host header or the host option say (a forwarded Host chose it)", async () => {
    const client = createClient({ target: [address], tls: { ca } });
    const virtual = createClient({ target: [address], tls: { ca }, host: 'users.internal' });
    const bare = createClient({ target: [address], tls: { ca }, host: false });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request('https://users/', {
          dispatcher: client.dispatcher,
          headers: { host: 'attacker.example' },
        });
        assert.equal(await res.body.text(), 'tls ok, host attacker.example, sni users');
      }
      const endpoint = client.stats().clusters[0]!.endpoints[0]!;
      assert.deepEqual([endpoint.errors, endpoint.state, endpoint.ejected], [0, 'ready', false]);
      assert.equal(await (await virtual.fetch('https://users/')).text(), 'tls ok, host users.internal, sni users');
      assert.match(await (await bare.fetch('https://users/')).text(), /^tls ok, host 127\.0\.0\.1:\d+, sni users$/);
    } finally {
      await Promise.all([client.close(), virtual.close(), bare.close()]);
    }
  });

  it('a mirrored copy to a TLS shadow keeps the TLS name of the request (its Host names the shadow)', async () => {
    let received: string | undefined;
    const shadow = https.createServer(
      { key: readFileSync(join(dir, 'users-key.pem')), cert: readFileSync(join(dir, 'users-cert.pem')) },
      (req, res) => {
        received = `host ${req.headers.host}, sni ${(req.socket as import('node:tls').TLSSocket).servername}`;
        res.end('shadow');
      },
    );
    servers.push(shadow);
    await new Promise<void>((r) => shadow.listen(0, '127.0.0.1', r));
    const client = createClient({
      clusters: {
        users: { target: [address], tls: { ca } },
        'users-v2': { target: [`127.0.0.1:${(shadow.address() as AddressInfo).port}`], tls: { ca } },
      },
      routes: [{ cluster: 'users', mirror: { cluster: 'users-v2' } }],
    });
    try {
      assert.equal(await (await client.fetch('https://users/')).text(), 'tls ok, host users, sni users');
      assert.ok(await until(() => received !== undefined), 'the copy arrived');
      assert.equal(received, 'host users-shadow, sni users');
      assert.equal(client.stats().mirrored.sent, 1);
    } finally {
      await client.close();
    }
  });

  it('verifies by default: an untrusted certificate fails', async () => {
    const client = createClient({ target: [address], tls: true, retry: false });
    try {
      const err = await client.fetch('https://users/').catch((e: unknown) => e);
      assert.ok(err instanceof TypeError);
    } finally {
      await client.close();
    }
  });

  it('tls.servername overrides the name checked', async () => {
    const client = createClient({ target: [address], tls: { ca, servername: 'users' } });
    try {
      assert.match(await (await client.fetch('https://gateway/')).text(), /sni users/);
    } finally {
      await client.close();
    }
  });
});
