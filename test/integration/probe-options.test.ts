// Regression tests from an adversarial pass over the public entry points (wave 4 probe): options and endpoints a
// user, a consumer or an attacker may pass. Each fails at construction with a typed error, never a raw TypeError.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConsulResolver,
  createClient,
  createEndpoint,
  createEndpointSet,
  createPickerRegistry,
  DnsResolver,
  EtcdResolver,
  isSidecarlessError,
  KubernetesResolver,
  SrvResolver,
  StaticResolver,
  type ClientOptions,
} from 'sidecarless';
import { assertCode } from '../helpers/assert-code.js';

const TARGET = 'static://127.0.0.1:1';

const boom = (): never => {
  throw new Error('boom');
};
const throwingProxy = (): object => new Proxy({}, { get: boom, ownKeys: boom, has: boom });
const throwingGetter = (key: string): object =>
  Object.defineProperty({}, key, { get: boom, enumerable: true, configurable: true });

describe('probe: an option key named like an Object.prototype member', () => {
  for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    it(`"${key}" is an unknown option (SIDECARLESS_INVALID_OPTION), not "renamed.split is not a function"`, () => {
      // JSON.parse makes `__proto__` an own key, as a config file read from disk would.
      const nested = JSON.parse(`{"${key}": 1}`) as Record<string, unknown>;
      assertCode(() => createClient({ target: TARGET, ...nested } as ClientOptions), 'SIDECARLESS_INVALID_OPTION');
      assertCode(
        () => createClient({ target: TARGET, retry: nested } as ClientOptions),
        'SIDECARLESS_INVALID_OPTION',
        `retry.${key}`,
      );
      assertCode(() => new ConsulResolver({ service: 'a', ...nested }), 'SIDECARLESS_INVALID_OPTION', key);
    });
  }

  it('an unknown scheme named "constructor" gets no hint made of Object', () => {
    assert.throws(
      () => createClient({ target: 'constructor://127.0.0.1:1' }),
      (err: unknown) => {
        assert.ok(isSidecarlessError(err));
        assert.equal(err.code, 'SIDECARLESS_UNKNOWN_SCHEME');
        assert.doesNotMatch(err.message, /function|native code/);
        return true;
      },
    );
  });
});

describe('probe: options that throw while they are read (getters, Proxies)', () => {
  it('createClient: a throwing getter or Proxy anywhere is SIDECARLESS_INVALID_OPTION with the error as cause', () => {
    const cases: ClientOptions[] = [
      throwingProxy() as ClientOptions,
      { target: TARGET, retry: throwingProxy() } as ClientOptions,
      { target: TARGET, retry: { backoff: throwingGetter('initialMs') } } as ClientOptions,
      { target: TARGET, picker: throwingGetter('name') } as ClientOptions,
      { target: TARGET, pool: { connect: throwingGetter('timeout') } } as ClientOptions,
      { target: TARGET, zoneAware: { localZone: 'a', callers: throwingProxy() } } as ClientOptions,
      { target: throwingProxy() } as ClientOptions,
      { clusters: { a: { target: TARGET } }, routes: [throwingProxy()] } as unknown as ClientOptions,
    ];
    for (const options of cases) {
      assert.throws(
        () => createClient(options),
        (err: unknown) => {
          assert.ok(isSidecarlessError(err), `expected a SidecarlessError, got ${String(err)}`);
          assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
          return true;
        },
      );
    }
  });

  it('resolver constructors: a throwing getter or Proxy is SIDECARLESS_INVALID_OPTION', () => {
    assertCode(() => new DnsResolver(throwingProxy() as never), 'SIDECARLESS_INVALID_OPTION');
    assertCode(() => new DnsResolver(throwingGetter('host') as never), 'SIDECARLESS_INVALID_OPTION');
    assertCode(() => new DnsResolver({ host: 'a', backoff: throwingProxy() } as never), 'SIDECARLESS_INVALID_OPTION');
    assertCode(() => new SrvResolver(throwingGetter('name') as never), 'SIDECARLESS_INVALID_OPTION');
    assertCode(() => new ConsulResolver(throwingProxy() as never), 'SIDECARLESS_INVALID_OPTION');
    assertCode(
      () => new EtcdResolver({ prefix: '/a', backoff: throwingProxy() } as never),
      'SIDECARLESS_INVALID_OPTION',
    );
    assertCode(() => new KubernetesResolver(throwingProxy() as never), 'SIDECARLESS_INVALID_OPTION');
  });

  it('createPickerRegistry().register: a policy that throws while read is SIDECARLESS_INVALID_OPTION', () => {
    const registry = createPickerRegistry();
    assertCode(() => registry.register(throwingProxy() as never), 'SIDECARLESS_INVALID_OPTION', 'policy');
    assertCode(() => registry.register(throwingGetter('name') as never), 'SIDECARLESS_INVALID_OPTION', 'policy');
    assert.ok(!registry.names().includes('boom'));
  });

  it('createEndpoint, createEndpointSet and StaticResolver: unreadable or non-iterable input is SIDECARLESS_INVALID_ENDPOINT', () => {
    assertCode(() => createEndpoint(throwingProxy() as never), 'SIDECARLESS_INVALID_ENDPOINT');
    assertCode(
      () => createEndpoint({ host: 'a', port: 1, metadata: throwingProxy() } as never),
      'SIDECARLESS_INVALID_ENDPOINT',
    );
    assertCode(() => createEndpointSet(throwingProxy() as never), 'SIDECARLESS_INVALID_ENDPOINT');
    assertCode(() => createEndpointSet([throwingProxy()] as never), 'SIDECARLESS_INVALID_ENDPOINT');
    for (const bad of [undefined, null, 5, {}]) {
      assertCode(() => new StaticResolver(bad as never), 'SIDECARLESS_INVALID_ENDPOINT');
    }
  });
});

describe('probe: TLS material is checked at construction, not on every connection', () => {
  it('tls.ca, tls.cert and tls.key of a wrong type or unparsable PEM are SIDECARLESS_INVALID_OPTION', () => {
    assertCode(() => createClient({ target: TARGET, tls: { ca: 5 as never } }), 'SIDECARLESS_INVALID_OPTION', 'tls.ca');
    assertCode(
      () => createClient({ target: TARGET, tls: { ca: [Symbol('x')] as never } }),
      'SIDECARLESS_INVALID_OPTION',
      'tls.ca',
    );
    assertCode(
      () => createClient({ target: TARGET, tls: { cert: 'not a certificate', key: 'not a key' } }),
      'SIDECARLESS_INVALID_OPTION',
    );
    assertCode(
      () => new ConsulResolver({ service: 'a', address: 'https://127.0.0.1:8501', tls: { ca: 5 as never } }),
      'SIDECARLESS_INVALID_OPTION',
      'tls.ca',
    );
    assertCode(
      () =>
        new EtcdResolver({ prefix: '/a', endpoints: ['https://127.0.0.1:2379'], tls: { key: {} as never, cert: 'x' } }),
      'SIDECARLESS_INVALID_OPTION',
    );
  });

  it('no TLS material, or an empty CA list, is still accepted', async () => {
    for (const tls of [true, {}, { ca: [] }, { rejectUnauthorized: false }] as const) {
      const client = createClient({ target: TARGET, tls });
      await client.close();
    }
  });
});

describe('probe: registerZooKeeper() given something that is not a registry', () => {
  it('is SIDECARLESS_INVALID_OPTION, not "Cannot read properties of null"', async () => {
    const { registerZooKeeper } = await import('sidecarless/zookeeper');
    for (const bad of [null, undefined, 5, {}]) {
      assertCode(() => registerZooKeeper(bad as never), 'SIDECARLESS_INVALID_OPTION', 'registry');
    }
  });
});
