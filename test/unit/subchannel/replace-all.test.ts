/**
 * An update that replaces every endpoint of 10,000 (N removed, N added in one update), held by counts and bytes,
 * never by time (issue 14: the longest stall of an update at N = 10,000 at most 20 ms; `npm run bench:scale`
 * measures it as `replace all`). A removed endpoint that never made a connection pool has nothing in flight and
 * nothing to close: it closes within the update, with one state change, is never tracked as draining, and leaves no
 * promise callback to run after the update (it used to take two promises, two callbacks and a set entry each).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient, createEndpoint, type Endpoint, StaticResolver } from 'sidecarless';
import { bytesPerCall } from '../../../bench/micro/heap.js';
import { SubchannelPool } from '../../../src/subchannel/subchannel-pool.js';
import type { Subchannel, SubchannelState } from '../../../src/subchannel/subchannel.js';
import { testSubchannelPool } from '../../helpers/subchannel-pool.js';

const N = 10_000;

const endpointAt = (i: number): Endpoint =>
  createEndpoint({
    host: `127.0.${1 + Math.floor(i / 60_000)}.${1 + (i % 250)}`,
    port: 1 + (Math.floor(i / 250) % 240),
  });

function makePool(
  onStateChange: (subchannel: Subchannel, previous: SubchannelState) => void = () => {},
  onMembershipChange: (added: number, removed: number) => void = () => {},
): SubchannelPool {
  return testSubchannelPool({
    onStateChange,
    onMembershipChange: ({ added, removed }) => onMembershipChange(added.length, removed.length),
  });
}

function push(pool: SubchannelPool, set: readonly Endpoint[]): void {
  const v = pool.validate(set);
  pool.update(v.endpoints, v.sources, v.found);
}

describe('an update replacing every endpoint of 10,000', () => {
  it('closes each removed endpoint that never had a pool within the update: one state change, nothing draining', async () => {
    const changes: [SubchannelState, SubchannelState][] = [];
    const membership: [number, number][] = [];
    const pool = makePool(
      (s, previous) => changes.push([previous, s.state]),
      (added, removed) => membership.push([added, removed]),
    );
    push(
      pool,
      Array.from({ length: N }, (_, i) => endpointAt(i)),
    );
    const first = pool.subchannels;
    push(
      pool,
      Array.from({ length: N }, (_, i) => endpointAt(N + i)),
    );
    assert.deepEqual(membership, [
      [N, 0],
      [N, N],
    ]);
    assert.equal(pool.subchannels.length, N);
    assert.ok(
      first.every((s) => s.state === 'closed'),
      'closed when the update returns',
    );
    assert.equal(pool.draining.size, 0);
    assert.equal(changes.length, N, 'one state change per removed endpoint');
    assert.ok(changes.every(([from, to]) => from === 'idle' && to === 'closed'));
    // Nothing was left to run after the update.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(changes.length, N);
    assert.ok(pool.subchannels.every((s) => s.state === 'idle' && !s.hasPool));
    await pool.close();
    const left: readonly Subchannel[] = pool.subchannels;
    assert.equal(left.length, 0);
  });

  it('allocates for the new endpoints, nothing per removed one beyond its slot in the change', () => {
    const pool = makePool();
    let next = 0;
    push(
      pool,
      Array.from({ length: N }, () => endpointAt(next++)),
    );
    // The resolver's new objects are made outside the measured calls: only the pool's work is counted.
    const sets = Array.from({ length: 4 }, () => Array.from({ length: N }, () => endpointAt(next++)));
    let round = 0;
    const bytes = bytesPerCall(
      (calls) => {
        for (let c = 0; c < calls; c++) push(pool, sets[round++ % sets.length] as Endpoint[]);
        return pool.subchannels.length;
      },
      2,
      1,
    );
    // Per endpoint replaced, on Node 20: its new subchannel, a key-map entry and slots in the update's arrays: about
    // 415 bytes. When a removed endpoint drained (two promises, their callbacks and reactions, a set
    // entry), about 1,340.
    const perEndpoint = bytes / N;
    assert.ok(perEndpoint < 600, `${perEndpoint.toFixed(1)} bytes per endpoint replaced`);
    void pool.destroy();
  });
});

describe('a client whose endpoints are all replaced', () => {
  it('counts none of the removed as draining when none was ever picked, and closes', async () => {
    const idle = (i: number): string => `127.0.0.${2 + (i % 100)}:${1 + Math.floor(i / 100)}`;
    const resolver = new StaticResolver(Array.from({ length: 200 }, (_, i) => idle(i)));
    const client = createClient({ target: resolver });
    try {
      await client.ready(5_000);
      assert.equal(client.stats().clusters[0]?.endpoints.length, 200);
      resolver.update(Array.from({ length: 200 }, (_, i) => idle(200 + i)));
      await new Promise((resolve) => setImmediate(resolve)); // updates are delivered asynchronously
      const stats = client.stats().clusters[0];
      assert.equal(stats?.endpoints.length, 200);
      assert.equal(stats?.draining, 0);
      assert.ok(stats?.endpoints.every((e) => e.state === 'idle'));
    } finally {
      await client.close();
    }
  });
});
