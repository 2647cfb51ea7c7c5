import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasHostHeader, withHostHeader } from '../../../src/request/headers.js';

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
