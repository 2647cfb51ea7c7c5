import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotProcessedError } from '../../../src/common/errors.js';
import { classifyError, isNotProcessed, markGoaway } from '../../../src/common/outcome.js';

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

describe('HTTP/2 drains (kind goaway)', () => {
  it('a NotProcessedError is kind goaway and not processed; a marked GOAWAY error is goaway but may have been', () => {
    const refused = new NotProcessedError('10.0.0.1:443', 'HTTP/2 stream refused', { cause: new Error('x') });
    assert.equal(classifyError(refused), 'goaway');
    assert.equal(isNotProcessed(refused), true);
    const cut = Object.assign(new Error('HTTP/2: "GOAWAY" frame received with code 0'), { code: 'UND_ERR_SOCKET' });
    assert.equal(classifyError(cut), 'reset', 'unmarked: a reset, as before');
    markGoaway(cut);
    assert.equal(classifyError(cut), 'goaway');
    assert.equal(isNotProcessed(cut), false);
  });
});
