// Which endpoints a policy may pick, through the whole client against real backends on loopback: an endpoint that
// refuses connections (transient-failure) and an ejected one get no attempt from any policy while ready endpoints
// remain; when no endpoint is ready, the cluster deliberately sends to them all. The clock is fake, so connection
// backoff and ejection never expire during a test.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { createClient, type PickMessage } from '../../src/index.js';
import { createPickerRegistry } from '../../src/pickers/registry.js';
import { answer503, backendsForFile } from '../helpers/backends.js';
import { FakeBackgroundClock, seededRandom } from '../helpers/fake-clock.js';

const backend = backendsForFile();

const failing = answer503;

const HASHING = new Set(['ring-hash', 'maglev']);
const policies = createPickerRegistry().names();
const pickerOption = (name: string) => (HASHING.has(name) ? { name, hashKey: { header: 'x-key' } } : name);

/** Endpoint keys of every attempt (`sidecarless:pick`) while `fn` runs. */
async function picksDuring(fn: () => Promise<void>): Promise<string[]> {
  const picks: string[] = [];
  const onPick = (message: unknown) => {
    picks.push((message as PickMessage).endpoint);
  };
  diagnostics.subscribe('sidecarless:pick', onPick);
  try {
    await fn();
  } finally {
    diagnostics.unsubscribe('sidecarless:pick', onPick);
  }
  return picks;
}

/** The `code` of `error` or of anything in its `cause` chain. */
function codes(error: unknown): string[] {
  const out: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

describe('picker eligibility through the client', () => {
  for (const name of policies) {
    it(`${name}: neither a refusing (transient-failure) nor an ejected endpoint gets an attempt while others are ready`, async () => {
      const good = [await backend(`${name}-g1`), await backend(`${name}-g2`), await backend(`${name}-g3`)];
      const bad = await backend(`${name}-bad`, failing);
      const dead = await backend(`${name}-dead`);
      await dead.stop();
      const client = createClient({
        target: [...good, bad, dead].map((b) => b.address),
        picker: pickerOption(name),
        clock: new FakeBackgroundClock(), // retry waits in real time
        random: seededRandom(11),
        panicThreshold: 0,
        outlierDetection: { maxEjectionPercent: 50 },
        retry: { backoff: { initialMs: 1, maxMs: 1 } },
      });
      const endpoint = (key: string) => client.stats().clusters[0]?.endpoints.find((e) => e.key === key);
      try {
        // Until the dead endpoint has refused a connection and the bad one has answered five 503s in a row (keys
        // vary, so the hashing policies reach both too).
        for (let i = 0; i < 400; i++) {
          if (endpoint(dead.address)?.state === 'transient-failure' && endpoint(bad.address)?.ejected === true) break;
          const res = await client.fetch('http://svc/', { headers: { 'x-key': `warm-${i}` } });
          await res.arrayBuffer();
        }
        assert.equal(endpoint(dead.address)?.state, 'transient-failure', 'the dead endpoint is in backoff');
        assert.equal(endpoint(bad.address)?.ejected, true, 'the failing endpoint is ejected');
        for (const g of good) assert.equal(endpoint(g.address)?.ejected, false);
        const attemptsBefore = [endpoint(dead.address)?.attempts, endpoint(bad.address)?.attempts];
        const badHits = bad.hits;

        const answers: string[] = [];
        const picks = await picksDuring(async () => {
          for (let i = 0; i < 150; i++) {
            const res = await client.fetch('http://svc/', { headers: { 'x-key': `key-${i}` } });
            await res.arrayBuffer();
            answers.push(`${res.status} ${res.headers.get('x-backend')}`);
          }
        });
        const goodIds = new Set(good.map((g) => `200 ${g.id}`));
        assert.deepEqual(
          answers.filter((a) => !goodIds.has(a)),
          [],
          'every request answered by a ready endpoint',
        );
        assert.equal(picks.length, 150, 'one attempt per request: nothing failed, nothing retried');
        assert.deepEqual(
          picks.filter((k) => k === dead.address || k === bad.address),
          [],
          'no attempt went to the dead or the ejected endpoint',
        );
        assert.deepEqual([endpoint(dead.address)?.attempts, endpoint(bad.address)?.attempts], attemptsBefore);
        assert.equal(bad.hits, badHits);
        if (name !== 'peak-ewma') {
          // Spread, not one survivor taking every key (for the hashing policies: the moved keys spread too). Not
          // asked of peak-ewma, which may rightly settle on the two fastest.
          assert.equal(new Set(answers).size, 3, `answers: ${[...new Set(answers)].join(', ')}`);
        }
      } finally {
        await client.close();
      }
    });
  }

  // The exception, by design (cluster.ts, where the picker is rebuilt): with no endpoint ready the snapshot holds
  // them all, so requests keep trying and callers see the real connection error instead of waiting behind backoff
  // timers; an endpoint that comes back is found at once.
  for (const name of policies) {
    // A timeout, since without the fallback a request would wait for a backoff timer that the fake clock never fires.
    it(
      `${name}: when every endpoint is in transient-failure, requests go to them all and find one that returns`,
      { timeout: 30_000 },
      async () => {
        const a = await backend(`${name}-a`);
        const b = await backend(`${name}-b`);
        await a.stop();
        await b.stop();
        const client = createClient({
          target: [a.address, b.address],
          picker: pickerOption(name),
          clock: new FakeBackgroundClock(), // retry waits in real time
          random: seededRandom(5),
          outlierDetection: false,
          retry: { backoff: { initialMs: 1, maxMs: 1 } },
        });
        const state = (key: string) => client.stats().clusters[0]?.endpoints.find((e) => e.key === key)?.state;
        const get = (i: number) => client.fetch('http://svc/', { headers: { 'x-key': `k${i}` } });
        try {
          for (
            let i = 0;
            i < 20 && (state(a.address) !== 'transient-failure' || state(b.address) !== 'transient-failure');
            i++
          ) {
            await get(i).then(
              (res) => res.arrayBuffer(),
              () => undefined,
            );
          }
          assert.deepEqual([state(a.address), state(b.address)], ['transient-failure', 'transient-failure']);

          let failure: unknown;
          const picks = await picksDuring(async () => {
            failure = await get(100).then(
              () => undefined,
              (error: unknown) => error,
            );
          });
          assert.ok(picks.length >= 1, 'the request was attempted, not parked until a backoff expires');
          assert.ok(
            picks.every((k) => k === a.address || k === b.address),
            picks.join(),
          );
          assert.ok(codes(failure).includes('ECONNREFUSED'), `the caller sees the connection error: ${codes(failure)}`);

          await b.restart();
          assert.equal(state(b.address), 'transient-failure', 'still in backoff: only the fallback can reach it');
          const seen: string[] = [];
          for (let i = 0; i < 10; i++) {
            const res = await get(200 + i);
            await res.arrayBuffer();
            seen.push(`${res.status} ${res.headers.get('x-backend')}`);
          }
          assert.deepEqual(new Set(seen), new Set([`200 ${b.id}`]));
        } finally {
          await client.close();
        }
      },
    );
  }
});

describe('a custom picker whose pick() throws', () => {
  it('fails the request with its error, whether the request was waiting for the first endpoint set or not', async () => {
    const b = await backend('pick-throws');
    const pickers = createPickerRegistry().register({
      name: 'throws',
      parseConfig: () => ({}),
      build: () => ({
        pick() {
          throw new Error('pick bug');
        },
      }),
    });
    for (const waiting of [true, false]) {
      const client = createClient({ target: [b.address], picker: 'throws', pickers, timeoutMs: 0 });
      try {
        if (!waiting) await client.ready();
        // Before the first set, the request waits in the queue and the pick happens when the set arrives.
        const err = await client.fetch('http://svc/').then(
          () => assert.fail('no endpoint could be picked'),
          (e: unknown) => e,
        );
        assert.equal(((err as Error).cause as Error | undefined)?.message, 'pick bug', `waiting: ${waiting}`);
        assert.equal(client.stats().clusters[0]?.inFlight, 0);
        assert.equal(client.stats().clusters[0]?.pending, 0);
      } finally {
        await client.destroy();
      }
    }
  });

  it('what a policy throws or fails with need not be an Error: a prototype-less object, a string, a throwing build', async () => {
    const b = await backend('pick-odd');
    const pickers = createPickerRegistry()
      .register({
        name: 'throws-bare',
        parseConfig: () => ({}),
        build: () => ({
          pick() {
            throw Object.create(null);
          },
        }),
      })
      .register({
        name: 'fails-string',
        parseConfig: () => ({}),
        build: () => ({ pick: () => ({ type: 'fail', error: 'maintenance' }) as never }),
      })
      .register({
        name: 'build-throws',
        parseConfig: () => ({}),
        build: () => {
          throw new Error('build bug');
        },
      });
    for (const [picker, message] of [
      ['throws-bare', 'a value that cannot be described'],
      ['fails-string', 'maintenance'],
      ['build-throws', 'build bug'],
    ] as const) {
      const client = createClient({ target: [b.address], picker, pickers, timeoutMs: 0 });
      try {
        const err = await client.fetch('http://svc/').then(
          () => assert.fail('no endpoint could be picked'),
          (e: unknown) => e,
        );
        assert.equal(((err as Error).cause as Error | undefined)?.message, message, picker);
        assert.equal(client.stats().clusters[0]?.inFlight, 0);
      } finally {
        await client.destroy();
      }
    }
  });
});

describe('a custom picker whose pick() returns a malformed result', () => {
  it(
    'fails the request with SIDECARLESS_PICKER_FAILED and releases its slot, waiting for the first set or not',
    { timeout: 20_000 },
    async () => {
      const b = await backend('pick-malformed');
      const stranger = { key: b.address, endpoint: { host: '127.0.0.1', port: 1 }, inFlight: 0 };
      const pickers = createPickerRegistry()
        .register({ name: 'nully', parseConfig: () => ({}), build: () => ({ pick: () => null as never }) })
        .register({
          name: 'stranger',
          parseConfig: () => ({}),
          build: () => ({ pick: () => ({ type: 'complete', target: stranger }) as never }),
        });
      for (const picker of ['nully', 'stranger']) {
        for (const waiting of [true, false]) {
          const client = createClient({ target: [b.address], picker, pickers, timeoutMs: 0 });
          try {
            if (!waiting) await client.ready();
            for (let i = 0; i < 2; i++) {
              const err = await client.fetch('http://svc/').then(
                () => assert.fail('no endpoint could be picked'),
                (e: unknown) => e,
              );
              assert.deepEqual(codes(err).slice(-1), ['SIDECARLESS_PICKER_FAILED'], `${picker}, waiting: ${waiting}`);
            }
            assert.equal(client.stats().clusters[0]?.inFlight, 0);
            assert.equal(client.stats().clusters[0]?.pending, 0);
          } finally {
            await client.close();
          }
        }
      }
    },
  );
});
