import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import {
  publishAttemptEnd,
  publishPick,
  publishRequestEnd,
  publishRequestStart,
  publishResolve,
} from '../../../src/cluster/diagnostics.js';
import { RequestCounters, ResolverCounters } from '../../../src/cluster/stats.js';
import { errorCode } from '../../../src/metrics/error-codes.js';
import { ResolverError } from '../../../src/common/errors.js';

describe('cluster stats', () => {
  it("errorCode: the string code, else the cause's, else the name", () => {
    assert.equal(errorCode(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED');
    assert.equal(errorCode(new Error('x', { cause: { code: 'ETIMEDOUT' } })), 'ETIMEDOUT');
    assert.equal(errorCode(Object.assign(new TypeError('x'), { code: 42 })), 'TypeError');
  });

  it('RequestCounters count ends by status class and error code', () => {
    const c = new RequestCounters();
    c.inFlight = 3;
    c.total = 3;
    c.extraAttempts = 2;
    c.hedges = 1;
    c.ended(204, undefined, 5);
    c.ended(503, undefined, 7);
    c.ended(0, Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 1);
    assert.equal(c.inFlight, 0);
    const s = c.snapshot();
    assert.deepEqual(s.statusClasses, { '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 1 });
    assert.deepEqual(s.errors, { ECONNREFUSED: 1 });
    assert.equal(s.latency.count, 2, 'latency counts responses only');
    assert.equal(s.retries, 1);
    assert.equal(s.hedges, 1);
  });

  it('ResolverCounters report the last error message', () => {
    const r = new ResolverCounters();
    assert.deepEqual(r.snapshot(), { updates: 0, errors: 0, skipped: 0, lastError: undefined });
    r.errors++;
    r.lastError = new ResolverError('down');
    assert.equal(r.snapshot().lastError, 'down');
  });
});

describe('cluster diagnostics', () => {
  const label = { cluster: 'svc', clusterId: 7, scheme: 'https' as const };
  const context = { method: 'GET', path: '/a', authority: 'svc', headers: null };

  function capture(name: string, publish: () => void): unknown[] {
    const seen: unknown[] = [];
    const listener = (message: unknown) => seen.push(message);
    publish(); // no subscriber: nothing built, nothing published
    diagnostics.subscribe(name, listener);
    try {
      publish();
    } finally {
      diagnostics.unsubscribe(name, listener);
    }
    return seen;
  }

  it('builds the five messages', () => {
    const base = { cluster: 'svc', clusterId: 7 };
    const request = { ...base, method: 'GET', scheme: 'https', authority: 'svc', path: '/a' };
    assert.deepEqual(
      capture('sidecarless:request:start', () => publishRequestStart(label, context)),
      [request],
    );
    const error = new Error('x');
    assert.deepEqual(
      capture('sidecarless:request:end', () => publishRequestEnd(label, context, 0, error, 12, 2)),
      [{ ...request, statusCode: 0, error, durationMs: 12, attempts: 2 }],
    );
    assert.deepEqual(
      capture('sidecarless:pick', () => publishPick(label, 'a:1', 1)),
      [{ ...base, endpoint: 'a:1', attempt: 1 }],
    );
    const outcome = { statusCode: 200, errorKind: undefined, latencyMs: 3 } as Parameters<typeof publishAttemptEnd>[2];
    assert.deepEqual(
      capture('sidecarless:attempt:end', () => publishAttemptEnd(label, 'a:1', outcome)),
      [{ ...base, endpoint: 'a:1', statusCode: 200, errorKind: undefined, durationMs: 3 }],
    );
    assert.deepEqual(
      capture('sidecarless:resolve', () => publishResolve(label, 2, undefined)),
      [{ ...base, endpoints: 2, error: undefined }],
    );
  });
});
