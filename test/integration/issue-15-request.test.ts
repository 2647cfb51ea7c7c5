/**
 * Regression tests for issue 15, items 3, 4, 6, 13 and 14 (request layer), through the package entry point on real
 * HTTP servers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { stream } from 'undici';
import { createClient, findSidecarlessError } from 'sidecarless';
import { type Handler, backendsForFile } from '../helpers/backends.js';
import { assertFailingBodyIsCallers } from '../helpers/failing-body.js';
import { FakeClock } from '../helpers/fake-clock.js';

const backend = backendsForFile();

const ok: Handler = (req, res, b) => {
  req.resume();
  req.on('end', () => {
    res.setHeader('x-backend', b.id);
    res.end(`ok from ${b.id}`);
  });
};

/** Polls `condition` every 5 ms, at most `max` times; true once it holds. */
async function until(condition: () => boolean, max = 400): Promise<boolean> {
  for (let i = 0; i < max && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  return condition();
}

/** A client whose breaker is open at once (every request fails, one is enough). */
async function openBreaker(fallback: () => unknown) {
  const b = await backend('breaker-fallback', (req, res) => {
    req.resume();
    res.writeHead(503);
    res.end();
  });
  const client = createClient({
    target: [b.address],
    retry: false,
    breaker: { volumeThreshold: 1, resetTimeoutMs: 60_000, fallback: fallback as never },
  });
  for (let i = 0; i < 5 && client.stats().clusters[0]?.breaker !== 'open'; i++) {
    await (await client.fetch('http://svc/')).arrayBuffer();
  }
  assert.equal(client.stats().clusters[0]?.breaker, 'open');
  return client;
}

describe('issue 15.3: breaker fallback results are validated', () => {
  const bad: [string, unknown, RegExp][] = [
    ['undefined', undefined, /expected an object/],
    ['a number', 42, /expected an object/],
    ['null', null, /expected an object/],
    ['status "abc"', { status: 'abc' }, /status/],
    ['status 99', { status: 99 }, /status/],
    ['status 200.5', { status: 200.5 }, /status/],
    ['a header value with CRLF', { status: 200, headers: { 'x-a': 'v\r\nset-cookie: evil=1' } }, /header "x-a"/],
    ['an invalid header name', { status: 200, headers: { 'x a': 'v' } }, /header name/],
    ['a non-string header value', { status: 200, headers: { 'x-a': 5 } }, /header "x-a"/],
    ['a body that is an object', { status: 200, body: { a: 1 } }, /body/],
  ];
  for (const [what, value, message] of bad) {
    it(`fails with SIDECARLESS_CIRCUIT_OPEN (cause: the validation error) when the fallback returns ${what}`, async () => {
      let unhandled = 0;
      const onUnhandled = () => unhandled++;
      process.on('unhandledRejection', onUnhandled);
      const client = await openBreaker(() => value);
      try {
        // Through fetch and through the dispatcher: both settle, with the typed error.
        const err = await client.fetch('http://svc/').then(
          () => assert.fail('expected a rejection'),
          (e: unknown) => e,
        );
        const typed = findSidecarlessError(err);
        assert.equal(typed?.code, 'SIDECARLESS_CIRCUIT_OPEN');
        assert.ok(typed?.cause instanceof TypeError);
        assert.match((typed.cause as Error).message, message);
        const viaDispatcher = await client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET' }).then(
          () => assert.fail('expected a rejection'),
          (e: unknown) => e as { code?: string },
        );
        assert.equal(viaDispatcher.code, 'SIDECARLESS_CIRCUIT_OPEN');
        assert.equal(unhandled, 0);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        await client.close();
      }
    });
  }

  it('issue 14 regression: a fallback that never settles is bounded by timeoutMs (SIDECARLESS_DEADLINE_EXCEEDED)', async () => {
    const b = await backend('breaker-fallback-deadline', (req, res) => {
      req.resume();
      res.writeHead(503);
      res.end();
    });
    // Answers while the breaker is being opened, then never settles.
    let hang = false;
    const fallback = () => (hang ? new Promise(() => {}) : { status: 200 });
    const client = createClient({
      target: [b.address],
      retry: false,
      timeoutMs: 100,
      breaker: { volumeThreshold: 1, resetTimeoutMs: 60_000, fallback: fallback as never },
    });
    try {
      for (let i = 0; i < 5 && client.stats().clusters[0]?.breaker !== 'open'; i++) {
        await (await client.fetch('http://svc/')).arrayBuffer();
      }
      assert.equal(client.stats().clusters[0]?.breaker, 'open');
      hang = true;
      const err = await client.fetch('http://svc/').then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_DEADLINE_EXCEEDED');
      assert.equal(client.stats().clusters[0]?.inFlight, 0);
    } finally {
      await client.close();
    }
  });

  it('answers with a valid fallback, a Buffer or Uint8Array body and the framing set from the body', async () => {
    const client = await openBreaker(() => ({
      status: 200,
      headers: { 'x-fallback': 'yes', 'content-length': '999' },
      body: new Uint8Array([104, 105]),
    }));
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-fallback'), 'yes');
      assert.equal(res.headers.get('content-length'), '2');
      assert.equal(await res.text(), 'hi');
    } finally {
      await client.close();
    }
    const empty = await openBreaker(() => ({ status: 204 }));
    try {
      assert.equal((await empty.fetch('http://svc/')).status, 204);
    } finally {
      await empty.close();
    }
  });
});

describe('issue 15.4: a retryable status with a slow or endless body does not hold the retry back', () => {
  /** Answers 503 and trickles its body forever (until the connection closes). */
  function trickle503(closed: { count: number }): Handler {
    return (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.write('x');
      const timer = setInterval(() => res.write('x'), 20);
      res.on('close', () => {
        clearInterval(timer);
        closed.count++;
      });
    };
  }

  for (const perTryTimeoutMs of [0, 5_000]) {
    it(`retries on the healthy endpoint at once, dropping the endless 503 body (perTryTimeoutMs ${perTryTimeoutMs})`, async () => {
      const closed = { count: 0 };
      const slow = await backend('trickle-503', trickle503(closed));
      const good = await backend('good-after-trickle', ok);
      const client = createClient({
        target: [slow.address, good.address],
        picker: 'round-robin',
        random: () => 0,
        retry: { perTryTimeoutMs },
      });
      try {
        for (let i = 0; i < 4; i++) {
          // Bounded: a request that hangs fails here rather than holding the suite.
          const res = await client.fetch('http://svc/', { signal: AbortSignal.timeout(20_000) });
          assert.equal(res.status, 200);
          assert.equal(res.headers.get('x-backend'), 'good-after-trickle');
          await res.arrayBuffer();
        }
        assert.ok(slow.hits >= 1, 'the trickling endpoint was tried');
        // The dropped responses' connections were closed, not left trickling.
        assert.ok(await until(() => closed.count === slow.hits), `closed ${closed.count} of ${slow.hits}`);
      } finally {
        await client.close();
      }
    });
  }

  it('keeps retrying a 503 whose body arrives with its headers', async () => {
    const bad = await backend('plain-503', (req, res) => {
      req.resume();
      res.writeHead(503);
      res.end('unavailable');
    });
    const good = await backend('good-after-503', ok);
    const client = createClient({ target: [bad.address, good.address], picker: 'round-robin', random: () => 0 });
    try {
      for (let i = 0; i < 4; i++) {
        const res = await client.fetch('http://svc/');
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      const stats = client.stats().clusters[0];
      assert.ok((stats?.requests.retries ?? 0) >= 1);
    } finally {
      await client.close();
    }
  });
});

describe('issue 15.6: failures on the caller side count against no endpoint', () => {
  const N = 20;
  const stall: Handler = (req) => req.resume();

  /** Two backends, a client with eager outlier detection; `run` makes one failing request, `N` times over. */
  async function blameless(
    name: string,
    handler: Handler,
    run: (client: ReturnType<typeof createClient>, i: number) => Promise<unknown>,
    options: Record<string, unknown> = {},
  ) {
    const a = await backend(`${name}-a`, handler);
    const b = await backend(`${name}-b`, handler);
    const client = createClient({
      target: [a.address, b.address],
      outlierDetection: { consecutive5xx: 2, consecutiveGatewayFailure: 2 },
      ...options,
    });
    const errors: unknown[] = [];
    try {
      for (let i = 0; i < N; i++) {
        errors.push(
          await run(client, i).then(
            () => assert.fail(`request ${i} should have failed`),
            (e: unknown) => e,
          ),
        );
      }
      const stats = client.stats().clusters[0];
      assert.ok(stats);
      assert.equal(stats.ejections, 0, 'no endpoint ejected');
      assert.equal(stats.requests.retries, 0, 'nothing retried');
      assert.equal(stats.requests.callerErrors, N);
      for (const e of stats.endpoints) {
        assert.equal(e.ejected, false);
        assert.deepEqual(
          [e.errorsByKind.connect, e.errorsByKind.reset, e.errorsByKind.timeout, e.errorsByKind.other],
          [0, 0, 0, 0],
          `${e.key}: ${JSON.stringify(e.errorsByKind)}`,
        );
        assert.equal(e.statusClasses['5xx'], 0);
      }
      return { errors, hits: a.hits + b.hits };
    } finally {
      await client.close();
    }
  }

  it("the caller's AbortSignal.timeout() firing", async () => {
    const { errors } = await blameless('abort-timeout', stall, (client) =>
      client.fetch('http://svc/', { signal: AbortSignal.timeout(30) }),
    );
    for (const e of errors) assert.equal((e as Error).name, 'TimeoutError');
  });

  it("the caller's AbortController aborting with its own reason, also through the dispatcher", async () => {
    const reason = new Error('caller gave up');
    const { errors } = await blameless('abort-reason', stall, async (client, i) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 20);
      if (i % 2 === 0) return client.fetch('http://svc/', { signal: controller.signal });
      return client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'GET', signal: controller.signal });
    });
    for (const e of errors) assert.equal(e, reason);
  });

  it("the caller's fetch ReadableStream body erroring", async () => {
    const { errors } = await blameless('fetch-body-error', stall, (client) => {
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new TextEncoder().encode('part'));
          controller.error(Object.assign(new Error('upload broke'), { code: 'ECONNRESET' }));
        },
      });
      return client.fetch('http://svc/', { method: 'PUT', body, duplex: 'half' } as RequestInit);
    });
    for (const e of errors) assert.ok(e instanceof Error);
  });

  for (const retry of [undefined, false] as const) {
    it(`the caller's Readable body emitting ECONNRESET through the dispatcher (retry ${String(retry)})`, async () => {
      const { errors } = await blameless(
        `readable-reset-${String(retry)}`,
        stall,
        (client) => {
          const body = new Readable({ read() {} });
          body.push('part');
          setTimeout(() => body.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 10);
          return client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'PUT', body });
        },
        retry === false ? { retry: false } : {},
      );
      for (const e of errors) assert.equal((e as { message?: string }).message, 'socket hang up');
    });
  }

  it("the caller's Readable body stalling past timeoutMs", async () => {
    const { errors } = await blameless(
      'readable-stall',
      stall,
      (client) => {
        const body = new Readable({ read() {} });
        body.push('part');
        return client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'PUT', body });
      },
      { timeoutMs: 100 },
    );
    for (const e of errors) assert.equal((e as { code?: string }).code, 'SIDECARLESS_DEADLINE_EXCEEDED');
  });

  for (const [label, options] of [
    ['recorded for retries (the default)', { timeoutMs: 100 }],
    ['not recorded', { timeoutMs: 100, retry: { bufferBody: 0 } }],
    ['per-try timeout', { retry: { perTryTimeoutMs: 100 } }],
  ] as const) {
    it(`the caller's Readable body that never yields its first byte, ${label}`, async () => {
      const { errors } = await blameless(
        `readable-silent-${label.split(' ')[0]!}`,
        stall,
        (client) =>
          client.dispatcher.request({
            origin: 'http://svc',
            path: '/',
            method: 'PUT',
            body: new Readable({ read() {} }),
          }),
        options,
      );
      const code =
        'perTryTimeoutMs' in (options.retry ?? {}) ? 'SIDECARLESS_PER_TRY_TIMEOUT' : 'SIDECARLESS_DEADLINE_EXCEEDED';
      for (const e of errors) assert.equal((e as { code?: string }).code, code);
    });
  }

  it("the caller's own handler throwing: a stream() factory, a dispatch handler's onHeaders and onData", async () => {
    const throwing = [
      (client: ReturnType<typeof createClient>) =>
        stream('http://svc/', { dispatcher: client.dispatcher, method: 'GET' }, () => {
          throw new Error('factory');
        }),
      ...(['onHeaders', 'onData'] as const).map(
        (where) => (client: ReturnType<typeof createClient>) =>
          new Promise<void>((resolve, reject) => {
            client.dispatcher.dispatch(
              { origin: 'http://svc', path: '/', method: 'GET' },
              {
                onConnect() {},
                onHeaders() {
                  if (where === 'onHeaders') throw new Error('handler bug');
                  return true;
                },
                onData() {
                  throw new Error('parse bug');
                },
                onComplete: () => resolve(),
                onError: reject,
              },
            );
          }),
      ),
    ];
    // Not `blameless`: the request had committed (the response was the caller's), so it is no caller error of the
    // request's; what matters is that the attempt counts against no endpoint.
    const a = await backend('handler-throws-a', ok);
    const b = await backend('handler-throws-b', ok);
    const client = createClient({
      target: [a.address, b.address],
      outlierDetection: { consecutive5xx: 2, consecutiveGatewayFailure: 2 },
    });
    try {
      const messages = new Set<string>();
      for (let i = 0; i < 12; i++) {
        await throwing[i % throwing.length]!(client).then(
          () => assert.fail('the handler threw'),
          (e: unknown) => messages.add((e as Error).message),
        );
      }
      assert.deepEqual([...messages].sort(), ['factory', 'handler bug', 'parse bug']);
      const stats = client.stats().clusters[0]!;
      assert.equal(stats.ejections, 0);
      assert.equal(stats.requests.retries, 0);
      for (const e of stats.endpoints) {
        assert.equal(e.errorsByKind.other, 0, `${e.key}: ${JSON.stringify(e.errorsByKind)}`);
        assert.equal(e.errorsByKind.aborted, 6);
      }
    } finally {
      await client.close();
    }
  });

  it('an invalid header value undici refuses before sending', async () => {
    const { errors, hits } = await blameless('invalid-header', ok, (client) =>
      client.dispatcher.request({
        origin: 'http://svc',
        path: '/',
        method: 'GET',
        headers: { 'x-forwarded': 'a\r\nb' },
      }),
    );
    assert.equal(hits, 0, 'nothing reached an endpoint');
    for (const e of errors) assert.equal((e as { code?: string }).code, 'UND_ERR_INVALID_ARG');
  });

  it("an endpoint's own failures still count against it (the rule's other side)", async () => {
    const a = await backend('blamed-a', (req, res) => {
      req.resume();
      res.writeHead(500);
      res.end();
    });
    const client = createClient({
      target: [a.address],
      retry: false,
      outlierDetection: { consecutive5xx: 2 },
      panicThreshold: 0,
    });
    try {
      for (let i = 0; i < 2; i++) await (await client.fetch('http://svc/')).arrayBuffer();
      const stats = client.stats().clusters[0];
      assert.equal(stats?.ejections, 1);
      assert.equal(stats?.requests.callerErrors, 0);
    } finally {
      await client.close();
    }
  });
});

describe('issue 15.13: a production deadline by default', () => {
  it('fails a request whose backend trickles its headers after the 15 s default timeoutMs, not undici 300 s', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const trickle = await backend('trickle-headers', (req, res) => {
      req.resume();
      // The status line and one header, then nothing more: the headers never end.
      res.socket?.write('HTTP/1.1 200 OK\r\nx-a: 1\r\n');
      if (res.socket) sockets.add(res.socket);
    });
    const clock = new FakeClock();
    const client = createClient({ target: [trickle.address], clock, retry: { maxAttempts: 1 } });
    try {
      const result = client.fetch('http://svc/').then(
        () => assert.fail('expected the deadline'),
        (e: unknown) => e,
      );
      assert.ok(await until(() => trickle.hits === 1), 'the request reached the backend');
      clock.advance(14_999);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(client.stats().clusters[0]?.inFlight, 1, 'still waiting short of 15 s');
      clock.advance(1);
      const err = findSidecarlessError(await result);
      assert.equal(err?.code, 'SIDECARLESS_DEADLINE_EXCEEDED');
      assert.match(err.message, /15000/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await client.close();
    }
  });

  it('keeps timeoutMs: 0 as "no deadline"', async () => {
    const b = await backend('no-deadline', (req) => req.resume());
    const clock = new FakeClock();
    const client = createClient({ target: [b.address], clock, timeoutMs: 0, retry: false });
    try {
      const controller = new AbortController();
      const result = client.fetch('http://svc/', { signal: controller.signal }).catch((e: unknown) => e);
      assert.ok(await until(() => b.hits === 1), 'the request reached the backend');
      clock.advance(3_600_000);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(client.stats().clusters[0]?.inFlight, 1, 'no deadline ended it');
      controller.abort();
      assert.equal(((await result) as Error).name, 'AbortError');
    } finally {
      await client.close();
    }
  });
});

describe('issue 15.14: redirects that leave the service', () => {
  /** A service endpoint that redirects with `status` to `location`, and an outside host recording what it got. */
  async function redirectPair(name: string, status: number, location: (outside: string) => string) {
    const seen: { headers: Record<string, unknown>; body: string }[] = [];
    const outside = await backend(`${name}-outside`, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.end('outside');
      });
    });
    const service = await backend(`${name}-service`, (req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/landed') {
          res.end('landed inside');
          return;
        }
        res.writeHead(status, { location: location(`http://${outside.address}`) });
        res.end();
      });
    });
    return { outside, service, seen };
  }
  const post = { method: 'POST', body: 'secret body', headers: { 'x-api-key': 'k-123' } };

  it('by default follows a 307 to another origin as fetch does: body and x-api-key go there', async () => {
    const { service, seen } = await redirectPair('follow', 307, (o) => `${o}/elsewhere`);
    const client = createClient({ target: [service.address] });
    try {
      const res = await client.fetch('http://svc/', post);
      assert.equal(await res.text(), 'outside');
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.headers['x-api-key'], 'k-123');
      assert.equal(seen[0]?.body, 'secret body');
    } finally {
      await client.close();
    }
  });

  it("redirect: { crossOrigin: 'refuse' } rejects with SIDECARLESS_REDIRECT_REFUSED and sends nothing there", async () => {
    const { outside, service, seen } = await redirectPair('refuse', 307, (o) => `${o}/elsewhere`);
    const client = createClient({ target: [service.address], redirect: { crossOrigin: 'refuse' } });
    try {
      const err = await client.fetch('http://svc/', post).then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TypeError, 'rejects as fetch does');
      const typed = findSidecarlessError(err);
      assert.equal(typed?.code, 'SIDECARLESS_REDIRECT_REFUSED');
      assert.equal((typed as unknown as { location: string }).location, `http://${outside.address}`);
      assert.equal(seen.length, 0, 'nothing reached the other origin');
      assert.equal(outside.hits, 0);
      // fetch's own redirect: 'manual' still hands the 3xx to the caller.
      const manual = await client.fetch('http://svc/', { ...post, redirect: 'manual' });
      assert.equal(manual.status, 307);
      assert.equal(manual.headers.get('location'), `http://${outside.address}/elsewhere`);
    } finally {
      await client.close();
    }
  });

  it("redirect: { crossOrigin: 'refuse' } still follows a redirect within the service", async () => {
    const { service } = await redirectPair('same-origin', 302, () => '/landed');
    const client = createClient({ target: [service.address], redirect: { crossOrigin: 'refuse' } });
    try {
      const res = await client.fetch('http://svc/');
      assert.equal(await res.text(), 'landed inside');
    } finally {
      await client.close();
    }
  });

  it("redirect: { crossOrigin: 'refuse' } on a multi-service client refuses a hop to the passthrough", async () => {
    const { outside, service } = await redirectPair('multi', 308, (o) => `${o}/elsewhere`);
    const client = createClient({
      clusters: { users: { target: [service.address] } },
      passthrough: true,
      redirect: { crossOrigin: 'refuse' },
    });
    try {
      const err = await client.fetch('http://users/', post).catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_REDIRECT_REFUSED');
      assert.equal(outside.hits, 0);
    } finally {
      await client.close();
    }
  });

  it('refuses a bad redirect option at construction', () => {
    assert.throws(
      () => createClient({ target: ['127.0.0.1:1'], redirect: { crossOrigin: 'never' as never } }),
      (e: unknown) => (e as { option?: string }).option === 'redirect.crossOrigin',
    );
    assert.throws(
      () => createClient({ target: ['127.0.0.1:1'], redirect: { sameOrigin: 1 } as never }),
      (e: unknown) => (e as { code?: string }).code === 'SIDECARLESS_INVALID_OPTION',
    );
  });
});

describe('requests undici refuses, and failing bodies, over HTTP/1.1', () => {
  it('a request undici refuses (UND_ERR_INVALID_ARG) does not wedge an endpoint with pool.connections: 1', async () => {
    const b = await backend('invalid-arg-conn1', ok);
    const client = createClient({ target: [b.address], pool: { connections: 1 }, timeoutMs: 5000 });
    try {
      assert.match(await (await client.fetch('http://svc/a')).text(), /^ok/);
      const refused = await client.fetch('http://svc/b', { headers: { 'keep-alive': 'timeout=5' } }).catch((e) => e);
      assert.equal(
        (refused as Error).cause && (refused as { cause: { code?: string } }).cause.code,
        'UND_ERR_INVALID_ARG',
      );
      const later = await Promise.all(Array.from({ length: 3 }, () => client.fetch('http://svc/c')));
      for (const r of later) assert.match(await r.text(), /^ok/);
      assert.equal(client.stats().clusters[0]?.requests.callerErrors, 1);
    } finally {
      await client.close();
    }
  });

  it("an async-iterable body given to the dispatcher that fails is the caller's (retry: false)", async () => {
    const b = await backend('iterable-body-fails', (req, res) => {
      req.on('error', () => {});
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await assertFailingBodyIsCallers('http/1.1', b.address);
  });
});
