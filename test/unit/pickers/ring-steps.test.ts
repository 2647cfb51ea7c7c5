/**
 * Ring-hash builds of many endpoints (probe 5, "Scale": 50,000-200,000 endpoints blocked the loop for one step of
 * O(N log N) or O(N) map work): ordering the endpoints by key, finding what the cache lacks and planning its update,
 * and indexing the cache for the ring are bounded steps too. Counted, never timed: the build's own units per step,
 * and the key lookups and insertions (Map get/set calls) each step makes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEndpoint } from '../../../src/common/endpoint.js';
import type { Pickable } from '../../../src/pickers/picker.js';
import { buildRing, RingBuild, type RingHashPicker, ringHashPolicy } from '../../../src/pickers/ring-hash.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const env = { random: seededRandom(1), clock: new FakeClock() };

/** Map get/set calls while `fn` runs. */
function mapOps<R>(fn: () => R): { ops: number; result: R } {
  const { get, set } = Map.prototype;
  let ops = 0;
  Map.prototype.get = function (this: Map<unknown, unknown>, key: unknown) {
    ops++;
    return get.call(this, key);
  };
  Map.prototype.set = function (this: Map<unknown, unknown>, key: unknown, value: unknown) {
    ops++;
    return set.call(this, key, value);
  };
  try {
    const result = fn();
    return { ops, result };
  } finally {
    Map.prototype.get = get;
    Map.prototype.set = set;
  }
}

describe('ring-hash build of 100,000 endpoints in steps', () => {
  it('orders, plans and indexes in bounded steps: no step does work over N at once', () => {
    const n = 100_000;
    // Keys in reverse order, so that ordering them is real work.
    const targets: Pickable[] = Array.from({ length: n }, (_, i) => {
      const endpoint = createEndpoint({
        host: `10.${(n - i) >> 16}.${((n - i) >> 8) & 255}.${(n - i) & 255}`,
        port: 80,
      });
      return { key: endpoint.key, endpoint, inFlight: 0 };
    });
    // One virtual node each: a ring of 100,000 entries (more than is built at once), the per-endpoint work dominant.
    const config = ringHashPolicy.parseConfig({ hashKey: { header: 'x' }, vnodesPerEndpoint: 1 });
    const build = ringHashPolicy.startBuild?.(targets, config, env) as RingBuild<Pickable>;
    let steps = 0;
    let maxOps = 0;
    let maxWork = 0;
    let picker: RingHashPicker<Pickable> | undefined;
    for (; picker === undefined && steps < 100_000; steps++) {
      const before = build.work;
      const { ops, result } = mapOps(() => build.step(4096));
      picker = result;
      maxOps = Math.max(maxOps, ops);
      maxWork = Math.max(maxWork, build.work - before);
    }
    assert.ok(picker !== undefined);
    // One budget, plus one fixed-size piece (a 65,536-entry prefix sum or one large allocation) and the passes over
    // arrays of N numbers when the ordering is done (an eighth of an entry each).
    assert.ok(maxWork <= 4096 + 65_536 + n / 8, `${maxWork} units in one step`);
    // A key lookup or insertion counts 8 units: 512 a step, however many endpoints.
    assert.ok(maxOps <= 4096 / 8 + 1, `${maxOps} key lookups in one step`);
    const keys = targets.map((t) => t.key).sort();
    const reference = buildRing(keys, new Uint32Array(n).fill(1));
    assert.deepEqual(picker.hashes, reference.hashes);
    assert.deepEqual(
      Array.from(picker.owners, (o) => picker.targets[o]?.key),
      Array.from(reference.owners, (o) => keys[o]),
    );
  });
});
