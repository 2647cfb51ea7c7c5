import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyError } from '../../../src/common/outcome.js';

describe('classifyError', () => {
  it('classifies transport errors by code', () => {
    assert.equal(classifyError(Object.assign(new Error(), { code: 'ECONNREFUSED' })), 'connect');
    assert.equal(classifyError(Object.assign(new Error(), { code: 'UND_ERR_SOCKET' })), 'reset');
    assert.equal(classifyError(Object.assign(new Error(), { code: 'UND_ERR_HEADERS_TIMEOUT' })), 'timeout');
    assert.equal(classifyError(new DOMException('x', 'AbortError')), 'aborted');
    assert.equal(classifyError(new Error('x', { cause: { code: 'ECONNRESET' } })), 'reset');
    assert.equal(classifyError(new Error('x')), 'other');
  });
});
