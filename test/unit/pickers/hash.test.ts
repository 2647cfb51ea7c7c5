import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hashString, xxh32 } from '../../../src/pickers/hash.js';
import { parseHashKey } from '../../../src/pickers/hash-key.js';
import { ctxWith } from './helpers.js';

/** The xxHash sanity buffer (xxhsum's `fillTestBuffer`): byte i is the top byte of PRIME32 * PRIME64^i. */
function sanityBuffer(length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let gen = 2654435761n;
  for (let i = 0; i < length; i++) {
    buf[i] = Number((gen >> 56n) & 0xffn);
    gen = (gen * 11400714785074694797n) & 0xffffffffffffffffn;
  }
  return buf;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('xxh32', () => {
  it('matches the reference sanity vectors of xxHash (lengths 0, 1, 14, 222; seeds 0 and PRIME32)', () => {
    const buf = sanityBuffer(222);
    const PRIME32 = 2654435761;
    const vectors: [number, number, number][] = [
      [0, 0, 0x02cc5d05],
      [0, PRIME32, 0x36b78ae7],
      [1, 0, 0xcf65b03e],
      [1, PRIME32, 0xb4545aa4],
      [14, 0, 0x1208e7e2],
      [14, PRIME32, 0x6af1d1fe],
      [222, 0, 0x5bd11dbd],
      [222, PRIME32, 0x58803c5f],
    ];
    for (const [len, seed, expected] of vectors) {
      assert.equal(xxh32(buf, seed, 0, len), expected, `len ${len} seed ${seed}`);
    }
  });

  it('matches well-known string digests', () => {
    assert.equal(hashString(''), 0x02cc5d05);
    assert.equal(hashString('a'), 0x550d7456);
    assert.equal(hashString('abc'), 0x32d153ff);
    assert.equal(hashString('The quick brown fox jumps over the lazy dog'), 0xe85ea4de);
    assert.equal(hashString('Nobody inspects the spammish repetition'), 0xe2293b2f);
  });

  it('hashes a string as its UTF-8 bytes, including astral characters and lone surrogates', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        assert.equal(hashString(s, seed), xxh32(utf8(s), seed));
      }),
      { numRuns: 300 },
    );
  });

  it('hashes a slice without building it', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.nat(40), fc.nat(40), (s, a, b) => {
        const start = Math.min(a, s.length);
        const end = Math.max(start, Math.min(b, s.length));
        assert.equal(hashString(s, 0, start, end), hashString(s.slice(start, end)));
      }),
      { numRuns: 200 },
    );
  });

  it('returns unsigned 32-bit integers', () => {
    for (let i = 0; i < 200; i++) {
      const h = hashString(`k${i}`);
      assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
    }
  });
});

describe('hash keys', () => {
  const forms = (name: string, value: string) => [
    { [name]: value },
    { [name.toUpperCase()]: value },
    ['accept', '*/*', name, value],
    [
      ['accept', '*/*'],
      [name.toUpperCase(), value],
    ],
    new Map([[name, value]]),
  ];

  it('hashes the header value, and reports -1 (no key) when the header is absent or empty', () => {
    const hasher = parseHashKey({ header: 'X-User' });
    for (const headers of forms('x-user', 'ada')) assert.equal(hasher(ctxWith(headers)), hashString('ada'));
    assert.equal(hasher(ctxWith(null)), -1);
    assert.equal(hasher(ctxWith({ 'x-user': '' })), -1);
    assert.equal(hasher(ctxWith({ 'x-other': 'ada' })), -1);
  });

  it("hashes the request's Host for { header: 'host' }: its own Host header, else the URL's authority", () => {
    const hasher = parseHashKey({ header: 'Host' });
    const at = (authority: string, headers: unknown) => hasher({ method: 'GET', path: '/', authority, headers });
    // Written as a URL (client.fetch, undici.request(url)): no Host among the dispatch headers.
    assert.equal(at('alpha', null), hashString('alpha'));
    assert.equal(at('alpha:8080', { accept: '*/*' }), hashString('alpha:8080'));
    // An explicit Host header is what the endpoint receives, so it is the key; case does not matter.
    for (const headers of forms('host', 'Alpha')) assert.equal(at('alpha', headers), hashString('alpha'));
    assert.equal(at('10.0.0.7:80', { host: 'alpha' }), hashString('alpha'));
    assert.equal(at('alpha', { host: '' }), hashString('alpha'));
    assert.equal(at('', null), -1);
  });

  it('hashes one cookie, quoted or not, across several Cookie headers', () => {
    const hasher = parseHashKey({ cookie: 'sid' });
    assert.equal(hasher(ctxWith({ cookie: 'a=1; sid=abc; b=2' })), hashString('abc'));
    assert.equal(hasher(ctxWith({ cookie: 'sid="abc"' })), hashString('abc'));
    assert.equal(hasher(ctxWith(['cookie', 'a=1', 'cookie', 'sid=abc'])), hashString('abc'));
    assert.equal(hasher(ctxWith({ cookie: 'xsid=abc; sidx=1' })), -1);
    assert.equal(hasher(ctxWith({ cookie: 'sid=' })), -1);
    assert.equal(hasher(ctxWith(null)), -1);
  });

  it('hashes the path without its query string', () => {
    const hasher = parseHashKey({ path: true });
    assert.equal(hasher(ctxWith(null, '/users/42?x=1')), hashString('/users/42'));
    assert.equal(hasher(ctxWith(null, '/users/42')), hashString('/users/42'));
  });

  it('hashes what a function returns; undefined, empty, non-string or a throw mean no key', () => {
    assert.equal(parseHashKey(() => 'k')(ctxWith(null)), hashString('k'));
    assert.equal(parseHashKey(() => undefined)(ctxWith(null)), -1);
    assert.equal(parseHashKey(() => '')(ctxWith(null)), -1);
    assert.equal(parseHashKey(() => 42)(ctxWith(null)), -1);
    assert.equal(
      parseHashKey(() => {
        throw new Error('boom');
      })(ctxWith(null)),
      -1,
    );
  });

  it('rejects invalid hash-key configuration with a typed error naming the field', () => {
    const bad: [unknown, string][] = [
      [undefined, 'picker.hashKey'],
      [null, 'picker.hashKey'],
      ['x-user', 'picker.hashKey'],
      [{}, 'picker.hashKey'],
      [{ header: 'a', cookie: 'b' }, 'picker.hashKey'],
      [{ header: '' }, 'picker.hashKey.header'],
      [{ header: 'bad name' }, 'picker.hashKey.header'],
      [{ header: 42 }, 'picker.hashKey.header'],
      [{ header: 'Cookie' }, 'picker.hashKey.header'],
      [{ cookie: 'a;b' }, 'picker.hashKey.cookie'],
      [{ path: false }, 'picker.hashKey.path'],
      [{ query: 'q' }, 'picker.hashKey.query'],
    ];
    for (const [raw, option] of bad) {
      assert.throws(() => parseHashKey(raw), { code: 'SIDECARLESS_INVALID_OPTION', option }, JSON.stringify(raw));
    }
  });
});
