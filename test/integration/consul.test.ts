import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from '../../src/client/client.js';
import type { Endpoint } from '../../src/common/endpoint.js';
import { InvalidTargetError, isSidecarlessError, type SidecarlessError } from '../../src/common/errors.js';
import { ConsulError } from '../../src/resolvers/errors.js';
import { ConsulResolver, type ConsulResolverOptions } from '../../src/resolvers/consul/resolver.js';
import { createResolverRegistry } from '../../src/resolvers/registry.js';
import { parseTarget } from '../../src/resolvers/target.js';
import { systemClock } from '../../src/common/runtime.js';
import { runExample } from '../helpers/run-example.js';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { type ConsulDouble, startConsulDouble } from '../helpers/consul-double.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Records what a resolver delivers; `next*` wait (bounded) for the next matching call. */
class Recorder {
  readonly updates: (readonly Endpoint[])[] = [];
  readonly errors: SidecarlessError[] = [];
  #waiters: Array<() => void> = [];
  readonly listener = {
    onUpdate: (endpoints: readonly Endpoint[]) => {
      this.updates.push(endpoints);
      this.#notify();
    },
    onError: (error: SidecarlessError) => {
      this.errors.push(error);
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

  /** Waits until `predicate` holds, at most `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
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

const FAST = { initialMs: 30, maxMs: 200, multiplier: 2, jitter: 0.1 };

describe('ConsulResolver against the Consul API double', () => {
  let consul: ConsulDouble;
  const open: ConsulResolver[] = [];

  function resolver(options: Partial<ConsulResolverOptions> = {}): ConsulResolver {
    const r = new ConsulResolver({
      address: consul.address,
      service: 'web',
      waitMs: 2000,
      minRequestIntervalMs: 20,
      backoff: FAST,
      env: {},
      ...options,
    });
    open.push(r);
    return r;
  }

  before(async () => {
    consul = await startConsulDouble();
  });
  beforeEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    consul.fault = undefined;
    consul.aclToken = undefined;
    consul.forcedIndex = undefined;
    consul.setService('web', [
      { nodeAddress: '10.0.0.1', port: 8080 },
      { nodeAddress: '10.0.0.2', port: 8080 },
    ]);
  });
  after(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    await consul.close();
  });

  it('delivers the initial set, then picks up changes through the blocking query', async () => {
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 3000, 'initial set');
    assert.deepEqual(keys(rec.last), ['10.0.0.1:8080', '10.0.0.2:8080']);
    await rec.until(() => consul.blocked === 1, 3000, 'a blocked query');
    const blocking = consul.requests.at(-1);
    assert.equal(blocking?.index, String(consul.indexOf('web')));
    assert.equal(blocking?.wait, '2s');
    const before = consul.requests.length;
    consul.setService('web', [{ nodeAddress: '10.0.0.3', port: 9090 }]);
    await rec.until(() => rec.updates.length === 2, 3000, 'the change');
    assert.deepEqual(keys(rec.last), ['10.0.0.3:9090']);
    // The blocked query itself returned the change: no new request was needed to see it.
    assert.ok(consul.requests.length - before <= 1);
    assert.equal(rec.errors.length, 0);
  });

  it('does not re-deliver an unchanged set when the index moves without a change', async () => {
    const rec = new Recorder();
    resolver().start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
    const seen = consul.requests.length;
    consul.touch('web');
    await rec.until(() => consul.requests.length > seen && consul.blocked === 1, 3000, 'a re-issued query');
    assert.equal(rec.updates.length, 1);
  });

  it('delivers an authoritative empty answer as an empty set', async () => {
    const rec = new Recorder();
    resolver().start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    consul.setService('web', []);
    await rec.until(() => rec.updates.length === 2);
    assert.deepEqual(rec.last, []);
    assert.equal(rec.errors.length, 0);
  });

  it('maps Service.Address (falling back to Node.Address), weights, tags, meta, node and zone', async () => {
    consul.setService('web', [
      {
        id: 'web-a',
        node: 'alpha',
        nodeAddress: '10.0.1.1',
        address: '',
        port: 8080,
        tags: ['v2', 'primary'],
        meta: { version: '2.1', zone: 'eu-1a' },
        weights: { Passing: 5, Warning: 1 },
      },
      { nodeAddress: '10.0.1.2', address: '192.168.7.7', port: 8081, nodeMeta: { zone: 'eu-1b' } },
      { nodeAddress: '10.0.1.3', port: 8082, status: 'warning', weights: { Passing: 4, Warning: 2 } },
      { nodeAddress: '10.0.1.4', port: 8083, status: 'warning', weights: { Passing: 4, Warning: 0 } },
      { nodeAddress: '10.0.1.5', port: 8084, status: 'critical' },
    ]);
    const rec = new Recorder();
    resolver({ health: 'warning' }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    const set = rec.last ?? [];
    // Critical is never balanced to; a warning instance with Warning weight 0 is left out.
    assert.deepEqual(
      set.map((e) => [e.key, e.weight, e.zone]),
      [
        ['10.0.1.1:8080', 5, 'eu-1a'],
        ['192.168.7.7:8081', 1, 'eu-1b'],
        ['10.0.1.3:8082', 2, undefined],
      ],
    );
    assert.deepEqual(set[0]?.metadata, {
      'tag:v2': '',
      'tag:primary': '',
      'meta.version': '2.1',
      'meta.zone': 'eu-1a',
      'consul.service-id': 'web-a',
      'consul.node': 'alpha',
      'consul.datacenter': 'dc1',
      'consul.health': 'passing',
    });
    assert.equal(set[2]?.metadata['consul.health'], 'warning');

    // The default (passing) asks Consul for passing instances only.
    const strict = new Recorder();
    resolver().start(strict.listener);
    await strict.until(() => strict.updates.length === 1);
    assert.deepEqual(keys(strict.last), ['10.0.1.1:8080', '192.168.7.7:8081']);
    assert.ok(consul.requests.at(-1)?.url.includes('passing=true'));
  });

  it('skips and reports instances at 0.0.0.0, ::, a multicast or the broadcast address; the rest is used', async () => {
    consul.setService('web', [
      { nodeAddress: '10.0.0.1', port: 8080 },
      { nodeAddress: '10.0.0.2', address: '0.0.0.0', port: 8080 },
      { nodeAddress: '10.0.0.3', address: '::', port: 8080 },
      { nodeAddress: '0.0.0.0', port: 8081 }, // no Service.Address: the node's, unusable too
      { nodeAddress: '10.0.0.4', address: '239.1.2.3', port: 8080 },
      { nodeAddress: '10.0.0.5', address: '255.255.255.255', port: 8080 },
    ]);
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && rec.errors.length === 1, 3000, 'the set and the report');
    assert.deepEqual(keys(rec.last), ['10.0.0.1:8080']);
    assert.equal(r.skippedEntries, 5);
    const error = rec.errors[0] as ConsulError;
    assert.ok(error instanceof ConsulError);
    assert.equal(error.reason, 'bad-response');
    assert.match(
      error.message,
      /skipped 5 unusable entries \(first: web-1: Endpoint host "0\.0\.0\.0" is the unspecified/,
    );
  });

  it('sends tag, dc, ns, partition and filter as query parameters, and Consul applies each', async () => {
    const base = {
      port: 80,
      tags: ['v2', 'canary'],
      datacenter: 'dc2',
      namespace: 'team-a',
      partition: 'p1',
      meta: { version: '2' },
    };
    consul.setService('web', [
      { ...base, nodeAddress: '10.0.2.1' }, // matches everything
      { ...base, nodeAddress: '10.0.2.2', tags: ['v2'] }, // not tagged canary
      { ...base, nodeAddress: '10.0.2.3', datacenter: 'dc1' }, // other datacenter
      { ...base, nodeAddress: '10.0.2.4', namespace: 'default' }, // other namespace
      { ...base, nodeAddress: '10.0.2.5', partition: 'default' }, // other partition
      { ...base, nodeAddress: '10.0.2.6', meta: { version: '1' } }, // filtered out
    ]);
    const rec = new Recorder();
    resolver({
      tags: ['v2', 'canary'],
      datacenter: 'dc2',
      namespace: 'team-a',
      partition: 'p1',
      filter: 'Service.Meta.version == "2"',
    }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    assert.deepEqual(keys(rec.last), ['10.0.2.1:80']);
    const url = new URL(consul.requests.at(-1)?.url ?? '', 'http://x');
    assert.deepEqual(url.searchParams.getAll('tag'), ['v2', 'canary']);
    assert.equal(url.searchParams.get('dc'), 'dc2');
    assert.equal(url.searchParams.get('ns'), 'team-a');
    assert.equal(url.searchParams.get('partition'), 'p1');
    assert.equal(url.searchParams.get('filter'), 'Service.Meta.version == "2"');
  });

  it('passes filter expressions through intact (quotes, brackets, regexes) and reports an invalid one', async () => {
    consul.setService('web', [
      { nodeAddress: '10.0.3.1', node: 'edge-1', port: 80, tags: ['canary'], meta: { 'build-id': '7' } },
      { nodeAddress: '10.0.3.2', node: 'edge-2', port: 80, tags: ['stable'], meta: { 'build-id': '8' } },
      { nodeAddress: '10.0.3.3', node: 'core-1', port: 80, tags: ['canary'] },
    ]);
    const cases: [string, string[]][] = [
      ['"canary" in Service.Tags and Node.Node matches "^edge-"', ['10.0.3.1:80']],
      ['Service.Meta["build-id"] == `8` or Service.Meta is empty', ['10.0.3.2:80', '10.0.3.3:80']],
      ['not (Service.Tags contains "canary")', ['10.0.3.2:80']],
      ['Service.Meta["build-id"] is not empty and Service.Port == 80', ['10.0.3.1:80', '10.0.3.2:80']],
    ];
    for (const [filter, expected] of cases) {
      const rec = new Recorder();
      resolver({ filter }).start(rec.listener);
      await rec.until(() => rec.updates.length === 1, 3000, filter);
      assert.deepEqual(keys(rec.last), expected, filter);
    }
    const rec = new Recorder();
    resolver({ filter: 'Service.Meta.version ==' }).start(rec.listener);
    await rec.until(() => rec.errors.length >= 1, 3000, 'the error for an invalid filter');
    const error = rec.errors[0] as ConsulError;
    assert.equal(error.reason, 'http-status');
    assert.equal(error.status, 400);
    assert.equal(rec.updates.length, 0);
  });

  it('resets the index to 0 when X-Consul-Index goes backwards, and keeps following changes', async () => {
    const rec = new Recorder();
    const r = resolver({ waitMs: 300 });
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
    const mark = consul.requests.length;
    consul.rewindIndex('web', 3);
    // The blocked query (index > 3) times out after wait + jitter and sees index 3: the next query must not block.
    await rec.until(
      () => consul.requestsSince(mark).some((q) => q.index === undefined),
      3000,
      'a non-blocking query after the reset',
    );
    await rec.until(() => consul.blocked === 1 && r.index === 3, 3000, 'blocking again from index 3');
    consul.setService('web', [{ nodeAddress: '10.0.0.9', port: 80 }]);
    await rec.until(() => keys(rec.last).join() === '10.0.0.9:80', 3000, 'the change after the reset');
    assert.equal(rec.errors.length, 0);
  });

  it('treats an X-Consul-Index of 0 as 1: the next query blocks with index=1 instead of looping', async () => {
    consul.forcedIndex = 0;
    const mark = consul.requests.length;
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1, 3000, 'a blocked query');
    assert.equal(r.index, 1);
    // Treated as 0, the index would keep every query non-blocking: a loop at minRequestIntervalMs, never blocked.
    assert.deepEqual(
      consul.requestsSince(mark).map((q) => [q.index, q.wait]),
      [
        [undefined, undefined],
        ['1', '2s'],
      ],
    );
    assert.equal(rec.errors.length, 0);
  });

  it('an index that drops to 0 resets to 0 (one non-blocking read), then blocks from 1', async () => {
    const rec = new Recorder();
    const r = resolver({ waitMs: 300 });
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1, 3000, 'a blocked query');
    assert.ok(r.index > 1);
    const mark = consul.requests.length;
    // The blocked query answers at wait + jitter with index 0: backwards, so the next query reads without index.
    consul.forcedIndex = 0;
    await rec.until(() => r.index === 1 && consul.blocked === 1, 3000, 'blocking again from index 1');
    assert.deepEqual(
      consul.requestsSince(mark).map((q) => q.index),
      [undefined, '1'],
    );
    assert.equal(rec.errors.length, 0);
  });

  it('regression (an X-Consul-Index above 2^53 was rounded, so blocking queries never blocked): kept exact, as a uint64', async () => {
    const huge = 2n ** 53n + 1n; // 9007199254740993: as a number, 9007199254740992
    consul.forcedIndex = huge;
    const mark = consul.requests.length;
    const rec = new Recorder();
    const r = resolver({ waitMs: 1000 });
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1, 3000, 'a blocked query');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Rounded down, the index sent was below the server's: every query was answered at once, one per interval.
    assert.deepEqual(
      consul.requestsSince(mark).map((q) => q.index),
      [undefined, '9007199254740993'],
    );
    assert.equal(consul.blocked, 1);
    assert.equal(r.index, 9007199254740992, 'the number property shows the nearest number');
    // Backwards by one (the same number once rounded): reset to 0, one non-blocking read, then blocking again.
    consul.forcedIndex = huge - 1n;
    await rec.until(
      () => consul.requestsSince(mark).length === 4 && consul.blocked === 1,
      4000,
      'blocking again after the reset',
    );
    assert.deepEqual(
      consul.requestsSince(mark).map((q) => q.index),
      [undefined, '9007199254740993', undefined, '9007199254740992'],
    );
    // The largest uint64 is an index like any other.
    consul.forcedIndex = 2n ** 64n - 1n;
    consul.touch('web');
    await rec.until(
      () => consul.requests.at(-1)?.index === '18446744073709551615' && consul.blocked === 1,
      3000,
      'blocking from 2^64 - 1',
    );
    // Past it, the header is no uint64: the next query does not block (as for any invalid index).
    consul.forcedIndex = 2n ** 64n;
    consul.touch('web');
    await rec.until(() => r.index === 0, 3000, 'the index reset by a header past 2^64 - 1');
    assert.equal(rec.errors.length, 0);
    assert.equal(rec.updates.length, 1);
  });

  it('times a blocking query out at wait × 17/16 + timeoutMarginMs, so an answer at wait × 1.06 is in time', async () => {
    // The resolver's timers run on a fake clock; the double holds the query on real time (its wait is 5 m).
    const clock = new FakeClock();
    const rec = new Recorder();
    const r = resolver({ clock, waitMs: 300_000, timeoutMarginMs: 0 });
    r.start(rec.listener);
    await rec.until(
      () => {
        clock.advance(0);
        return rec.updates.length === 1;
      },
      3000,
      'the initial set',
    );
    clock.advance(20); // minRequestIntervalMs: the blocking query starts
    await rec.until(() => consul.blocked === 1, 3000, 'a blocked query');
    assert.equal(consul.requests.at(-1)?.wait, '300s');
    clock.advance(318_000); // wait × 1.06, inside Consul's jitter of up to wait / 16
    consul.setService('web', [{ nodeAddress: '10.0.0.7', port: 80 }]);
    await rec.until(() => rec.updates.length === 2, 3000, 'the answer at wait × 1.06');
    assert.equal(rec.errors.length, 0, 'an answer within wait × 17/16 is no timeout');

    await rec.until(
      () => {
        clock.advance(0);
        return consul.blocked === 1;
      },
      3000,
      'the next blocked query',
    );
    clock.advance(318_749);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(rec.errors.length, 0, 'no timeout before ceil(300000 × 17/16) = 318750 ms');
    clock.advance(1);
    await rec.until(() => rec.errors.length === 1, 3000, 'the timeout');
    assert.equal((rec.errors[0] as ConsulError).reason, 'timeout');
    assert.match(rec.errors[0]?.message ?? '', /within 318750 ms/);
    assert.equal(rec.updates.length, 2, 'the last set stays');
  });

  it('with the defaults (wait 5 m, timeoutMarginMs 5 s) the client timeout is 323750 ms', async () => {
    const clock = new FakeClock();
    const rec = new Recorder();
    const r = resolver({ clock, waitMs: undefined, timeoutMarginMs: undefined });
    r.start(rec.listener);
    await rec.until(
      () => {
        clock.advance(0);
        return rec.updates.length === 1;
      },
      3000,
      'the initial set',
    );
    clock.advance(20);
    await rec.until(() => consul.blocked === 1, 3000, 'a blocked query');
    assert.equal(consul.requests.at(-1)?.wait, '300s', 'wait defaults to 5 m');
    clock.advance(323_749);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(rec.errors.length, 0);
    clock.advance(1);
    await rec.until(() => rec.errors.length === 1, 3000, 'the timeout');
    assert.equal((rec.errors[0] as ConsulError).reason, 'timeout');
    assert.match(rec.errors[0]?.message ?? '', /within 323750 ms/);
  });

  for (const [name, fault, reason, status] of [
    ['HTTP 500', { kind: 'status', status: 500 }, 'http-status', 500],
    ['HTTP 403', { kind: 'status', status: 403, body: 'Permission denied' }, 'forbidden', 403],
    ['a garbage body', { kind: 'garbage' }, 'bad-response', undefined],
    ['a body of the wrong shape', { kind: 'wrong-shape' }, 'bad-response', undefined],
  ] as const) {
    it(`keeps the last known good set on ${name}, reports a typed error, and recovers`, async () => {
      const rec = new Recorder();
      resolver().start(rec.listener);
      await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
      consul.fault = fault;
      consul.touch('web'); // wakes the blocked query; the next one meets the fault
      await rec.until(() => rec.errors.length >= 2, 3000, 'errors');
      const error = rec.errors[0] as ConsulError;
      assert.ok(isSidecarlessError(error));
      assert.equal(error.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.ok(error instanceof ConsulError);
      assert.equal(error.reason, reason);
      assert.equal(error.status, status);
      assert.equal(rec.updates.length, 1, 'no update while failing');
      consul.fault = undefined;
      consul.setService('web', [{ nodeAddress: '10.0.0.5', port: 80 }]);
      await rec.until(() => rec.updates.length === 2, 3000, 'recovery');
      assert.deepEqual(keys(rec.last), ['10.0.0.5:80']);
    });
  }

  it('backs off between failures', async () => {
    consul.fault = { kind: 'status', status: 500 };
    const rec = new Recorder();
    resolver({ backoff: { initialMs: 100, multiplier: 2, maxMs: 400, jitter: 0 } }).start(rec.listener);
    await rec.until(() => rec.errors.length >= 4, 3000, 'four errors');
    const times = consul.requests.slice(-4).map((q) => q.at);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // 100, 200, 400 ms (a little timer slack allowed).
    assert.ok(gaps[0]! >= 90 && gaps[1]! >= 190 && gaps[2]! >= 390, `gaps ${gaps.join(', ')}`);
  });

  it('aborts a response slower than the client timeout and retries', async () => {
    const rec = new Recorder();
    // timeout = 200 × 17/16 + 100 = 313 ms
    resolver({ waitMs: 200, timeoutMarginMs: 100 }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1);
    consul.fault = { kind: 'slow', delayMs: 5000 };
    await rec.until(() => rec.errors.length >= 1, 3000, 'a timeout');
    assert.equal((rec.errors[0] as ConsulError).reason, 'timeout');
    assert.equal(rec.updates.length, 1);
    consul.fault = undefined;
    consul.setService('web', [{ nodeAddress: '10.0.0.6', port: 80 }]);
    await rec.until(() => keys(rec.last).join() === '10.0.0.6:80', 3000, 'recovery after the timeout');
  });

  it('reports connection refused as a typed error', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const rec = new Recorder();
    resolver({ address: `127.0.0.1:${port}` }).start(rec.listener);
    await rec.until(() => rec.errors.length >= 1);
    assert.equal((rec.errors[0] as ConsulError).reason, 'connection');
    assert.equal(rec.updates.length, 0);
  });

  it('sends the token only in X-Consul-Token: never in a URL, an error message or a log line', async () => {
    const token = 'b1gS3cret-7f3a-token';
    consul.aclToken = token;
    const rec = new Recorder();
    resolver({ token }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
    assert.ok(consul.requests.slice(-2).every((q) => q.token === token));

    const fromEnv = new Recorder();
    resolver({ env: { CONSUL_HTTP_TOKEN: token } }).start(fromEnv.listener);
    await fromEnv.until(() => fromEnv.updates.length === 1);

    const denied = new Recorder();
    const wrong = 'wr0ng-token-value';
    consul.fault = { kind: 'status', status: 403, body: `token ${wrong} and ${token} not allowed` };
    resolver({ token: wrong }).start(denied.listener);
    await denied.until(() => denied.errors.length >= 1);
    const message = `${denied.errors[0]?.message} ${String(denied.errors[0]?.stack)}`;
    assert.ok(!message.includes(wrong) && !message.includes(token), message);
    assert.deepEqual(consul.leaks, []);

    assert.throws(
      () => createResolverRegistry().create(`consul://${consul.address}/web?token=${token}`, ctx()),
      (err: unknown) => err instanceof InvalidTargetError && !err.message.includes(token),
    );

    // Debug logging on: run a resolver in a child process and read its stderr. It prints READY after the first
    // set; then a 403 whose body quotes the token must not leak it into the error or the log.
    consul.fault = undefined;
    const script = fileURLToPath(new URL('../helpers/consul-debug-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, NODE_DEBUG: 'sidecarless', CONSUL_ADDR: consul.address, CONSUL_HTTP_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('READY') && consul.fault === undefined) {
        consul.fault = { kind: 'status', status: 403, body: `token ${token} not allowed` };
        consul.touch('web');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const timer = setTimeout(() => child.kill(), 15_000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    assert.equal(code, 0, output);
    assert.match(output, /\[consul\]/, 'debug output was produced');
    assert.ok(!output.includes(token), output);
    assert.deepEqual(consul.leaks, []);
  });

  it('rate-limits queries against a server that answers at once with a new index', async () => {
    consul.fault = { kind: 'instant' };
    // A fake clock for the resolver: each query can start only when the test moves time on, so the count of
    // queries per minRequestIntervalMs is exact whatever the machine's load.
    const clock = new FakeClock();
    const rec = new Recorder();
    const start = consul.requests.length;
    const r = resolver({ clock, minRequestIntervalMs: 100 });
    r.start(rec.listener);
    for (let n = 1; n <= 5; n++) {
      await rec.until(
        () => {
          clock.advance(0);
          return consul.requests.length - start === n && r.index === Number(consul.indexOf('web'));
        },
        3000,
        `answer ${n} processed`,
      );
      // The answer came at once with a new index; the next query still waits for the interval.
      clock.advance(99);
      assert.equal(r.requestCount, n, `no query ${n + 1} before minRequestIntervalMs`);
      clock.advance(1);
      assert.equal(r.requestCount, n + 1, `query ${n + 1} at minRequestIntervalMs`);
    }
    assert.equal(rec.errors.length, 0);
  });

  it('refresh() re-issues the blocking query early, at most once per refreshInterval', async () => {
    const rec = new Recorder();
    const r = resolver({ refreshIntervalMs: 10_000 });
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
    const mark = consul.requests.length;
    for (let i = 0; i < 20; i++) r.refresh();
    await rec.until(() => consul.requests.length === mark + 1 && consul.blocked === 1, 3000, 'one re-issued query');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(consul.requests.length, mark + 1);
    assert.equal(consul.requests.at(-1)?.index, String(consul.indexOf('web')), 'same index: it blocks again');
    assert.equal(rec.errors.length, 0);
  });

  it('refresh() during the backoff after a failure is ignored: the retry comes at the backoff delay', async () => {
    consul.fault = { kind: 'status', status: 500 };
    const clock = new FakeClock();
    const rec = new Recorder();
    const r = resolver({ clock, refreshIntervalMs: 0, backoff: { initialMs: 1000, jitter: 0, multiplier: 2 } });
    r.start(rec.listener);
    await rec.until(
      () => {
        clock.advance(0);
        return rec.errors.length === 1;
      },
      3000,
      'the first error',
    );
    for (let i = 0; i < 5; i++) r.refresh();
    clock.advance(999);
    assert.equal(r.requestCount, 1, 'the hint did not cut the backoff short');
    clock.advance(1);
    assert.equal(r.requestCount, 2, 'the retry at the backoff delay');
    await rec.until(() => rec.errors.length === 2, 3000, 'the second error');
  });

  it('aborts the in-flight blocking query on close and calls the listener no more', async () => {
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await rec.until(() => rec.updates.length === 1 && consul.blocked === 1);
    await r.close();
    await rec.until(() => consul.blocked === 0, 2000, 'the double to see the abort');
    consul.setService('web', [{ nodeAddress: '10.9.9.9', port: 1 }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(rec.updates.length, 1);
    await r.close(); // idempotent
  });

  it('parses consul:// targets and validates options', () => {
    const r = createResolverRegistry().create(
      'consul://127.0.0.1:8500/web?dc=dc1&tag=v2&tag=x&passing=true&wait=5m&ns=a&zone-key=az',
      ctx(),
    );
    assert.ok(r instanceof ConsulResolver);
    void r.close();
    for (const bad of [
      'consul://127.0.0.1:8500/',
      'consul://127.0.0.1:8500/a/b',
      'consul://127.0.0.1:8500/web?wait=11m',
      'consul://127.0.0.1:8500/web?wait=soon',
      'consul://127.0.0.1:8500/web?passing=maybe',
      'consul://127.0.0.1:8500/web?colour=blue',
    ]) {
      assert.throws(() => createResolverRegistry().create(parseTarget(bad), ctx()), InvalidTargetError, bad);
    }
    assert.throws(() => new ConsulResolver({ service: 'web', waitMs: 0 }), /`waitMs`/);
    assert.throws(() => new ConsulResolver({ service: 'web', address: 'ftp://x:1' }), /`address`/);
    assert.throws(() => new ConsulResolver({ service: '' }), /`service`/);
    assert.throws(() => new ConsulResolver({ service: 'web', tls: {} }), /`tls`/);
  });
});

function ctx() {
  return { clock: systemClock, random: Math.random, cluster: 'test' };
}

describe('ConsulResolver over TLS (mutual TLS, private CA, server name)', () => {
  let dir: string;
  let consul: ConsulDouble;
  let serverCert: string;
  let clientCert: string;
  let clientKey: string;
  const open: ConsulResolver[] = [];
  // A self-signed certificate for `name` (its own CA), valid one day.
  function selfSigned(name: string): { cert: string; key: string } {
    const base = join(dir, name);
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
        `${base}.key`,
        '-out',
        `${base}.pem`,
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(`${base}.pem`, 'utf8'), key: readFileSync(`${base}.key`, 'utf8') };
  }
  function resolver(tls: NonNullable<ConsulResolverOptions['tls']>): ConsulResolver {
    const r = new ConsulResolver({
      address: `https://${consul.address}`,
      service: 'web',
      waitMs: 2000,
      backoff: FAST,
      env: {},
      tls,
    });
    open.push(r);
    return r;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-consul-tls-'));
    const server = selfSigned('consul.test');
    const client = selfSigned('sidecarless-client');
    serverCert = server.cert;
    clientCert = client.cert;
    clientKey = client.key;
    consul = await startConsulDouble({
      tls: { key: server.key, cert: server.cert, requestCert: true, rejectUnauthorized: true, ca: [client.cert] },
    });
    consul.setService('web', [{ nodeAddress: '10.0.4.1', port: 443 }]);
  });
  after(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    await consul.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('trusts the private CA, presents the client certificate and checks the certificate against servername', async () => {
    const rec = new Recorder();
    resolver({ ca: serverCert, cert: clientCert, key: clientKey, servername: 'consul.test' }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the set over mutual TLS');
    assert.deepEqual(keys(rec.last), ['10.0.4.1:443']);
    assert.equal(rec.errors.length, 0);
  });

  it('decrypts an encrypted client key with tls.passphrase (probe 22)', async () => {
    const passphrase = 'correct horse';
    const key = createPrivateKey(clientKey)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
      .toString();
    const rec = new Recorder();
    resolver({ ca: serverCert, cert: clientCert, key, passphrase, servername: 'consul.test' }).start(rec.listener);
    await rec.until(() => rec.updates.length === 1, 5000, 'the set over mutual TLS with an encrypted key');
    assert.deepEqual(keys(rec.last), ['10.0.4.1:443']);
    assert.equal(rec.errors.length, 0);
  });

  // Functions: the certificates exist only once before() has run.
  const failing: [string, () => NonNullable<ConsulResolverOptions['tls']>][] = [
    [
      'the system CAs only (the server certificate is untrusted)',
      () => ({ cert: clientCert, key: clientKey, servername: 'consul.test' }),
    ],
    [
      'no servername (the certificate names consul.test, not 127.0.0.1)',
      () => ({ ca: serverCert, cert: clientCert, key: clientKey }),
    ],
    ['no client certificate (the server requires one)', () => ({ ca: serverCert, servername: 'consul.test' })],
  ];
  for (const [what, tls] of failing) {
    it(`fails to connect with ${what}: a connection error, no endpoints`, async () => {
      const rec = new Recorder();
      resolver(tls()).start(rec.listener);
      await rec.until(() => rec.errors.length >= 1, 5000, what);
      const error = rec.errors[0] as ConsulError;
      assert.ok(error instanceof ConsulError);
      assert.equal(error.reason, 'connection', `${what}: ${error.message}`);
      assert.equal(rec.updates.length, 0);
    });
  }
});

describe('createClient over consul:// to real backends', () => {
  let consul: ConsulDouble;
  let backends: Backend[];
  before(async () => {
    consul = await startConsulDouble();
    backends = await startBackends(3);
  });
  after(async () => {
    await stopAll(backends);
    await consul.close();
  });

  it('balances across the instances Consul lists and follows changes', async () => {
    consul.setService(
      'web',
      backends.map((b) => ({ nodeAddress: '127.0.0.1', port: b.port })),
    );
    const client = createClient({ target: `consul://127.0.0.1:${consul.port}/web?wait=2s` });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 9; i++) {
        const res = await client.fetch('http://web/hello');
        seen.add(((await res.json()) as { backend: string }).backend);
      }
      assert.deepEqual([...seen].sort(), ['b0', 'b1', 'b2']);
      consul.setService('web', [{ nodeAddress: '127.0.0.1', port: backends[1]!.port }]);
      const deadline = Date.now() + 3000;
      while (client.endpoints.length !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(client.endpoints.length, 1);
      for (let i = 0; i < 4; i++) {
        const res = await client.fetch('http://web/hello');
        assert.equal(((await res.json()) as { backend: string }).backend, 'b1');
      }
    } finally {
      await client.close();
    }
  });
});

describe('examples/consul.ts', () => {
  it('runs standalone, balances across both instances and follows a deregistration, then exits', async () => {
    const out = await runExample('consul.ts', [], 30_000);
    assert.match(out, /answers: backend [ab], backend [ab], backend [ab], backend [ab]/);
    assert.match(out, /backend a/);
    assert.match(out, /after deregistering one: backend b, backend b/);
  });
});
