/**
 * A request's first attempt is the request object itself (issue 14: one object for a request answered at once);
 * retries and hedges are attempts of their own. These tests go through that seam: a retry or a hedge after or beside
 * the first attempt, the caller's abort before and after the first attempt connects, its per-try timeout, and a
 * first attempt that waited for an endpoint. Each checks that every attempt was accounted to its endpoint exactly
 * once (the endpoint's in-flight count back at 0, its attempts as sent).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Dispatcher } from 'undici';
import { type Client, createClient, type Endpoint, type Resolver, type ResolverListener } from 'sidecarless';
import { type Handler, backendsForFile } from '../helpers/backends.js';

const backend = backendsForFile();

const ok: Handler = (req, res, b) => {
  req.resume();
  res.setHeader('x-backend', b.id);
  res.end(b.id);
};
const status =
  (code: number): Handler =>
  (req, res, b) => {
    req.resume();
    res.writeHead(code, { 'x-backend': b.id });
    res.end(`status ${code}`);
  };
const reset: Handler = (req) => {
  req.resume();
  req.on('end', () => req.socket.destroy());
};
/** Never answers (the test's cleanup closes the connection). */
const stall: Handler = (req) => {
  req.resume();
};
/** Headers at once, then the body only after `ms`. */
const slowBody =
  (ms: number): Handler =>
  (req, res, b) => {
    req.resume();
    res.writeHead(200, { 'x-backend': b.id });
    res.write('a');
    const t = setTimeout(() => {
      if (!res.destroyed) res.end('b');
    }, ms);
    res.on('close', () => clearTimeout(t));
  };

/** Polls `condition` every 5 ms, at most `max` times; true once it holds. */
async function until(condition: () => boolean, max = 600): Promise<boolean> {
  for (let i = 0; i < max && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  return condition();
}

/** Per endpoint key: attempts sent and in flight. */
function endpoints(client: Client): Map<string, { attempts: number; inFlight: number; errors: number }> {
  const out = new Map<string, { attempts: number; inFlight: number; errors: number }>();
  for (const e of client.stats().clusters[0]?.endpoints ?? []) {
    out.set(e.key, { attempts: e.attempts, inFlight: e.inFlight, errors: e.errors });
  }
  return out;
}

/** Waits until no endpoint has an attempt in flight (each attempt reported once), and returns the endpoints. */
async function settled(client: Client): Promise<ReturnType<typeof endpoints>> {
  assert.ok(
    await until(() => [...endpoints(client).values()].every((e) => e.inFlight === 0)),
    `attempts still in flight: ${JSON.stringify([...endpoints(client)])}`,
  );
  return endpoints(client);
}

async function get(client: Client, signal?: AbortSignal): Promise<{ status: number; backend: unknown; body: string }> {
  const d = client.dispatcher as unknown as Dispatcher;
  const res = await d.request({ origin: 'http://svc', path: '/', method: 'GET', ...(signal ? { signal } : {}) });
  return { status: res.statusCode, backend: res.headers['x-backend'], body: await res.body.text() };
}

describe('the first attempt (the request itself)', () => {
  it('answered at once: one attempt, accounted once', async () => {
    const a = await backend('fa-one', ok);
    const client = createClient({ target: [a.address] });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(client)).status, 200);
      const e = await settled(client);
      assert.equal(e.get(a.address)?.attempts, 3);
      assert.equal(client.stats().clusters[0]?.requests.extraAttempts, 0);
    } finally {
      await client.close();
    }
  });

  it('a retry after the first attempt got a retried status: the retry answers, each attempt accounted once', async () => {
    const bad = await backend('fa-503', status(503));
    const good = await backend('fa-good', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0 });
    try {
      const res = await get(client);
      assert.equal(res.status, 200);
      assert.equal(res.backend, 'fa-good');
      const e = await settled(client);
      assert.equal(e.get(bad.address)?.attempts, 1);
      assert.equal(e.get(good.address)?.attempts, 1);
      assert.equal(client.stats().clusters[0]?.requests.retries, 1);
    } finally {
      await client.close();
    }
  });

  it('a retry after the first attempt failed (connection reset)', async () => {
    const bad = await backend('fa-reset', reset);
    const good = await backend('fa-good-2', ok);
    const client = createClient({ target: [bad.address, good.address], random: () => 0 });
    try {
      const res = await get(client);
      assert.equal(res.backend, 'fa-good-2');
      const e = await settled(client);
      assert.equal(e.get(bad.address)?.attempts, 1);
      assert.equal(e.get(bad.address)?.errors, 1);
      assert.equal(e.get(good.address)?.attempts, 1);
    } finally {
      await client.close();
    }
  });

  it('the first attempt every retry fails on: the last failure reaches the caller, every attempt accounted', async () => {
    const a = await backend('fa-all-503-a', status(503));
    const b = await backend('fa-all-503-b', status(503));
    const client = createClient({ target: [a.address, b.address], random: () => 0, retry: { maxAttempts: 2 } });
    try {
      assert.equal((await get(client)).status, 503);
      const e = await settled(client);
      assert.equal((e.get(a.address)?.attempts ?? 0) + (e.get(b.address)?.attempts ?? 0), 2);
    } finally {
      await client.close();
    }
  });

  it('a hedge wins the race against the first attempt, which is cancelled and accounted once', async () => {
    const slow = await backend('fa-hedge-slow', stall);
    const fast = await backend('fa-hedge-fast', ok);
    const client = createClient({ target: [slow.address, fast.address], random: () => 0, hedge: { delayMs: 20 } });
    try {
      const res = await get(client);
      assert.equal(res.backend, 'fa-hedge-fast');
      const e = await settled(client);
      assert.equal(e.get(slow.address)?.attempts, 1);
      assert.equal(e.get(fast.address)?.attempts, 1);
      assert.equal(client.stats().clusters[0]?.requests.hedges, 1);
    } finally {
      await client.destroy();
    }
  });

  it('the first attempt wins the race against its hedge, which is cancelled and accounted once', async () => {
    const first = await backend('fa-first-wins', (req, res, b) => {
      req.resume();
      const t = setTimeout(() => {
        if (!res.destroyed) res.end(b.id);
      }, 150);
      res.on('close', () => clearTimeout(t));
    });
    const hedge = await backend('fa-hedge-stalls', stall);
    const client = createClient({ target: [first.address, hedge.address], random: () => 0, hedge: { delayMs: 20 } });
    try {
      const res = await get(client);
      assert.equal(res.body, 'fa-first-wins');
      assert.ok(await until(() => hedge.hits === 1), 'the hedge was sent');
      const e = await settled(client);
      assert.equal(e.get(first.address)?.attempts, 1);
      assert.equal(e.get(hedge.address)?.attempts, 1);
    } finally {
      await client.destroy();
    }
  });

  it('the caller aborts before the first attempt is sent: nothing sent, the abort reason reaches the caller', async () => {
    const a = await backend('fa-abort-at-once', ok);
    const client = createClient({ target: [a.address] });
    try {
      const d = client.dispatcher as unknown as Dispatcher;
      const error = await new Promise<Error>((resolve) => {
        d.dispatch({ origin: 'http://svc', path: '/', method: 'GET' }, {
          onConnect: (abort: (reason?: Error) => void) => abort(new Error('changed my mind')),
          onHeaders: () => true,
          onData: () => true,
          onComplete: () => resolve(new Error('completed')),
          onError: resolve,
        } as unknown as Dispatcher.DispatchHandler);
      });
      assert.equal(error.message, 'changed my mind');
      const e = await settled(client);
      assert.equal(e.get(a.address)?.attempts ?? 0, 0);
      assert.equal(a.hits, 0);
    } finally {
      await client.close();
    }
  });

  it('the caller aborts while the first attempt waits for headers: aborted, accounted once, not an endpoint error', async () => {
    const a = await backend('fa-abort-in-flight', stall);
    const client = createClient({ target: [a.address] });
    try {
      const controller = new AbortController();
      const pending = get(client, controller.signal);
      assert.ok(await until(() => a.hits === 1), 'the attempt reached the endpoint');
      controller.abort(new Error('caller gave up'));
      await assert.rejects(pending, /caller gave up/);
      const e = await settled(client);
      assert.equal(e.get(a.address)?.attempts, 1);
      const kinds = client.stats().clusters[0]?.endpoints[0]?.errorsByKind;
      assert.equal(kinds?.aborted, e.get(a.address)?.errors, 'counted as aborted only');
      assert.equal(client.stats().clusters[0]?.requests.callerErrors, 1);
    } finally {
      await client.close();
    }
  });

  it('the caller aborts the first attempt committed response while reading its body', async () => {
    const a = await backend('fa-abort-body', slowBody(10_000));
    const client = createClient({ target: [a.address] });
    try {
      const controller = new AbortController();
      const d = client.dispatcher as unknown as Dispatcher;
      const res = await d.request({ origin: 'http://svc', path: '/', method: 'GET', signal: controller.signal });
      assert.equal(res.statusCode, 200);
      controller.abort(new Error('enough'));
      await assert.rejects(res.body.text());
      const e = await settled(client);
      assert.equal(e.get(a.address)?.attempts, 1);
      assert.equal(client.stats().clusters[0]?.endpoints[0]?.errorsByKind.aborted, 1);
    } finally {
      await client.close();
    }
  });

  it('the per-try timeout of the first attempt: retried elsewhere, the timed-out attempt accounted once', async () => {
    const slow = await backend('fa-per-try-slow', stall);
    const good = await backend('fa-per-try-good', ok);
    const client = createClient({
      target: [slow.address, good.address],
      random: () => 0,
      retry: { perTryTimeoutMs: 50 },
    });
    try {
      const res = await get(client);
      assert.equal(res.backend, 'fa-per-try-good');
      const e = await settled(client);
      assert.equal(e.get(slow.address)?.attempts, 1);
      assert.equal(e.get(slow.address)?.errors, 1);
      assert.equal(e.get(good.address)?.attempts, 1);
    } finally {
      await client.destroy();
    }
  });

  it('the authority of a string origin and of a URL origin (a URL keeps its own): the Host header names it', async () => {
    const a = await backend('fa-host', (req, res) => {
      req.resume();
      res.end(req.headers.host);
    });
    const client = createClient({ target: [a.address] });
    try {
      const d = client.dispatcher as unknown as Dispatcher;
      for (const origin of ['http://svc', new URL('http://svc:8080'), 'http://svc', new URL('http://other')]) {
        const res = await d.request({ origin, path: '/', method: 'GET' });
        assert.equal(await res.body.text(), new URL(String(origin)).host);
      }
      await settled(client);
    } finally {
      await client.close();
    }
  });

  it('a first attempt that waited for an endpoint is sent once one arrives', async () => {
    const a = await backend('fa-waited', ok);
    let listener: ResolverListener | undefined;
    const resolver: Resolver = {
      start(l) {
        listener = l;
      },
      close() {},
    };
    const client = createClient({ target: resolver });
    try {
      const pending = get(client);
      await new Promise((r) => setTimeout(r, 20));
      listener?.onUpdate([{ key: a.address, host: '127.0.0.1', port: Number(a.address.split(':')[1]) } as Endpoint]);
      const res = await pending;
      assert.equal(res.backend, 'fa-waited');
      const e = await settled(client);
      assert.equal(e.get(a.address)?.attempts, 1);
    } finally {
      await client.close();
    }
  });
});
