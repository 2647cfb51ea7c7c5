import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from '../../../src/common/runtime.js';
import { createResolverRegistry, type Endpoint, type Resolver, StaticResolver } from '../../../src/index.js';
import { parseTarget } from '../../../src/resolvers/target.js';

const ctx = { clock: systemClock, random: Math.random, cluster: 'test' };

describe('parseTarget', () => {
  it('splits scheme, authority, path and query (gRPC naming)', () => {
    const t = parseTarget('DNS://127.0.0.1:53/users.internal:8080?minTtlMs=5');
    assert.equal(t.scheme, 'dns');
    assert.equal(t.authority, '127.0.0.1:53');
    assert.equal(t.path, 'users.internal:8080');
    assert.equal(t.query.get('minTtlMs'), '5');
    assert.equal(parseTarget('dns:///svc:80').authority, '');
    assert.equal(parseTarget('dns:///svc:80').path, 'svc:80');
    assert.equal(parseTarget('static://a:1,b:2').authority, 'a:1,b:2');
    assert.equal(parseTarget('custom:opaque').path, 'opaque');
  });
  it('rejects malformed targets with SIDECARLESS_INVALID_TARGET', () => {
    for (const raw of ['', 'no-scheme', '1abc:x', 'static://a:1, b:2', ':x']) {
      assert.throws(() => parseTarget(raw), { code: 'SIDECARLESS_INVALID_TARGET' }, raw);
    }
  });
});

describe('ResolverRegistry', () => {
  it('rejects unknown schemes with SIDECARLESS_UNKNOWN_SCHEME naming the registered ones', () => {
    assert.throws(() => createResolverRegistry().create('nope://x', ctx), {
      code: 'SIDECARLESS_UNKNOWN_SCHEME',
      scheme: 'nope',
      message: /registered: .*static/,
    });
  });
  it('creates user-registered resolvers', () => {
    const registry = createResolverRegistry();
    let seen = '';
    registry.register('fleet', (target) => {
      seen = target.path;
      return new StaticResolver(['10.0.0.1:80']);
    });
    assert.ok(registry.has('FLEET'));
    registry.create('fleet:///checkout', ctx);
    assert.equal(seen, 'checkout');
  });
  it('rejects a malformed scheme or factory at registration', () => {
    const registry = createResolverRegistry();
    assert.throws(() => registry.register('bad scheme', () => new StaticResolver([])), {
      code: 'SIDECARLESS_INVALID_OPTION',
    });
    assert.throws(() => registry.register('ok', 'nope' as never), { code: 'SIDECARLESS_INVALID_OPTION' });
  });
  it('static targets: malformed lists and invalid ports are SIDECARLESS_INVALID_TARGET', () => {
    const registry = createResolverRegistry();
    const cases: Array<[string, string]> = [
      ['static://', 'SIDECARLESS_INVALID_TARGET'],
      ['static://a:1,,b:2', 'SIDECARLESS_INVALID_TARGET'],
      ['static://a:99999', 'SIDECARLESS_INVALID_TARGET'],
      ['static://a', 'SIDECARLESS_INVALID_TARGET'],
    ];
    for (const [raw, code] of cases) assert.throws(() => registry.create(raw, ctx), { code }, raw);
  });
  it('static targets with a path or a query are refused, not accepted with the extra part dropped', () => {
    const registry = createResolverRegistry();
    for (const raw of [
      'static://127.0.0.1:80/extra',
      'static://127.0.0.1:80,127.0.0.1:81/x',
      'static://127.0.0.1:80?weight=3',
      'static://127.0.0.1:80?',
      'static:///127.0.0.1:80?weight=3',
    ]) {
      assert.throws(() => registry.create(raw, ctx), { code: 'SIDECARLESS_INVALID_TARGET', target: raw }, raw);
    }
    // The forms that carry the list in one place stay valid, and keep every endpoint.
    for (const raw of ['static://127.0.0.1:80,127.0.0.1:81', 'static:///127.0.0.1:80,127.0.0.1:81']) {
      const resolver = registry.create(raw, ctx) as StaticResolver;
      assert.deepEqual(
        resolver.endpoints.map((e) => e.key),
        ['127.0.0.1:80', '127.0.0.1:81'],
        raw,
      );
    }
  });
  it('a duplicate in a static target is SIDECARLESS_DUPLICATE_ENDPOINT, as in an endpoint list', () => {
    const registry = createResolverRegistry();
    for (const raw of ['static://a:1,a:1', 'static:///a:1,b:2,A:1', 'static://[::1]:80,[::1]:80']) {
      assert.throws(() => registry.create(raw, ctx), { code: 'SIDECARLESS_DUPLICATE_ENDPOINT' }, raw);
    }
    assert.throws(() => new StaticResolver(['a:1', 'a:1']), { code: 'SIDECARLESS_DUPLICATE_ENDPOINT', key: 'a:1' });
    assert.throws(() => registry.create('static://a:1,a:1', ctx), { key: 'a:1' });
  });
});

describe('StaticResolver', () => {
  it('delivers asynchronously, never inside start(), and not after close()', async () => {
    const r: Resolver = new StaticResolver(['a:1', '[::1]:2']);
    const updates: (readonly Endpoint[])[] = [];
    r.start({ onUpdate: (e) => updates.push(e), onError: () => assert.fail('no error expected') });
    assert.equal(updates.length, 0);
    await Promise.resolve();
    assert.deepEqual(
      updates[0]?.map((e) => e.key),
      ['a:1', '[::1]:2'],
    );
    (r as StaticResolver).update(['b:3']);
    r.close();
    await Promise.resolve();
    assert.equal(updates.length, 1);
  });
  it('update() validates before replacing: a bad list changes nothing', () => {
    const r = new StaticResolver(['a:1']);
    assert.throws(() => r.update(['a:1', 'a:1']), { code: 'SIDECARLESS_DUPLICATE_ENDPOINT' });
    assert.deepEqual(
      r.endpoints.map((e) => e.key),
      ['a:1'],
    );
  });
});
