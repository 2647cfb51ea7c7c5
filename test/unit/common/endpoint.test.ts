import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_ENDPOINT_WEIGHT, parseHostPort } from '../../../src/common/endpoint.js';
import { createEndpoint, createEndpointSet, isSidecarlessError } from '../../../src/index.js';

describe('createEndpoint', () => {
  it('fills defaults and computes a stable key', () => {
    const ep = createEndpoint({ host: 'Users.Internal.', port: 8080 });
    assert.equal(ep.host, 'users.internal');
    assert.equal(ep.key, 'users.internal:8080');
    assert.equal(ep.weight, 1);
    assert.equal(ep.priority, 0);
    assert.equal(ep.zone, undefined);
    assert.deepEqual(ep.metadata, {});
    assert.ok(Object.isFrozen(ep) && Object.isFrozen(ep.metadata));
  });

  it('brackets IPv6 in the key and accepts bracketed input', () => {
    assert.equal(createEndpoint({ host: '[::1]', port: 80 }).key, '[::1]:80');
    assert.equal(createEndpoint({ host: '::1', port: 80 }).host, '::1');
  });

  it('spells each IPv6 address one way, so one address cannot appear twice in a set', () => {
    assert.equal(createEndpoint({ host: '0:0::1', port: 80 }).key, '[::1]:80');
    assert.equal(createEndpoint({ host: '[FE80:0:0:0::1]', port: 80 }).host, 'fe80::1');
    // A zone index cannot be carried by an HTTP URL (issue 15.1): refused rather than crashing when its pool is built.
    assert.throws(() => createEndpoint({ host: 'fe80::0:1%eth0', port: 80 }), { code: 'SIDECARLESS_INVALID_ENDPOINT' });
    assert.throws(
      () => createEndpointSet(['[::1]:80', '[0:0::1]:80']),
      (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_DUPLICATE_ENDPOINT',
    );
  });

  const bad: Array<[string, Record<string, unknown>]> = [
    ['empty host', { host: '', port: 80 }],
    ['host with spaces', { host: 'a b', port: 80 }],
    ['label too long', { host: `${'a'.repeat(64)}.com`, port: 80 }],
    ['port 0', { host: 'a', port: 0 }],
    ['port 65536', { host: 'a', port: 65536 }],
    ['fractional port', { host: 'a', port: 80.5 }],
    ['string port', { host: 'a', port: '80' }],
    ['zero weight', { host: 'a', port: 80, weight: 0 }],
    ['negative weight', { host: 'a', port: 80, weight: -1 }],
    ['NaN weight', { host: 'a', port: 80, weight: Number.NaN }],
    ['infinite weight', { host: 'a', port: 80, weight: Number.POSITIVE_INFINITY }],
    ['enormous weight', { host: 'a', port: 80, weight: MAX_ENDPOINT_WEIGHT + 1 }],
    ['negative priority', { host: 'a', port: 80, priority: -1 }],
    ['empty zone', { host: 'a', port: 80, zone: '' }],
    ['non-string metadata', { host: 'a', port: 80, metadata: { v: 2 } }],
  ];
  for (const [name, init] of bad) {
    it(`rejects ${name} with SIDECARLESS_INVALID_ENDPOINT`, () => {
      assert.throws(
        () => createEndpoint(init as never),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_ENDPOINT',
      );
    });
  }
});

describe('createEndpoint: addresses no connection can be made to', () => {
  // Registries hand these out (an instance registering the address it listens on, a hosts file blocking a name):
  // the unspecified address, the limited broadcast address and multicast ones are no upstream (Envoy refuses them).
  const refused: Array<[string, RegExp]> = [
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['[::]', /unspecified/],
    ['0:0:0:0:0:0:0:0', /unspecified/],
    ['255.255.255.255', /broadcast/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['ff02::1', /multicast/],
    ['FF05::1:3', /multicast/],
    ['::ffff:0.0.0.0', /unspecified/],
    ['::ffff:224.0.0.251', /multicast/],
    ['::ffff:255.255.255.255', /broadcast/],
    // A trailing dot (a fully qualified name's) is the same address to the URL parser (probe 10).
    ['0.0.0.0.', /unspecified/],
    ['255.255.255.255.', /broadcast/],
    ['224.0.0.1.', /multicast/],
  ];
  for (const [host, why] of refused) {
    it(`refuses ${host} with SIDECARLESS_INVALID_ENDPOINT`, () => {
      assert.throws(
        () => createEndpoint({ host, port: 80 }),
        (err: unknown) =>
          isSidecarlessError(err) &&
          err.code === 'SIDECARLESS_INVALID_ENDPOINT' &&
          why.test(err.message) &&
          err.message.includes(JSON.stringify(host)),
      );
      assert.throws(
        () => createEndpointSet([`${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:80`]),
        {
          code: 'SIDECARLESS_INVALID_ENDPOINT',
        },
      );
    });
  }

  it('accepts the unicast neighbours of those ranges', () => {
    for (const host of ['1.0.0.0', '10.0.0.0', '223.255.255.255', '::1', 'ff::1', 'fe80::1']) {
      assert.equal(createEndpoint({ host, port: 80 }).port, 80, host);
    }
    assert.equal(createEndpoint({ host: '::ffff:127.0.0.1', port: 80 }).key, '[::ffff:7f00:1]:80');
    assert.equal(createEndpoint({ host: '127.0.0.1.', port: 80 }).key, '127.0.0.1:80');
  });
});

describe('parseHostPort', () => {
  it('parses host:port, [v6]:port and bare hosts with a default port', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:81'), { host: '10.0.0.1', port: 81 });
    assert.deepEqual(parseHostPort('[fe80::1]:82'), { host: 'fe80::1', port: 82 });
    assert.deepEqual(parseHostPort('svc', 80), { host: 'svc', port: 80 });
    assert.deepEqual(parseHostPort('::1', 443), { host: '::1', port: 443 });
  });
  it('rejects a missing port, a bad port and an unclosed bracket', () => {
    for (const text of ['svc', 'svc:http', 'svc:', '[::1', '[::1]x']) {
      assert.throws(() => parseHostPort(text), { code: 'SIDECARLESS_INVALID_ENDPOINT' }, text);
    }
  });
});

describe('createEndpointSet', () => {
  it('rejects duplicate keys with SIDECARLESS_DUPLICATE_ENDPOINT', () => {
    assert.throws(() => createEndpointSet(['127.0.0.1:80', { host: '127.0.0.1', port: 80, weight: 2 }]), {
      code: 'SIDECARLESS_DUPLICATE_ENDPOINT',
      key: '127.0.0.1:80',
    });
  });
  it('keeps order', () => {
    assert.deepEqual(
      createEndpointSet(['b:2', 'a:1']).map((e) => e.key),
      ['b:2', 'a:1'],
    );
  });
});
