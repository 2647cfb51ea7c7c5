import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { markCallerError } from '../../../src/common/outcome.js';
import { ErrorCodes, knownErrorCode, MAX_ERROR_CODES } from '../../../src/metrics/error-codes.js';

const coded = (code: unknown, name = 'Error'): Error => Object.assign(new Error('x'), { code, name });

describe('error codes counted in stats and metrics', () => {
  it("keeps sidecarless's, undici's and Node's codes and the standard names; any other code is _OTHER", () => {
    for (const code of [
      'ECONNREFUSED',
      'EAI_AGAIN',
      'ERR_STREAM_PREMATURE_CLOSE',
      'UND_ERR_SOCKET',
      'SIDECARLESS_OVERLOADED',
    ]) {
      assert.equal(knownErrorCode(coded(code)), code);
    }
    assert.equal(knownErrorCode(new Error('x', { cause: { code: 'ETIMEDOUT' } })), 'ETIMEDOUT');
    assert.equal(knownErrorCode(new TypeError('x')), 'TypeError');
    for (const error of [
      coded('CANCELLED_7'),
      coded('econnrefused'),
      coded(`E${'X'.repeat(80)}`),
      coded(5, 'MyError'),
    ]) {
      assert.equal(knownErrorCode(error), '_OTHER', String((error as { code?: unknown }).code));
    }
  });

  it("a failure on the caller's side keeps only the codes of an abort, a deadline or a refused request; else _CALLER", () => {
    assert.equal(knownErrorCode(coded('EUSER_1'), true), '_CALLER', "a code of the caller's");
    assert.equal(knownErrorCode(coded('ECONNRESET'), true), '_CALLER', 'a body piped from a broken socket');
    assert.equal(knownErrorCode(new DOMException('x', 'AbortError'), true), 'AbortError');
    assert.equal(knownErrorCode(new DOMException('x', 'TimeoutError'), true), 'TimeoutError');
    for (const code of ['UND_ERR_ABORTED', 'ABORT_ERR', 'SIDECARLESS_DEADLINE_EXCEEDED', 'UND_ERR_INVALID_ARG']) {
      assert.equal(knownErrorCode(coded(code), true), code);
    }
    const marked = coded('USER_CODE');
    markCallerError(marked);
    assert.equal(knownErrorCode(marked), '_CALLER', 'an error marked as the caller’s');
  });

  it(`keeps at most ${MAX_ERROR_CODES} distinct codes; later new ones are _OTHER, earlier ones still count as themselves`, () => {
    const codes = new ErrorCodes();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(codes.of(coded(`E${i}`)));
    assert.equal(seen.size, MAX_ERROR_CODES - 1, 'the fixed _CALLER is one of the bound, unused here');
    assert.ok(seen.has('_OTHER'));
    assert.equal(codes.of(coded('E0')), 'E0');
    assert.equal(codes.of(coded('E199')), '_OTHER');
    assert.equal(codes.of(coded('X'), true), '_CALLER');
  });
});
