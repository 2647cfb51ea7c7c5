// Unit tests of the Kubernetes resolver's pure parts: EndpointSlice parsing, the merge into one endpoint set
// (conditions, named ports per slice, hints), watch lines, list answers, the target form and option validation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidOptionError, InvalidTargetError, KubernetesError, KubernetesResolver } from 'sidecarless';
import {
  buildEndpoints,
  type EndpointSlice,
  parseSlice,
  parseSliceList,
  parseWatchLine,
} from '../../../src/resolvers/kubernetes/parse.js';
import { kubernetesOptionsFromTarget } from '../../../src/resolvers/kubernetes/options.js';
import { SliceSet } from '../../../src/resolvers/kubernetes/slices.js';
import { LineReader } from '../../../src/resolvers/kubernetes/watch.js';
import { parseTarget } from '../../../src/resolvers/target.js';
import { endpointSlice, type SliceEndpointSpec } from '../../helpers/kubernetes-api.js';

const slice = (name: string, ports: { name?: string; port?: number }[], endpoints: SliceEndpointSpec[]) =>
  parseSlice(endpointSlice(name, 'users', ports, endpoints));
const map = (...slices: EndpointSlice[]) => new Map(slices.map((s) => [s.name, s]));
const keysOf = (set: ReturnType<typeof buildEndpoints>) => set.endpoints.map((e) => e.key);

describe('kubernetes parse: EndpointSlices', () => {
  it('reads conditions with the API defaults (ready unset = ready, serving unset = ready, terminating unset = false)', () => {
    const s = parseSlice({
      metadata: { name: 'a', resourceVersion: '7' },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'all' }, { name: 'dns', port: 53, protocol: 'UDP' }],
      endpoints: [{ addresses: ['10.0.0.1', '10.0.0.9'] }, { addresses: ['10.0.0.2'], conditions: { ready: false } }],
    });
    assert.deepEqual(s.ports, [{ name: 'http', port: 80 }]);
    assert.deepEqual(
      s.endpoints.map((e) => [e.address, e.ready, e.serving, e.terminating]),
      [
        ['10.0.0.1', true, true, false],
        ['10.0.0.2', false, false, false],
      ],
    );
  });

  it("takes only addresses of the slice's addressType; others are skipped as unusable (probe 20)", () => {
    const cases: ['IPv4' | 'IPv6' | 'FQDN', string[], string[]][] = [
      ['IPv4', ['10.0.0.1', 'attacker.example', '::1', 'fd00::2'], ['10.0.0.1']],
      ['IPv6', ['fd00::1', '10.0.0.2', 'attacker.example', '[fd00::3]'], ['fd00::1', '[fd00::3]']],
      ['FQDN', ['pod-a.users.svc', '10.0.0.3', 'fd00::4'], ['pod-a.users.svc']],
    ];
    for (const [type, addresses, usable] of cases) {
      const s = parseSlice(
        endpointSlice(
          'a',
          'users',
          [{ port: 80 }],
          addresses.map((a) => ({ addresses: [a] })),
          type,
        ),
      );
      assert.deepEqual(
        s.endpoints.filter((e) => e.problem === undefined).map((e) => e.address),
        usable,
        type,
      );
      for (const e of s.endpoints.filter((x) => x.problem !== undefined)) {
        assert.match(e.problem as string, new RegExp(`addressType is ${type}`), e.address);
      }
    }
  });

  it('rejects malformed slices with a bad-response KubernetesError', () => {
    for (const bad of [
      null,
      {},
      { metadata: {} },
      { metadata: { name: 'a' }, addressType: 'Carrier' },
      { metadata: { name: 'a' }, addressType: 'IPv4', endpoints: [{ addresses: [] }] },
      {
        metadata: { name: 'a' },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['1.2.3.4'], conditions: { ready: 'yes' } }],
      },
      { metadata: { name: 'a' }, addressType: 'IPv4', ports: [{ port: 70000 }] },
    ]) {
      assert.throws(
        () => parseSlice(bad),
        (err: unknown) => err instanceof KubernetesError && err.reason === 'bad-response',
      );
    }
  });

  it('ready endpoints serve; terminating ones do not; with none ready, serving terminating ones are used', () => {
    const s = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'], ready: false, serving: true, terminating: true },
        { addresses: ['10.0.0.3'], ready: false },
      ],
    );
    assert.deepEqual(keysOf(buildEndpoints(map(s), 'http', undefined)), ['10.0.0.1:80']);
    const draining = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [
        { addresses: ['10.0.0.2'], ready: false, serving: true, terminating: true },
        { addresses: ['10.0.0.4'], ready: false, serving: false, terminating: true },
      ],
    );
    const built = buildEndpoints(map(draining), 'http', undefined);
    assert.equal(built.state, 'terminating');
    assert.deepEqual(keysOf(built), ['10.0.0.2:80']);
    assert.equal(built.endpoints[0]?.metadata['kubernetes.state'], 'terminating');
    assert.equal(buildEndpoints(map(), 'http', undefined).state, 'empty');
  });

  it('resolves a named port in each slice separately; a number is used as is; no port means the only one', () => {
    const a = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [{ addresses: ['10.0.0.1'], zone: 'z1', pod: 'p1', nodeName: 'n1' }],
    );
    const b = slice(
      'b',
      [
        { name: 'http', port: 8080 },
        { name: 'admin', port: 9000 },
      ],
      [{ addresses: ['10.0.0.2'] }],
    );
    assert.deepEqual(keysOf(buildEndpoints(map(a, b), 'http', undefined)), ['10.0.0.1:80', '10.0.0.2:8080']);
    assert.deepEqual(keysOf(buildEndpoints(map(a, b), 'admin', undefined)), ['10.0.0.2:9000']);
    assert.deepEqual(keysOf(buildEndpoints(map(a, b), 7000, undefined)), ['10.0.0.1:7000', '10.0.0.2:7000']);
    assert.deepEqual(keysOf(buildEndpoints(map(a, b), undefined, undefined)), ['10.0.0.1:80']);
    const [first] = buildEndpoints(map(a), 'http', undefined).endpoints;
    assert.equal(first?.zone, 'z1');
    assert.deepEqual(first?.metadata, {
      'kubernetes.slice': 'a',
      'kubernetes.state': 'ready',
      'kubernetes.pod': 'p1',
      'kubernetes.node': 'n1',
    });
  });

  it('honours hints.forZones only when the zone is known, every endpoint has hints and some are for the zone', () => {
    const hinted = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [
        { addresses: ['10.0.0.1'], zone: 'z1', forZones: ['z1'] },
        { addresses: ['10.0.0.2'], zone: 'z2', forZones: ['z2'] },
      ],
    );
    assert.deepEqual(keysOf(buildEndpoints(map(hinted), 'http', 'z1')), ['10.0.0.1:80']);
    assert.equal(buildEndpoints(map(hinted), 'http', 'z1').hinted, true);
    assert.equal(keysOf(buildEndpoints(map(hinted), 'http', undefined)).length, 2);
    assert.equal(keysOf(buildEndpoints(map(hinted), 'http', 'z9')).length, 2);
    const partial = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [{ addresses: ['10.0.0.1'], forZones: ['z1'] }, { addresses: ['10.0.0.2'] }],
    );
    assert.equal(keysOf(buildEndpoints(map(partial), 'http', 'z1')).length, 2);
  });

  it('keeps one endpoint per address:port across slices, and accepts IPv6 and FQDN slices', () => {
    const a = slice('a', [{ name: 'http', port: 80 }], [{ addresses: ['10.0.0.1'] }]);
    const b = slice('b', [{ name: 'http', port: 80 }], [{ addresses: ['10.0.0.1'] }]);
    assert.deepEqual(keysOf(buildEndpoints(map(a, b), 'http', undefined)), ['10.0.0.1:80']);
    const v6 = parseSlice(
      endpointSlice('c', 'users', [{ name: 'http', port: 80 }], [{ addresses: ['fd00::1'] }], 'IPv6'),
    );
    assert.deepEqual(keysOf(buildEndpoints(map(v6), 'http', undefined)), ['[fd00::1]:80']);
  });

  it('marks an endpoint whose address no connection can be made to, leaves it out before choosing, counts it', () => {
    const terminating = { ready: false, serving: true, terminating: true };
    const s = slice(
      'a',
      [{ name: 'http', port: 80 }],
      [
        { addresses: ['999.1.1.1'] },
        { addresses: ['0.0.0.0'] },
        { addresses: ['224.0.0.1'], ready: false }, // would not serve: not counted in `invalid`
        { addresses: ['10.0.0.9'], ...terminating },
      ],
    );
    assert.deepEqual(
      s.endpoints.map((e) => e.problem !== undefined),
      [true, true, true, false],
    );
    assert.match(s.endpoints[1]?.problem ?? '', /"0\.0\.0\.0" is the unspecified address/);
    // The ready ones are unusable: the serving terminating one is used rather than none.
    const built = buildEndpoints(map(s), 'http', undefined);
    assert.deepEqual(keysOf(built), ['10.0.0.9:80']);
    assert.equal(built.state, 'terminating');
    assert.equal(built.invalid, 2);
  });
});

describe('kubernetes slice set: malformed slices are held state (probe 20)', () => {
  const malformed = (name: string) => ({ metadata: { name }, addressType: 'Carrier' });
  const good = (name: string, ...addresses: string[]) =>
    endpointSlice(
      name,
      'users',
      [{ port: 80 }],
      addresses.map((a) => ({ addresses: [a] })),
    );
  const limit = (err: unknown) => err instanceof KubernetesError && err.reason === 'limit';

  it('counts each malformed slice against maxEndpoints: malformed ones under new names cannot grow it for good', () => {
    const set = new SliceSet('users', 10);
    set.accept(good('g', '10.0.0.1', '10.0.0.2'), false);
    for (let i = 0; i < 8; i++) assert.equal(set.accept(malformed(`m${i}`), true), 1);
    assert.throws(() => set.accept(malformed('m8'), true), limit, 'the 11th held entry');
    // The same name again replaces its own entry; a valid version or a DELETED frees it.
    assert.equal(set.accept(malformed('m0'), true), 1);
    set.accept(good('m0', '10.0.0.3'), true);
    set.delete('m1');
    assert.equal(set.accept(malformed('n1'), true), 1);
    assert.throws(() => set.accept(malformed('n2'), true), limit);
    assert.equal(set.build(undefined, undefined).built.endpoints.length, 3);
  });
});

describe('kubernetes parse: list answers and watch lines', () => {
  it('reads a list answer with its resourceVersion and continue token', () => {
    const list = parseSliceList(
      '{"kind":"EndpointSliceList","metadata":{"resourceVersion":"42","continue":"abc"},"items":[]}',
    );
    assert.deepEqual(list, { resourceVersion: '42', items: [], continueToken: 'abc' });
    assert.throws(() => parseSliceList('{"items":[]}'), KubernetesError);
    assert.throws(() => parseSliceList('{"metadata":{},"items":[]}'), /resourceVersion/);
    assert.throws(() => parseSliceList('not json'), /not valid JSON/);
  });

  it('reads ADDED, MODIFIED, DELETED, BOOKMARK and ERROR events', () => {
    assert.deepEqual(parseWatchLine('{"type":"ADDED","object":{"metadata":{"name":"a"}}}'), {
      type: 'ADDED',
      object: { metadata: { name: 'a' } },
      name: 'a',
    });
    assert.deepEqual(parseWatchLine('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}'), {
      type: 'BOOKMARK',
      resourceVersion: '9',
    });
    const error = parseWatchLine(
      '{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 1 (5)"}}',
    );
    assert.deepEqual(error, {
      type: 'ERROR',
      status: { code: 410, reason: 'Expired', message: 'too old resource version: 1 (5)' },
    });
    for (const bad of ['', '{', '[]', '{"type":"SOMETHING"}', '{"type":"BOOKMARK","object":{}}']) {
      assert.throws(() => parseWatchLine(bad), KubernetesError);
    }
  });

  it('splits a stream into lines across chunk boundaries, inside UTF-8 characters too, with a size cap', () => {
    const reader = new LineReader(64);
    const bytes = Buffer.from('{"a":"é"}\n\n{"b":1}\r\n{"c"');
    const lines: string[] = [];
    for (let i = 0; i < bytes.length; i++) lines.push(...reader.push(bytes.subarray(i, i + 1)));
    assert.deepEqual(lines, ['{"a":"é"}', '{"b":1}']);
    assert.deepEqual(reader.end(), ['{"c"']);
    assert.throws(() => new LineReader(8).push(Buffer.from('0123456789\n')), /larger than 8 bytes/);
    assert.throws(() => new LineReader(8).push(Buffer.from('0123456789')), /larger than 8 bytes/);
  });

  it('caps an unterminated event in bytes, and reads one near the cap with each byte searched once', () => {
    // 6 two-byte characters: 12 bytes over an 8-byte cap, though only 6 characters.
    assert.throws(
      () => new LineReader(8).push(Buffer.from('éééééé')),
      (err: unknown) =>
        err instanceof KubernetesError && err.reason === 'bad-response' && /larger than 8 bytes/.test(err.message),
    );
    const max = 4 * 1024 * 1024;
    const reader = new LineReader(max);
    const event = Buffer.from(`{"type":"MODIFIED","object":{"pad":"${'é'.repeat(max / 2 - 64)}"}}\n`);
    assert.ok(event.length <= max + 1);
    const lines: string[] = [];
    for (let at = 0; at < event.length; at += 4096) lines.push(...reader.push(event.subarray(at, at + 4096)));
    assert.deepEqual(lines, [event.toString('utf8').trim()]);
    // Linear in the event's size: searching the whole pending rest again per chunk would be ~512x this.
    assert.equal(reader.scannedBytes, event.length);
    assert.equal(reader.copiedBytes, event.length - 1);
  });
});

describe('kubernetes target and options', () => {
  const fromTarget = (raw: string) => kubernetesOptionsFromTarget(parseTarget(raw));

  it('reads kubernetes:///service[.namespace][:port][?zone=]', () => {
    assert.deepEqual(fromTarget('kubernetes:///users.shop:http'), {
      service: 'users',
      namespace: 'shop',
      port: 'http',
    });
    assert.deepEqual(fromTarget('kubernetes:///users:8080'), { service: 'users', port: 8080 });
    assert.deepEqual(fromTarget('kubernetes:///users'), { service: 'users' });
    assert.deepEqual(fromTarget('kubernetes:///users.shop.svc.cluster.local:http?zone=z1'), {
      service: 'users',
      namespace: 'shop',
      port: 'http',
      zone: 'z1',
    });
    for (const bad of [
      'kubernetes://api:443/users',
      'kubernetes:///users?token=x',
      'kubernetes:///a:b:c',
      'kubernetes:///',
    ]) {
      assert.throws(() => fromTarget(bad), InvalidTargetError, bad);
    }
  });

  it('validates options at construction, naming the option', () => {
    const base = { apiServer: 'https://127.0.0.1:6443', env: {} };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base }, /`service`: required/],
      [{ ...base, service: 'Users' }, /`service`.*DNS label/],
      [{ ...base, service: 'users', namespace: 'a_b' }, /`namespace`/],
      [{ ...base, service: 'users', port: 0 }, /`port`/],
      [{ ...base, service: 'users', port: 'HTTP' }, /`port`/],
      [{ ...base, service: 'users', watchTimeoutMs: -1 }, /`watchTimeoutMs`/],
      [{ ...base, service: 'users', tls: { verify: false } }, /`tls.verify`/],
      [{ ...base, service: 'users', apiServer: 'ftp://x' }, /`apiServer`/],
      [{ ...base, service: 'users', apiServer: 'https://user:pw@x' }, /`apiServer`.*no credentials/],
      [{ ...base, service: 'users', caFile: '/nonexistent/ca.crt' }, /`caFile`.*cannot read/],
      [{ ...base, service: 'users', watchTimeout: 5 }, /did you mean "watchTimeoutMs"/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => new KubernetesResolver(options as never),
        (err: unknown) => err instanceof InvalidOptionError && message.test(err.message),
        JSON.stringify(options),
      );
    }
  });
});

describe('kubernetes options: file paths and env, refused at construction under their own path (probe 20)', () => {
  const base = { service: 'users', namespace: 'shop', apiServer: 'https://127.0.0.1:6443', env: {} };

  it('refuses a file path option holding a NUL (Node refuses it when the file is opened)', () => {
    for (const option of ['tokenFile', 'caFile', 'namespaceFile', 'kubeconfig']) {
      assert.throws(
        () => new KubernetesResolver({ ...base, [option]: '/var/run/tok\u0000en' }),
        {
          code: 'SIDECARLESS_INVALID_OPTION',
          option,
          message: /expected a file path \(a non-empty string without NUL\)/,
        },
        option,
      );
    }
    // A token file is read before each request, not here: a path without NUL is accepted whether it exists or not.
    assert.doesNotThrow(() => new KubernetesResolver({ ...base, tokenFile: '/nonexistent/token' }));
  });

  it('names the env variable whose getter throws, or whose value is not a string', () => {
    for (const key of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBECONFIG', 'HOME']) {
      const env = Object.defineProperty({}, key, {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      const { apiServer: _, ...inPod } = base;
      assert.throws(
        () => new KubernetesResolver({ ...inPod, env } as never),
        { code: 'SIDECARLESS_INVALID_OPTION', option: `env.${key}`, message: /could not be read: boom/ },
        key,
      );
      assert.throws(
        () => new KubernetesResolver({ ...inPod, env: { [key]: 5 } } as never),
        { code: 'SIDECARLESS_INVALID_OPTION', option: `env.${key}`, message: /expected a string, got 5/ },
        key,
      );
    }
  });
});
