/**
 * An endpoint that has never been picked costs no connection pool (issue 14): a subchannel makes its undici `Pool`
 * on its first dispatch, and its counters, latency histogram and connection backoff on first use. Stats, drain and
 * close behave as before for an endpoint that never had a pool.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Pool } from 'undici';
import { createClient, createEndpoint } from 'sidecarless';
import { resolveBackoffOptions } from '../../../src/common/backoff.js';
import type { AttemptOutcome } from '../../../src/common/outcome.js';
import { systemClock } from '../../../src/common/runtime.js';
import { SubchannelPool } from '../../../src/subchannel/subchannel-pool.js';
import type { Subchannel, SubchannelState } from '../../../src/subchannel/subchannel.js';
import { seededRandom } from '../../helpers/fake-clock.js';
import { backendsForFile } from '../../helpers/backends.js';
import { dispatchGet } from '../../helpers/subchannel-pool.js';

const startBackend = backendsForFile();

/** Counts the undici Pools that get a listener or a request (a subchannel listens to its pool as it makes it). */
function countPools(): { readonly count: number; restore(): void } {
  const proto = Pool.prototype as unknown as Record<'dispatch' | 'on', (...a: unknown[]) => unknown>;
  const originals = { dispatch: proto.dispatch, on: proto.on };
  const seen = new WeakSet<object>();
  let count = 0;
  for (const method of ['dispatch', 'on'] as const) {
    const original = originals[method];
    proto[method] = function (this: object, ...args: unknown[]) {
      if (!seen.has(this)) {
        seen.add(this);
        count++;
      }
      return original.apply(this, args);
    };
  }
  return {
    get count() {
      return count;
    },
    restore() {
      proto.dispatch = originals.dispatch;
      proto.on = originals.on;
    },
  };
}

function makePool(outcomes: AttemptOutcome[] = [], states: [SubchannelState, SubchannelState][] = []): SubchannelPool {
  return new SubchannelPool({
    protocol: 'http:',
    poolOptions: {},
    clock: systemClock,
    random: seededRandom(1),
    connectBackoff: resolveBackoffOptions(undefined, 'connectBackoff', {
      initialMs: 100,
      maxMs: 1000,
      multiplier: 2,
      jitter: 0,
    }),
    drainTimeoutMs: 1000,
    observer: {
      onStateChange: (sub, previous) => states.push([previous, sub.state]),
      onOutcome: (_s, o) => outcomes.push(o),
    },
    onMembershipChange: () => {},
  });
}

describe('lazy connection pools', () => {
  it('an endpoint never picked has no pool; stats still work', async () => {
    const pools = countPools();
    after(() => pools.restore());
    const live = await Promise.all([startBackend('a'), startBackend('b')]);
    // 200 endpoints that do not listen, on a lower priority: with both live ones healthy, nothing goes there.
    const idle = Array.from({ length: 200 }, (_, i) =>
      createEndpoint({ host: `127.0.0.${2 + (i % 100)}`, port: 1 + Math.floor(i / 100), priority: 1 }),
    );
    const client = createClient({
      target: [...live.map((b) => createEndpoint({ host: '127.0.0.1', port: b.port })), ...idle],
    });
    try {
      await client.ready();
      for (let i = 0; i < 10; i++) assert.equal((await client.fetch('http://svc/')).status, 200);
      assert.equal(pools.count, 2, 'one pool per endpoint that took a request, none for the 200 others');
      const stats = client.stats().clusters[0]!;
      assert.equal(stats.endpoints.length, 202);
      const idleStats = stats.endpoints.filter(
        (e) => e.key !== `127.0.0.1:${live[0]!.port}` && e.key !== `127.0.0.1:${live[1]!.port}`,
      );
      assert.equal(idleStats.length, 200);
      for (const e of idleStats) {
        assert.equal(e.state, 'idle');
        assert.equal(e.attempts, 0);
        assert.equal(e.responses, 0);
        assert.deepEqual(e.statusClasses, { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 });
        assert.deepEqual(e.errorsByKind, { connect: 0, reset: 0, timeout: 0, aborted: 0, goaway: 0, other: 0 });
        assert.equal(e.latency.count, 0);
        assert.equal(e.latency.counts.length, e.latency.bounds.length + 1);
        assert.equal(e.meanLatencyMs, 0);
      }
      const liveStats = stats.endpoints.filter((e) => !idleStats.includes(e));
      assert.equal(
        liveStats.reduce((n, e) => n + e.attempts, 0),
        10,
      );
      assert.equal(
        liveStats.reduce((n, e) => n + e.latency.count, 0),
        10,
      );
    } finally {
      await client.close();
    }
  });

  it('makes the pool on the first dispatch, and only for that subchannel', async () => {
    const backend = await startBackend('c');
    const outcomes: AttemptOutcome[] = [];
    const pool = makePool(outcomes);
    pool.update([
      createEndpoint({ host: '127.0.0.1', port: backend.port }),
      createEndpoint({ host: '127.0.0.2', port: 9 }),
    ]);
    const [used, unused] = pool.subchannels as [Subchannel, Subchannel];
    assert.equal(used.hasPool, false);
    assert.equal(unused.hasPool, false);
    await dispatchGet(used);
    assert.equal(used.hasPool, true);
    assert.equal(unused.hasPool, false);
    assert.equal(used.counters.attempts, 1);
    assert.equal(used.latency.snapshot().count, 1);
    assert.equal(unused.counters.attempts, 0);
    assert.equal(outcomes.length, 1);
    // Both removed: the one with a pool drains (tracked until its pool has closed), the other closes at once.
    pool.update([]);
    assert.equal(used.state, 'draining');
    assert.equal(unused.state, 'closed');
    assert.deepEqual([...pool.draining], [used]);
    await pool.close();
    assert.equal(used.state, 'closed');
    assert.equal(pool.draining.size, 0);
  });

  it('a removed endpoint that never had a pool closes at once, and a late dispatch fails with one outcome', async () => {
    const outcomes: AttemptOutcome[] = [];
    const states: [SubchannelState, SubchannelState][] = [];
    const pool = makePool(outcomes, states);
    pool.update([createEndpoint({ host: '127.0.0.2', port: 9 }), createEndpoint({ host: '127.0.0.3', port: 9 })]);
    const removed = pool.subchannels[0] as Subchannel;
    pool.update([createEndpoint({ host: '127.0.0.3', port: 9 })]);
    // Closed within the update: nothing in flight, nothing to close, so no draining state and nothing to track.
    assert.equal(removed.state, 'closed');
    assert.equal(pool.draining.size, 0);
    assert.deepEqual(states, [['idle', 'closed']], 'one state change, reported synchronously');
    await removed.drain(1000);
    assert.equal(removed.state, 'closed');
    assert.deepEqual(states, [['idle', 'closed']], 'drain is idempotent');
    const errors: Error[] = [];
    const accepted = removed.dispatch(
      { origin: removed.origin, path: '/', method: 'GET' },
      { onError: (err) => errors.push(err) },
    );
    assert.equal(accepted, false);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, 'UND_ERR_CLOSED');
    assert.equal(outcomes.length, 1, 'exactly one outcome for the attempt');
    assert.equal(removed.hasPool, false);
    assert.equal(removed.inFlight, 0);
    await pool.destroy();
  });
});

describe('a pool undici refuses to make', () => {
  it('fails the attempt that needed it (onError), releases its in-flight count, and the next attempt fails the same', async () => {
    const outcomes: AttemptOutcome[] = [];
    const pool = new SubchannelPool({
      protocol: 'http:',
      // Past the options' validation (a custom option object): undici's Pool constructor throws on it.
      poolOptions: { connect: { maxCachedSessions: -1 } } as never,
      clock: systemClock,
      random: seededRandom(1),
      connectBackoff: resolveBackoffOptions(undefined, 'connectBackoff'),
      drainTimeoutMs: 1000,
      observer: { onStateChange: () => {}, onOutcome: (_s, o) => outcomes.push(o) },
      onMembershipChange: () => {},
    });
    pool.update([createEndpoint({ host: '127.0.0.1', port: 1 })]);
    const sub = pool.subchannels[0] as Subchannel;
    for (let i = 0; i < 2; i++) {
      await assert.rejects(dispatchGet(sub), { code: 'UND_ERR_INVALID_ARG' });
      assert.equal(sub.inFlight, 0);
    }
    assert.equal(outcomes.length, 2);
    await pool.close();
  });
});
