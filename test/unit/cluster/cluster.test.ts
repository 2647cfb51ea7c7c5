import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster } from '../../../src/cluster/cluster.js';
import { StaticResolver } from '../../../src/resolvers/static.js';

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

describe('a static endpoint list at start', () => {
  const A = '127.0.0.1:1';
  const B = '127.0.0.1:2';
  /** Lets the resolver's own (later) delivery happen. */
  const tick = () => new Promise((resolve) => setImmediate(resolve));

  for (const [kind, target] of [
    ['an endpoint list', () => [A, B]],
    ['a static: target', () => `static://${A},${B}`],
    ['a StaticResolver', () => new StaticResolver([A, B])],
  ] as const) {
    it(`is in force when start() returns, for ${kind}, and is applied once`, async () => {
      const cluster = new Cluster('svc', { target: target() });
      try {
        cluster.start();
        assert.equal(cluster.resolved, true);
        assert.deepEqual(
          cluster.endpoints.map((e) => e.key),
          [A, B],
        );
        await tick();
        assert.equal(cluster.stats().resolver.updates, 1, "the resolver's delivery of the same list is dropped");
        assert.deepEqual(
          cluster.endpoints.map((e) => e.key),
          [A, B],
        );
      } finally {
        await cluster.destroy();
      }
    });
  }

  it('applies a list given to update() before the resolver delivered its first one', async () => {
    const resolver = new StaticResolver([A]);
    const cluster = new Cluster('svc', { target: resolver });
    try {
      cluster.start();
      resolver.update([B]);
      assert.deepEqual(
        cluster.endpoints.map((e) => e.key),
        [A],
      );
      await tick();
      assert.deepEqual(
        cluster.endpoints.map((e) => e.key),
        [B],
      );
    } finally {
      await cluster.destroy();
    }
  });

  it('leaves a subclass to its own start()', async () => {
    class Later extends StaticResolver {}
    const cluster = new Cluster('svc', { target: new Later([A]) });
    try {
      cluster.start();
      assert.equal(cluster.resolved, false);
      await tick();
      assert.equal(cluster.resolved, true);
    } finally {
      await cluster.destroy();
    }
  });
});
