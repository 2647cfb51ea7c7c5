import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toLegacyHandler } from '../../../src/common/handler.js';

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
