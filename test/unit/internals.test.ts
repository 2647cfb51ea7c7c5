import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, resolveBackoffOptions } from '../../src/common/backoff.js';
import { classifyError } from '../../src/common/outcome.js';
import { findSidecarlessError, isSidecarlessError, NoEndpointsError, SidecarlessError } from '../../src/index.js';
import { toLegacyHandler } from '../../src/common/handler.js';
import { hasHostHeader, withHostHeader } from '../../src/request/headers.js';

describe('Backoff (gRPC connection backoff)', () => {
  it('grows by the multiplier up to the cap, jittered within ±jitter', () => {
    const opts = resolveBackoffOptions(undefined, 'connectBackoff');
    assert.deepEqual(opts, { initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 120_000 });
    const mid = new Backoff(opts, () => 0.5);
    const delays = Array.from({ length: 14 }, () => Math.round(mid.next()));
    assert.deepEqual(delays.slice(0, 4), [1000, 1600, 2560, 4096]);
    assert.equal(delays.at(-1), 120_000);
    const low = new Backoff(opts, () => 0);
    assert.equal(low.next(), 800);
    const high = new Backoff(opts, () => 0.999999);
    assert.ok(Math.abs(high.next() - 1200) < 0.01);
    mid.reset();
    assert.equal(mid.next(), 1000);
  });
});

describe('Host header injection', () => {
  it('adds host in each undici header form and keeps an explicit one', () => {
    assert.deepEqual(withHostHeader(null, 'svc'), ['host', 'svc']);
    assert.deepEqual(withHostHeader({ a: 'b' }, 'svc'), { a: 'b', host: 'svc' });
    assert.deepEqual(withHostHeader(['a', 'b'], 'svc'), ['a', 'b', 'host', 'svc']);
    assert.deepEqual(withHostHeader(new Map([['a', 'b']]) as never, 'svc'), [
      ['a', 'b'],
      ['host', 'svc'],
    ]);
    const explicit = { Host: 'mine' };
    assert.equal(withHostHeader(explicit, 'svc'), explicit);
    assert.ok(hasHostHeader(['x', 'y', 'HOST', 'z']));
    assert.ok(!hasHostHeader(['hostx', 'y']));
  });
});

describe('errors', () => {
  it('carry a stable code and cause, and are recognised across copies by brand', () => {
    const cause = new Error('root');
    const err = new NoEndpointsError('users', 10, { cause });
    assert.equal(err.code, 'SIDECARLESS_NO_ENDPOINTS');
    assert.equal(err.cause, cause);
    assert.equal(err.name, 'NoEndpointsError');
    assert.ok(err instanceof SidecarlessError);
    const foreign = Object.assign(new Error('x'), { code: 'SIDECARLESS_NO_ENDPOINTS' });
    assert.ok(!isSidecarlessError(foreign));
    Object.defineProperty(foreign, Symbol.for('sidecarless.error'), { value: true });
    assert.ok(isSidecarlessError(foreign));
    assert.equal(findSidecarlessError(new TypeError('fetch failed', { cause: err })), err);
    assert.equal(findSidecarlessError(new Error('plain')), undefined);
  });
  it('classifies transport errors by code', () => {
    assert.equal(classifyError(Object.assign(new Error(), { code: 'ECONNREFUSED' })), 'connect');
    assert.equal(classifyError(Object.assign(new Error(), { code: 'UND_ERR_SOCKET' })), 'reset');
    assert.equal(classifyError(Object.assign(new Error(), { code: 'UND_ERR_HEADERS_TIMEOUT' })), 'timeout');
    assert.equal(classifyError(new DOMException('x', 'AbortError')), 'aborted');
    assert.equal(classifyError(new Error('x', { cause: { code: 'ECONNRESET' } })), 'reset');
    assert.equal(classifyError(new Error('x')), 'other');
  });
});

describe('controller-style handlers', () => {
  it('are adapted to the legacy callbacks undici pools consume', () => {
    const calls: string[] = [];
    const legacy = toLegacyHandler({
      onRequestStart: () => calls.push('start'),
      onResponseStart: (ctl: { pause(): void }, status: number, headers: Record<string, unknown>) => {
        calls.push(`headers ${status} ${String(headers['x-a'])}`);
        ctl.pause();
      },
      onResponseData: (_c: unknown, chunk: Buffer) => calls.push(`data ${chunk.toString()}`),
      onResponseEnd: () => calls.push('end'),
      onResponseError: (_c: unknown, e: Error) => calls.push(`error ${e.message}`),
    });
    legacy.onConnect?.(() => {});
    const more = legacy.onHeaders?.(200, [Buffer.from('x-a'), Buffer.from('1')], () => {}, 'OK');
    assert.equal(more, false, 'pause() in onResponseStart returns false from onHeaders');
    legacy.onData?.(Buffer.from('hi'));
    legacy.onComplete?.([]);
    legacy.onError?.(new Error('late'));
    assert.deepEqual(calls, ['start', 'headers 200 1', 'data hi', 'end', 'error late']);
    const plain = { onConnect() {} };
    assert.equal(toLegacyHandler(plain), plain);
  });
});
