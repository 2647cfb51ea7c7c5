/**
 * What a resolver update of a large set costs, held by counts and bytes, never by time (issue 14: the longest
 * event-loop stall of an update at N = 10,000 at most 20 ms; `npm run bench:scale` measures the time). An update
 * that changes 1 % of 10,000 endpoints must: validate only what it has not seen (unchanged frozen endpoints pass
 * through as the same objects), make a subchannel for each new endpoint and no connection pool, keep every other
 * subchannel, rebuild the snapshot once, build the picker once over the population itself (no filtered copies when
 * nothing is filtered out), and leave garbage proportional to the change plus a few arrays, not a map or an object
 * per endpoint.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesPerCall } from '../../../bench/micro/heap.js';
import { Balancer } from '../../../src/balancer/balancer.js';
import { createEndpoint, type Endpoint } from '../../../src/common/endpoint.js';
import { systemClock } from '../../../src/common/runtime.js';
import type { Pickable, Picker, PickerPolicy } from '../../../src/pickers/picker.js';
import { roundRobinPolicy } from '../../../src/pickers/round-robin.js';
import { SubchannelPool } from '../../../src/subchannel/subchannel-pool.js';
import type { Subchannel } from '../../../src/subchannel/subchannel.js';
import { seededRandom } from '../../helpers/fake-clock.js';
import { testSubchannelPool } from '../../helpers/subchannel-pool.js';

const N = 10_000;
const CHURN = N / 100;

const endpointAt = (i: number): Endpoint =>
  createEndpoint({
    host: `127.0.${1 + Math.floor(i / 60_000)}.${1 + (i % 250)}`,
    port: 1 + (Math.floor(i / 250) % 240),
  });

function makePool(onMembershipChange: () => void): SubchannelPool {
  return testSubchannelPool({ onMembershipChange });
}

/** A resolver's view: keeps its endpoint objects and replaces the oldest 1 % at each update. */
function churner(): { set: Endpoint[]; next(): Endpoint[] } {
  let n = 0;
  const state = { set: Array.from({ length: N }, () => endpointAt(n++)) };
  return {
    get set() {
      return state.set;
    },
    next() {
      state.set = state.set.slice(CHURN);
      for (let i = 0; i < CHURN; i++) state.set.push(endpointAt(n++));
      return state.set;
    },
  };
}

describe('a 1 % update of 10,000 endpoints', () => {
  it('validates only the new endpoints, makes 100 subchannels and no pool, and rebuilds once', () => {
    let rebuilds = 0;
    const pool = makePool(() => rebuilds++);
    const source = churner();
    const first = pool.validate(source.set);
    pool.update(first.endpoints, first.sources);
    assert.equal(rebuilds, 1);
    const before = new Set(pool.subchannels);

    const set = source.next();
    const validated = pool.validate(set);
    let passedThrough = 0;
    for (let i = 0; i < set.length; i++) if (validated.endpoints[i] === set[i]) passedThrough++;
    // The 9,900 kept are the very objects the pool already holds; the 100 new ones are validated copies.
    const held = new Set(pool.subchannels.map((s) => s.endpoint));
    let reused = 0;
    for (const e of validated.endpoints) if (held.has(e)) reused++;
    assert.equal(reused, N - CHURN);
    assert.ok(passedThrough <= N);
    pool.update(validated.endpoints, validated.sources);
    assert.equal(rebuilds, 2, 'one membership change per update');
    const after = pool.subchannels;
    assert.equal(after.length, N);
    const created = after.filter((s) => !before.has(s));
    assert.equal(created.length, CHURN);
    // The removed never made a connection pool: closed within the update, nothing left draining.
    const kept = new Set(after);
    const removed = [...before].filter((s) => !kept.has(s));
    assert.equal(removed.length, CHURN);
    assert.ok(removed.every((s) => s.state === 'closed'));
    assert.equal(pool.draining.size, 0);
    assert.equal(
      after.filter((s: Subchannel) => s.hasPool).length,
      0,
      'no subchannel has a connection pool before its first pick',
    );

    // The same set again, even as a new array: nothing changes, nothing is rebuilt.
    const again = pool.validate([...set]);
    pool.update(again.endpoints, again.sources);
    assert.equal(rebuilds, 2);
    void pool.destroy();
  });

  it('leaves out a duplicate key among unchanged, and among new, endpoints, and reports it', () => {
    const pool = makePool(() => {});
    const source = churner();
    const v = pool.validate(source.set);
    pool.update(v.endpoints, v.sources);
    const old = source.set[5] as Endpoint;
    let r = pool.validate([...source.set, createEndpoint(old)]);
    assert.deepEqual(
      r.rejected.map((e) => e.code),
      ['SIDECARLESS_DUPLICATE_ENDPOINT'],
    );
    assert.equal(r.endpoints.length, source.set.length, 'the first of the two is kept, the rest of the set too');
    const fresh = endpointAt(N + 1);
    r = pool.validate([...source.set, fresh, createEndpoint(fresh)]);
    assert.deepEqual(
      r.rejected.map((e) => e.code),
      ['SIDECARLESS_DUPLICATE_ENDPOINT'],
    );
    assert.equal(r.endpoints.length, source.set.length + 1);
    // A failed validation leaves the next one unaffected.
    const ok = pool.validate(source.set);
    assert.equal(ok.endpoints.length, N);
    void pool.destroy();
  });

  it('leaves garbage for the change and a few arrays, not per unchanged endpoint', () => {
    const pool = makePool(() => {});
    const source = churner();
    const v = pool.validate(source.set);
    pool.update(v.endpoints, v.sources);
    const bytes = bytesPerCall(
      (calls) => {
        for (let c = 0; c < calls; c++) {
          const set = source.next();
          const next = pool.validate(set);
          pool.update(next.endpoints, next.sources);
        }
        return pool.subchannels.length;
      },
      5,
      3,
    );
    // Per update, per endpoint, on Node 20: the resolver's side (its new array) about 25 bytes, the pool's arrays
    // and the 100 new endpoints and subchannels about 110. Validating every endpoint again costs about 330 bytes an
    // endpoint (`createEndpointSet`), a new key map about 90: either would break this bound.
    const perEndpoint = bytes / N;
    assert.ok(perEndpoint < 200, `${perEndpoint.toFixed(1)} bytes per endpoint per update`);
    void pool.destroy();
  });

  it('builds the picker once, over the population itself when every endpoint is usable and eligible', () => {
    const groups: (readonly Pickable[])[] = [];
    const counting: PickerPolicy<Record<string, never>> = {
      name: 'counting',
      parseConfig: () => ({}),
      build<T extends Pickable>(targets: readonly T[], config: Record<string, never>, env: never): Picker<T> {
        groups.push(targets);
        return roundRobinPolicy.build(targets, config, env);
      },
    };
    const balancer = new Balancer<Subchannel>({
      cluster: 'c',
      policy: { policy: counting as PickerPolicy<unknown>, config: {} },
      environment: { clock: systemClock, random: seededRandom(2) },
      random: seededRandom(3),
      zone: undefined,
      panicThreshold: 50,
      eligible: () => {
        throw new Error('not asked when every endpoint is eligible');
      },
      allEligible: () => true,
      weightFactor: () => 1,
      onPanic: () => {},
    });
    const pool = makePool(() => {});
    const v = pool.validate(churner().set);
    pool.update(v.endpoints, v.sources);
    balancer.rebuild(pool.subchannels);
    assert.equal(groups.length, 1);
    assert.equal(groups[0], pool.subchannels, 'no filtered copy of 10,000 endpoints');
    void pool.destroy();
  });
});
