import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission } from '../../../src/cluster/admission.js';
import { RequestCounters } from '../../../src/cluster/stats.js';
import { OverloadedError } from '../../../src/common/request-errors.js';
import { systemClock } from '../../../src/common/runtime.js';
import { resolveRequestPolicy } from '../../../src/request/policy.js';

describe('Admission', () => {
  it('refuses beyond maxInFlight with SIDECARLESS_OVERLOADED and counts it', () => {
    const counters = new RequestCounters();
    const admission = new Admission('svc', resolveRequestPolicy({ limits: { maxInFlight: 1 } }), counters, systemClock);
    assert.equal(admission.refuse(0), undefined);
    counters.inFlight = 1;
    const refused = admission.refuse(0);
    assert.ok(refused instanceof OverloadedError);
    assert.equal(refused.limit, 'maxInFlight');
    assert.equal(counters.overloaded, 1);
  });

  it('names maxPending when the wait queue is full too (waiting requests are in flight: with equal limits, the defaults, both are reached at once)', () => {
    const counters = new RequestCounters();
    const admission = new Admission('svc', resolveRequestPolicy({}), counters, systemClock);
    counters.inFlight = 1024;
    assert.equal(admission.refuse(1023)?.limit, 'maxInFlight');
    const refused = admission.refuse(1024);
    assert.equal(refused?.limit, 'maxPending');
    assert.equal(refused?.code, 'SIDECARLESS_OVERLOADED');
    assert.equal(counters.overloaded, 2);
  });

  it('names maxInFlight with maxPending 0: the empty queue is not what refused the request', () => {
    const counters = new RequestCounters();
    const policy = resolveRequestPolicy({ limits: { maxInFlight: 1, maxPending: 0 } });
    const admission = new Admission('svc', policy, counters, systemClock);
    counters.inFlight = 1;
    const refused = admission.refuse(0);
    assert.equal(refused?.limit, 'maxInFlight');
    assert.match(refused?.message ?? '', /maxInFlight \(1\) reached/);
    assert.equal(counters.overloaded, 1);
  });

  it('reports the breaker state only when a breaker is configured', () => {
    const counters = new RequestCounters();
    assert.equal(new Admission('svc', resolveRequestPolicy({}), counters, systemClock).breakerState, undefined);
    const withBreaker = new Admission('svc', resolveRequestPolicy({ breaker: true }), counters, systemClock);
    assert.equal(withBreaker.breakerState, 'closed');
    withBreaker.shutdown();
  });
});

describe('checkFallbackResponse', () => {
  it('says null for a fallback that returned null (not "got object")', async () => {
    const { checkFallbackResponse } = await import('../../../src/cluster/admission.js');
    assert.throws(() => checkFallbackResponse(null), /expected an object, got null/);
    assert.throws(() => checkFallbackResponse(5), /expected an object, got number/);
  });
});
