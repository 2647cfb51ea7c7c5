import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget } from '../../../src/request/retry-budget.js';
import { FakeClock } from '../../helpers/fake-clock.js';

describe('RetryBudget.refund', () => {
  // No share of requests, one token in reserve: each withdrawal spends the whole budget.
  const oneToken = (clock: FakeClock) =>
    new RetryBudget({ percent: 0, minRetriesPerSecond: 0.1, windowMs: 10_000 }, clock);

  it('gives a token back to the bucket it came from, also after the window moved on', () => {
    const clock = new FakeClock();
    const budget = oneToken(clock);
    clock.advance(1_500);
    const at = clock.now();
    assert.equal(budget.tryWithdraw(at), true);
    assert.equal(budget.tryWithdraw(), false);
    clock.advance(4_000);
    budget.refund(at);
    assert.equal(budget.tryWithdraw(), true, 'the refunded token is there again');
    assert.equal(budget.tryWithdraw(), false);
  });

  it('gives nothing back once the bucket left the window (the token expired on its own)', () => {
    const clock = new FakeClock();
    const budget = oneToken(clock);
    assert.equal(budget.tryWithdraw(0), true);
    clock.advance(10_500);
    assert.equal(budget.tryWithdraw(), true, 'the first token expired: a second one is taken');
    // The first token's bucket has left the window: refunding it must not free the second one.
    budget.refund(0);
    assert.equal(budget.tryWithdraw(), false);
  });
});
