/**
 * The refresh hint from the cluster to its resolver, and resolver failures seen from the client: the cluster calls
 * `refresh()` when an endpoint enters transient-failure, the resolver rate-limits the hints, and a resolver that
 * fails never stops a client that has a working set.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createClient } from '../../src/client/client.js';
import { createEndpointSet } from '../../src/common/endpoint.js';
import { ResolverError } from '../../src/common/errors.js';
import { ConsulResolver } from '../../src/resolvers/consul/resolver.js';
import type { Resolver, ResolverListener } from '../../src/resolvers/resolver.js';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { type ConsulDouble, startConsulDouble } from '../helpers/consul-double.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** A resolver that serves a fixed list and counts the refresh hints it gets. */
class SpyResolver implements Resolver {
  refreshes = 0;
  listener: ResolverListener | undefined;
  readonly #endpoints: readonly string[];

  constructor(endpoints: readonly string[]) {
    this.#endpoints = endpoints;
  }

  start(listener: ResolverListener): void {
    this.listener = listener;
    queueMicrotask(() => this.listener?.onUpdate(createEndpointSet(this.#endpoints)));
  }

  refresh(): void {
    this.refreshes++;
  }

  close(): void {
    this.listener = undefined;
  }
}

/** A port nothing listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `predicate` every 10 ms, failing after `ms` (a bound for a hang, not a speed requirement). */
async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('refresh hints from the cluster', () => {
  let consul: ConsulDouble;
  before(async () => {
    consul = await startConsulDouble();
  });
  after(async () => {
    await consul.close();
  });

  it('calls refresh() when the endpoint enters transient-failure: once per entry, not once per failed request', async () => {
    const port = await closedPort();
    // The client's timers on a fake clock: the subchannel stays in transient-failure until the test moves time on.
    const clock = new FakeClock();
    const spy = new SpyResolver([`127.0.0.1:${port}`]);
    const client = createClient({
      target: spy,
      clock,
      retry: false,
      outlierDetection: false,
      connectBackoff: { initialMs: 1000, jitter: 0 },
    });
    try {
      await client.ready(5000);
      assert.equal(spy.refreshes, 0, 'no hint before any failure');
      await assert.rejects(client.fetch('http://svc/'));
      assert.equal(spy.refreshes, 1, 'a hint when the connection was refused');
      for (let i = 0; i < 9; i++) await assert.rejects(client.fetch('http://svc/'));
      assert.equal(spy.refreshes, 1, 'ten failed requests, still one transient-failure, one hint');
      // Each refused connection grew the backoff; at its 120 s cap it ends: idle again, the next request connects.
      clock.advance(120_000);
      await assert.rejects(client.fetch('http://svc/'));
      assert.equal(spy.refreshes, 2, 'a new entry into transient-failure, a new hint');
    } finally {
      await client.close();
    }
  });

  it('a ConsulResolver re-queries at most once per refreshIntervalMs, however many hints', async () => {
    const port = await closedPort();
    consul.setService('web', [{ nodeAddress: '127.0.0.1', port }]);
    const inner = new ConsulResolver({
      address: consul.address,
      service: 'web',
      waitMs: 60_000,
      minRequestIntervalMs: 20,
      refreshIntervalMs: 60_000,
      env: {},
    });
    let hints = 0;
    const counting: Resolver = {
      start: (listener) => inner.start(listener),
      refresh: () => {
        hints++;
        inner.refresh();
      },
      close: () => inner.close(),
    };
    const client = createClient({
      target: counting,
      retry: false,
      outlierDetection: false,
      connectBackoff: { initialMs: 20, maxMs: 20, jitter: 0 },
    });
    try {
      await client.ready(5000);
      await until(() => consul.blocked === 1, 5000, 'a blocked query');
      const mark = consul.requests.length;
      for (let i = 0; i < 15; i++) {
        await assert.rejects(client.fetch('http://web/'));
        // Longer than the 20 ms connection backoff, whose timer was set first: idle again before the next request.
        await sleep(30);
      }
      assert.ok(hints >= 10, `${hints} hints`);
      await until(() => consul.requests.length > mark && consul.blocked === 1, 5000, 'the re-issued query');
      await sleep(50);
      assert.equal(consul.requestsSince(mark).length, 1, `one early re-query for ${hints} hints`);
      assert.equal(consul.requestsSince(mark)[0]?.index, String(consul.indexOf('web')), 'with the same index');
    } finally {
      await client.close();
    }
  });
});

describe('resolver failures seen from the client', () => {
  let consul: ConsulDouble;
  let backends: Backend[];
  before(async () => {
    consul = await startConsulDouble();
    backends = await startBackends(2);
  });
  after(async () => {
    await stopAll(backends);
    await consul.close();
  });

  it('keeps serving from the last known good set while the resolver fails (custom resolver)', async () => {
    const spy = new SpyResolver(backends.map((b) => b.address));
    const client = createClient({ target: spy });
    try {
      await client.ready(5000);
      for (let i = 0; i < 3; i++) spy.listener?.onError(new ResolverError('discovery is down'));
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await client.fetch('http://svc/');
        assert.equal(res.status, 200);
        seen.add(((await res.json()) as { backend: string }).backend);
      }
      assert.deepEqual([...seen].sort(), ['b0', 'b1']);
      const resolver = client.stats().clusters[0]?.resolver;
      assert.equal(resolver?.errors, 3);
      assert.equal(resolver?.lastError, 'discovery is down');
      assert.equal(client.endpoints.length, 2);
    } finally {
      await client.close();
    }
  });

  it('keeps serving while Consul answers 500 after the first set, and follows it again once it recovers', async () => {
    consul.setService(
      'web',
      backends.map((b) => ({ nodeAddress: '127.0.0.1', port: b.port })),
    );
    const client = createClient({
      target: `consul://${consul.address}/web?wait=2s`,
    });
    try {
      await client.ready(5000);
      await until(() => consul.blocked === 1, 5000, 'a blocked query');
      consul.fault = { kind: 'status', status: 500 };
      consul.touch('web'); // wakes the blocked query; the next one meets the fault
      await until(() => (client.stats().clusters[0]?.resolver.errors ?? 0) >= 1, 5000, 'a resolver error');
      for (let i = 0; i < 4; i++) {
        const res = await client.fetch('http://web/');
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      assert.equal(client.endpoints.length, 2, 'the last known good set stays');
      consul.fault = undefined;
      consul.setService('web', [{ nodeAddress: '127.0.0.1', port: backends[1]!.port }]);
      // Consul's default backoff starts at 1 s: the bound is generous.
      await until(() => client.endpoints.length === 1, 10_000, 'the set after recovery');
      const res = await client.fetch('http://web/');
      assert.equal(((await res.json()) as { backend: string }).backend, 'b1');
    } finally {
      consul.fault = undefined;
      await client.close();
    }
  });
});
