// The header list size checked before an HTTP/2 dispatch (RFC 7541 §4.1): undici 7 sends a `host` header as
// `:authority`, not as a field of its own (probe 13: it was counted twice, refusing a request exactly at the limit).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headerListSize } from '../../../src/subchannel/http2-refusal.js';

describe('headerListSize', () => {
  it('counts a host header once, as :authority (name + value + 32 per field)', () => {
    const size = headerListSize({ method: 'GET', path: '/', headers: { host: 'svc:81', a: 'b' } }, '127.0.0.1:1234');
    // :method GET 42, :path / 38, :scheme https 44, a b 34, :authority svc:81 48.
    assert.equal(size, 42 + 38 + 44 + 34 + 48);
  });

  it("without a host header, :authority is the pool's host:port", () => {
    const size = headerListSize({ method: 'GET', path: '/', headers: ['x', '1', 'x', '2'] }, '127.0.0.1:1234');
    // :method 42, :path 38, :scheme 44, x 1 and x 2 34 each, :authority 127.0.0.1:1234 56.
    assert.equal(size, 42 + 38 + 44 + 34 + 34 + 56);
  });
});
