/**
 * Large resolver updates are prepared in slices, one per turn of the event loop, and switched in at once (issue 14:
 * the longest stall of an update at most 20 ms at N = 10,000; docs/ARCHITECTURE.md, "Updates"). Held by counts of
 * turns and of entries looked at per turn, with the turns run by hand (an injected `defer`), never by time.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Pool } from 'undici';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createClient, createEndpoint, type Endpoint, ResolverError } from 'sidecarless';
import { Cluster } from '../../../src/cluster/cluster.js';
import { updateSlicing } from '../../../src/cluster/resolution.js';
import { Validation } from '../../../src/subchannel/pool-update.js';
import { testSubchannelPool } from '../../helpers/subchannel-pool.js';
import { PushResolver } from '../../helpers/push-resolver.js';

const SLICE = 10;
const THRESHOLD = 10;

/** Turns deferred by the cluster, run by the test one at a time. */
const turns: (() => void)[] = [];
const saved = { ...updateSlicing };
function runTurn(): boolean {
  const fn = turns.shift();
  fn?.();
  return fn !== undefined;
}
/** Runs turns until none is left (at most `max`); returns how many ran. */
function runAll(max = 10_000): number {
  let n = 0;
  while (n < max && runTurn()) n++;
  return n;
}

beforeEach(() => {
  turns.length = 0;
  updateSlicing.threshold = THRESHOLD;
  updateSlicing.slice = SLICE;
  updateSlicing.defer = (fn) => {
    const entry = (): void => fn();
    turns.push(entry);
    return () => {
      const i = turns.indexOf(entry);
      if (i >= 0) turns.splice(i, 1);
    };
  };
});
afterEach(() => Object.assign(updateSlicing, saved));

/** Idle endpoints (nothing listens, nothing is sent to them). */
const idle = (from: number, count: number): Endpoint[] =>
  Array.from({ length: count }, (_, i) =>
    createEndpoint({ host: `127.0.0.${2 + ((from + i) % 200)}`, port: 20_000 + Math.floor((from + i) / 200) }),
  );

const keys = (client: ReturnType<typeof createClient>): string[] =>
  (client.stats().clusters[0]?.endpoints ?? []).map((e) => e.key);

function setup(): { resolver: PushResolver; client: ReturnType<typeof createClient> } {
  const resolver = new PushResolver();
  const client = createClient({
    clusters: { svc: { target: resolver } },
    routes: [{ match: { host: 'svc' }, cluster: 'svc', subset: { live: '1' }, subsetFallback: 'fail' }],
  });
  return { resolver, client };
}

describe('a small update', () => {
  it('is applied within the resolver call, as before (no turn deferred)', async () => {
    const { resolver, client } = setup();
    try {
      resolver.push(idle(0, THRESHOLD));
      assert.equal(keys(client).length, THRESHOLD);
      assert.equal(turns.length, 0);
      // A set of 100 of which THRESHOLD are new: small too.
      resolver.push(idle(0, 100));
      assert.equal(turns.length, 1, '90 new entries: prepared');
      runAll();
      resolver.push([...idle(0, 100).slice(THRESHOLD), ...idle(100, THRESHOLD)]);
      assert.equal(turns.length, 0);
      assert.deepEqual(
        keys(client),
        [...idle(THRESHOLD, 90), ...idle(100, THRESHOLD)].map((e) => e.key),
      );
    } finally {
      await client.close();
    }
  });
});

describe('a large update', () => {
  it('takes one bounded slice per turn, then a switch on a turn of its own', async () => {
    const { resolver, client } = setup();
    try {
      const N = 100;
      resolver.push(idle(0, N));
      assert.equal(keys(client).length, 0, 'not in force before the switch');
      // Validation: THRESHOLD entries in the push, the rest in slices; then the new subchannels and key map in
      // slices; nothing removed; then the switch.
      const expected = Math.ceil((N - THRESHOLD) / SLICE) + Math.ceil(N / SLICE) + 1;
      let ran = 0;
      while (turns.length > 0) {
        assert.equal(turns.length, 1, 'one turn pending at a time');
        assert.equal(keys(client).length, 0, `still the previous set after ${ran} turns`);
        runTurn();
        ran++;
      }
      assert.equal(ran, expected);
      assert.deepEqual(
        keys(client),
        idle(0, N).map((e) => e.key),
      );
      // Replacing all of them: the previous set is also walked in slices (the removed ones).
      resolver.push(idle(N, N));
      assert.equal(runAll(), Math.ceil((N - THRESHOLD) / SLICE) + Math.ceil(N / SLICE) + Math.ceil(N / SLICE) + 1);
      assert.deepEqual(
        keys(client),
        idle(N, N).map((e) => e.key),
      );
      assert.equal(client.stats().clusters[0]?.draining, 0);
    } finally {
      await client.close();
    }
  });

  it('looks at no more than `slice` entries of the set per step', () => {
    const pool = testSubchannelPool();
    const set = idle(0, 95);
    let reads = 0;
    const counted = new Proxy(set, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) reads++;
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const validation = pool.startValidation(counted);
    assert.ok(validation instanceof Validation);
    assert.equal(validation.run(Number.POSITIVE_INFINITY, 7), false);
    assert.equal(reads, 7, 'the synchronous part stops at the threshold of changed entries');
    const prepared = pool.prepare(validation);
    let steps = 0;
    let made = 0;
    const before = pool.subchannels.length;
    for (;;) {
      reads = 0;
      const subchannelsBefore = made;
      const ready = prepared.step(SLICE);
      steps++;
      assert.ok(reads <= SLICE, `step ${steps} read ${reads} entries`);
      made = prepared.result().added.length;
      assert.ok(made - subchannelsBefore <= SLICE, `step ${steps} made ${made - subchannelsBefore} subchannels`);
      assert.equal(pool.subchannels.length, before, 'nothing in force changes');
      if (ready) break;
      assert.ok(steps < 100);
    }
    assert.equal(made, 95);
    pool.commit(prepared);
    assert.equal(pool.subchannels.length, 95);
    void pool.close();
  });

  it('leaves nothing the pool holds when dropped half way (its new subchannels are collected)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const pool = testSubchannelPool();
    // Prepared in a function of its own: nothing of it is left on this frame.
    const made = ((): WeakRef<object> => {
      const prepared = pool.prepare(pool.startValidation(idle(0, 50)));
      while (!prepared.step(SLICE));
      return new WeakRef(prepared.result().added[0]!);
    })();
    await new Promise((r) => setImmediate(r)); // a WeakRef keeps its target until the end of the job that made it
    gc();
    assert.equal(made.deref(), undefined);
    assert.equal(pool.subchannels.length, 0);
    assert.equal(pool.draining.size, 0);
    void pool.close();
  });

  describe('with live servers', () => {
    const servers: { server: Server; port: number }[] = [];
    before(async () => {
      for (let i = 0; i < 2; i++) {
        let port = 0;
        const server = createServer((_req, res) => res.end(String(port)));
        await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
        port = (server.address() as AddressInfo).port;
        servers.push({ server, port });
      }
    });
    after(async () => {
      await Promise.all(servers.map((s) => new Promise((done) => s.server.close(done))));
    });
    const live = (i: number): Endpoint =>
      createEndpoint({ host: '127.0.0.1', port: servers[i]!.port, metadata: { live: '1' } });
    const served = async (client: ReturnType<typeof createClient>): Promise<number> => {
      const res = await client.fetch('http://svc/');
      return Number(await res.text());
    };

    it('serves requests from the previous set between slices, and from the new one after the switch', async () => {
      const { resolver, client } = setup();
      try {
        resolver.push([live(0)]);
        assert.equal(await served(client), servers[0]!.port);
        resolver.push([live(1), ...idle(0, 60)]);
        let slices = 0;
        while (keys(client).length === 1) {
          assert.equal(turns.length, 1);
          // Real I/O between the turns: the request is picked and answered by the set in force.
          assert.equal(await served(client), servers[0]!.port, `during preparation, after ${slices} slices`);
          runTurn();
          slices++;
        }
        assert.ok(slices > 2);
        assert.equal(turns.length, 0);
        assert.equal(await served(client), servers[1]!.port);
        assert.equal(keys(client).length, 61);
      } finally {
        await client.close();
      }
    });

    it('serves the requests waiting for a first set, and settles ready(), only at the switch', async () => {
      const { resolver, client } = setup();
      try {
        let readyDone = false;
        const ready = client.ready(60_000, { minEndpoints: 10 }).then(() => (readyDone = true));
        const waiting = served(client);
        resolver.push([live(1), ...idle(0, 60)]);
        assert.equal(runAll() > 2, true);
        assert.equal(await waiting, servers[1]!.port);
        await ready;
        assert.ok(readyDone);
        assert.equal(client.stats().clusters[0]?.resolver.updates, 1);
      } finally {
        await client.close();
      }
    });

    it('is not observed before the switch: stats, ready(), the resolver counters', async () => {
      const { resolver, client } = setup();
      try {
        resolver.push([live(0)]);
        resolver.push([live(0), ...idle(0, 60)]);
        runTurn();
        let ready = false;
        void client.ready(60_000, { minEndpoints: 61 }).then(() => (ready = true));
        await new Promise((r) => setImmediate(r));
        assert.equal(ready, false);
        assert.equal(keys(client).length, 1);
        assert.equal(client.stats().clusters[0]?.resolver.updates, 1);
        runAll();
        assert.equal(client.stats().clusters[0]?.resolver.updates, 2);
        await new Promise((r) => setImmediate(r));
        assert.equal(ready, true);
      } finally {
        await client.close();
      }
    });
  });

  it('applies a set that arrives meanwhile after its switch, keeping only the latest, and leaves nothing behind', async () => {
    // Count the undici Pools made: none for endpoints never picked, and none for a set that never came into force.
    let pools = 0;
    const proto = Pool.prototype as unknown as { on: (...a: unknown[]) => unknown };
    const original = proto.on;
    const seen = new WeakSet<object>();
    proto.on = function (this: object, ...args: unknown[]) {
      if (!seen.has(this)) {
        seen.add(this);
        pools++;
      }
      return original.apply(this, args);
    };
    const { resolver, client } = setup();
    try {
      resolver.push(idle(0, 100));
      runTurn();
      runTurn();
      resolver.push(idle(1000, 100)); // waits for the first set's switch
      resolver.push(idle(2000, 5)); // replaces it: only the latest set waits
      assert.equal(turns.length, 1, 'the preparation goes on: one turn pending');
      assert.deepEqual(keys(client), []);
      runAll();
      // The first set came into force at its switch, then the one that waited (5 new: applied at once there).
      assert.deepEqual(
        keys(client),
        idle(2000, 5).map((e) => e.key),
      );
      assert.equal(client.stats().clusters[0]?.resolver.updates, 2);
      resolver.push(idle(3000, 100));
      runAll();
      assert.deepEqual(
        keys(client),
        idle(3000, 100).map((e) => e.key),
      );
      assert.equal(client.stats().clusters[0]?.draining, 0);
      assert.equal(client.stats().clusters[0]?.resolver.updates, 3);
      assert.equal(pools, 0);
    } finally {
      proto.on = original;
      await client.close();
    }
  });

  it('regression (a newer large set dropped the preparation): sets pushed every turn still come into force', async () => {
    // A watch streaming events while the first list of a large service is prepared pushes a large set (against the
    // empty set in force) on every turn; dropping the preparation for each newer one never switched anything in.
    const { resolver, client } = setup();
    try {
      const inForce: number[] = [];
      for (let i = 0; i < 40; i++) {
        resolver.push(idle(i * 100, 100));
        runTurn();
        inForce.push(keys(client).length);
      }
      assert.ok(
        inForce.some((n) => n === 100),
        `a set came into force (sizes seen: ${inForce.join(',')})`,
      );
      runAll();
      assert.deepEqual(
        keys(client),
        idle(3900, 100).map((e) => e.key),
        'the latest set is in force in the end',
      );
    } finally {
      await client.close();
    }
  });

  it('stops when the client closes', async () => {
    const { resolver, client } = setup();
    resolver.push(idle(0, 5));
    resolver.push(idle(0, 100));
    runTurn();
    assert.equal(turns.length, 1);
    await client.close();
    assert.equal(turns.length, 0, 'the pending turn is cancelled');
    assert.deepEqual(client.stats().clusters[0]?.endpoints ?? [], []);
  });

  it('reports invalid entries as a synchronous update does, at the switch', async () => {
    const bad = (i: number): object => ({ host: '', port: i + 1 });
    const hostile = {
      get host(): string {
        throw new Error('a getter that throws');
      },
      port: 1,
    };
    const set = [...idle(0, 50), bad(0), idle(0, 1)[0]!, ...idle(50, 30), hostile, 'not a host:port', bad(1)];
    const reports: { skipped: number; updates: number; message: string | undefined; keys: string[] }[] = [];
    for (const threshold of [Number.POSITIVE_INFINITY, THRESHOLD]) {
      updateSlicing.threshold = threshold;
      const { resolver, client } = setup();
      try {
        resolver.push(set);
        if (threshold === THRESHOLD) {
          assert.equal(client.stats().clusters[0]?.resolver.skipped, 0, 'nothing reported before the switch');
          assert.ok(runAll() > 2);
        }
        const stats = client.stats().clusters[0]!;
        reports.push({
          skipped: stats.resolver.skipped,
          updates: stats.resolver.updates,
          message: stats.resolver.lastError,
          keys: keys(client),
        });
      } finally {
        await client.close();
      }
    }
    assert.equal(reports[0]?.skipped, 5);
    assert.deepEqual(reports[1], reports[0]);
  });

  it('keeps the last known good set when every entry is invalid', async () => {
    const { resolver, client } = setup();
    try {
      resolver.push(idle(0, 5));
      resolver.push(Array.from({ length: 50 }, (_, i) => ({ host: '', port: i + 1 })));
      assert.ok(runAll() > 2);
      assert.equal(keys(client).length, 5);
      assert.equal(client.stats().clusters[0]?.resolver.skipped, 50);
      assert.match(client.stats().clusters[0]?.resolver.lastError ?? '', /50 invalid endpoint/);
    } finally {
      await client.close();
    }
  });

  it('leaves a resolver error reported during its preparation as the latest state', async () => {
    const resolver = new PushResolver();
    const cluster = new Cluster('svc', { target: resolver });
    cluster.start();
    try {
      resolver.push(idle(0, 5));
      resolver.push(idle(0, 100));
      runTurn();
      resolver.listener?.onError(new ResolverError('watch lost'));
      runAll();
      assert.equal(cluster.endpoints.length, 100, 'the prepared set came into force');
      // As if the set had been applied at once and the error had come after it: the error stays the state that
      // requests finding no endpoint report.
      assert.match(cluster.resolverState?.message ?? '', /watch lost/);
      resolver.push(idle(0, 101)); // small: in force at once, and the state is cleared
      assert.equal(cluster.resolverState, undefined);
    } finally {
      await cluster.close();
    }
  });
});
