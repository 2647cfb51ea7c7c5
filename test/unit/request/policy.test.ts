import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createClient, isSidecarlessError } from '../../../src/index.js';
import {
  bodyReplay,
  isIdempotent,
  parseRetryAfter,
  resolveRequestPolicy,
  retryWait,
} from '../../../src/request/policy.js';
import { RecordedBody } from '../../../src/request/recorded-body.js';
import { RetryBudget } from '../../../src/request/retry-budget.js';
import { FakeClock } from '../../helpers/fake-clock.js';

describe('request policy', () => {
  it('has Envoy/Finagle defaults', () => {
    const p = resolveRequestPolicy({});
    assert.equal(p.maxAttempts, 3);
    assert.deepEqual([...p.retryOn], [502, 503, 504]);
    assert.deepEqual(p.budget, { percent: 20, minRetriesPerSecond: 10, windowMs: 10_000 });
    assert.equal(p.maxInFlight, 1024);
    assert.equal(p.maxPending, 1024);
    assert.equal(p.breaker, undefined);
    assert.equal(p.hedge, undefined);
    assert.equal(p.bufferBodyBytes, 65_536);
    assert.equal(resolveRequestPolicy({ retry: { bufferBody: 0 } }).bufferBodyBytes, 0);
    assert.equal(resolveRequestPolicy({ retry: false }).maxAttempts, 1);
  });

  const bad: Array<[string, Parameters<typeof createClient>[0], string]> = [
    ['maxAttempts above the cap', { target: ['a:1'], retry: { maxAttempts: 6 } }, 'retry.maxAttempts'],
    ['maxAttempts 0', { target: ['a:1'], retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
    ['retryOn not statuses', { target: ['a:1'], retry: { retryOn: [700] } }, 'retry.retryOn'],
    ['negative perTryTimeout', { target: ['a:1'], retry: { perTryTimeout: -1 } }, 'retry.perTryTimeout'],
    [
      'backoffMax below backoffInitial',
      { target: ['a:1'], retry: { backoffInitial: 50, backoffMax: 10 } },
      'retry.backoffMax',
    ],
    ['unknown retry key', { target: ['a:1'], retry: { tries: 2 } as never }, 'retry.tries'],
    ['negative bufferBody', { target: ['a:1'], retry: { bufferBody: -1 } }, 'retry.bufferBody'],
    ['fractional bufferBody', { target: ['a:1'], retry: { bufferBody: 1.5 } }, 'retry.bufferBody'],
    ['bufferBody above 1 GiB', { target: ['a:1'], retry: { bufferBody: 2 ** 31 } }, 'retry.bufferBody'],
    ['bufferBody not a number', { target: ['a:1'], retry: { bufferBody: '64k' as never } }, 'retry.bufferBody'],
    ['budget percent above 100', { target: ['a:1'], retryBudget: { percent: 120 } }, 'retryBudget.percent'],
    ['hedge without delay', { target: ['a:1'], hedge: {} as never }, 'hedge.delay'],
    ['too many hedges', { target: ['a:1'], hedge: { delay: 10, maxHedges: 9 } }, 'hedge.maxHedges'],
    ['zero maxInFlight', { target: ['a:1'], limits: { maxInFlight: 0 } }, 'limits.maxInFlight'],
    ['negative timeout', { target: ['a:1'], timeout: -5 }, 'timeout'],
    [
      'breaker threshold 0',
      { target: ['a:1'], breaker: { errorThresholdPercentage: 0 } },
      'breaker.errorThresholdPercentage',
    ],
    ['breaker fallback not a function', { target: ['a:1'], breaker: { fallback: 'x' as never } }, 'breaker.fallback'],
    ['tls cert without key', { target: ['a:1'], tls: { cert: 'x' } }, 'tls.key'],
    ['unknown tls key', { target: ['a:1'], tls: { verify: false } as never }, 'tls.verify'],
  ];
  for (const [name, options, option] of bad) {
    it(`rejects ${name} at construction, naming ${option}`, () => {
      assert.throws(
        () => createClient(options),
        (err: unknown) =>
          isSidecarlessError(err) &&
          err.code === 'SIDECARLESS_INVALID_OPTION' &&
          (err as { option?: string }).option === option,
      );
    });
  }

  it('knows idempotent methods and replayable bodies', () => {
    for (const m of ['GET', 'head', 'PUT', 'DELETE', 'OPTIONS']) assert.ok(isIdempotent(m), m);
    for (const m of ['POST', 'PATCH', 'CONNECT']) assert.ok(!isIdempotent(m), m);
    assert.equal(bodyReplay(undefined), 'none');
    assert.equal(bodyReplay('x'), 'buffered');
    assert.equal(bodyReplay(Buffer.from('x')), 'buffered');
    assert.equal(bodyReplay(new FormData()), 'buffered');
    assert.equal(bodyReplay(Readable.from(['x'])), 'once');
    assert.equal(bodyReplay((async function* () {})()), 'once');
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3', 0), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter('soon', 0), undefined);
    assert.equal(parseRetryAfter(undefined, 0), undefined);
  });
});

describe('retry waits', () => {
  const policy = { backoffInitialMs: 25, backoffMaxMs: 250 };
  it('back off exponentially with jitter in [1, 2) from the injected random, up to backoffMax', () => {
    assert.equal(
      retryWait(policy, 1, () => 0, 0),
      25,
    );
    assert.equal(
      retryWait(policy, 2, () => 0.5, 0),
      75,
    );
    assert.equal(
      retryWait(policy, 3, () => 0.25, 0),
      125,
    );
    assert.equal(
      retryWait(policy, 4, () => 0.5, 0),
      250,
    );
  });
  it('wait the larger of Retry-After and the backoff, on later retries too, never their sum', () => {
    assert.equal(
      retryWait(policy, 1, () => 0, 1000),
      1000,
    );
    assert.equal(
      retryWait(policy, 3, () => 0.5, 1000),
      1000,
    );
    assert.equal(
      retryWait(policy, 3, () => 0.5, 50),
      150,
    );
  });
});

/** A source that yields `chunks`, counting reads and whether it was closed. */
function source(chunks: readonly string[]) {
  const state = { reads: 0, returned: false };
  const iterable: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const value = chunks[state.reads];
        if (value === undefined) return { done: true, value: undefined };
        state.reads++;
        return { done: false, value: Buffer.from(value) };
      },
      return: async () => {
        state.returned = true;
        return { done: true, value: undefined };
      },
    }),
  };
  return { iterable, state };
}

async function readN(body: AsyncIterable<Buffer>, n = Number.POSITIVE_INFINITY): Promise<string> {
  let out = '';
  let i = 0;
  for await (const chunk of body) {
    out += chunk.toString();
    if (++i >= n) break;
  }
  return out;
}

describe('recorded request bodies', () => {
  it('a later reader gets the recorded chunks, then the rest of the source, which is read once', async () => {
    const { iterable, state } = source(['a', 'b', 'c', 'd']);
    const body = new RecordedBody(iterable, 100);
    assert.equal(await readN(body.reader(), 2), 'ab');
    assert.equal(body.replayable, true);
    assert.equal(await readN(body.reader()), 'abcd');
    assert.equal(state.reads, 4);
    assert.equal(await readN(body.reader()), 'abcd', 'replayable as often as needed');
  });

  it('past the limit the reader in progress still gets every chunk, but the body is no longer replayable', async () => {
    const { iterable } = source(['12345', '67890', 'abc']);
    const body = new RecordedBody(iterable, 8);
    assert.equal(await readN(body.reader()), '1234567890abc');
    assert.equal(body.replayable, false);
  });

  it('fails a superseded reader instead of ending it early (which would send a truncated body)', async () => {
    const { iterable } = source(['a', 'b', 'c']);
    const body = new RecordedBody(iterable, 100);
    const old = body.reader()[Symbol.asyncIterator]();
    assert.equal((await old.next()).value?.toString(), 'a');
    const current = body.reader();
    await assert.rejects(old.next(), { name: 'AbortError' });
    assert.equal(await readN(current), 'abc');
  });

  it('a failing source makes the body unreplayable and fails its reader', async () => {
    const iterable: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.reject(new Error('source broke')),
      }),
    };
    const body = new RecordedBody(iterable, 100);
    await assert.rejects(readN(body.reader()), /source broke/);
    assert.equal(body.replayable, false);
  });

  it('close() stops the source and fails a reader still going; a sealed reader that stops early closes it', async () => {
    const first = source(['a', 'b', 'c']);
    const closed = new RecordedBody(first.iterable, 100);
    const reader = closed.reader()[Symbol.asyncIterator]();
    await reader.next();
    closed.close();
    assert.equal(first.state.returned, true);
    await assert.rejects(reader.next(), { name: 'AbortError' });
    const second = source(['a', 'b', 'c']);
    const sealed = new RecordedBody(second.iterable, 100);
    const committed = sealed.reader();
    sealed.seal();
    assert.equal(await readN(committed, 1), 'a');
    assert.equal(second.state.returned, true, 'the committed attempt gave up the body: nobody reads the rest');
  });
});

describe('retry budget', () => {
  it('allows 20 % of requests plus the per-second floor, over a sliding window', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget({ percent: 20, minRetriesPerSecond: 1, windowMs: 10_000 }, clock);
    for (let i = 0; i < 100; i++) budget.deposit();
    let allowed = 0;
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 30); // 0.2 × 100 + 1 × 10 s
    clock.advance(11_000); // the window slides past every deposit and withdrawal
    allowed = 0;
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 10);
  });
  it('with no floor and no requests, allows nothing', () => {
    const budget = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, windowMs: 1000 }, new FakeClock());
    assert.equal(budget.tryWithdraw(), false);
  });
});
