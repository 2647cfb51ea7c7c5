import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { Backoff } from '../../../src/common/backoff.js';
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
import { HOLDS_READ_AHEAD } from '../../../src/subchannel/http2-request.js';
import { FakeClock } from '../../helpers/fake-clock.js';

describe('request policy', () => {
  it('has Envoy/Finagle defaults', () => {
    const p = resolveRequestPolicy({});
    assert.equal(p.maxAttempts, 3);
    assert.deepEqual([...p.retryOn], [502, 503, 504]);
    assert.deepEqual(
      [...p.retryStatus.keys()].filter((s) => p.retryStatus[s] === 1),
      [502, 503, 504],
      'the table read on each response says the same',
    );
    const custom = resolveRequestPolicy({ retry: { retryOn: [100, 429, 599] } }).retryStatus;
    assert.deepEqual(
      [...custom.keys()].filter((s) => custom[s] === 1),
      [100, 429, 599],
    );
    assert.deepEqual(p.budget, { percent: 20, minRetriesPerSecond: 10, windowMs: 10_000 });
    assert.equal(p.maxInFlight, 1024);
    assert.equal(p.maxPending, 1024);
    assert.equal(p.breaker, undefined);
    assert.equal(p.hedge, undefined);
    assert.equal(p.bufferBodyBytes, 65_536);
    assert.equal(p.timeoutMs, 15_000); // Envoy's route timeout (issue 15.13)
    assert.equal(p.perTryTimeoutMs, 0);
    assert.equal(p.maxRetryAfterMs, 10_000);
    assert.deepEqual(p.backoff, { initialMs: 25, multiplier: 2, jitter: 0.2, maxMs: 250 });
    assert.equal(resolveRequestPolicy({ retry: { backoff: { initialMs: 400 } } }).backoff.maxMs, 400, 'cap follows');
    assert.deepEqual(resolveRequestPolicy({ breaker: true }).breaker, {
      errorThresholdPercentage: 50,
      volumeThreshold: 20,
      resetTimeoutMs: 30_000,
      rollingCountTimeoutMs: 10_000,
      fallback: undefined,
    });
    assert.equal(resolveRequestPolicy({ retry: { bufferBody: 0 } }).bufferBodyBytes, 0);
    assert.equal(resolveRequestPolicy({ retry: false }).maxAttempts, 1);
  });

  const bad: Array<[string, Parameters<typeof createClient>[0], string]> = [
    ['maxAttempts above the cap', { target: ['a:1'], retry: { maxAttempts: 6 } }, 'retry.maxAttempts'],
    ['maxAttempts 0', { target: ['a:1'], retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
    ['retryOn not statuses', { target: ['a:1'], retry: { retryOn: [700] } }, 'retry.retryOn'],
    ['negative perTryTimeoutMs', { target: ['a:1'], retry: { perTryTimeoutMs: -1 } }, 'retry.perTryTimeoutMs'],
    [
      'backoff.maxMs below backoff.initialMs',
      { target: ['a:1'], retry: { backoff: { initialMs: 50, maxMs: 10 } } },
      'retry.backoff.maxMs',
    ],
    ['backoff jitter of 1', { target: ['a:1'], retry: { backoff: { jitter: 1 } } }, 'retry.backoff.jitter'],
    ['unknown backoff key', { target: ['a:1'], retry: { backoff: { min: 1 } as never } }, 'retry.backoff.min'],
    ['negative maxRetryAfterMs', { target: ['a:1'], retry: { maxRetryAfterMs: -1 } }, 'retry.maxRetryAfterMs'],
    ['unknown retry key', { target: ['a:1'], retry: { tries: 2 } as never }, 'retry.tries'],
    ['negative bufferBody', { target: ['a:1'], retry: { bufferBody: -1 } }, 'retry.bufferBody'],
    ['fractional bufferBody', { target: ['a:1'], retry: { bufferBody: 1.5 } }, 'retry.bufferBody'],
    ['bufferBody above 1 GiB', { target: ['a:1'], retry: { bufferBody: 2 ** 31 } }, 'retry.bufferBody'],
    ['bufferBody not a number', { target: ['a:1'], retry: { bufferBody: '64k' as never } }, 'retry.bufferBody'],
    ['budget percent above 100', { target: ['a:1'], retryBudget: { percent: 120 } }, 'retryBudget.percent'],
    ['hedge without delayMs', { target: ['a:1'], hedge: {} as never }, 'hedge.delayMs'],
    ['too many hedges', { target: ['a:1'], hedge: { delayMs: 10, maxHedges: 9 } }, 'hedge.maxHedges'],
    ['zero maxInFlight', { target: ['a:1'], limits: { maxInFlight: 0 } }, 'limits.maxInFlight'],
    ['negative timeoutMs', { target: ['a:1'], timeoutMs: -5 }, 'timeoutMs'],
    ['breaker resetTimeoutMs 0', { target: ['a:1'], breaker: { resetTimeoutMs: 0 } }, 'breaker.resetTimeoutMs'],
    [
      'breaker window under 10 ms',
      { target: ['a:1'], breaker: { rollingCountTimeoutMs: 5 } },
      'breaker.rollingCountTimeoutMs',
    ],
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

  const renamed: Array<[Parameters<typeof resolveRequestPolicy>[0], string, string]> = [
    [{ retry: { perTryTimeout: 100 } as never }, 'retry.perTryTimeout', 'perTryTimeoutMs'],
    [{ retry: { backoffInitial: 10 } as never }, 'retry.backoffInitial', 'backoff.initialMs'],
    [{ retry: { backoffMax: 10 } as never }, 'retry.backoffMax', 'backoff.maxMs'],
    [{ retry: { maxRetryAfter: 10 } as never }, 'retry.maxRetryAfter', 'maxRetryAfterMs'],
    [{ hedge: { delay: 10 } as never }, 'hedge.delay', 'delayMs'],
    [{ breaker: { resetTimeout: 10 } as never }, 'breaker.resetTimeout', 'resetTimeoutMs'],
    [{ breaker: { rollingCountTimeout: 10 } as never }, 'breaker.rollingCountTimeout', 'rollingCountTimeoutMs'],
  ];
  for (const [options, option, now] of renamed) {
    it(`refuses the 0.1 name ${option}, naming its new name`, () => {
      const check = (err: unknown) =>
        isSidecarlessError(err) &&
        (err as { option?: string }).option === option &&
        err.message.includes(`renamed to "${now}"`);
      assert.throws(() => resolveRequestPolicy(options), check);
      assert.throws(() => createClient({ target: ['a:1'], ...options }), check, 'through the client too');
    });
  }

  it('names a bad option by its full path under the cluster it belongs to', () => {
    assert.throws(
      () => resolveRequestPolicy({ retry: { perTryTimeoutMs: -1 } }, 'clusters.users'),
      (err: unknown) =>
        isSidecarlessError(err) && (err as { option?: string }).option === 'clusters.users.retry.perTryTimeoutMs',
    );
  });

  it('knows idempotent methods and replayable bodies', () => {
    for (const m of ['GET', 'head', 'PUT', 'DELETE', 'OPTIONS']) assert.ok(isIdempotent(m), m);
    for (const m of ['POST', 'PATCH', 'CONNECT']) assert.ok(!isIdempotent(m), m);
    assert.equal(bodyReplay(undefined), 'none');
    assert.equal(bodyReplay('x'), 'buffered');
    assert.equal(bodyReplay(Buffer.from('x')), 'buffered');
    assert.equal(bodyReplay(new FormData()), 'buffered');
    for (const view of [new Int8Array(2), new DataView(new ArrayBuffer(2)), new Float64Array(1), new ArrayBuffer(2)]) {
      assert.equal(bodyReplay(view), 'buffered', Object.prototype.toString.call(view));
    }
    assert.equal(bodyReplay(Readable.from(['x'])), 'once');
    assert.equal(bodyReplay((async function* () {})()), 'once');
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3', 0), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter('soon', 0), undefined);
    assert.equal(parseRetryAfter(undefined, 0), undefined);
  });

  it('reads the three HTTP-date forms of RFC 9110 as GMT, and nothing else as a date', () => {
    const now = Date.UTC(1994, 10, 6, 8, 49, 0);
    for (const date of [
      'Sun, 06 Nov 1994 08:49:37 GMT',
      'Sunday, 06-Nov-94 08:49:37 GMT',
      'Sun Nov  6 08:49:37 1994',
    ]) {
      assert.equal(parseRetryAfter(date, now), 37_000, date);
    }
    // What Date.parse accepts but is no HTTP-date: ignored (the response then goes as if it had no Retry-After).
    for (const bad of [
      'Mon 2099',
      'x 2099',
      '2099-01-01',
      'Sun, 31 Feb 2099 08:49:37 GMT',
      'Sun, 06 Nov 2099 25:49:37 GMT',
      'Sun, 06 Nov 2099 08:49:37 PST',
      '-5',
      '1.5',
    ]) {
      assert.equal(parseRetryAfter(bad, now), undefined, bad);
    }
    // A two-digit year more than 50 years ahead is in the previous century; the past is a wait of 0.
    assert.equal(parseRetryAfter('Friday, 01-Jan-99 00:00:00 GMT', Date.UTC(2026, 0, 1)), 0);
    assert.equal(
      parseRetryAfter('Friday, 01-Jan-27 00:00:00 GMT', Date.UTC(2026, 0, 1)),
      Date.UTC(2027, 0, 1) - Date.UTC(2026, 0, 1),
    );
  });
});

describe('retry waits', () => {
  const options = resolveRequestPolicy({}).backoff;
  /** The default retry backoff with every draw from `random` at `r` (r = 0.5: no jitter; 0: -20 %; 1: +20 %). */
  const backoff = (r: number) => new Backoff(options, () => r);
  it('back off exponentially from 25 ms, ×2, ±20 % from the injected random, up to 250 ms before jitter', () => {
    const mid = backoff(0.5);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => retryWait(mid, 0)),
      [25, 50, 100, 200, 250],
    );
    const low = backoff(0);
    assert.deepEqual(
      [1, 2].map(() => retryWait(low, 0)),
      [20, 40],
    );
  });
  it('wait the larger of Retry-After and the backoff, on later retries too, never their sum', () => {
    const b = backoff(0.5);
    assert.equal(retryWait(b, 1000), 1000);
    assert.equal(retryWait(b, 1000), 1000);
    assert.equal(retryWait(b, 50), 100, 'the backoff kept growing under the Retry-After waits');
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

  it('a read-ahead held whole over the limit is replayable only for an attempt not processed (probe 18)', async () => {
    for (const [limit, ordinary] of [
      [8, false],
      [100, true],
    ] as const) {
      const { iterable } = source(['12345', '67890', 'abc']);
      const body = new RecordedBody(iterable, limit);
      const reader = body.reader();
      const whole = Buffer.from(await readN(reader));
      reader[HOLDS_READ_AHEAD](whole);
      // Before the fix, the held body was replayable for any retry (a 503, a reset) whatever the limit.
      assert.equal(body.replayable, ordinary, `limit ${limit}`);
      assert.equal(body.replayableUnprocessed, true, `limit ${limit}`);
      assert.equal(await readN(body.reader()), '1234567890abc', 'the not-processed replay sends it whole');
    }
  });

  it('tells what the source failed with (probe 18)', async () => {
    const broke = new Error('source broke');
    const iterable: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(broke) }),
    };
    const body = new RecordedBody(iterable, 100);
    assert.equal(body.failure, undefined);
    await assert.rejects(readN(body.reader()), /source broke/);
    assert.equal(body.failure, broke);
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
  it('slides bucket by bucket as requests arrive (a deposit past its bucket moves the window)', () => {
    const clock = new FakeClock();
    // Ten buckets of 100 ms.
    const budget = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, windowMs: 1000 }, clock);
    for (let i = 0; i < 10; i++) budget.deposit();
    clock.advance(500);
    for (let i = 0; i < 10; i++) budget.deposit();
    clock.advance(550); // t = 1050: the bucket of t = 0 has left the window, that of t = 500 has not
    let allowed = 0;
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 2); // 0.2 × the 10 requests of t = 500
    clock.advance(449); // t = 1499: the bucket of t = 500 is still in
    budget.deposit(clock.now());
    assert.equal(budget.tryWithdraw(), false, '2 retries spent of 0.2 × 11');
    clock.advance(100); // t = 1599: it has left, the 2 retries of t = 1050 have not
    for (let i = 0; i < 5; i++) budget.deposit(clock.now());
    assert.equal(budget.tryWithdraw(), false, '2 retries spent of 0.2 × 6');
    clock.advance(451); // t = 2050: the retries' bucket has left, the requests of t = 1499 and 1599 have not
    allowed = 0;
    while (budget.tryWithdraw()) allowed++;
    assert.equal(allowed, 1); // 0.2 × 6
  });
  it('with no floor and no requests, allows nothing', () => {
    const budget = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, windowMs: 1000 }, new FakeClock());
    assert.equal(budget.tryWithdraw(), false);
  });
});
