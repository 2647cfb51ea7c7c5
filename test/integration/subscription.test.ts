// The handle `client.onHealthEvent` returns: a `Subscription` (formerly named `Disposable`, which shadowed the
// global of TypeScript's lib) that is also a real `Disposable`, so `using` removes the listener at the end of its
// scope. Through the package entry, against real backends on loopback; outlier timers on a fake clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient, type Disposable, type HealthEvent, type Subscription } from 'sidecarless';
import { answer503, backendsForFile } from '../helpers/backends.js';
import { FakeBackgroundClock } from '../helpers/fake-clock.js';

const backend = backendsForFile();

describe('Subscription (client.onHealthEvent)', () => {
  it('is a Disposable: `using` removes the listener at the end of its scope, like dispose()', async () => {
    const bad = await backend('sub-bad', answer503);
    const good = [await backend('sub-g1'), await backend('sub-g2')];
    const clock = new FakeBackgroundClock();
    const client = createClient({
      target: [bad.address, ...good.map((b) => b.address)],
      clock,
      random: () => 0,
      panicThreshold: 0,
      outlierDetection: { maxEjectionPercent: 50 },
    });
    const kept: HealthEvent[] = [];
    const scoped: HealthEvent[] = [];
    const disposedByHand: HealthEvent[] = [];
    const keep = client.onHealthEvent((e) => kept.push(e));
    try {
      {
        using sub = client.onHealthEvent((e) => scoped.push(e));
        assert.equal(typeof sub[Symbol.dispose], 'function');
        const global: globalThis.Disposable = sub; // the lib's Disposable: what `using` needs
        assert.equal(global, sub);
      }
      const byHand: Subscription = client.onHealthEvent((e) => disposedByHand.push(e));
      byHand.dispose();
      byHand[Symbol.dispose](); // a second removal does nothing
      const legacy: Disposable = keep; // the deprecated name still types the same handle
      assert.equal(legacy, keep);
      for (let i = 0; i < 30; i++) {
        const res = await client.fetch('http://svc/');
        await res.arrayBuffer();
      }
      clock.advance(40_000);
      assert.deepEqual(
        kept.map((e) => [e.type, e.endpoint.key]),
        [
          ['eject', bad.address],
          ['return', bad.address],
        ],
      );
      assert.deepEqual(scoped, [], 'the `using` subscription was removed when its block ended');
      assert.deepEqual(disposedByHand, []);
    } finally {
      keep.dispose();
      await client.close();
    }
  });
});
