import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hasHostHeader, replaceHostHeader, withHostHeader } from '../../../src/request/headers.js';

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

// Probe 17: a mirrored copy kept the caller's Host header instead of naming the shadow.
describe('Host header replacement (a mirrored copy)', () => {
  it("replaces every Host header in each undici header form, leaving the caller's headers as they are", () => {
    assert.deepEqual(replaceHostHeader(null, 'svc-shadow'), ['host', 'svc-shadow']);
    const record = { a: 'b', Host: 'svc', HOST: 'dup' };
    assert.deepEqual({ ...replaceHostHeader(record, 'svc-shadow') }, { a: 'b', host: 'svc-shadow' });
    assert.deepEqual(record, { a: 'b', Host: 'svc', HOST: 'dup' }, 'the caller keeps its own');
    const flat = ['Host', 'svc:8080', 'a', 'b'];
    assert.deepEqual(replaceHostHeader(flat, 'svc-shadow:8080'), ['a', 'b', 'host', 'svc-shadow:8080']);
    assert.deepEqual(flat, ['Host', 'svc:8080', 'a', 'b']);
    assert.deepEqual(
      replaceHostHeader(
        new Map([
          ['host', 'svc'],
          ['a', 'b'],
        ]) as never,
        'svc-shadow',
      ),
      ['a', 'b', 'host', 'svc-shadow'],
    );
    function* pairs(): Generator<[string, string]> {
      yield ['HoSt', 'svc'];
      yield ['a', 'b'];
    }
    assert.deepEqual(replaceHostHeader(pairs() as never, 'svc-shadow'), ['a', 'b', 'host', 'svc-shadow']);
    assert.deepEqual(replaceHostHeader({ a: 'b' }, 'svc-shadow'), { a: 'b', host: 'svc-shadow' });
  });

  it('keeps an own `__proto__` header a header, and leaves headers undici would refuse as they are', () => {
    const record = JSON.parse('{"__proto__": "x", "host": "svc"}') as Record<string, string>;
    const copy = replaceHostHeader(record, 'svc-shadow') as Record<string, string>;
    assert.deepEqual(Object.keys(copy), ['__proto__', 'host']);
    assert.equal(copy.host, 'svc-shadow');
    const odd = ['host', 'svc', 'a'];
    assert.equal(replaceHostHeader(odd, 'svc-shadow'), odd);
    const pairsArray = [['host', 'svc']];
    assert.equal(replaceHostHeader(pairsArray as never, 'svc-shadow'), pairsArray);
  });
});
