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

  /** A client over one 503 backend and two good ones, ejecting the bad one at its first 503 (round robin, no retry). */
  async function ejecting() {
    const bad = await backend('sub21-bad', answer503);
    const good = [await backend('sub21-g1'), await backend('sub21-g2')];
    const client = createClient({
      target: [bad.address, ...good.map((b) => b.address)],
      clock: new FakeBackgroundClock(),
      picker: 'round-robin',
      retry: false,
      outlierDetection: { consecutive5xx: 1, maxEjectionPercent: 50 },
    });
    const send = async () => {
      const res = await client.fetch('http://svc/');
      await res.arrayBuffer();
      return res.headers.get('x-backend');
    };
    return { bad, client, send };
  }

  it('a listener subscribed while an event is delivered hears the next event, not this one (probe 21: no end)', async () => {
    const { client, send } = await ejecting();
    let calls = 0;
    let late = 0;
    const arm = (): void => {
      const sub = client.onHealthEvent(() => {
        calls++;
        sub.dispose();
        if (calls < 1000) arm(); // bounded: the old code called it for ever, this is where it would stop
      });
    };
    arm();
    client.onHealthEvent(() => void client.onHealthEvent(() => late++));
    try {
      for (let i = 0; i < 3; i++) await send();
      assert.equal(calls, 1, 'the re-arming listener heard the one eject once');
      assert.equal(late, 0, 'a listener added during delivery did not hear it');
    } finally {
      await client.close();
    }
  });

  it('a listener disposed by another during an event does not hear that event (probe 22)', async () => {
    const { client, send } = await ejecting();
    const heard: string[] = [];
    let second: { dispose(): void } | undefined;
    client.onHealthEvent(() => {
      heard.push('first');
      second?.dispose();
    });
    second = client.onHealthEvent(() => heard.push('second'));
    try {
      for (let i = 0; i < 3; i++) await send();
      assert.deepEqual(heard, ['first']);
    } finally {
      await client.close();
    }
  });

  it('the same function subscribed twice is two subscriptions: disposing one leaves the other (probe 21)', async () => {
    const { client, send } = await ejecting();
    const heard: string[] = [];
    const listener = (e: HealthEvent) => heard.push(e.type);
    const first = client.onHealthEvent(listener);
    client.onHealthEvent(listener);
    first.dispose();
    try {
      for (let i = 0; i < 3; i++) await send();
      assert.deepEqual(heard, ['eject']);
    } finally {
      await client.close();
    }
  });

  it('a request sent from an eject listener goes by the new state: never to the endpoint just ejected (probe 21)', async () => {
    const { bad, client, send } = await ejecting();
    const fromListener: Promise<string | null>[] = [];
    client.onHealthEvent((e) => {
      if (e.type === 'eject') for (let i = 0; i < 10; i++) fromListener.push(send());
    });
    try {
      for (let i = 0; i < 3; i++) await send();
      const answered = await Promise.all(fromListener);
      assert.equal(answered.length, 10);
      assert.ok(!answered.includes(bad.id), `answered by ${answered.join(', ')}`);
    } finally {
      await client.close();
    }
  });
});
