import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSidecarlessError } from '../../../src/index.js';
import { parseOrigin } from '../../../src/request/origin.js';

describe('parseOrigin', () => {
  it('parses string and URL origins into protocol and authority, the same answer for the same string', () => {
    const a = parseOrigin('http://users:8080');
    assert.deepEqual({ ...a }, { protocol: 'http:', authority: 'users:8080' });
    assert.equal(parseOrigin('http://users:8080'), a, 'the last origin again: the cached answer');
    assert.deepEqual({ ...parseOrigin(new URL('https://orders/x?y')) }, { protocol: 'https:', authority: 'orders' });
    assert.deepEqual({ ...parseOrigin('HTTP://Users:80') }, { protocol: 'http:', authority: 'users' });
    assert.equal(parseOrigin('http://users:8080'), a, 'from the cache after other origins');
    assert.deepEqual({ ...parseOrigin('ftp://files') }, { protocol: 'ftp:', authority: 'files' });
  });

  it('refuses what is not an absolute URL with SIDECARLESS_INVALID_OPTION', () => {
    parseOrigin('http://users'); // a cached last origin must not answer for anything else
    for (const bad of [undefined, null, 42, {}, 'users', '']) {
      assert.throws(
        () => parseOrigin(bad),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_OPTION',
        String(bad),
      );
    }
  });
});
