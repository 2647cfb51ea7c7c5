import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError, StaticResolver } from '../../src/index.js';
import { type Backend, type Handler, startBackend, stopAll } from '../helpers/backends.js';

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

async function deadAddress(): Promise<string> {
  const b = await startBackend('dead');
  await b.stop();
  return b.address;
}

const backends: Backend[] = [];
async function backend(id: string, handler: Handler): Promise<Backend> {
  const b = await startBackend(id, handler);
  backends.push(b);
  return b;
}
after(async () => {
  await stopAll(backends);
});

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

  it('honours Retry-After up to maxRetryAfter, and hands back a 503 that asks for longer', async () => {
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
      retry: { maxAttempts: 3, backoffInitial: 1, backoffMax: 1 },
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
      hedge: { delay: 50 },
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
    const client = createClient({ target: [slow.address], timeout: 150 });
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

  it('a per-try timeout moves an idempotent request to another endpoint', async () => {
    const slow = await backend('stall-try', stall);
    const good = await backend('good-try', ok);
    const client = createClient({
      target: [slow.address, good.address],
      random: () => 0,
      retry: { perTryTimeout: 100 },
    });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.headers.get('x-backend'), 'good-try');
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
    const client = createClient({ target: [slow.address, fast.address], random: () => 0, hedge: { delay: 50 } });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.headers.get('x-backend'), 'fast-hedge');
      await res.arrayBuffer();
      const deadline = Date.now() + 2_000;
      while (!slowClosedEarly && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(slowClosedEarly, 'the losing attempt was aborted');
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
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: 200 },
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
        resetTimeout: 60_000,
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

describe('concurrency limits', () => {
  it('fails fast with SIDECARLESS_OVERLOADED past maxInFlight and maxPending', async () => {
    const slow = await backend('stall-limit', stall);
    const client = createClient({ target: [slow.address], limits: { maxInFlight: 2 }, timeout: 2_000 });
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
});

describe('TLS', () => {
  let dir: string;
  let server: https.Server;
  let address: string;
  let ca: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-tls-'));
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
        '/CN=users',
        '-addext',
        'subjectAltName=DNS:users',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, (req, res) => {
      res.end(`tls ok, host ${req.headers.host}, sni ${(req.socket as import('node:tls').TLSSocket).servername}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
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
