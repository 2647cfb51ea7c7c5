// Regression tests from an adversarial pass over the public entry points (wave 4 probe): options and endpoints a
// user, a consumer or an attacker may pass. Each fails at construction with a typed error, never a raw TypeError.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
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
  type ClusterOptions,
} from 'sidecarless';
import { assertCode } from '../helpers/assert-code.js';
import { selfSigned } from '../helpers/kubernetes-api.js';

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
      'tls.ca[0]',
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

  it('no TLS material is still accepted (an empty CA list is not: it trusts no certificate)', async () => {
    assertCode(() => createClient({ target: TARGET, tls: { ca: [] } }), 'SIDECARLESS_INVALID_OPTION', 'tls.ca');
    for (const tls of [true, {}, { rejectUnauthorized: false }] as const) {
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

// Wave 5: an outside-in fuzz of the options. Each bad value fails at construction, naming its full path.
const OPTION = 'SIDECARLESS_INVALID_OPTION';
const K8S = { apiServer: 'https://127.0.0.1:6443', token: 't', env: {}, service: 'users' };
/** A getter that returns `first` on its first read and throws on any later one. */
const onceGetter = (key: string, first: unknown, reads: { n: number }): object =>
  Object.defineProperty({}, key, {
    enumerable: true,
    get: () => {
      reads.n++;
      if (reads.n > 1) throw new Error('read twice');
      return first;
    },
  });

describe('probe wave 5: sums and fractions of durations', () => {
  it('Consul timeoutMarginMs and Kubernetes requestTimeoutMs whose timers would overflow are refused', () => {
    assertCode(() => new ConsulResolver({ service: 'a', timeoutMarginMs: 2 ** 31 - 1 }), OPTION, 'timeoutMarginMs');
    assertCode(() => new KubernetesResolver({ ...K8S, requestTimeoutMs: 2 ** 31 - 1 }), OPTION, 'requestTimeoutMs');
    assertCode(
      () => new KubernetesResolver({ ...K8S, watchTimeoutMs: 2 ** 31 - 10_000, requestTimeoutMs: 20_000 }),
      OPTION,
      'requestTimeoutMs',
    );
  });

  it('resolver timeouts handed to undici must be whole ms', () => {
    assertCode(() => new EtcdResolver({ prefix: '/a', requestTimeoutMs: 1000.5 }), OPTION, 'requestTimeoutMs');
    assertCode(() => new ConsulResolver({ service: 'a', timeoutMarginMs: 0.5 }), OPTION, 'timeoutMarginMs');
    assertCode(() => new KubernetesResolver({ ...K8S, requestTimeoutMs: 1000.5 }), OPTION, 'requestTimeoutMs');
  });

  it('pool timeouts undici requires as integers must be whole; socket paths are refused in pool.connect too', () => {
    for (const key of ['headersTimeout', 'bodyTimeout', 'pingInterval']) {
      assertCode(() => createClient({ target: TARGET, pool: { [key]: 1000.5 } }), OPTION, `pool.${key}`);
    }
    for (const key of ['socketPath', 'path']) {
      assertCode(
        () => createClient({ target: TARGET, pool: { connect: { [key]: '/tmp/x.sock' } as never } }),
        OPTION,
        `pool.connect.${key}`,
      );
    }
  });
});

describe('probe wave 5: what sidecarless forwards to undici is checked at construction', () => {
  it('pool.connect values undici refuses when it builds a pool', () => {
    const bad: [object, string][] = [
      [{ maxCachedSessions: -1 }, 'pool.connect.maxCachedSessions'],
      [{ maxCachedSessions: 1.5 }, 'pool.connect.maxCachedSessions'],
      [{ timeout: -1 }, 'pool.connect.timeout'],
      [{ keepAlive: 'yes' }, 'pool.connect.keepAlive'],
      [{ keepAliveInitialDelay: -5 }, 'pool.connect.keepAliveInitialDelay'],
      [{ servername: 5 }, 'pool.connect.servername'],
      [throwingGetter('timeout'), 'pool.connect.timeout'],
    ];
    for (const [connect, option] of bad) {
      assertCode(() => createClient({ target: TARGET, pool: { connect: connect as never } }), OPTION, option);
    }
  });

  it('pool.interceptors: a Proxy that throws, or a list that is not of functions', () => {
    assertCode(() => createClient({ target: TARGET, pool: { interceptors: throwingProxy() } as never }), OPTION);
    assertCode(
      () => createClient({ target: TARGET, pool: { interceptors: { Pool: [5] } } as never }),
      OPTION,
      'pool.interceptors.Pool[0]',
    );
  });
});

describe('probe wave 5: clocks, picker paths, control characters', () => {
  it('a clock without setTimeout or clearTimeout is refused by every resolver and by the cluster', async () => {
    const { ZooKeeperResolver } = await import('sidecarless/zookeeper');
    const partial = { now: () => 0 } as never;
    assertCode(() => new ConsulResolver({ service: 'a', clock: partial }), OPTION, 'clock');
    assertCode(() => new EtcdResolver({ prefix: '/a', clock: partial }), OPTION, 'clock');
    assertCode(() => new KubernetesResolver({ ...K8S, clock: partial }), OPTION, 'clock');
    assertCode(() => new ZooKeeperResolver({ path: '/a', connect: 'zk:2181', clock: partial }), OPTION, 'clock');
    const noClear = { now: () => 0, setTimeout: () => 0 } as never;
    assertCode(() => createClient({ target: TARGET, clock: noClear }), OPTION, 'clock');
    assertCode(() => createClient({ clusters: { a: { target: TARGET, clock: noClear } } }), OPTION, 'clusters.a.clock');
  });

  it('picker settings are named under their cluster', () => {
    assertCode(
      () =>
        createClient({
          clusters: { users: { target: TARGET, picker: { name: 'maglev', hashKey: { path: true }, tableSize: 4 } } },
        }),
      OPTION,
      'clusters.users.picker.tableSize',
    );
    assertCode(
      () => createClient({ clusters: { users: { target: TARGET, picker: 'round-robbin' as never } } }),
      OPTION,
      'clusters.users.picker.name',
    );
    assertCode(
      () => createClient({ discovery: { domain: 'svc', cluster: { picker: { name: 'ring-hash' } as never } } }),
      OPTION,
      'discovery.cluster.picker.hashKey',
    );
  });

  it('healthCheck.host and resolver tokens with control characters are refused', () => {
    for (const host of ['users\u0000internal', 'users\u007finternal', 'users internal']) {
      assertCode(() => createClient({ target: TARGET, healthCheck: { host } }), OPTION, 'healthCheck.host');
    }
    assertCode(() => new ConsulResolver({ service: 'a', token: 'abc\u0000def' }), OPTION, 'token');
    assertCode(() => new KubernetesResolver({ ...K8S, token: 'abc\r\nx-evil: 1' }), OPTION, 'token');
    assertCode(() => new KubernetesResolver({ ...K8S, token: 'abc\u0000' }), OPTION, 'token');
  });
});

describe('probe wave 5: arrays with holes and huge weights', () => {
  /* eslint-disable no-sparse-arrays */
  it('a hole in any array option is refused, naming its index', () => {
    const rule = { match: { host: 'svc' }, cluster: 'a' };
    const clusters = { a: { target: TARGET }, b: { target: TARGET } };
    assertCode(() => createClient({ clusters, routes: [, rule] as never }), OPTION, 'routes[0]');
    const client = createClient({ clusters });
    assertCode(() => client.setRoutes([, rule] as never), OPTION, 'routes[0]');
    void client.close();
    const split = [{ cluster: 'a', weight: 1 }, , { cluster: 'b', weight: 1 }];
    assertCode(
      () => createClient({ clusters, routes: [{ match: { host: 'svc' }, split } as never] }),
      OPTION,
      'routes[0].split[1]',
    );
    assertCode(
      () => createClient({ target: TARGET, healthCheck: { expectedStatuses: [, 200] as never } }),
      OPTION,
      'healthCheck.expectedStatuses[0]',
    );
    assertCode(
      () => createClient({ target: TARGET, retry: { retryOn: [, 503] as never } }),
      OPTION,
      'retry.retryOn[0]',
    );
    assertCode(() => createClient({ target: [, '127.0.0.1:1'] as never }), OPTION, 'target[0]');
    assertCode(() => new ConsulResolver({ service: 'a', tags: [, 'v2'] as never }), OPTION, 'tags[0]');
    assertCode(
      () => new EtcdResolver({ prefix: '/a', endpoints: [, '127.0.0.1:2379'] as never }),
      OPTION,
      'endpoints[0]',
    );
  });
  /* eslint-enable no-sparse-arrays */

  it('split weights and zone caller counts above 1e9 are refused (their sum would overflow)', () => {
    const clusters = { a: { target: TARGET }, b: { target: TARGET } };
    const split = [
      { cluster: 'a', weight: 1e308 },
      { cluster: 'b', weight: 1e308 },
    ];
    assertCode(
      () => createClient({ clusters, routes: [{ match: { host: 'svc' }, split }] }),
      OPTION,
      'routes[0].split[0].weight',
    );
    assertCode(
      () => createClient({ target: TARGET, zoneAware: { localZone: 'a', callers: { a: 1e308, b: 1e308 } } }),
      OPTION,
      'zoneAware.callers.a',
    );
  });
});

describe('probe wave 5: each option is read once, errors name the field', () => {
  it('health options are read once (a getter that throws on a second read does not escape)', async () => {
    for (const [key, first] of [
      ['intervalMs', 1000],
      ['path', '/h'],
    ] as const) {
      const reads = { n: 0 };
      const client = createClient({ target: TARGET, healthCheck: onceGetter(key, first, reads) as never });
      assert.equal(reads.n, 1, key);
      await client.close();
    }
    const reads = { n: 0 };
    const client = createClient({
      clusters: { a: { target: TARGET, outlierDetection: onceGetter('consecutive5xx', 5, reads) as never } },
    });
    assert.equal(reads.n, 1);
    await client.close();
  });

  it('a discovery template is read once, not again for every discovered cluster', async () => {
    const reads = { n: 0 };
    const client = createClient({
      discovery: {
        domain: 'svc',
        target: () => [TARGET.slice(9)],
        cluster: { healthCheck: onceGetter('path', '/h', reads) },
      },
    });
    const res = await client.fetch('http://a.svc/').catch((err: unknown) => err);
    assert.equal(reads.n, 1);
    const cause = (res as { cause?: unknown }).cause;
    assert.ok(
      !isSidecarlessError(cause) || cause.code !== OPTION,
      'the template is not re-read when a cluster is made',
    );
    await client.close();
  });

  it('a throwing getter in a nested option is named by its field', () => {
    assertCode(
      () => createClient({ target: TARGET, retry: { backoff: throwingGetter('initialMs') } } as ClientOptions),
      OPTION,
      'retry.backoff.initialMs',
    );
    assertCode(
      () => createClient({ clusters: { a: { target: TARGET, healthCheck: throwingGetter('path') } } } as ClientOptions),
      OPTION,
      'clusters.a.healthCheck.path',
    );
  });
});

describe('probe wave 5: cluster names are case-insensitive, as hosts are', () => {
  it('cluster `Users` is reached by http://Users/ and http://users/; `Users` and `users` together are refused', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const client = createClient({ clusters: { Users: { target: [`127.0.0.1:${port}`] } } });
    try {
      for (const url of ['http://Users/', 'http://users/']) {
        const res = await client.fetch(url);
        assert.equal(res.status, 200, url);
        await res.text();
      }
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['users'],
      );
    } finally {
      await client.close();
      server.close();
    }
    assertCode(
      () => createClient({ clusters: { Users: { target: TARGET }, users: { target: TARGET } } }),
      OPTION,
      'clusters.users',
    );
    const routed = createClient({
      clusters: { Users: { target: TARGET } },
      routes: [{ match: { host: 'api' }, cluster: 'Users' }],
    });
    await routed.close();
  });
});

describe('probe wave 5: breaker', () => {
  it('errorThresholdPercentage 100 (never exceeded) is refused; 99 is accepted', async () => {
    assertCode(
      () => createClient({ target: TARGET, breaker: { errorThresholdPercentage: 100 } }),
      OPTION,
      'breaker.errorThresholdPercentage',
    );
    await createClient({ target: TARGET, breaker: { errorThresholdPercentage: 99 } }).close();
  });

  it('every refused errorThresholdPercentage is told the same range, "below 100" (probe 20: 0 was told "<= 100")', () => {
    for (const value of [0, 0.5, 100, 100.5, -1, Number.NaN, '50']) {
      assert.throws(
        () => createClient({ target: TARGET, breaker: { errorThresholdPercentage: value as number } }),
        { option: 'breaker.errorThresholdPercentage', message: />= 1 and below 100/ },
        String(value),
      );
    }
  });
});

describe('probe 15: pool.connect fields the cluster would ignore are refused at construction', () => {
  const OPTION = 'SIDECARLESS_INVALID_OPTION';
  const refused = (options: Partial<ClientOptions>, option: string, advice: RegExp) => {
    assertCode(() => createClient({ target: TARGET, ...options } as ClientOptions), OPTION, option);
    assert.throws(() => createClient({ target: TARGET, ...options } as ClientOptions), advice);
  };

  it('pool.connect.servername and rejectUnauthorized, on a TLS cluster or not: the tls option sets them', () => {
    for (const tls of [undefined, true, { rejectUnauthorized: true }]) {
      refused({ tls, pool: { connect: { servername: 'users' } } }, 'pool.connect.servername', /use tls\.servername/);
      refused(
        { tls, pool: { connect: { rejectUnauthorized: false } } },
        'pool.connect.rejectUnauthorized',
        /use tls\.rejectUnauthorized/,
      );
    }
  });

  it('a connector function with the tls option (it was dropped and never called, probe 22)', () => {
    let called = 0;
    const connector = (_options: object, callback: (err: Error | null, socket: null) => void) => {
      called++;
      callback(new Error('unused'), null);
    };
    for (const tls of [true, { rejectUnauthorized: true }]) {
      refused(
        { tls, pool: { connect: connector as never } },
        'pool.connect',
        /connector function cannot be combined with tls/,
      );
    }
    assert.equal(called, 0);
    // Without tls it is the cluster's connector, as undici takes it.
    assert.doesNotThrow(() => void createClient({ target: TARGET, pool: { connect: connector as never } }).close());
  });

  it('pool.connect TLS material without the tls option: the cluster speaks plain HTTP', () => {
    const { cert, key } = selfSigned('users', 'DNS:users');
    for (const [connect, option] of [
      [{ ca: cert }, 'pool.connect.ca'],
      [{ cert, key }, 'pool.connect.cert'],
      [{ key }, 'pool.connect.key'],
      [{ timeout: 1000, pfx: Buffer.from('x') }, 'pool.connect.pfx'],
      [{ checkServerIdentity: () => undefined }, 'pool.connect.checkServerIdentity'],
    ] as const) {
      refused({ pool: { connect: connect as never } }, option, /plain HTTP.*tls: \{\.\.\.\}/);
    }
  });

  it('still accepts TLS material in pool.connect with the tls option, and plain connector options without it', async () => {
    const { cert } = selfSigned('users', 'DNS:users');
    for (const options of [
      { tls: true, pool: { connect: { ca: cert } } },
      { tls: { servername: 'users' }, pool: { connect: { ca: cert, maxCachedSessions: 0 } } },
      { pool: { connect: { timeout: 1000, keepAlive: true } } },
    ] as const) {
      await createClient({ target: TARGET, ...options } as ClientOptions).close();
    }
  });
});

describe('probe 22: TLS material Node takes, and undici null options, accepted as undici does', () => {
  const OPTION = 'SIDECARLESS_INVALID_OPTION';
  const passphrase = 'correct horse';
  /** An https server (certificate for svc, 127.0.0.1 and ::1) answering with the client certificate's CN. */
  async function server(requestCert: boolean, clientCa?: string) {
    const { cert, key } = selfSigned('svc', 'DNS:svc,IP:127.0.0.1,IP:::1');
    const s = https.createServer(
      { cert, key, ...(requestCert ? { requestCert, rejectUnauthorized: true, ca: clientCa } : {}) },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.end(`cn=${String(peer.subject?.CN ?? '')}`);
      },
    );
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return { ca: cert, target: `static://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => s.close() };
  }
  async function text(options: ClientOptions, url = 'https://svc/'): Promise<string> {
    const client = createClient(options);
    try {
      const res = await client.fetch(url);
      return await res.text();
    } finally {
      await client.close();
    }
  }

  it('mutual TLS with an encrypted client key and tls.passphrase, in tls or with the key in pool.connect', async () => {
    const client = selfSigned('client', 'DNS:client');
    const key = createPrivateKey(client.key)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
      .toString();
    assert.match(key, /ENCRYPTED PRIVATE KEY/);
    const s = await server(true, client.cert);
    try {
      const { ca, target } = s;
      assert.equal(await text({ target, tls: { ca, cert: client.cert, key, passphrase } }), 'cn=client');
      assert.equal(
        await text({ target, tls: { ca, passphrase }, pool: { connect: { cert: client.cert, key } } }),
        'cn=client',
      );
      assertCode(() => createClient({ target, tls: { ca, cert: client.cert, key } }), OPTION, 'tls.key');
      assertCode(
        () => createClient({ target, tls: { ca, cert: client.cert, key, passphrase: 'wrong' } }),
        OPTION,
        'tls.passphrase',
      );
    } finally {
      s.close();
    }
  });

  it('tls.ca as a Uint8Array (a structuredClone of a Buffer), and an IPv6 tls.servername as an IPv4 one', async () => {
    const s = await server(false);
    try {
      const config = structuredClone({ target: s.target, tls: { ca: Buffer.from(s.ca) } });
      assert.equal(config.tls.ca.constructor, Uint8Array);
      assert.equal(await text(config), 'cn=');
      for (const servername of ['127.0.0.1', '::1']) {
        assert.equal(await text({ target: s.target, tls: { ca: s.ca, servername } }), 'cn=', servername);
      }
    } finally {
      s.close();
    }
  });

  it('null where undici gives it a meaning (no limit, its default); refused everywhere else in pool', async () => {
    const s = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const target = `static://127.0.0.1:${(s.address() as AddressInfo).port}`;
    try {
      const accepted: Array<NonNullable<ClusterOptions['pool']>> = [
        { connections: null },
        { clientTtl: null },
        { connect: { timeout: null } as never }, // typed number by Node's net/tls options, null by undici's
        { connect: { maxCachedSessions: null } },
        { connect: { keepAlive: null } },
      ];
      // A request builds the endpoint's pool: undici takes each of them there too.
      for (const pool of accepted)
        assert.equal(await text({ target, pool }, 'http://svc/'), 'ok', JSON.stringify(pool));
      for (const key of ['pipelining', 'maxHeaderSize', 'keepAliveTimeout', 'headersTimeout', 'allowH2', 'connect']) {
        assertCode(() => createClient({ target, pool: { [key]: null } }), OPTION, `pool.${key}`);
      }
      // keepAliveInitialDelay: null is typed, and net.connect throws on it at every connection.
      const nulls = ['keepAliveInitialDelay', 'typeOfService', 'localAddress', 'allowH2', 'useH2c', 'noDelay'];
      for (const key of nulls) {
        assertCode(
          () => createClient({ target, pool: { connect: { [key]: null } as never } }),
          OPTION,
          `pool.connect.${key}`,
        );
      }
      assertCode(
        () => createClient({ target, tls: true, pool: { connect: { ca: null } as never } }),
        OPTION,
        'pool.connect.ca',
      );
      // undici sets every connection's local address from pool.localAddress: connect's would do nothing.
      assert.throws(() => createClient({ target, pool: { connect: { localAddress: '127.0.0.1' } } }), {
        option: 'pool.connect.localAddress',
        message: /use that/,
      });
    } finally {
      s.close();
    }
  });
});
