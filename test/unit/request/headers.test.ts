import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasHostHeader, withHostHeader } from '../../../src/request/headers.js';

describe('Host header injection', () => {
  it('adds host in each undici header form and keeps an explicit one', () => {
    assert.deepEqual(withHostHeader(null, 'svc'), ['host', 'svc']);
    assert.deepEqual(withHostHeader({ a: 'b' }, 'svc'), { a: 'b', host: 'svc' });
    assert.deepEqual(withHostHeader(['a', 'b'], 'svc'), ['a', 'b', 'host', 'svc']);
    const explicit = { Host: 'mine' };
    assert.equal(withHostHeader(explicit, 'svc'), explicit);
    assert.ok(hasHostHeader(['x', 'y', 'HOST', 'z']));
    assert.ok(!hasHostHeader(['hostx', 'y']));
  });

  // Regression (probe 5): `[...pairs, ['host', v]]` is an array of arrays, which undici reads as a flat list and
  // refuses ("key.toLowerCase is not a function").
  it('hands an iterable of pairs (Map, Headers, generator) to undici as a flat list with host', () => {
    assert.deepEqual(withHostHeader(new Map([['a', 'b']]) as never, 'svc'), ['a', 'b', 'host', 'svc']);
    assert.deepEqual(withHostHeader(new Headers({ a: 'b' }) as never, 'svc'), ['a', 'b', 'host', 'svc']);
    function* pairs(): Generator<[string, string]> {
      yield ['a', 'b'];
      yield ['Host', 'mine'];
    }
    // Read once (a generator is single-use): the caller's Host is kept, in the flat copy.
    assert.deepEqual(withHostHeader(pairs() as never, 'svc'), ['a', 'b', 'Host', 'mine']);
    assert.ok(hasHostHeader(new Headers({ host: 'x' }) as never));
  });

  it('leaves headers undici would refuse as they are, for undici to refuse', () => {
    const pairsArray = [['a', 'b']];
    assert.equal(withHostHeader(pairsArray as never, 'svc'), pairsArray);
    const notPairs = new Set(['a']);
    assert.equal(withHostHeader(notPairs as never, 'svc'), notPairs);
  });
});
