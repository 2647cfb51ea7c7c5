/**
 * `client.ready()` waits: each call lets go of what it waited on when it settles, so that readiness probes during a
 * discovery outage (every call timing out) do not pile up waiters in the clusters.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cluster } from '../../../src/cluster/cluster.js';
import { ReadyWaits } from '../../../src/client/ready.js';

/** A cluster that never resolves, counting the waits made on it and those given up. */
function unresolved(): { cluster: Cluster; made: number; cancelled: number } {
  const counts = { made: 0, cancelled: 0 };
  const wait = () => {
    counts.made++;
    return { promise: new Promise<void>(() => {}), cancel: () => void counts.cancelled++ };
  };
  const cluster = {
    name: 'svc',
    resolved: false,
    endpoints: [],
    resolverState: undefined,
    whenResolved: wait,
    whenEndpoints: wait,
  } as unknown as Cluster;
  return Object.assign(counts, { cluster });
}

describe('ready() waits', () => {
  for (const minEndpoints of [0, 1]) {
    it(`a call that times out gives up its wait on every cluster (minEndpoints ${minEndpoints})`, async () => {
      const a = unresolved();
      const b = unresolved();
      const waits = new ReadyWaits();
      for (let i = 0; i < 3; i++) {
        await assert.rejects(waits.wait([a.cluster, b.cluster], 5, { minEndpoints }), {
          code: 'SIDECARLESS_NO_ENDPOINTS',
        });
      }
      assert.deepEqual([a.made, a.cancelled, b.made, b.cancelled], [3, 3, 3, 3]);
    });
  }
});
