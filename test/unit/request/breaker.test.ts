import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancedRequest, RequestVerdict } from '../../../src/request/balanced-request.js';
import { Breaker } from '../../../src/request/breaker.js';
import { resolveRequestPolicy } from '../../../src/request/policy.js';
import { FakeClock } from '../../helpers/fake-clock.js';

/** A breaker on a fake clock, and `send`: one request through it, `undefined` when refused, else its verdict setter. */
function setup(breaker: Parameters<typeof resolveRequestPolicy>[0]['breaker']) {
  const clock = new FakeClock();
  const options = resolveRequestPolicy({ breaker }).breaker;
  assert.ok(options);
  const b = new Breaker(options, 'svc', clock);
  const send = (): ((verdict: RequestVerdict) => void) | undefined => {
    let settle: ((verdict: RequestVerdict) => void) | undefined;
    let refused = false;
    const request = { run: (onVerdict: (v: RequestVerdict) => void) => (settle = onVerdict) };
    b.run(request as unknown as BalancedRequest, () => (refused = true));
    return refused ? undefined : settle;
  };
  const outcomes = (...verdicts: RequestVerdict[]) => {
    for (const v of verdicts) {
      const settle = send();
      assert.ok(settle, 'admitted');
      settle(v);
    }
  };
  return { clock, breaker: b, send, outcomes };
}

describe('circuit breaker', () => {
  it('opens above the error threshold once the window holds volumeThreshold outcomes', () => {
    const { breaker, outcomes } = setup({ volumeThreshold: 4, errorThresholdPercentage: 50 });
    outcomes('failure', 'failure', 'failure');
    assert.equal(breaker.state, 'closed', 'under the volume threshold');
    outcomes('success', 'success');
    assert.equal(breaker.state, 'closed', 'successes never open it');
    outcomes('failure');
    assert.equal(breaker.state, 'open', '4 of 6 failed: 67 % > 50 %');
  });

  it('does not open at exactly the threshold', () => {
    const { breaker, outcomes } = setup({ volumeThreshold: 4, errorThresholdPercentage: 50 });
    outcomes('success', 'success', 'failure', 'failure');
    assert.equal(breaker.state, 'closed', '50 % is not above 50 %');
  });

  it('forgets outcomes older than the rolling window (on the injected clock)', () => {
    const { breaker, clock, outcomes } = setup({
      volumeThreshold: 4,
      errorThresholdPercentage: 50,
      rollingCountTimeoutMs: 1000,
    });
    outcomes('failure', 'failure', 'failure');
    clock.advance(1000);
    outcomes('failure', 'success', 'success');
    assert.equal(breaker.state, 'closed', 'the first three failures left the window: 1 of 3');
  });

  it('ignored outcomes (caller aborts) count neither way', () => {
    const { breaker, outcomes } = setup({ volumeThreshold: 4, errorThresholdPercentage: 50 });
    outcomes('ignored', 'ignored', 'ignored', 'ignored', 'ignored', 'ignored');
    outcomes('failure', 'failure', 'failure');
    assert.equal(breaker.state, 'closed', 'three outcomes: under the volume threshold');
    outcomes('failure');
    assert.equal(breaker.state, 'open');
  });

  it('fails fast while open; after resetTimeoutMs lets one probe through, whose success closes it', () => {
    const { breaker, clock, send, outcomes } = setup({ volumeThreshold: 1, resetTimeoutMs: 500 });
    outcomes('failure');
    assert.equal(breaker.state, 'open');
    assert.equal(send(), undefined, 'refused while open');
    clock.advance(499);
    assert.equal(send(), undefined);
    clock.advance(1);
    assert.equal(breaker.state, 'half-open');
    const probe = send();
    assert.ok(probe, 'the probe goes through');
    assert.equal(send(), undefined, 'one probe at a time');
    probe('success');
    assert.equal(breaker.state, 'closed');
    assert.ok(send(), 'closed again');
  });

  it('closes with an empty window: the failures that opened it do not open it again at the next failure (probe 11)', () => {
    const { breaker, clock, send, outcomes } = setup({
      volumeThreshold: 4,
      errorThresholdPercentage: 50,
      resetTimeoutMs: 300,
      rollingCountTimeoutMs: 60_000,
    });
    outcomes('failure', 'failure', 'failure', 'failure');
    assert.equal(breaker.state, 'open');
    clock.advance(300);
    const probe = send();
    assert.ok(probe);
    probe('success');
    assert.equal(breaker.state, 'closed');
    outcomes('failure');
    assert.equal(breaker.state, 'closed', '1 outcome in the new window, under the volume threshold');
    outcomes('success', 'failure', 'failure');
    assert.equal(breaker.state, 'open', '3 of 4 failed in the new window');
  });

  it('a failed probe opens the circuit again; an aborted probe lets the next request probe', () => {
    const { breaker, clock, send, outcomes } = setup({ volumeThreshold: 1, resetTimeoutMs: 500 });
    outcomes('failure');
    clock.advance(500);
    send()?.('ignored');
    assert.equal(breaker.state, 'half-open', 'an aborted probe says nothing');
    send()?.('failure');
    assert.equal(breaker.state, 'open');
    clock.advance(500);
    assert.equal(breaker.state, 'half-open');
  });

  it('ignores verdicts of requests admitted before the circuit opened', () => {
    const { breaker, clock, send, outcomes } = setup({ volumeThreshold: 1, resetTimeoutMs: 500 });
    const late = send();
    outcomes('failure');
    late?.('success');
    assert.equal(breaker.state, 'open', 'a late success does not close it');
    clock.advance(500);
    assert.equal(breaker.state, 'half-open');
  });

  it('shutdown() stops the reset timer', () => {
    const { breaker, clock, outcomes } = setup({ volumeThreshold: 1, resetTimeoutMs: 500 });
    outcomes('failure');
    assert.equal(clock.pending, 1);
    breaker.shutdown();
    assert.equal(clock.pending, 0);
  });
});
