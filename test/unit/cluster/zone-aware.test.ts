import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, type ClusterOptions } from '../../../src/cluster/cluster.js';

describe('zoneAware option validation', () => {
  const bad: Array<[string, unknown, string]> = [
    ['callers not an object', { localZone: 'a', callers: 3 }, 'zoneAware.callers'],
    ['negative caller count', { localZone: 'a', callers: { a: 1, b: -1 } }, 'zoneAware.callers.b'],
    ['no callers in the local zone', { localZone: 'a', callers: { b: 1 } }, 'zoneAware.callers.a'],
    ['unknown key', { localZone: 'a', localShare: 0.5 }, 'zoneAware.localShare'],
  ];
  for (const [name, zoneAware, option] of bad) {
    it(name, () => {
      assert.throws(() => new Cluster('svc', { target: [], zoneAware } as ClusterOptions), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option,
      });
    });
  }
  it('accepts callers per zone', async () => {
    const cluster = new Cluster('svc', { target: [], zoneAware: { localZone: 'a', callers: { a: 2, b: 6 } } });
    await cluster.destroy();
  });
});
