import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createClient, isSidecarlessError } from '../../src/index.js';
import { bodyReplay, isIdempotent, parseRetryAfter, resolveRequestPolicy } from '../../src/request/policy.js';
import { RetryBudget } from '../../src/request/retry-budget.js';
import { FakeClock } from '../helpers/fake-clock.js';

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
