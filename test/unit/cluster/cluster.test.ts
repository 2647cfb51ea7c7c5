import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster } from '../../../src/cluster/cluster.js';

describe('Cluster surface', () => {
  it('keeps the request callbacks and settings private', async () => {
    const cluster = new Cluster('svc', { target: ['127.0.0.1:1'] });
    for (const name of [
      'acquire',
      'send',
      'finished',
      'dequeue',
      'policy',
      'budget',
      'random',
      'clock',
      'endpointHeader',
    ]) {
      assert.equal(name in cluster, false, name);
    }
    for (const name of ['start', 'dispatch', 'onHealthEvent', 'stats', 'close', 'destroy', 'whenResolved']) {
      assert.equal(typeof (cluster as unknown as Record<string, unknown>)[name], 'function', name);
    }
    assert.equal(cluster.resolved, false);
    await cluster.destroy();
  });
});
