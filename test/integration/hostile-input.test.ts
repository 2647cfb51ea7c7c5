// Regression tests for issue 15 ("No crash, hang, lost request or blame on a healthy endpoint, whatever the input"),
// through the package entry point. Each test is named after the report it answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient, createEndpoint, StaticResolver, type ClientOptions } from 'sidecarless';
import { assertCode } from '../helpers/assert-code.js';

describe('issue 15.1: endpoint hosts the URL parser refuses or rewrites are refused', () => {
  // `xn--a` (invalid punycode) is refused by Node 20's URL parser and accepted by Node 24's: the rule is "exactly
  // what the URL parser undici connects through accepts", so it is expected refused only where that parser refuses it.
  const urlRefuses = (host: string): boolean => {
    try {
      return new URL(`http://${host}/`).hostname !== host;
    } catch {
      return true;
    }
  };
  const refused = ['999.1.1.1', 'foo.123', '[fe80::1%eth0]', '0x7f.1', '1.2.3', '127.1', '0177.0.0.1'];
  if (urlRefuses('xn--a')) refused.push('xn--a');
  else {
    it('xn--a is accepted where the URL parser accepts it (Node 24): it can be connected to, so no crash', async () => {
      const client = createClient({ target: ['xn--a:80'] });
      await client.close();
    });
  }
  for (const host of refused) {
    it(`static://${host}:80 fails at construction with a typed error, not later with a crash`, () => {
      assertCode(() => createClient({ target: `static://${host}:80` }), 'SIDECARLESS_INVALID_TARGET');
      assertCode(() => createClient({ target: [`${host}:80`] }), 'SIDECARLESS_INVALID_ENDPOINT');
    });
    it(`StaticResolver.update() refuses ${host} and keeps its set`, () => {
      const resolver = new StaticResolver(['127.0.0.1:80']);
      assertCode(() => resolver.update([`${host}:80`]), 'SIDECARLESS_INVALID_ENDPOINT');
      assert.deepEqual(
        resolver.endpoints.map((e) => e.key),
        ['127.0.0.1:80'],
      );
    });
  }
  it('the message of an ambiguous legacy IPv4 spelling names what parsers read', () => {
    assert.throws(() => createEndpoint({ host: '0x7f.1', port: 80 }), /127\.0\.0\.1/);
    assert.throws(() => createEndpoint({ host: '1.2.3', port: 80 }), /1\.2\.0\.3/);
  });
  it('ordinary hosts still pass: names, underscores, IPv4, IPv6 (canonical)', () => {
    for (const [host, key] of [
      ['users.shop.svc.cluster.local', 'users.shop.svc.cluster.local:80'],
      ['_http._tcp.example', '_http._tcp.example:80'],
      ['10.0.0.7', '10.0.0.7:80'],
      ['[0:0::1]', '[::1]:80'],
      ['xn--bcher-kva.example', 'xn--bcher-kva.example:80'],
    ] as const) {
      assert.equal(createEndpoint({ host, port: 80 }).key, key);
    }
  });
});

describe('issue 15.2: pool options are checked at construction', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['pool.connections', { connections: -1 }],
    ['pool.connections', { connections: 1.5 }],
    ['pool.connect', { connect: 5 }],
    ['pool.connect.timeout', { connect: { timeout: -1 } }],
    ['pool.keepAliveTimeout', { keepAliveTimeout: -5 }],
    ['pool.keepAliveTimeout', { keepAliveTimeout: 'x' }],
    ['pool.headersTimeout', { headersTimeout: -1 }],
    ['pool.bodyTimeout', { bodyTimeout: Number.NaN }],
    ['pool.maxHeaderSize', { maxHeaderSize: 0 }],
    ['pool.maxRequestsPerClient', { maxRequestsPerClient: -2 }],
    ['pool.pipelining', { pipelining: -1 }],
    ['pool.allowH2', { allowH2: 'yes' }],
    ['pool.localAddress', { localAddress: 'not-an-ip' }],
    ['pool.factory', { factory: () => undefined }],
    ['pool.socketPath', { socketPath: '/tmp/x.sock' }],
    ['pool.conections', { conections: 2 }],
  ];
  for (const [option, pool] of bad) {
    it(`${JSON.stringify(pool)} throws SIDECARLESS_INVALID_OPTION naming ${option}`, () => {
      assertCode(
        () => createClient({ target: 'static://127.0.0.1:1', pool } as unknown as ClientOptions),
        'SIDECARLESS_INVALID_OPTION',
        option,
      );
    });
  }
  it('a typo in a pool key gets a suggestion', () => {
    assert.throws(
      () => createClient({ target: 'static://127.0.0.1:1', pool: { conections: 2 } } as unknown as ClientOptions),
      /did you mean "connections"/,
    );
  });
  it('valid pool options are accepted (null connections, 0 timeouts, a connector function)', async () => {
    const client = createClient({
      target: 'static://127.0.0.1:1',
      pool: { connections: null, headersTimeout: 0, bodyTimeout: 0, pipelining: 0, connect: { timeout: 1000 } },
    });
    await client.close();
  });
  it('host with a NUL or CR/LF is refused', () => {
    for (const host of ['a\u0000b', 'a\r\nb', 'a\tb']) {
      assertCode(() => createClient({ target: 'static://127.0.0.1:1', host }), 'SIDECARLESS_INVALID_OPTION', 'host');
    }
  });
  it('pickers: 5 and resolvers: 5 are typed errors, not TypeErrors', () => {
    assertCode(
      () => createClient({ target: 'static://127.0.0.1:1', pickers: 5 } as unknown as ClientOptions),
      'SIDECARLESS_INVALID_OPTION',
      'pickers',
    );
    assertCode(
      () => createClient({ target: 'static://127.0.0.1:1', resolvers: 5 } as unknown as ClientOptions),
      'SIDECARLESS_INVALID_OPTION',
      'resolvers',
    );
    assertCode(
      () => createClient({ target: 'static://127.0.0.1:1', clock: 5 } as unknown as ClientOptions),
      'SIDECARLESS_INVALID_OPTION',
      'clock',
    );
  });
});
