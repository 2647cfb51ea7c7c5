import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createClient,
  createPickerRegistry,
  isSidecarlessError,
  type PickerPolicy,
  type Resolver,
  type SingleServiceOptions,
} from '../../../src/index.js';
import { selfSigned } from '../../helpers/kubernetes-api.js';

/** `pem` (a private key) encrypted with `passphrase`, as `openssl pkey -aes256` writes it. */
function encrypt(pem: string, passphrase: string): string {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

function code(fn: () => unknown): string | undefined {
  try {
    const client = fn() as { close?: () => Promise<void> };
    void client?.close?.();
  } catch (err) {
    return isSidecarlessError(err) ? `${err.code}${'option' in err ? `:${String(err.option)}` : ''}` : 'untyped';
  }
  return undefined;
}

describe('client construction rejects bad options with typed errors naming the option', () => {
  const cases: Array<[string, () => unknown, string]> = [
    ['no options', () => createClient(undefined as never), 'SIDECARLESS_INVALID_OPTION:options'],
    ['no target', () => createClient({} as never), 'SIDECARLESS_INVALID_OPTION:target'],
    ['target of the wrong type', () => createClient({ target: 42 as never }), 'SIDECARLESS_INVALID_OPTION:target'],
    ['malformed target', () => createClient({ target: 'not a target' }), 'SIDECARLESS_INVALID_TARGET'],
    ['unknown scheme', () => createClient({ target: 'zk://x/y' }), 'SIDECARLESS_UNKNOWN_SCHEME'],
    ['duplicate endpoints', () => createClient({ target: ['a:1', 'a:1'] }), 'SIDECARLESS_DUPLICATE_ENDPOINT'],
    ['invalid port', () => createClient({ target: ['a:0'] }), 'SIDECARLESS_INVALID_ENDPOINT'],
    [
      'invalid weight',
      () => createClient({ target: [{ host: 'a', port: 1, weight: -2 }] }),
      'SIDECARLESS_INVALID_ENDPOINT',
    ],
    [
      'unknown picker',
      () => createClient({ target: ['a:1'], picker: 'nope' }),
      'SIDECARLESS_INVALID_OPTION:picker.name',
    ],
    [
      'negative waitForReadyTimeoutMs',
      () => createClient({ target: ['a:1'], waitForReadyTimeoutMs: -1 }),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimeoutMs',
    ],
    [
      'NaN drainTimeoutMs',
      () => createClient({ target: ['a:1'], drainTimeoutMs: Number.NaN }),
      'SIDECARLESS_INVALID_OPTION:drainTimeoutMs',
    ],
    ['empty host', () => createClient({ target: ['a:1'], host: '' }), 'SIDECARLESS_INVALID_OPTION:host'],
    [
      'pool factory',
      () => createClient({ target: ['a:1'], pool: { factory: () => null } as never }),
      'SIDECARLESS_INVALID_OPTION:pool.factory',
    ],
    [
      'backoff max below initial',
      () => createClient({ target: ['a:1'], connectBackoff: { initialMs: 10, maxMs: 5 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.maxMs',
    ],
    [
      'backoff jitter of 1',
      () => createClient({ target: ['a:1'], connectBackoff: { jitter: 1 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.jitter',
    ],
    [
      'backoff with an unknown key',
      () => createClient({ target: ['a:1'], connectBackoff: { initial: 5 } as never }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.initial',
    ],
    [
      'backoff as an array',
      () => createClient({ target: ['a:1'], connectBackoff: [] as never }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff',
    ],
    [
      'backoff maxMs beyond the longest timer (it would fire after 1 ms)',
      () => createClient({ target: ['a:1'], connectBackoff: { maxMs: 1e12 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.maxMs',
    ],
    [
      'backoff initialMs beyond the longest timer',
      () => createClient({ target: ['a:1'], connectBackoff: { initialMs: 1e12, maxMs: 1e12 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.initialMs',
    ],
    [
      'backoff multiplier of NaN',
      () => createClient({ target: ['a:1'], connectBackoff: { multiplier: Number.NaN } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.multiplier',
    ],
    [
      'outlierDetection percentage above 100',
      () => createClient({ target: ['a:1'], outlierDetection: { maxEjectionPercent: 101 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.maxEjectionPercent',
    ],
    [
      'outlierDetection zero interval',
      () => createClient({ target: ['a:1'], outlierDetection: { intervalMs: 0 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.intervalMs',
    ],
    [
      'outlierDetection max ejection time below the base',
      () =>
        createClient({ target: ['a:1'], outlierDetection: { baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 1000 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.maxEjectionTimeMs',
    ],
    [
      'outlierDetection unknown key',
      () => createClient({ target: ['a:1'], outlierDetection: { consecutive500: 3 } as never }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.consecutive500',
    ],
    [
      'healthCheck non-positive threshold',
      () => createClient({ target: ['a:1'], healthCheck: { unhealthyThreshold: 0 } }),
      'SIDECARLESS_INVALID_OPTION:healthCheck.unhealthyThreshold',
    ],
    [
      'healthCheck path naming another host',
      () => createClient({ target: ['a:1'], healthCheck: { path: '//evil.example/x' } }),
      'SIDECARLESS_INVALID_OPTION:healthCheck.path',
    ],
    [
      'slowStart without windowMs',
      () => createClient({ target: ['a:1'], slowStart: {} as never }),
      'SIDECARLESS_INVALID_OPTION:slowStart.windowMs',
    ],
    [
      'slowStart zero aggression',
      () => createClient({ target: ['a:1'], slowStart: { windowMs: 1000, aggression: 0 } }),
      'SIDECARLESS_INVALID_OPTION:slowStart.aggression',
    ],
    [
      'panicThreshold above 100',
      () => createClient({ target: ['a:1'], panicThreshold: 150 }),
      'SIDECARLESS_INVALID_OPTION:panicThreshold',
    ],
    [
      'negative panicThreshold',
      () => createClient({ target: ['a:1'], panicThreshold: -1 }),
      'SIDECARLESS_INVALID_OPTION:panicThreshold',
    ],
    ['empty name', () => createClient({ target: ['a:1'], name: '' }), 'SIDECARLESS_INVALID_OPTION:name'],
    [
      'unknown single-service option',
      () => createClient({ target: ['a:1'], foo: 1 } as never),
      'SIDECARLESS_INVALID_OPTION:foo',
    ],
    [
      'misspelt single-service option (waitForReadyTimout)',
      () => createClient({ target: 'static://127.0.0.1:1', waitForReadyTimout: 100 } as never),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimout',
    ],
    [
      'misspelt target is named, not reported as a missing target',
      () => createClient({ targt: ['a:1'] } as never),
      'SIDECARLESS_INVALID_OPTION:targt',
    ],
    [
      'multi-service key on a single-service client',
      () => createClient({ target: ['a:1'], routes: [] } as never),
      'SIDECARLESS_INVALID_OPTION:routes',
    ],
    [
      'unknown multi-service option',
      () => createClient({ clusters: { a: { target: ['a:1'] } }, waitForReadyTimeoutMs: 5 } as never),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimeoutMs',
    ],
  ];
  for (const [name, fn, expected] of cases) {
    it(name, () => assert.equal(code(fn), expected));
  }

  it('accepts a valid configuration', () => {
    assert.equal(
      code(() =>
        createClient({
          target: 'static://127.0.0.1:1,[::1]:2',
          picker: { name: 'round-robin' },
          waitForReadyTimeoutMs: 0,
          host: 'svc',
          connectBackoff: { initialMs: 5, maxMs: 10, multiplier: 2, jitter: 0 },
        }),
      ),
      undefined,
    );
  });

  it('accepts every documented single-service option key (each left at its default)', () => {
    const keys: Array<keyof SingleServiceOptions> = [
      'name',
      'picker',
      'host',
      'endpointHeader',
      'waitForReadyTimeoutMs',
      'drainTimeoutMs',
      'pool',
      'tls',
      'zoneAware',
      'connectBackoff',
      'resolvers',
      'pickers',
      'clock',
      'random',
      'retry',
      'retryBudget',
      'hedge',
      'timeoutMs',
      'limits',
      'breaker',
      'outlierDetection',
      'healthCheck',
      'slowStart',
      'panicThreshold',
    ];
    const options = Object.fromEntries(keys.map((k) => [k, undefined]));
    assert.equal(
      code(() => createClient({ ...options, target: ['a:1'] })),
      undefined,
    );
  });
});

describe('client option errors name the full path of nested options', () => {
  function thrown(fn: () => unknown): { code?: string; option?: string; message?: string } {
    try {
      const client = fn() as { close?: () => Promise<void> };
      void client?.close?.();
    } catch (err) {
      return err as { code?: string; option?: string; message?: string };
    }
    return {};
  }

  const cases: Array<[string, () => unknown, string]> = [
    [
      'a retry option of a configured cluster',
      () => createClient({ clusters: { users: { target: ['a:1'], retry: { maxAttempts: 0 } } } }),
      'clusters.users.retry.maxAttempts',
    ],
    [
      'a retry option of the discovery template',
      () => createClient({ discovery: { domain: 'svc.test', cluster: { retry: { maxAttempts: 0 } } } }),
      'discovery.cluster.retry.maxAttempts',
    ],
    [
      'a health option of a configured cluster',
      () => createClient({ clusters: { users: { target: ['a:1'], outlierDetection: { intervalMs: 0 } } } }),
      'clusters.users.outlierDetection.intervalMs',
    ],
    [
      'a health option of the discovery template',
      () => createClient({ discovery: { domain: 'svc.test', cluster: { healthCheck: { unhealthyThreshold: 0 } } } }),
      'discovery.cluster.healthCheck.unhealthyThreshold',
    ],
    [
      'a backoff option of the discovery template',
      () => createClient({ discovery: { domain: 'svc.test', cluster: { connectBackoff: { jitter: 1 } } } }),
      'discovery.cluster.connectBackoff.jitter',
    ],
    [
      'an unknown key of a configured cluster',
      () => createClient({ clusters: { users: { target: ['a:1'], waitForReadyTimout: 5 } as never } }),
      'clusters.users.waitForReadyTimout',
    ],
    [
      'a target in the discovery template (discovery.target makes it)',
      () => createClient({ discovery: { domain: 'svc.test', cluster: { target: ['a:1'] } as never } }),
      'discovery.cluster.target',
    ],
    [
      'an unknown discovery key',
      () => createClient({ discovery: { domain: 'svc.test', maxCluster: 3 } as never }),
      'discovery.maxCluster',
    ],
    [
      'a fractional idleTimeoutMs',
      () => createClient({ discovery: { domain: 'svc.test', idleTimeoutMs: 1.5 } }),
      'discovery.idleTimeoutMs',
    ],
  ];
  for (const [name, fn, option] of cases) {
    it(name, () => {
      const err = thrown(fn);
      assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
      assert.equal(err.option, option);
      assert.match(String(err.message), new RegExp(`^Invalid option \`${option.replaceAll('.', '\\.')}\``));
    });
  }

  it('suggests the likely key for a typo, with the one wording of the toolkit', () => {
    const err = thrown(() => createClient({ target: ['a:1'], waitForReadyTimout: 5 } as never));
    assert.match(String(err.message), /unknown option; did you mean "waitForReadyTimeoutMs"\?/);
    const nested = thrown(() => createClient({ discovery: { domain: 'svc.test', maxCluster: 3 } as never }));
    assert.match(String(nested.message), /unknown option; did you mean "maxClusters"\?/);
  });

  it("a custom policy's parseConfig throwing a TypeError names the picker option, not `options` (regression)", () => {
    const buggy: PickerPolicy<unknown> = {
      name: 'buggy',
      parseConfig: (raw) => (raw as { missing: { field: unknown } }).missing.field,
      build: () => ({ pick: () => ({ type: 'queue' }) }),
    };
    const pickers = createPickerRegistry().register(buggy);
    for (const [fn, option] of [
      [() => createClient({ target: ['a:1'], pickers, picker: 'buggy' }), 'picker'],
      [() => createClient({ target: ['a:1'], pickers, picker: { name: 'buggy', x: 1 } }), 'picker'],
      [
        () => createClient({ clusters: { users: { target: ['a:1'], pickers, picker: 'buggy' } } }),
        'clusters.users.picker',
      ],
      [
        () => createClient({ discovery: { domain: 'svc.test', cluster: { pickers, picker: 'buggy' } } }),
        'discovery.cluster.picker',
      ],
    ] as const) {
      const err = thrown(fn) as { code?: string; option?: string; message?: string; cause?: unknown };
      assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION', String(err.message));
      assert.equal(err.option, option);
      assert.match(String(err.message), /policy "buggy" failed to parse its settings: Cannot read properties/);
      assert.ok(err.cause instanceof TypeError, 'the TypeError is the cause');
    }
    // A getter of the picker option that throws is named after the option too.
    const getter = Object.defineProperty({ name: 'buggy' }, 'x', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    assert.equal(thrown(() => createClient({ target: ['a:1'], pickers, picker: getter })).option, 'picker');
  });

  it('names the new name of discovery.idleTimeout (renamed in 0.2.0)', () => {
    const err = thrown(() => createClient({ discovery: { domain: 'svc.test', idleTimeout: 1000 } as never }));
    assert.equal(err.option, 'discovery.idleTimeout');
    assert.match(String(err.message), /renamed to "idleTimeoutMs" in 0\.2\.0/);
  });

  it('a bad discovery template throws at createClient without building any cluster or resolver', () => {
    let starts = 0;
    let closes = 0;
    let targets = 0;
    const resolver: Resolver = {
      start: () => void starts++,
      close: () => void closes++,
    };
    const err = thrown(() =>
      createClient({
        clusters: { fixed: { target: resolver } },
        discovery: {
          domain: 'svc.test',
          target: () => {
            targets++;
            return ['a:1'];
          },
          cluster: { waitForReadyTimeoutMs: -1 },
        },
      }),
    );
    assert.equal(err.option, 'discovery.cluster.waitForReadyTimeoutMs');
    assert.deepEqual({ starts, closes, targets }, { starts: 0, closes: 0, targets: 0 });
  });

  it('accepts a valid discovery template and builds no cluster for it until a host is asked for', async () => {
    let targets = 0;
    const client = createClient({
      discovery: {
        domain: 'svc.test',
        target: () => {
          targets++;
          return ['127.0.0.1:1'];
        },
        cluster: { waitForReadyTimeoutMs: 0, retry: { maxAttempts: 2 } },
        maxClusters: 3,
        idleTimeoutMs: 60_000,
      },
    });
    try {
      assert.equal(targets, 0);
      assert.deepEqual(client.stats().clusters, []);
    } finally {
      await client.close();
    }
  });
});

describe("a single-service client's default name", () => {
  it('is the service the target names; a dns: IPv6 literal in brackets, as a URL writes it (regression: `:`)', async () => {
    const cases: Array<[string, string]> = [
      ['dns:///::1', '[::1]'],
      ['dns:///[::1]:8080', '[::1]'],
      ['dns:///[0:0::1]:8080', '[::1]'],
      ['dns:///10.0.0.7:8080', '10.0.0.7'],
      ['dns:///10.0.0.7', '10.0.0.7'],
    ];
    for (const [target, name] of cases) {
      const client = createClient({ target });
      try {
        assert.equal(client.stats().clusters[0]?.name, name, target);
      } finally {
        await client.close();
      }
    }
  });
});

describe('the target option and explicit undefined options (probe 14)', () => {
  it('refuses a misspelled key in an endpoint object of a target list, naming the entry', () => {
    const cases: Array<[() => unknown, string]> = [
      [
        () => createClient({ target: [{ host: '127.0.0.1', port: 8080, wieght: 5 } as never] }),
        'SIDECARLESS_INVALID_OPTION:target[0].wieght',
      ],
      [
        () =>
          createClient({
            clusters: { a: { target: ['127.0.0.1:1', { host: '127.0.0.1', port: 8080, zon: 'eu-1' } as never] } },
          }),
        'SIDECARLESS_INVALID_OPTION:clusters.a.target[1].zon',
      ],
    ];
    for (const [fn, expected] of cases) assert.equal(code(fn), expected);
    // Every key of an endpoint, and of an Endpoint object (its `key`), is taken.
    const full = { host: '127.0.0.1', port: 8080, weight: 2, priority: 1, zone: 'z', metadata: { a: 'b' } };
    assert.equal(
      code(() => createClient({ target: [full, { ...full, port: 8081, key: '127.0.0.1:8081' }] })),
      undefined,
    );
  });

  it('reports a throwing getter or Proxy trap of a Resolver given as target under `target`', () => {
    const throwing = () => {
      throw new Error('boom');
    };
    const getter = { close() {} };
    Object.defineProperty(getter, 'start', { get: throwing });
    const proxy = new Proxy({}, { has: throwing, get: throwing });
    assert.equal(
      code(() => createClient({ target: getter as never })),
      'SIDECARLESS_INVALID_OPTION:target',
    );
    assert.equal(
      code(() => createClient({ target: proxy as never })),
      'SIDECARLESS_INVALID_OPTION:target',
    );
    assert.equal(
      code(() => createClient({ clusters: { a: { target: getter as never } } })),
      'SIDECARLESS_INVALID_OPTION:clusters.a.target',
    );
  });

  it("treats the other shape's options set to undefined as absent, and still refuses unknown ones", () => {
    const target = ['127.0.0.1:1'];
    for (const key of ['clusters', 'routes', 'discovery', 'passthrough']) {
      assert.equal(
        code(() => createClient({ target, [key]: undefined } as never)),
        undefined,
        key,
      );
    }
    for (const key of ['target', 'name', 'timeoutMs', 'retry']) {
      assert.equal(
        code(() => createClient({ clusters: { a: { target } }, [key]: undefined } as never)),
        undefined,
        key,
      );
    }
    assert.equal(
      code(() => createClient({ target, clusterz: undefined } as never)),
      'SIDECARLESS_INVALID_OPTION:clusterz',
    );
  });
});

// Probe 17: a discovery domain was only lower-cased and trimmed of dots, so one no request host can end in (a port, a
// path, a `*.` as route hosts write it, a Unicode name where request hosts are punycode) was accepted, and every
// request to it then failed at run time with SIDECARLESS_NO_ROUTE.
describe('discovery.domain is checked as route host patterns are (probe 17)', () => {
  it('refuses a domain with a wildcard, port, path, scheme, spaces or an IP literal, naming discovery.domain', () => {
    for (const domain of [
      '*.svc.test',
      'svc.test:8080',
      'svc.test/v1',
      'http://svc.test',
      'svc test',
      'a*b.test',
      '1.2.3.4',
      '[::1]',
      '',
      '...',
    ]) {
      assert.equal(
        code(() => createClient({ discovery: { domain, target: () => ['127.0.0.1:1'] } })),
        'SIDECARLESS_INVALID_OPTION:discovery.domain',
        JSON.stringify(domain),
      );
    }
  });

  it('takes a Unicode domain as its punycode, and discovers the hosts under it', async () => {
    const hosts: string[] = [];
    const client = createClient({
      passthrough: false,
      discovery: {
        domain: 'Bücher.Test.',
        target: (host) => {
          hosts.push(host);
          return ['127.0.0.1:1'];
        },
      },
    });
    try {
      // Under the domain: a cluster is made for the host (the request itself then finds nothing listening).
      await client.fetch('http://users.bücher.test/', { signal: AbortSignal.timeout(50) }).catch(() => {});
      assert.deepEqual(hosts, ['users.xn--bcher-kva.test']);
      assert.deepEqual(
        client.stats().clusters.map((c) => c.name),
        ['users.xn--bcher-kva.test'],
      );
    } finally {
      await client.destroy();
    }
  });
});

describe('text that can never go out as configured is refused at construction (probe 20)', () => {
  const OPTION = 'SIDECARLESS_INVALID_OPTION';
  const target = ['127.0.0.1:1'];
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  /** Each option under both shapes: the single-service top level and a cluster of a multi-service client. */
  const shapes: Array<[string, (options: Record<string, unknown>) => unknown]> = [
    ['', (options) => createClient({ target, ...options } as SingleServiceOptions)],
    ['clusters.a.', (options) => createClient({ clusters: { a: { target, ...options } } } as never)],
  ];

  it('refuses a host or healthCheck.host that is not an ASCII host[:port], naming it', () => {
    const bad = [
      'ü\u202e日本',
      '日本',
      'bücher.example',
      'a b',
      'a\r\nx: 1',
      'a\u0000b',
      'a/b',
      'a:99999',
      '[zz]:80',
      ':80',
    ];
    for (const [prefix, build] of shapes) {
      for (const value of bad) {
        assert.equal(
          code(() => build({ host: value })),
          `${OPTION}:${prefix}host`,
          JSON.stringify(value),
        );
        assert.equal(
          code(() => build({ healthCheck: { host: value } })),
          `${OPTION}:${prefix}healthCheck.host`,
          JSON.stringify(value),
        );
      }
      assert.equal(
        code(() => build({ host: 5 })),
        `${OPTION}:${prefix}host`,
      );
      for (const value of ['users', 'users.internal:8080', '10.0.0.7', '[::1]:8443', 'xn--bcher-kva.example', false]) {
        assert.equal(
          code(() => build({ host: value })),
          undefined,
          JSON.stringify(value),
        );
        if (typeof value === 'string') {
          assert.equal(
            code(() => build({ healthCheck: { host: value } })),
            undefined,
            value,
          );
        }
      }
    }
  });

  it('refuses tls.ca, tls.cert and tls.key that are not PEM text, naming the field (or the array entry)', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ca: 'x' }, 'tls.ca'],
      [{ ca: '' }, 'tls.ca'],
      [{ ca: null }, 'tls.ca'],
      [{ ca: Number.NaN }, 'tls.ca'],
      [{ ca: 0 }, 'tls.ca'],
      [{ ca: false }, 'tls.ca'],
      [{ ca: [] }, 'tls.ca'],
      [{ ca: Buffer.alloc(0) }, 'tls.ca'],
      [{ ca: Buffer.from('3082', 'hex') }, 'tls.ca'],
      [{ ca: [pem, 'x'] }, 'tls.ca[1]'],
      [{ cert: '', key: pem }, 'tls.cert'],
      [{ cert: pem, key: 'not a key' }, 'tls.key'],
    ];
    for (const [prefix, build] of shapes) {
      for (const [tls, option] of cases) {
        assert.equal(
          code(() => build({ tls })),
          `${OPTION}:${prefix}${option}`,
          `${prefix} ${String(Object.values(tls)[0])}`,
        );
      }
    }
    // The message says what is expected, and never quotes the material (it may be a private key).
    assert.throws(
      () => createClient({ target, tls: { cert: pem, key: 'secret-key-text' } }),
      (err: Error) => {
        assert.match(err.message, /expected PEM text/);
        assert.doesNotMatch(err.message, /secret-key-text/);
        return true;
      },
    );
  });

  it('refuses a tls.servername that is not an ASCII host name of at most 253 characters', () => {
    const bad = [
      'svc\u0000evil',
      'a\r\nb',
      'ü日本',
      'a'.repeat(1 << 20),
      `${'a.'.repeat(127)}ab`,
      'a b',
      '-a',
      'a..b',
      '',
    ];
    for (const [prefix, build] of shapes) {
      for (const servername of bad) {
        assert.equal(
          code(() => build({ tls: { servername } })),
          `${OPTION}:${prefix}tls.servername`,
          JSON.stringify(servername.slice(0, 20)),
        );
      }
      for (const servername of [
        'svc',
        'users.internal',
        'xn--bcher-kva.example',
        '_grpc.svc.local',
        'a.b.',
        '10.0.0.7',
      ]) {
        assert.equal(
          code(() => build({ tls: { servername } })),
          undefined,
          servername,
        );
      }
    }
  });
});

describe('tls material of every shape Node takes, an encrypted key, IP server names (probe 22)', () => {
  const OPTION = 'SIDECARLESS_INVALID_OPTION';
  const target = ['127.0.0.1:1'];
  const shapes: Array<[string, (options: Record<string, unknown>) => unknown]> = [
    ['', (options) => createClient({ target, ...options } as SingleServiceOptions)],
    ['clusters.a.', (options) => createClient({ clusters: { a: { target, ...options } } } as never)],
  ];
  const { cert, key } = selfSigned('client');
  const passphrase = 'correct horse';
  const encryptedKey = encrypt(key, passphrase);

  it('accepts tls.ca, cert and key as a Uint8Array or another ArrayBufferView (a Buffer after structuredClone)', () => {
    const bytes = Buffer.from(cert);
    const inside = new Uint8Array(bytes.length + 8);
    inside.set(bytes, 4);
    const views: unknown[] = [
      new Uint8Array(bytes),
      inside.subarray(4, 4 + bytes.length),
      new DataView(inside.buffer, 4, bytes.length),
      [cert, new Uint8Array(bytes)],
    ];
    for (const [prefix, build] of shapes) {
      for (const ca of views)
        assert.equal(
          code(() => build({ tls: { ca } })),
          undefined,
          `${prefix} ${String(ca)}`,
        );
      const cloned = structuredClone({ tls: { ca: bytes, cert: bytes, key: Buffer.from(key) } });
      const ca: unknown = cloned.tls.ca; // what structuredClone makes of a Buffer
      assert.ok(!Buffer.isBuffer(ca) && ca instanceof Uint8Array);
      assert.equal(
        code(() => build(cloned)),
        undefined,
        prefix,
      );
      assert.equal(
        code(() => build({ tls: { ca: new Uint8Array(0) } })),
        `${OPTION}:${prefix}tls.ca`,
      );
      assert.equal(
        code(() => build({ tls: { ca: new Uint8Array([48, 130]) } })),
        `${OPTION}:${prefix}tls.ca`,
      );
      assert.equal(
        code(() => build({ tls: { ca: [cert, new Uint16Array(2)] } })),
        `${OPTION}:${prefix}tls.ca[1]`,
      );
    }
  });

  it('takes tls.passphrase for an encrypted key; refuses a missing or wrong one naming tls.key or tls.passphrase', () => {
    for (const [prefix, build] of shapes) {
      const tls = { cert, key: encryptedKey };
      assert.equal(
        code(() => build({ tls: { ...tls, passphrase } })),
        undefined,
        prefix,
      );
      assert.equal(
        code(() => build({ tls: { ...tls, key: new Uint8Array(Buffer.from(encryptedKey)), passphrase } })),
        undefined,
      );
      assert.equal(
        code(() => build({ tls })),
        `${OPTION}:${prefix}tls.key`,
      );
      assert.equal(
        code(() => build({ tls: { ...tls, passphrase: 'wrong' } })),
        `${OPTION}:${prefix}tls.passphrase`,
      );
      assert.equal(
        code(() => build({ tls: { ...tls, passphrase: 5 } })),
        `${OPTION}:${prefix}tls.passphrase`,
      );
      assert.equal(
        code(() => build({ tls: { ...tls, passphrase: null } })),
        `${OPTION}:${prefix}tls.passphrase`,
      );
      // Ignored for a key that is not encrypted, as Node does; refused with no key at all to decrypt.
      assert.equal(
        code(() => build({ tls: { cert, key, passphrase } })),
        undefined,
        prefix,
      );
      assert.equal(
        code(() => build({ tls: { passphrase } })),
        `${OPTION}:${prefix}tls.passphrase`,
      );
      // A PEM block that is no key names the key, not the certificate.
      const bogus = '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n';
      assert.equal(
        code(() => build({ tls: { cert, key: bogus } })),
        `${OPTION}:${prefix}tls.key`,
      );
      // The key in pool.connect is decrypted with tls.passphrase; pool.connect.passphrase is refused for it.
      const pooled = { cert, key: encryptedKey };
      assert.equal(
        code(() => build({ tls: { passphrase }, pool: { connect: pooled } })),
        undefined,
        prefix,
      );
      assert.equal(
        code(() => build({ tls: { passphrase: 'wrong' }, pool: { connect: pooled } })),
        `${OPTION}:${prefix}tls.passphrase`,
      );
      assert.equal(
        code(() => build({ tls: true, pool: { connect: { ...pooled, passphrase } } })),
        `${OPTION}:${prefix}pool.connect.passphrase`,
      );
    }
    // The messages say what to do, and quote neither the key nor the passphrase.
    for (const [tls, advice] of [
      [{ cert, key: encryptedKey }, /encrypted private key: set tls\.passphrase/],
      [{ cert, key: encryptedKey, passphrase: 'wrong-secret' }, /does not decrypt tls\.key/],
      [{ passphrase: 'wrong-secret' }, /set tls\.key/],
    ] as const) {
      assert.throws(
        () => createClient({ target, tls }),
        (err: Error) => {
          assert.match(err.message, advice);
          assert.doesNotMatch(err.message, /wrong-secret|MII/);
          return true;
        },
      );
    }
    assert.throws(
      () => createClient({ target, tls: true, pool: { connect: { cert, key: encryptedKey, passphrase } } as never }),
      /set it as tls\.passphrase/,
    );
  });

  it('accepts an IP address of either family as tls.servername, IPv6 without brackets', () => {
    for (const [prefix, build] of shapes) {
      for (const servername of ['10.0.0.7', '::1', '2001:db8::7', '::ffff:10.0.0.7']) {
        assert.equal(
          code(() => build({ tls: { servername } })),
          undefined,
          servername,
        );
      }
      for (const servername of ['[::1]', '::1]', '1::2::3', '[svc]']) {
        assert.equal(
          code(() => build({ tls: { servername } })),
          `${OPTION}:${prefix}tls.servername`,
          servername,
        );
      }
    }
    assert.throws(
      () => createClient({ target, tls: { servername: '[::1]' } }),
      /IPv6 address without brackets \(::1\)/,
    );
  });
});

describe('route matchers that can never match are refused, at construction and by setRoutes (probe 20)', () => {
  const clusters = { a: { target: ['127.0.0.1:1'] }, b: { target: ['127.0.0.1:2'] } };
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ match: { method: 'GET\r\n' }, cluster: 'a' }, 'routes[0].match.method'],
    [{ match: { method: ['GET', 'G E T'] }, cluster: 'a' }, 'routes[0].match.method[1]'],
    [{ match: { headers: [{ name: 'x a\u0000', exact: 'v' }] }, cluster: 'a' }, 'routes[0].match.headers[0].name'],
    [
      {
        split: [
          { cluster: 'a', weight: 1 },
          { cluster: 'b', weight: 1 },
        ],
        sticky: { header: 'x user' },
      },
      'routes[0].sticky.header',
    ],
  ];

  it('refuses them with SIDECARLESS_INVALID_OPTION naming the field, and setRoutes keeps the table it had', async () => {
    for (const [route, option] of bad) {
      assert.equal(
        code(() => createClient({ clusters, routes: [route] } as never)),
        `SIDECARLESS_INVALID_OPTION:${option}`,
      );
    }
    const client = createClient({ clusters, routes: [{ match: { method: 'GET' }, cluster: 'a' }] });
    try {
      for (const [route, option] of bad) {
        assert.equal(
          code(() => client.setRoutes([route] as never)),
          `SIDECARLESS_INVALID_OPTION:${option}`,
        );
      }
      assert.equal(
        code(() =>
          client.setRoutes([{ match: { method: 'PURGE', headers: [{ name: 'x-a', present: true }] }, cluster: 'b' }]),
        ),
        undefined,
      );
    } finally {
      await client.close();
    }
  });
});
