import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createClient } from '../../src/client/client.js';
import type { Endpoint } from '../../src/common/endpoint.js';
import { InvalidTargetError, type ServiceNotFoundError, type SidecarlessError } from '../../src/common/errors.js';
import { EtcdError } from '../../src/resolvers/errors.js';
import { EtcdResolver, type EtcdResolverOptions } from '../../src/resolvers/etcd/resolver.js';
import { createResolverRegistry } from '../../src/resolvers/registry.js';
import { systemClock } from '../../src/common/runtime.js';
import { runExample } from '../helpers/run-example.js';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { EtcdProxy, EtcdServer } from '../helpers/etcd.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Records what a resolver delivers; `until` waits (bounded) for a condition. */
class Recorder {
  readonly updates: (readonly Endpoint[])[] = [];
  /** The `notFound` that came with each update (`undefined` for none). */
  readonly notFound: (ServiceNotFoundError | undefined)[] = [];
  readonly errors: SidecarlessError[] = [];
  /** `performance.now()` of each error. */
  readonly errorTimes: number[] = [];
  #waiters: Array<() => void> = [];
  readonly listener = {
    onUpdate: (endpoints: readonly Endpoint[], notFound?: ServiceNotFoundError) => {
      this.updates.push(endpoints);
      this.notFound.push(notFound);
      this.#notify();
    },
    onError: (error: SidecarlessError) => {
      this.errors.push(error);
      this.errorTimes.push(performance.now());
      this.#notify();
    },
  };

  get last(): readonly Endpoint[] | undefined {
    return this.updates.at(-1);
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  async until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

function keys(set: readonly Endpoint[] | undefined): string[] {
  return (set ?? []).map((e) => e.key).sort();
}

const FAST = { initialMs: 50, maxMs: 300, multiplier: 2, jitter: 0.1 };
const json = (v: unknown) => JSON.stringify(v);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const dead = net.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  return port;
}

describe('EtcdResolver against a real etcd', () => {
  let etcd: EtcdServer;
  let prefixNo = 0;
  let prefix = '';
  const open: EtcdResolver[] = [];

  function resolver(options: Partial<EtcdResolverOptions> = {}): EtcdResolver {
    const r = new EtcdResolver({
      endpoints: [etcd.url],
      prefix,
      minRelistIntervalMs: 20,
      requestTimeoutMs: 2000,
      backoff: FAST,
      ...options,
    });
    open.push(r);
    return r;
  }

  before(async () => {
    etcd = await EtcdServer.start();
  });
  beforeEach(() => {
    prefix = `/services/t${++prefixNo}z/`; // no prefix is another one plus a character
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });
  after(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    await etcd.close();
  });

  it('lists the initial set, then follows adds, changes and removals', async () => {
    await etcd.put(`${prefix}a`, json({ host: '10.0.0.1', port: 8080 }));
    await etcd.put(`${prefix}b`, '10.0.0.2:8080');
    await etcd.put(prefix.slice(0, -1), json({ host: '10.9.9.9', port: 1 })); // outside the prefix
    await etcd.put(`${prefix.slice(0, -1)}0/x`, json({ host: '10.9.9.9', port: 2 })); // outside the prefix
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the initial set');
    assert.deepEqual(keys(rec.last), ['10.0.0.1:8080', '10.0.0.2:8080']);
    assert.equal(rec.last?.find((e) => e.host === '10.0.0.2')?.metadata['etcd.key'], `${prefix}b`);

    await etcd.put(
      `${prefix}c`,
      json({ host: '10.0.0.3', port: 9090, weight: 3, priority: 1, zone: 'eu-1a', metadata: { version: '2' } }),
    );
    await rec.until(() => rec.updates.length === 2, 5000, 'the add');
    const added = rec.last?.find((e) => e.host === '10.0.0.3');
    assert.deepEqual(
      [added?.weight, added?.priority, added?.zone, added?.metadata],
      [3, 1, 'eu-1a', { version: '2', 'etcd.key': `${prefix}c` }],
    );

    await etcd.put(`${prefix}c`, json({ host: '10.0.0.3', port: 9090, weight: 7 }));
    await rec.until(() => rec.updates.length === 3, 5000, 'the change');
    assert.equal(rec.last?.find((e) => e.host === '10.0.0.3')?.weight, 7);

    await etcd.delete(`${prefix}a`);
    await rec.until(() => rec.updates.length === 4, 5000, 'the removal');
    assert.deepEqual(keys(rec.last), ['10.0.0.2:8080', '10.0.0.3:9090']);
    assert.equal(rec.errors.length, 0);
    assert.equal(r.listCount, 1);
  });

  it('tells apart keys that are not UTF-8 (they decode alike): both endpoints, and a delete removes only its own', async () => {
    const raw = (last: number) => Buffer.concat([Buffer.from(prefix), Buffer.from([last])]);
    await etcd.put(raw(0xff), '10.0.5.1:80');
    await etcd.put(raw(0xfe), '10.0.5.2:80');
    const rec = new Recorder();
    resolver().start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the initial set');
    assert.deepEqual(keys(rec.last), ['10.0.5.1:80', '10.0.5.2:80'], 'both');
    await etcd.delete(raw(0xff));
    await rec.until(() => rec.updates.length === 2, 5000, 'the removal');
    assert.deepEqual(keys(rec.last), ['10.0.5.2:80']);
  });

  it('delivers a burst of changes in one revision as one update', async () => {
    await etcd.put(`${prefix}a`, '10.0.1.1:80');
    const rec = new Recorder();
    resolver().start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    await etcd.putAll({ [`${prefix}b`]: '10.0.1.2:80', [`${prefix}c`]: '10.0.1.3:80', [`${prefix}d`]: '10.0.1.4:80' });
    await rec.until(() => keys(rec.last).length === 4, 5000, 'the burst');
    assert.equal(rec.updates.length, 2);
  });

  it('delivers an empty prefix as an authoritative empty set', async () => {
    await etcd.put(`${prefix}a`, '10.0.2.1:80');
    const rec = new Recorder();
    resolver().start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    await etcd.delete(`${prefix}a`);
    await rec.until(() => rec.updates.length === 2);
    assert.deepEqual(rec.last, []);
  });

  it('skips malformed values (logged and counted) without dropping the rest', async () => {
    await etcd.put(`${prefix}good`, json({ host: '10.0.3.1', port: 80 }));
    await etcd.put(`${prefix}bad-json`, '{"host": "10.0.3.2", "port":');
    await etcd.put(`${prefix}bad-port`, json({ host: '10.0.3.3', port: 70000 }));
    await etcd.put(`${prefix}bad-meta`, json({ host: '10.0.3.4', port: 80, metadata: { n: 1 } }));
    await etcd.put(`${prefix}dup`, '10.0.3.1:80');
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    assert.deepEqual(keys(rec.last), ['10.0.3.1:80']);
    // bad-json, bad-port and bad-meta; `dup` is a valid value that loses to `good` and is not counted.
    assert.equal(r.skippedValues, 3);
    // Each skipped value is reported to onError (issue 15.1), as a bad-response naming its key.
    assert.equal(rec.errors.length, 3);
    assert.ok(rec.errors.every((e) => e instanceof EtcdError && e.reason === 'bad-response'));
    // A key that turns malformed loses its endpoint; the others stay.
    await etcd.put(`${prefix}second`, '10.0.3.5:80');
    await rec.until(() => rec.updates.length === 2);
    await etcd.put(`${prefix}second`, 'not an address');
    await rec.until(() => rec.updates.length === 3);
    assert.deepEqual(keys(rec.last), ['10.0.3.1:80']);
    assert.equal(r.skippedValues, 4);
    assert.equal(rec.errors.length, 4);
  });

  it('issue 15.1: a value whose host the URL parser refuses is skipped and reported; the good ones are delivered', async () => {
    await etcd.put(`${prefix}good`, '127.0.0.1:8080');
    await etcd.put(`${prefix}octets`, '999.1.1.1:80');
    await etcd.put(`${prefix}name`, json({ host: 'foo.123', port: 80 }));
    await etcd.put(`${prefix}zone`, '[fe80::1%eth0]:80');
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 10_000, 'the set');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:8080']);
    assert.equal(r.skippedValues, 3);
    assert.equal(rec.errors.length, 3);
    // Through the client too: the cluster delivers the good endpoint.
    const client = createClient({ target: `etcd://${new URL(etcd.url).host}${prefix}` });
    try {
      await client.ready(10_000, { minEndpoints: 1 });
      assert.deepEqual(
        client.stats().clusters[0]?.endpoints.map((e) => e.key),
        ['127.0.0.1:8080'],
      );
      assert.equal(client.stats().clusters[0]?.name, prefix);
    } finally {
      await client.close();
    }
  });

  it('regression (the only key turning malformed emptied the set, with "no endpoint under the prefix"): the last set stays; a DELETE still empties', async () => {
    await etcd.put(`${prefix}a`, json({ host: '10.0.6.1', port: 8080 }));
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the initial set');
    await etcd.put(`${prefix}a`, json({ host: '10.0.6.1', port: 'not-a-port' }));
    await rec.until(() => rec.errors.length === 1, 5000, 'the malformed value reported');
    await sleep(200);
    assert.equal(rec.updates.length, 1, 'no empty set');
    assert.deepEqual(keys(rec.last), ['10.0.6.1:8080']);
    const error = rec.errors[0] as EtcdError;
    assert.ok(error instanceof EtcdError);
    assert.equal(error.reason, 'bad-response');
    assert.match(error.message, /not-a-port/);
    assert.equal(r.skippedValues, 1);
    // Another key, also unusable: still nothing usable, reported, the last set kept.
    await etcd.put(`${prefix}b`, '0.0.0.0:8080');
    await rec.until(() => rec.errors.length === 2, 5000, 'the second unusable value');
    assert.match(rec.errors[1]?.message ?? '', /"0\.0\.0\.0" is the unspecified address/);
    assert.equal(rec.updates.length, 1);
    // One key usable again: its set is delivered.
    await etcd.put(`${prefix}a`, '10.0.6.2:8080');
    await rec.until(() => rec.updates.length === 2, 5000, 'the usable value');
    assert.deepEqual(keys(rec.last), ['10.0.6.2:8080']);
    // Deleting the usable key leaves only the unusable one: the last set stays, and that is reported.
    await etcd.delete(`${prefix}a`);
    await rec.until(() => rec.errors.length === 3, 5000, 'the report for the kept set');
    assert.match(rec.errors[2]?.message ?? '', /its only key holds no usable endpoint; keeping the last set/);
    assert.equal(rec.updates.length, 2);
    // A real DELETE of the last key empties the prefix: an empty set, "not found", as before.
    await etcd.delete(`${prefix}b`);
    await rec.until(() => rec.updates.length === 3, 5000, 'the empty prefix');
    assert.deepEqual(rec.last, []);
    assert.match(rec.notFound.at(-1)?.message ?? '', /no endpoint under the prefix/);
    assert.equal(rec.errors.length, 3);
  });

  it('a listing whose every key is unusable delivers nothing (no "not found"): reported, the cluster waits', async () => {
    await etcd.put(`${prefix}a`, '999.1.1.1:80');
    await etcd.put(`${prefix}b`, json({ host: '224.0.0.1', port: 80 }));
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.errors.length === 2, 5000, 'both values reported');
    await sleep(200);
    assert.equal(rec.updates.length, 0);
    assert.match(rec.errors[1]?.message ?? '', /"224\.0\.0\.1" is a multicast address/);
    assert.equal(r.skippedValues, 2);
    assert.equal(r.held, 2);
  });

  it('probe 15.1: credentials while etcd auth is off (clients get them before `auth enable`): read without a token', async () => {
    await etcd.put(`${prefix}a`, '10.0.4.9:80');
    const rec = new Recorder();
    resolver({ username: 'reader', password: 'S3cr3tPW' }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the set');
    assert.deepEqual(keys(rec.last), ['10.0.4.9:80']);
    await etcd.put(`${prefix}b`, '10.0.4.10:80');
    await rec.until(() => keys(rec.last).length === 2, 5000, 'a change through the watch');
    assert.deepEqual(rec.errors, []);
  });

  it('lists again and re-watches when the watch revision was compacted', async () => {
    const proxy = await EtcdProxy.start(etcd);
    try {
      await etcd.put(`${prefix}a`, '10.0.4.1:80');
      proxy.holdWatch = true;
      const rec = new Recorder();
      const r = resolver({ endpoints: [proxy.address] });
      r.start(rec.listener);
      await rec.until(() => rec.updates.length === 1 && proxy.held === 1, 5000, 'the list and a held watch');
      // While the watch request is held, the set changes and its revision is compacted away.
      await etcd.put(`${prefix}b`, '10.0.4.2:80');
      await etcd.delete(`${prefix}a`);
      await etcd.compact(await etcd.revision());
      proxy.release();
      await rec.until(() => keys(rec.last).join() === '10.0.4.2:80', 5000, 'the re-listed set');
      assert.equal(r.listCount, 2);
      await rec.until(() => proxy.watchRequests === 2, 5000, 'the second watch');
      assert.equal(rec.errors.length, 0);
      // The new watch follows later changes.
      await etcd.put(`${prefix}c`, '10.0.4.3:80');
      await rec.until(() => keys(rec.last).length === 2, 5000, 'a change after the re-watch');
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await proxy.close();
    }
  });

  it('keeps the last known good set while etcd is down and reconnects with backoff after a restart', async () => {
    await etcd.put(`${prefix}a`, '10.0.5.1:80');
    const rec = new Recorder();
    resolver({ backoff: { initialMs: 50, maxMs: 300, multiplier: 2, jitter: 0 } }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    await etcd.stop();
    try {
      await rec.until(() => rec.errors.length >= 4, 15_000, 'errors while etcd is down');
      // What etcd going away looks like depends on timing, which a loaded machine changes (issue 15.17): the watch
      // stream breaking or refused connections (`connection`), a request cut off by the shutdown (`timeout`), or
      // etcd's own "server stopped" answer while it shuts down (`server-error`, `http-status`). Never anything
      // else, and once etcd is gone the connections are refused.
      const reasons = rec.errors.map((e) => (e instanceof EtcdError ? e.reason : e.name));
      const expected = ['connection', 'timeout', 'server-error', 'http-status'];
      assert.ok(
        reasons.every((r) => expected.includes(r)),
        reasons.join(),
      );
      assert.ok(reasons.includes('connection'), reasons.join());
      assert.equal(rec.updates.length, 1, 'the last known good set stays');
      // Each retry waits its backoff (50, 100, 200 ms): lower bounds, which a busy machine only makes longer; a hot
      // loop would show gaps of a millisecond or two.
      const gaps = rec.errorTimes.slice(1, 4).map((t, i) => t - (rec.errorTimes[i] as number));
      assert.ok(gaps[0]! >= 48 && gaps[1]! >= 98 && gaps[2]! >= 198, `gaps ${gaps.map(Math.round).join(', ')}`);
    } finally {
      await etcd.start();
    }
    await etcd.put(`${prefix}b`, '10.0.5.2:80');
    await rec.until(() => keys(rec.last).length === 2, 10_000, 'the set after the restart');
    assert.deepEqual(keys(rec.last), ['10.0.5.1:80', '10.0.5.2:80']);
  });

  it('refresh() lists and watches again once, then at most once per refreshIntervalMs', async () => {
    // The resolver's timers on a fake clock: the rate limit is checked at exact instants, not against wall time.
    const clock = new FakeClock();
    await etcd.put(`${prefix}a`, '10.0.10.1:80');
    const rec = new Recorder();
    const r = resolver({ clock, refreshIntervalMs: 5000 });
    const pump = (predicate: () => boolean, what: string) =>
      rec.until(
        () => {
          clock.advance(0);
          return predicate();
        },
        5000,
        what,
      );
    r.start(rec.listener);
    await pump(() => rec.updates.length === 1, 'the initial set');
    for (let i = 0; i < 20; i++) r.refresh();
    clock.advance(20); // minRelistIntervalMs
    await pump(() => r.listCount === 2, 'one re-list');
    // The re-established watch follows changes on its own (and is up once this one arrives).
    await etcd.put(`${prefix}b`, '10.0.10.2:80');
    await pump(() => keys(rec.last).length === 2, 'a change through the new watch');
    for (let i = 0; i < 20; i++) r.refresh(); // inside refreshIntervalMsMs: dropped
    clock.advance(4979);
    r.refresh(); // 4999 ms after the first hint: still dropped
    await sleep(50);
    clock.advance(0);
    await sleep(50);
    assert.equal(r.listCount, 2, 'hints inside refreshIntervalMs are dropped');
    clock.advance(1);
    r.refresh(); // refreshIntervalMs after the first hint
    clock.advance(20);
    await pump(() => r.listCount === 3, 'the next re-list');
    assert.equal(rec.updates.length, 2, 'a re-list of the same set delivers nothing');
    assert.equal(rec.errors.length, 0);
  });

  it('refresh() during the backoff after a failure is ignored: the retry comes at the backoff delay', async () => {
    const clock = new FakeClock();
    const rec = new Recorder();
    const r = resolver({
      clock,
      endpoints: [`127.0.0.1:${await closedPort()}`],
      refreshIntervalMs: 0,
      backoff: { initialMs: 1000, multiplier: 2, jitter: 0 },
    });
    r.start(rec.listener);
    await rec.until(
      () => {
        clock.advance(0);
        return rec.errors.length === 1;
      },
      5000,
      'the first error',
    );
    assert.equal(r.listCount, 1);
    for (let i = 0; i < 5; i++) r.refresh();
    clock.advance(999);
    assert.equal(r.listCount, 1, 'the hint did not cut the backoff short');
    clock.advance(1);
    assert.equal(r.listCount, 2, 'the retry at the backoff delay');
    await rec.until(() => rec.errors.length === 2, 5000, 'the second error');
  });

  it('aborts a silent watch after watchIdleTimeoutMs (timeout error), lists again and keeps the set meanwhile', async () => {
    const proxy = await EtcdProxy.start(etcd);
    try {
      await etcd.put(`${prefix}a`, '10.0.11.1:80');
      proxy.muteWatch = true;
      const rec = new Recorder();
      const r = resolver({ endpoints: [proxy.address], watchIdleTimeoutMs: 300 });
      r.start(rec.listener);
      await rec.until(() => rec.updates.length === 1 && proxy.watchRequests === 1, 5000, 'the list and a watch');
      // The muted watch never passes this on: only the re-list after the idle timeout can see it.
      await etcd.put(`${prefix}b`, '10.0.11.2:80');
      await rec.until(() => rec.errors.length >= 1, 5000, 'the idle timeout');
      const err = rec.errors[0] as EtcdError;
      assert.ok(err instanceof EtcdError);
      assert.equal(err.reason, 'timeout');
      assert.match(err.message, /received nothing .* for 300 ms/);
      await rec.until(
        () => keys(rec.last).length === 2 && proxy.watchRequests >= 2,
        5000,
        'the re-listed set and a new watch',
      );
      assert.ok(r.listCount >= 2, `lists ${r.listCount}`);
      assert.ok(
        rec.errors.every((e) => e instanceof EtcdError && e.reason === 'timeout'),
        rec.errors.map((e) => e.message).join('; '),
      );
      assert.ok(
        rec.updates.every((u) => u.length > 0),
        'never emptied',
      );
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await proxy.close();
    }
  });

  it('tries the next member when one is unreachable', async () => {
    const port = await closedPort();
    await etcd.put(`${prefix}a`, '10.0.6.1:80');
    const rec = new Recorder();
    resolver({ endpoints: [`127.0.0.1:${port}`, etcd.url] }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000);
    assert.deepEqual(keys(rec.last), ['10.0.6.1:80']);
    assert.equal(rec.errors.length, 1);
    assert.equal((rec.errors[0] as EtcdError).reason, 'connection');
  });

  it('stops watching on close and calls the listener no more', async () => {
    await etcd.put(`${prefix}a`, '10.0.7.1:80');
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    await r.close();
    await etcd.put(`${prefix}b`, '10.0.7.2:80');
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(rec.updates.length, 1);
    await r.close();
  });

  it('parses etcd:// targets and validates options', () => {
    const ctx = { clock: systemClock, random: Math.random, cluster: 't' };
    const registry = createResolverRegistry();
    const r = registry.create('etcd://127.0.0.1:2379,127.0.0.1:2380/services/users/', ctx);
    assert.ok(r instanceof EtcdResolver);
    void r.close();
    for (const bad of [
      'etcd://127.0.0.1:2379/',
      'etcd://127.0.0.1:2379/p/?password=hunter2',
      'etcd://user:pw@127.0.0.1:2379/p/',
      'etcd://127.0.0.1:2379,/p/',
    ]) {
      assert.throws(
        () => registry.create(bad, ctx),
        (err: unknown) => err instanceof InvalidTargetError && !err.message.includes('hunter2'),
        bad,
      );
    }
    assert.throws(() => new EtcdResolver({ prefix: '' }), /`prefix`/);
    assert.throws(() => new EtcdResolver({ prefix: '/p/', endpoints: [] }), /`endpoints`/);
    assert.throws(() => new EtcdResolver({ prefix: '/p/', username: 'u' }), /`password`/);
    for (const watchIdleTimeoutMs of [0, -1, Number.NaN, 2 ** 31, '5000' as never]) {
      assert.throws(() => new EtcdResolver({ prefix: '/p/', watchIdleTimeoutMs }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'watchIdleTimeoutMs',
      });
    }
  });

  describe('end to end', () => {
    let backends: Backend[];
    before(async () => {
      backends = await startBackends(2);
    });
    after(async () => {
      await stopAll(backends);
    });

    it('createClient({ target: "etcd://..." }) balances across the registered backends', async () => {
      await etcd.put('/services/e2e/b0', json({ host: '127.0.0.1', port: backends[0]!.port }));
      await etcd.put('/services/e2e/b1', `127.0.0.1:${backends[1]!.port}`);
      const client = createClient({ target: `etcd://${etcd.address}/services/e2e/` });
      try {
        const seen = new Set<string>();
        for (let i = 0; i < 6; i++) {
          const res = await client.fetch('http://users/x');
          seen.add(((await res.json()) as { backend: string }).backend);
        }
        assert.deepEqual([...seen].sort(), ['b0', 'b1']);
        await etcd.delete('/services/e2e/b0');
        const deadline = Date.now() + 5000;
        while (client.endpoints.length !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const res = await client.fetch('http://users/x');
        assert.equal(((await res.json()) as { backend: string }).backend, 'b1');
      } finally {
        await client.close();
      }
    });
  });
});

describe('EtcdResolver against a real etcd with auth enabled', () => {
  let etcd: EtcdServer;
  const prefix = '/services/secured/';
  const open: EtcdResolver[] = [];
  function resolver(options: Partial<EtcdResolverOptions>): EtcdResolver {
    const r = new EtcdResolver({ endpoints: [etcd.url], prefix, requestTimeoutMs: 2000, backoff: FAST, ...options });
    open.push(r);
    return r;
  }

  before(async () => {
    etcd = await EtcdServer.start();
    await etcd.enableAuth('reader', 'reader-secret', prefix);
    await etcd.put(`${prefix}a`, '10.0.9.1:80');
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });
  after(async () => {
    await etcd.close();
  });

  it('authenticates with username and password, lists, then follows the watch', async () => {
    const rec = new Recorder();
    resolver({ username: 'reader', password: 'reader-secret' }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the first set');
    assert.deepEqual(keys(rec.last), ['10.0.9.1:80']);
    await etcd.put(`${prefix}b`, '10.0.9.2:80');
    await rec.until(() => keys(rec.last).length === 2, 5000, 'a change through the authenticated watch');
    assert.equal(rec.errors.length, 0);
    await etcd.delete(`${prefix}b`);
  });

  it('a wrong password, no credentials, or a prefix the user may not read: forbidden, password never shown', async () => {
    const cases: [string, Partial<EtcdResolverOptions>][] = [
      ['wrong password', { username: 'reader', password: 'not-the-secret' }],
      ['no credentials', {}],
      ['prefix outside the grant', { username: 'reader', password: 'reader-secret', prefix: '/services/other/' }],
    ];
    for (const [what, options] of cases) {
      const rec = new Recorder();
      resolver(options).start(rec.listener);
      await rec.until(() => rec.errors.length >= 1, 5000, `an error (${what})`);
      const err = rec.errors[0] as EtcdError;
      assert.ok(err instanceof EtcdError, what);
      // etcd answers 400 for failed authentication and 403 for a missing permission: both are `forbidden`.
      assert.equal(err.reason, 'forbidden', `${what}: ${err.message}`);
      assert.ok(err.status === 400 || err.status === 403, `${what}: ${err.message}`);
      assert.equal(rec.updates.length, 0, `${what}: nothing delivered`);
      assert.ok(!err.message.includes('secret') && !String(err.cause ?? '').includes('secret'), err.message);
    }
  });
});

describe('EtcdResolver watch liveness (a scripted gateway, fake clock)', () => {
  /** Answers /v3/kv/range with one key and keeps each /v3/watch open after its `created` line. */
  async function gateway(): Promise<{ address: string; watches: http.ServerResponse[]; close(): Promise<void> }> {
    const watches: http.ServerResponse[] = [];
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/v3/kv/range') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(json({ header: { revision: '5' }, kvs: [{ key: b64('/p/a'), value: b64('10.0.12.1:80') }] }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${json({ result: { header: { revision: '5' }, created: true } })}\n`);
        watches.push(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
      watches,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  }

  it('every message, progress notifications included, restarts the idle period; silence then aborts', async () => {
    const gw = await gateway();
    const clock = new FakeClock();
    const rec = new Recorder();
    const r = new EtcdResolver({
      endpoints: [gw.address],
      prefix: '/p/',
      clock,
      watchIdleTimeoutMs: 300,
      minRelistIntervalMs: 0,
      backoff: { initialMs: 50, jitter: 0 },
    });
    const pump = (predicate: () => boolean, what: string) =>
      rec.until(
        () => {
          clock.advance(0);
          return predicate();
        },
        5000,
        what,
      );
    try {
      r.start(rec.listener);
      await pump(() => rec.updates.length === 1 && gw.watches.length === 1, 'the list and the watch');
      const progress = async (revision: number) => {
        gw.watches[0]?.write(`${json({ result: { header: { revision: String(revision) } } })}\n`);
        await pump(() => r.revision === revision, `progress notification ${revision}`);
      };
      clock.advance(250);
      await progress(6);
      clock.advance(250); // 500 ms since the watch opened, 250 since the last message
      await progress(7);
      clock.advance(299);
      await sleep(30);
      assert.equal(rec.errors.length, 0, 'alive: a message came within every 300 ms');
      clock.advance(1); // 300 ms of silence
      await rec.until(() => rec.errors.length === 1, 5000, 'the idle timeout');
      assert.equal((rec.errors[0] as EtcdError).reason, 'timeout');
      assert.equal(r.listCount, 1);
      clock.advance(50); // the backoff
      await pump(() => r.listCount === 2 && gw.watches.length === 2, 'the re-list and a new watch');
      // The same set, delivered again after the failure: the listener's latest state must not stay the timeout
      // (issue 15.7).
      assert.equal(rec.updates.length, 2);
      assert.deepEqual(keys(rec.updates[1]), keys(rec.updates[0]));
    } finally {
      await r.close();
      await gw.close();
    }
  });
});

describe('examples/etcd.ts', () => {
  it('runs standalone against its own etcd, follows a key deletion, then exits', async () => {
    const out = await runExample('etcd.ts', [], 30_000);
    assert.match(out, /answers: .*backend a/);
    assert.match(out, /after deleting one key: backend b, backend b/);
  });
});
