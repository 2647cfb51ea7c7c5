import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Agent,
  getGlobalDispatcher,
  pipeline,
  request,
  setGlobalDispatcher,
  stream,
  fetch as undiciFetch,
} from 'undici';
import { type Clock, createClient, findSidecarlessError, StaticResolver } from '../../src/index.js';
import { systemClock } from '../../src/common/runtime.js';
import { type Backend, startBackend, startBackends, stopAll } from '../helpers/backends.js';

async function json(res: Response): Promise<{ backend: string; host: string; body: string; method: string }> {
  return (await res.json()) as { backend: string; host: string; body: string; method: string };
}

describe('client over real backends', () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3);
  });
  after(async () => {
    await stopAll(backends);
  });

  it('spreads requests across three backends in round-robin order', async () => {
    const client = createClient({ target: backends.map((b) => b.address), random: () => 0 });
    try {
      const seen: string[] = [];
      for (let i = 0; i < 30; i++) seen.push((await json(await client.fetch('http://users/x'))).backend);
      assert.deepEqual(seen.slice(0, 6), ['b0', 'b1', 'b2', 'b0', 'b1', 'b2']);
      for (const id of ['b0', 'b1', 'b2']) assert.equal(seen.filter((s) => s === id).length, 10);
      const stats = client.stats().clusters[0];
      assert.ok(stats);
      assert.deepEqual(
        stats.endpoints.map((e) => e.responses),
        [10, 10, 10],
      );
      assert.ok(stats.endpoints.every((e) => e.statusClasses['2xx'] === 10 && e.inFlight === 0));
    } finally {
      await client.close();
    }
  });

  it('sends the logical service name as Host unless configured otherwise', async () => {
    const logical = createClient({ target: [backends[0]!.address] });
    const fixed = createClient({ target: [backends[0]!.address], host: 'users.internal' });
    const raw = createClient({ target: [backends[0]!.address], host: false });
    try {
      assert.equal((await json(await logical.fetch('http://users:8080/a'))).host, 'users:8080');
      assert.equal((await json(await fixed.fetch('http://users/a'))).host, 'users.internal');
      assert.equal((await json(await raw.fetch('http://users/a'))).host, backends[0]!.address);
      const explicit = await logical.fetch('http://users/a', { headers: { Host: 'override' } });
      // fetch forbids setting Host; undici drops it, so the logical name still goes out.
      assert.equal((await json(explicit)).host, 'users');
      const viaUndici = await request('http://users/a', {
        dispatcher: logical.dispatcher,
        headers: { host: 'mine' },
      });
      assert.equal(((await viaUndici.body.json()) as { host: string }).host, 'mine');
    } finally {
      await Promise.all([logical.close(), fixed.close(), raw.close()]);
    }
  });

  it('keeps fetch semantics: methods, bodies, streaming request bodies, Request objects', async () => {
    const client = createClient({ target: backends.map((b) => b.address) });
    try {
      const post = await client.fetch('http://users/items?x=1', { method: 'POST', body: 'hello' });
      assert.equal(post.status, 200);
      const echoed = await json(post);
      assert.equal(echoed.method, 'POST');
      assert.equal(echoed.body, 'hello');
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('chunk-1,'));
          controller.enqueue(new TextEncoder().encode('chunk-2'));
          controller.close();
        },
      });
      const streamed = await client.fetch('http://users/s', {
        method: 'PUT',
        body: stream,
        duplex: 'half',
      } as RequestInit);
      assert.equal((await json(streamed)).body, 'chunk-1,chunk-2');
      const viaRequest = await client.fetch(new Request('http://users/r', { method: 'DELETE' }));
      assert.ok(viaRequest instanceof Response);
      assert.equal((await json(viaRequest)).method, 'DELETE');
    } finally {
      await client.close();
    }
  });

  it('balances through undici.request, undici.fetch and a global dispatcher', async () => {
    const client = createClient({ target: backends.map((b) => b.address), random: () => 0 });
    const previous = getGlobalDispatcher();
    try {
      const a = await request('http://users/1', { dispatcher: client.dispatcher });
      const b = await undiciFetch('http://users/2', { dispatcher: client.dispatcher });
      setGlobalDispatcher(client.dispatcher);
      const c = await request('http://users/3');
      // Node's built-in fetch (its own bundled undici) also honours the global dispatcher npm undici installs.
      const d = await globalThis.fetch('http://users/4');
      const ids = [
        ((await a.body.json()) as { backend: string }).backend,
        ((await b.json()) as { backend: string }).backend,
        ((await c.body.json()) as { backend: string }).backend,
      ];
      const viaBuiltIn = await json(d);
      assert.deepEqual(ids, ['b0', 'b1', 'b2']);
      assert.equal(viaBuiltIn.backend, 'b0');
      assert.equal(viaBuiltIn.host, 'users');
      assert.equal(globalThis.fetch === (undiciFetch as unknown), false, 'the built-in fetch, not undici.fetch');
    } finally {
      setGlobalDispatcher(previous);
      await client.close();
    }
  });

  it('balances undici.stream and undici.pipeline through the dispatcher', async () => {
    const client = createClient({ target: backends.map((b) => b.address), random: () => 0 });
    try {
      const chunks: Buffer[] = [];
      await stream('http://users/s', { dispatcher: client.dispatcher, method: 'GET' }, () => {
        return new Writable({
          write(chunk: Buffer, _enc, cb) {
            chunks.push(chunk);
            cb();
          },
        });
      });
      assert.equal(JSON.parse(Buffer.concat(chunks).toString()).backend, 'b0');
      const out: Buffer[] = [];
      await pipelinePromise(
        Readable.from([Buffer.from('piped body')]),
        pipeline('http://users/p', { dispatcher: client.dispatcher, method: 'PUT' }, ({ body }) => body),
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            out.push(chunk);
            cb();
          },
        }),
      );
      const echoed = JSON.parse(Buffer.concat(out).toString()) as { backend: string; body: string };
      assert.equal(echoed.backend, 'b1');
      assert.equal(echoed.body, 'piped body');
    } finally {
      await client.close();
    }
  });

  it('ready() resolves after the first endpoint set, and rejects with SIDECARLESS_NO_ENDPOINTS after its timeout', async () => {
    const client = createClient({ target: backends.map((b) => b.address) });
    const never = createClient({ target: { start() {}, close() {} } });
    try {
      await client.ready(2_000);
      assert.equal(client.endpoints.length, 3);
      await assert.rejects(never.ready(50), { code: 'SIDECARLESS_NO_ENDPOINTS' });
    } finally {
      await Promise.all([client.close(), never.close()]);
    }
  });

  it('ready() then close() or destroy(): rejects with SIDECARLESS_CLIENT_CLOSED and leaves no timer behind', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const baseline = timers();
    const closed = createClient({ target: { start() {}, close() {} } });
    const destroyed = createClient({ target: { start() {}, close() {} } });
    const waits = [closed.ready(60_000), closed.ready(60_000), destroyed.ready(60_000)];
    for (const wait of waits) wait.catch(() => {}); // asserted below; not unhandled meanwhile
    assert.equal(timers(), baseline + 3, 'each waiting ready() holds its timeout');
    await Promise.all([closed.close(), destroyed.destroy()]);
    for (const wait of waits) await assert.rejects(wait, { code: 'SIDECARLESS_CLIENT_CLOSED' });
    assert.ok(timers() <= baseline, `${timers() - baseline} timers left after close`);
    await assert.rejects(closed.ready(), { code: 'SIDECARLESS_CLIENT_CLOSED' });
  });

  it("close() or destroy() after requests leaves no timer behind, not even the deadline list's unref'd one", async () => {
    // The real clock, counting the timers scheduled on it and not yet fired or cleared (unref'd ones included, which
    // process.getActiveResourcesInfo() does not list).
    const live = new Set<unknown>();
    const clock: Clock = {
      now: () => systemClock.now(),
      setTimeout(fn, ms, ref) {
        const handle: unknown = systemClock.setTimeout(
          () => {
            live.delete(handle);
            fn();
          },
          ms,
          ref,
        );
        live.add(handle);
        return handle;
      },
      clearTimeout(handle) {
        live.delete(handle);
        systemClock.clearTimeout(handle);
      },
    };
    // Long deadlines: a timer kept until it fires would outlive the closed client by an hour.
    const closed = createClient({ target: [backends[0]!.address], timeoutMs: 3_600_000, clock });
    const destroyed = createClient({ target: [backends[1]!.address], timeoutMs: 3_600_000, clock });
    for (const client of [closed, destroyed]) await (await client.fetch('http://svc/')).arrayBuffer();
    await Promise.all([closed.close(), destroyed.destroy()]);
    assert.equal(live.size, 0, `${live.size} timers left on the clients' clock after close`);
  });

  it('ready() rejects a timeout that is not a number of ms with SIDECARLESS_INVALID_OPTION', async () => {
    const client = createClient({ target: { start() {}, close() {} } });
    try {
      for (const bad of [-1, Number.NaN, 2 ** 31, '5' as never]) {
        await assert.rejects(
          client.ready(bad),
          { code: 'SIDECARLESS_INVALID_OPTION', option: 'timeoutMs' },
          String(bad),
        );
      }
    } finally {
      await client.close();
    }
  });

  it('an endpoint added mid-traffic starts receiving requests', async () => {
    const resolver = new StaticResolver([backends[0]!.address]);
    const client = createClient({ target: resolver });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await json(await client.fetch('http://svc/'))).backend, 'b0');
      resolver.update([backends[0]!.address, backends[1]!.address]);
      await new Promise((r) => setImmediate(r));
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await json(await client.fetch('http://svc/'))).backend);
      assert.deepEqual([...seen].sort(), ['b0', 'b1']);
    } finally {
      await client.close();
    }
  });

  it('an endpoint kept across an update keeps its pool: counters go on, the new weight shows, the socket is reused', async () => {
    const ports = new Map<string, number[]>();
    const own = await startBackends(2, (req, res, self) => {
      ports.set(self.id, [...(ports.get(self.id) ?? []), req.socket.remotePort as number]);
      req.resume();
      res.end(JSON.stringify({ backend: self.id }));
    });
    const [b0, b1] = own as [Backend, Backend];
    const resolver = new StaticResolver([b0.address]);
    // One connection per endpoint: a kept pool must send everything over the socket it already has, while a
    // recreated one would have to connect again (from a new client port).
    const client = createClient({ target: resolver, random: () => 0, pool: { connections: 1 } });
    try {
      const n = 5;
      for (let i = 0; i < n; i++) assert.equal((await json(await client.fetch('http://svc/'))).backend, 'b0');
      const before = client.stats().clusters[0]?.endpoints[0];
      assert.equal(before?.attempts, n);
      assert.equal(before?.weight, 1);
      resolver.update([{ host: '127.0.0.1', port: b0.port, weight: 3, metadata: { version: '2' } }, b1.address]);
      await new Promise((r) => setImmediate(r)); // updates are delivered asynchronously (resolver contract)
      const seen: string[] = [];
      for (let i = 0; i < 8; i++) seen.push((await json(await client.fetch('http://svc/'))).backend);
      const toB0 = seen.filter((id) => id === 'b0').length;
      assert.ok(toB0 > 0 && seen.includes('b1'), seen.join());
      const after = client.stats().clusters[0]?.endpoints.find((e) => e.key === b0.address);
      assert.equal(after?.attempts, n + toB0, 'the attempt counter went on from before the update');
      assert.equal(after?.weight, 3);
      assert.equal(ports.get('b0')?.length, n + toB0);
      assert.deepEqual(new Set(ports.get('b0')).size, 1, `b0 saw client ports ${ports.get('b0')?.join()}`);
    } finally {
      await client.close();
      await stopAll(own);
    }
  });

  it('an endpoint removed mid-traffic loses no request, and its in-flight requests finish', async () => {
    // A slow backend: its requests are in flight when it is removed from the set.
    const slow = await startBackend('slow', (req, res, self) => {
      req.resume();
      setTimeout(() => res.end(JSON.stringify({ backend: self.id })), 150);
    });
    const resolver = new StaticResolver([slow.address, backends[0]!.address]);
    const client = createClient({ target: resolver, random: () => 0 });
    try {
      const inflight = Array.from({ length: 20 }, () => client.fetch('http://svc/').then(json));
      await new Promise((r) => setTimeout(r, 30));
      resolver.update([backends[0]!.address]);
      await new Promise((r) => setImmediate(r)); // updates are delivered asynchronously (resolver contract)
      assert.equal(client.stats().clusters[0]?.draining, 1);
      const more = Array.from({ length: 20 }, () => client.fetch('http://svc/').then(json));
      const results = await Promise.all([...inflight, ...more]);
      assert.equal(results.length, 40);
      assert.equal(results.filter((r) => r.backend === 'slow').length, 10, results.map((r) => r.backend).join());
      assert.ok(
        results.slice(20).every((r) => r.backend === 'b0'),
        'nothing new goes to a removed endpoint',
      );
      assert.equal(client.stats().clusters[0]?.endpoints.length, 1);
    } finally {
      await client.close();
      await slow.stop();
    }
  });

  it('requests wait for the first endpoint set, then fail with SIDECARLESS_NO_ENDPOINTS after the bound', async () => {
    const empty = new StaticResolver([]);
    const client = createClient({ target: empty, waitForReadyTimeoutMs: 100 });
    try {
      const started = Date.now();
      const err = await client.fetch('http://svc/').then(
        () => assert.fail('should reject'),
        (e: unknown) => e,
      );
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_NO_ENDPOINTS');
      assert.ok(Date.now() - started >= 90);
      // A request that is waiting is served as soon as endpoints arrive.
      const waiting = client.fetch('http://svc/');
      setTimeout(() => empty.update([backends[2]!.address]), 20);
      assert.equal((await json(await waiting)).backend, 'b2');
    } finally {
      await client.close();
    }
  });

  it('aborting a request that waits for endpoints rejects it with the abort reason', async () => {
    const client = createClient({ target: new StaticResolver([]), waitForReadyTimeoutMs: 5_000 });
    try {
      const controller = new AbortController();
      const pending = client.fetch('http://svc/', { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('gave up')), 20);
      await assert.rejects(pending, /gave up/);
      assert.equal(client.stats().clusters[0]?.pending, 0);
    } finally {
      await client.close();
    }
  });

  it('aborting an in-flight request aborts the attempt', async () => {
    const hang = await startBackend('hang', (req) => {
      req.resume();
    });
    const client = createClient({ target: [hang.address] });
    try {
      const controller = new AbortController();
      const pending = client.fetch('http://svc/', { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(pending, { name: 'AbortError' });
      await new Promise((r) => setTimeout(r, 20));
      const ep = client.stats().clusters[0]?.endpoints[0];
      assert.equal(ep?.inFlight, 0);
      assert.equal(ep?.errors, 1);
    } finally {
      await client.close();
      await hang.stop();
    }
  });

  it('refuses an https: URL on a plaintext cluster with SIDECARLESS_PROTOCOL_MISMATCH', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    try {
      const err = await client.fetch('https://tls-only/').catch((e: unknown) => e);
      assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_PROTOCOL_MISMATCH');
      assert.equal(backends[0]!.hosts.includes('tls-only'), false);
    } finally {
      await client.close();
    }
  });

  it('after close(), requests fail with SIDECARLESS_CLIENT_CLOSED and close() is idempotent', async () => {
    const client = createClient({ target: [backends[0]!.address] });
    await client.fetch('http://svc/').then((r) => r.arrayBuffer());
    const first = client.close();
    assert.equal(client.close(), first);
    await first;
    // As every other fetch failure: TypeError('fetch failed') with the typed error as cause (issue 15.12).
    const closed = await client.fetch('http://svc/').catch((e: unknown) => e);
    assert.ok(closed instanceof TypeError);
    assert.equal(findSidecarlessError(closed)?.code, 'SIDECARLESS_CLIENT_CLOSED');
    const err = await request('http://svc/', { dispatcher: client.dispatcher }).catch((e: unknown) => e);
    assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_CLIENT_CLOSED');
  });

  it('`await using` closes the client when its scope ends (Symbol.asyncDispose is close())', async () => {
    let closedAtExit = false;
    let escaped: ReturnType<typeof createClient>;
    {
      await using client = createClient({ target: [backends[0]!.address] });
      escaped = client;
      client.onClose(() => (closedAtExit = true));
      const res = await client.fetch('http://svc/');
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      assert.equal(closedAtExit, false);
    }
    assert.equal(closedAtExit, true, 'closed, and awaited, as the scope ended');
    const err = await escaped.fetch('http://svc/').catch((e: unknown) => e);
    assert.equal(findSidecarlessError(err)?.code, 'SIDECARLESS_CLIENT_CLOSED');
  });

  it('reports connection failures as errors of the refusing endpoint', async () => {
    const dead = await startBackend('dead');
    await dead.stop();
    const client = createClient({ target: [dead.address], retry: false });
    try {
      const err = await client.fetch('http://svc/').catch((e: unknown) => e);
      assert.ok(err instanceof TypeError);
      assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED');
      const ep = client.stats().clusters[0]?.endpoints[0];
      assert.equal(ep?.errors, 1);
      assert.equal(ep?.state, 'transient-failure');
    } finally {
      await client.close();
    }
  });

  it('an endpoint that refuses connections leaves the picker: the next requests all reach the live one', async () => {
    const dead = await startBackend('dead');
    await dead.stop();
    const client = createClient({
      target: [dead.address, backends[0]!.address],
      retry: false,
      random: () => 0,
      // Backoff longer than the test: the dead endpoint cannot become usable again in between.
      connectBackoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
    });
    try {
      // Round robin reaches the dead endpoint within two requests; without retries that request fails.
      let refused: unknown;
      for (let i = 0; i < 2 && refused === undefined; i++) {
        await client.fetch('http://svc/').then(
          (res) => res.arrayBuffer(),
          (err: unknown) => {
            refused = err;
          },
        );
      }
      assert.equal(((refused as Error | undefined)?.cause as { code?: string } | undefined)?.code, 'ECONNREFUSED');
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) {
        seen.push(
          await client.fetch('http://svc/').then(
            async (res) => (await json(res)).backend,
            (err: Error) => `error ${(err.cause as { code?: string } | undefined)?.code}`,
          ),
        );
      }
      assert.deepEqual(seen, Array(6).fill('b0'));
      const [deadStats, liveStats] = client.stats().clusters[0]?.endpoints ?? [];
      assert.equal(deadStats?.state, 'transient-failure');
      assert.equal(deadStats?.attempts, 1);
      assert.equal(liveStats?.state, 'ready');
    } finally {
      await client.close();
    }
  });
});

describe('process exit', () => {
  it('a closed client leaves no open handle: the process exits by itself', async () => {
    // The backend counts connections itself: an idle socket the client forgot to close is unref'd, so it neither
    // stops the exit nor shows in the child's getActiveResourcesInfo(); only the server side sees it still open.
    const open = new Set<Socket>();
    let accepted = 0;
    const probes: ServerResponse[] = [];
    const answerProbes = () => {
      for (const res of probes.splice(0)) {
        if ([...open].some((s) => s !== res.socket)) probes.push(res);
        else res.end(JSON.stringify({ accepted: accepted - 1, open: open.size - 1 }));
      }
    };
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url !== '/__open-connections') return void res.end('ok');
      probes.push(res);
      answerProbes();
    });
    server.keepAliveTimeout = 0; // connections stay open until the client ends them
    server.on('connection', (socket: Socket) => {
      accepted++;
      open.add(socket);
      socket.on('close', () => {
        open.delete(socket);
        answerProbes();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const script = fileURLToPath(new URL('../fixtures/exit-after-close.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', script, address], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      let openAtKill = 0;
      const timer = setTimeout(() => {
        openAtKill = open.size;
        child.kill('SIGKILL');
      }, 15_000);
      const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
      clearTimeout(timer);
      assert.equal(signal, null, `child hung and was killed (${openAtKill} connections still open); output: ${out}`);
      assert.equal(code, 0, out);
      assert.match(out, /status 200,200,200,200/);
      assert.match(out, /pending request: SIDECARLESS_CLIENT_CLOSED/);
      assert.match(out, /ready: SIDECARLESS_CLIENT_CLOSED/);
      const resources = JSON.parse(/resources after close: (.*)/.exec(out)?.[1] ?? 'null') as string[];
      assert.ok(Array.isArray(resources), out);
      assert.deepEqual(
        resources.filter((r) => r === 'TCPSocketWrap' || r === 'Timeout'),
        [],
        `left after close: ${resources.join(', ')}`,
      );
      const report = JSON.parse(/server: (.*)/.exec(out)?.[1] ?? 'null') as { accepted: number; open: number };
      assert.equal(report.open, 0);
      assert.ok(report.accepted >= 2, `the client opened ${report.accepted} connections; the check needs several`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the first request after createClient with a static endpoint list (probe 14)', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('first', (req, res) => {
      req.resume();
      res.end('ok');
    });
  });
  after(() => backend.stop());

  for (const options of [{ waitForReadyTimeoutMs: 0 }, { limits: { maxPending: 0 } }]) {
    it(`finds the listed endpoint with ${JSON.stringify(options)}, through the dispatcher and fetch`, async () => {
      const targets = [
        () => [backend.address],
        () => `static://${backend.address}`,
        () => new StaticResolver([backend.address]),
      ];
      for (const target of targets) {
        const client = createClient({ target: target(), name: 'svc', ...options });
        try {
          const res = await request('http://svc/', { dispatcher: client.dispatcher });
          assert.equal(await res.body.text(), 'ok');
        } finally {
          await client.close();
        }
        const other = createClient({ target: target(), name: 'svc', ...options });
        try {
          assert.equal(await (await other.fetch('http://svc/')).text(), 'ok');
        } finally {
          await other.close();
        }
      }
    });
  }
});

// Keep an Agent import used so the undici types load in both Node versions' test runs.
void Agent;

// Probe 23, defect 5: cluster names were only lower-cased, while request hosts also lose a trailing dot and become
// punycode: `Users.`, `bücher` and `users.internal.` were accepted and never reached, and `users` and `users.` were
// two clusters of one host.
describe('cluster names compare as request hosts do (probe 23)', () => {
  let backend: Backend;
  before(async () => {
    backend = await startBackend('named');
  });
  after(async () => {
    await stopAll([backend]);
  });

  it('a name with a trailing dot or in Unicode is reached by its host, also through a route and the global slot', async () => {
    for (const [name, url] of [
      ['Users.', 'http://users/'],
      ['users.internal.', 'http://users.internal./'],
      ['bücher', 'http://bücher/'],
      ['BÜCHER.example', 'http://xn--bcher-kva.example/'],
    ] as const) {
      const client = createClient({
        clusters: { [name]: { target: [backend.address] } },
        routes: [{ match: { path: { prefix: '/routed' } }, cluster: name }],
      });
      const previous = getGlobalDispatcher();
      try {
        assert.equal((await json(await client.fetch(url))).backend, backend.id, `${name} by ${url}`);
        assert.equal((await json(await client.fetch(new URL('/routed', url)))).backend, backend.id, `${name} routed`);
        setGlobalDispatcher(client.globalDispatcher());
        const { body } = await request(url);
        assert.equal(((await body.json()) as { backend: string }).backend, backend.id, `${name} in the global slot`);
      } finally {
        setGlobalDispatcher(previous);
        await client.close();
      }
    }
  });

  // Probe 24, defect 2: a single-service `name` was only lower-cased, so `globalDispatcher()` refused `users.internal.`
  // and `bücher` as "not a host name", and with them the default name of a fully-qualified `dns:` target.
  it("a single-service client's name is normalized as a cluster name is, and balances in the global slot", async () => {
    for (const [name, url, normalized] of [
      ['users.internal.', 'http://users.internal/', 'users.internal'],
      ['bücher', 'http://xn--bcher-kva/', 'xn--bcher-kva'],
      ['Users.', 'http://users./', 'users'],
    ] as const) {
      const client = createClient({ name, target: [backend.address] });
      const previous = getGlobalDispatcher();
      try {
        assert.equal(client.stats().clusters[0]?.name, normalized, name);
        setGlobalDispatcher(client.globalDispatcher());
        const { body } = await request(url);
        assert.equal(((await body.json()) as { backend: string }).backend, backend.id, `${name} in the global slot`);
      } finally {
        setGlobalDispatcher(previous);
        await client.close();
      }
    }
    const fqdn = createClient({ target: 'dns:///users.internal.:8080' });
    try {
      assert.equal(fqdn.stats().clusters[0]?.name, 'users.internal');
      assert.doesNotThrow(() => fqdn.globalDispatcher());
    } finally {
      await fqdn.close();
    }
    // A name that is no host keeps its case: an etcd key prefix is case-sensitive.
    const etcd = createClient({ name: '/Services/Users/', target: [backend.address] });
    assert.equal(etcd.stats().clusters[0]?.name, '/Services/Users/');
    await etcd.close();
  });

  it('two names of one host are refused, naming the second', () => {
    for (const [first, second] of [
      ['users', 'users.'],
      ['bücher', 'xn--bcher-kva'],
      ['users', 'USERS'],
    ]) {
      assert.throws(
        () =>
          createClient({
            clusters: {
              [first as string]: { target: [backend.address] },
              [second as string]: { target: [backend.address] },
            },
          }),
        (err: unknown) =>
          findSidecarlessError(err)?.code === 'SIDECARLESS_INVALID_OPTION' &&
          (err as Error).message.includes(`clusters.${second}`) &&
          (err as Error).message.includes('name the same cluster'),
        `${first} and ${second}`,
      );
    }
  });
});
