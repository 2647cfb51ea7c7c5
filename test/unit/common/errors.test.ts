import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  findSidecarlessError,
  isSidecarlessError,
  NoEndpointsError,
  SidecarlessError,
} from '../../../src/common/errors.js';

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
});
