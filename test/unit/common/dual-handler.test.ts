// Issue 16, item 5: a user's dispatcher of another undici major than the caller (an undici 8 Agent as `others` or
// `passthrough`, called from Node's fetch) rejected the caller's handler (`invalid onRequestStart method`).
// toDualHandler gives it both styles.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toDualHandler } from '../../../src/common/handler.js';

function controller() {
  const state = { paused: false, resumed: 0, aborted: null as Error | null };
  return {
    state,
    ctl: {
      pause: () => void (state.paused = true),
      resume: () => void ((state.paused = false), state.resumed++),
      abort: (reason: Error) => void (state.aborted = reason),
      aborted: false,
      reason: null,
      paused: false,
      rawHeaders: null,
      rawTrailers: null,
    },
  };
}

describe('toDualHandler (a user dispatcher of another undici major)', () => {
  it('drives a legacy handler through the controller callbacks an undici 8 dispatcher calls', () => {
    const calls: string[] = [];
    let resume: (() => void) | undefined;
    const dual = toDualHandler({
      onConnect: (abort: (e?: Error) => void) => {
        calls.push('connect');
        abort(new Error('stop'));
      },
      onHeaders: (status: number, raw: Buffer[], r: () => void, text: string) => {
        calls.push(`headers ${status} ${raw.map(String).join('|')} ${text}`);
        resume = r;
        return false;
      },
      onData: (chunk: Buffer) => (calls.push(`data ${chunk}`), true),
      onComplete: (trailers: Buffer[]) => calls.push(`complete ${trailers.length}`),
      onError: (err: Error) => calls.push(`error ${err.message}`),
    });
    const { ctl, state } = controller();
    dual.onRequestStart?.(ctl, {});
    assert.equal(state.aborted?.message, 'stop');
    dual.onResponseStart?.(ctl, 200, { 'content-type': 'text/plain', 'set-cookie': ['a', 'b'] }, 'OK');
    assert.equal(state.paused, true, 'onHeaders returned false: paused');
    resume?.();
    assert.equal(state.resumed, 1);
    dual.onResponseData?.(ctl, Buffer.from('hi'));
    dual.onResponseEnd?.(ctl, {});
    dual.onResponseError?.(ctl, new Error('late'));
    assert.deepEqual(calls, [
      'connect',
      'headers 200 content-type|text/plain|set-cookie|a|set-cookie|b OK',
      'data hi',
      'complete 0',
      'error late',
    ]);
  });

  it('drives a controller handler through the legacy callbacks an undici 6 dispatcher calls', () => {
    const calls: string[] = [];
    const dual = toDualHandler({
      onRequestStart: () => calls.push('start'),
      onResponseStart: (_c: unknown, status: number, headers: Record<string, unknown>) =>
        calls.push(`start ${status} ${JSON.stringify(headers)}`),
      onResponseData: (_c: unknown, chunk: Buffer) => calls.push(`data ${chunk}`),
      onResponseEnd: () => calls.push('end'),
      onResponseError: (_c: unknown, err: Error) => calls.push(`error ${err.message}`),
    });
    dual.onConnect?.(() => {});
    assert.equal(
      dual.onHeaders?.(201, [Buffer.from('x-a'), Buffer.from('1')], () => {}, 'Created'),
      true,
    );
    assert.equal(dual.onData?.(Buffer.from('yo')), true);
    dual.onComplete?.(null);
    dual.onError?.(new Error('boom'));
    assert.deepEqual(calls, ['start', 'start 201 {"x-a":"1"}', 'data yo', 'end', 'error boom']);
  });
});
