import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoEndpointsError, ResolverError } from '../../../src/common/errors.js';
import { OverloadedError } from '../../../src/common/request-errors.js';
import { type AcquireCallback, WaitQueue, type WaitQueueSettings } from '../../../src/cluster/queue.js';
import type { BalancedRequest } from '../../../src/request/balanced-request.js';
import type { Subchannel } from '../../../src/subchannel/subchannel.js';
import { FakeClock } from '../../helpers/fake-clock.js';

// The queue reads only `done` of a request and hands subchannels through untouched: plain objects stand in.
function request(done = false): BalancedRequest {
  return { done } as BalancedRequest;
}
const subchannel = { key: 'a:1' } as Subchannel;
const none: ReadonlySet<Subchannel> = new Set();

function setup(overrides: Partial<WaitQueueSettings> = {}) {
  const clock = new FakeClock();
  const calls: { error: Error | undefined; subchannel: Subchannel | undefined }[] = [];
  let overloaded = 0;
  const queue = new WaitQueue({
    cluster: 'svc',
    clock,
    waitMs: 1000,
    maxPending: 10,
    lastError: () => undefined,
    onOverloaded: () => overloaded++,
    ...overrides,
  });
  const callback: AcquireCallback = (error, s) => calls.push({ error, subchannel: s });
  return { clock, queue, calls, callback, overloaded: () => overloaded };
}

describe('WaitQueue', () => {
  it('fails a request with SIDECARLESS_NO_ENDPOINTS after waitMs, the last resolver error as cause', () => {
    const cause = new ResolverError('dns down');
    const { clock, queue, calls, callback } = setup({ lastError: () => cause });
    queue.enqueue(request(), none, callback);
    assert.equal(queue.size, 1);
    clock.advance(999);
    assert.equal(calls.length, 0);
    clock.advance(1);
    assert.equal(calls.length, 1);
    const error = calls[0]?.error as NoEndpointsError;
    assert.ok(error instanceof NoEndpointsError);
    assert.equal(error.waitedMs, 1000);
    assert.equal(error.cause, cause);
    assert.equal(queue.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('fails at once when waitMs is 0', () => {
    const { clock, queue, calls, callback } = setup({ waitMs: 0 });
    queue.enqueue(request(), none, callback);
    assert.ok(calls[0]?.error instanceof NoEndpointsError);
    assert.equal(queue.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('refuses beyond maxPending with SIDECARLESS_OVERLOADED and counts it', () => {
    const { queue, calls, callback, overloaded } = setup({ maxPending: 1 });
    queue.enqueue(request(), none, callback);
    queue.enqueue(request(), none, callback);
    assert.ok(calls[0]?.error instanceof OverloadedError);
    assert.equal(overloaded(), 1);
    assert.equal(queue.size, 1);
  });

  it('refuses a hedge beyond maxPending without counting it: no request was refused', () => {
    const { queue, calls, callback, overloaded } = setup({ maxPending: 1 });
    queue.enqueue(request(), none, callback);
    queue.enqueue(request(), none, callback, true);
    assert.ok(calls[0]?.error instanceof OverloadedError);
    assert.equal(overloaded(), 0);
    assert.equal(queue.size, 1);
  });

  it('flush answers the requests a pick finds for, keeps the others with their deadline', () => {
    const { clock, queue, calls, callback } = setup();
    const found = request();
    const waiting = request();
    const exclude = new Set<Subchannel>();
    queue.enqueue(found, exclude, callback);
    queue.enqueue(waiting, none, callback);
    clock.advance(600);
    const seen: ReadonlySet<Subchannel>[] = [];
    queue.flush((r, ex) => {
      seen.push(ex);
      return r === found ? subchannel : undefined;
    });
    assert.equal(seen[0], exclude, "the pick sees the request's excluded endpoints");
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.error, undefined);
    assert.equal(calls[0]?.subchannel, subchannel);
    assert.equal(queue.size, 1);
    assert.equal(clock.pending, 1, "the answered request's timer is cleared");
    clock.advance(400);
    assert.ok(calls[1]?.error instanceof NoEndpointsError, 'the deadline counts from the first enqueue');
  });

  it('flush passes a pick error to the request', () => {
    const { queue, calls, callback } = setup();
    queue.enqueue(request(), none, callback);
    const error = new Error('all ejected');
    queue.flush(() => error);
    assert.equal(calls[0]?.error, error);
    assert.equal(queue.size, 0);
  });

  it('flush skips and forgets a request that ended', () => {
    const { clock, queue, calls, callback } = setup();
    queue.enqueue(request(true), none, callback);
    queue.flush(() => subchannel);
    assert.equal(calls.length, 0);
    assert.equal(queue.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('a request queued again keeps its deadline and takes the new callback', () => {
    const { clock, queue, calls, callback } = setup();
    const r = request();
    const first: AcquireCallback = () => assert.fail('replaced');
    queue.enqueue(r, none, first);
    clock.advance(500);
    queue.enqueue(r, none, callback);
    assert.equal(queue.size, 1);
    clock.advance(500);
    assert.ok(calls[0]?.error instanceof NoEndpointsError);
  });

  it('remove takes a request out without calling it back', () => {
    const { clock, queue, calls, callback } = setup();
    const r = request();
    queue.enqueue(r, none, callback);
    queue.remove(r);
    queue.remove(r);
    assert.equal(queue.size, 0);
    assert.equal(clock.pending, 0);
    clock.advance(2000);
    assert.equal(calls.length, 0);
  });

  it('failAll fails every waiting request and clears their timers', () => {
    const { clock, queue, calls, callback } = setup();
    queue.enqueue(request(), none, callback);
    queue.enqueue(request(), none, callback);
    const error = new Error('closed');
    queue.failAll(error);
    assert.deepEqual(
      calls.map((c) => c.error),
      [error, error],
    );
    assert.equal(queue.size, 0);
    assert.equal(clock.pending, 0);
  });
});
