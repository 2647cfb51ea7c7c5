import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSidecarlessError } from '../../../src/index.js';
import { parseOrigin } from '../../../src/request/origin.js';

describe('parseOrigin', () => {
  it('parses string and URL origins into protocol, authority and host, the same answer for the same string', () => {
    const a = parseOrigin('http://users:8080');
    assert.deepEqual({ ...a }, { protocol: 'http:', authority: 'users:8080', host: 'users' });
    assert.equal(parseOrigin('http://users:8080'), a, 'the last origin again: the cached answer');
    assert.deepEqual(
      { ...parseOrigin(new URL('https://orders/x?y')) },
      { protocol: 'https:', authority: 'orders', host: 'orders' },
    );
    assert.deepEqual({ ...parseOrigin('HTTP://Users:80') }, { protocol: 'http:', authority: 'users', host: 'users' });
    assert.equal(parseOrigin('http://users:8080'), a, 'from the cache after other origins');
    assert.deepEqual(
      { ...parseOrigin('http://[::1]:8080') },
      { protocol: 'http:', authority: '[::1]:8080', host: '[::1]' },
      'an IPv6 literal keeps its brackets',
    );
    assert.equal(parseOrigin('http://Users.Example:9090').host, 'users.example');
  });

  it('refuses what is not an absolute URL with SIDECARLESS_INVALID_OPTION', () => {
    parseOrigin('http://users'); // a cached last origin must not answer for anything else
    // Not HTTP (probe 20): an invalid origin too, not a protocol the cluster could mismatch.
    for (const bad of [undefined, null, 42, {}, 'users', '', 'ftp://files', 'ws://svc', 'file:///x', 'mailto:a@b']) {
      assert.throws(
        () => parseOrigin(bad),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_OPTION',
        String(bad),
      );
    }
  });
});
