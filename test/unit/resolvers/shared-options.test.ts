/**
 * The options the Consul, etcd and Kubernetes resolvers share (one TLS shape, `ResolverTlsOptions`, with one
 * validator; `backoff`, `clock` and `random` from `RemoteResolverOptions`), through the package entry: the same bad
 * value is refused the same way, at the same path, by each; the deprecated TLS names still type the option.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type ConsulTlsOptions,
  ConsulResolver,
  type EtcdTlsOptions,
  EtcdResolver,
  type KubernetesTlsOptions,
  KubernetesResolver,
  type RemoteResolverOptions,
  type ResolverTlsOptions,
} from 'sidecarless';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';
import { selfSigned } from '../../helpers/kubernetes-api.js';

/** Builds each resolver with `extra` on top of options that are valid without I/O. */
const builders: Array<[string, (extra: Record<string, unknown>) => unknown]> = [
  ['consul', (extra) => new ConsulResolver({ service: 'web', address: 'https://127.0.0.1:8501', ...extra })],
  ['etcd', (extra) => new EtcdResolver({ prefix: '/services/web/', endpoints: ['https://127.0.0.1:2379'], ...extra })],
  [
    'kubernetes',
    (extra) =>
      new KubernetesResolver({ service: 'web', namespace: 'shop', apiServer: 'https://127.0.0.1:6443', ...extra }),
  ],
];

describe('options shared by the remote resolvers', () => {
  it('validates `tls` with one validator: unknown keys, rejectUnauthorized and servername, named by path', () => {
    for (const [name, build] of builders) {
      assert.throws(() => build({ tls: { verify: false } }), { option: 'tls.verify' }, name);
      assert.throws(() => build({ tls: { rejectUnauthorized: 'no' } }), { option: 'tls.rejectUnauthorized' }, name);
      assert.throws(() => build({ tls: { servername: 5 } }), { option: 'tls.servername' }, name);
      assert.throws(() => build({ tls: 'yes' }), { code: 'SIDECARLESS_INVALID_OPTION', option: 'tls' }, name);
    }
  });

  it('accepts one ResolverTlsOptions value for all three, and the deprecated names are the same type', () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const tls: ResolverTlsOptions = { ca, rejectUnauthorized: true, servername: 'registry.internal' };
    const consul: ConsulTlsOptions = tls;
    const etcd: EtcdTlsOptions = tls;
    const kubernetes: KubernetesTlsOptions = tls;
    for (const [name, build] of builders) assert.doesNotThrow(() => build({ tls }), name);
    assert.ok(consul === etcd && etcd === kubernetes);
  });

  it('refuses `tls` when no registry address is https:// (it would apply to nothing, the password going in clear)', () => {
    const tls = { ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };
    const refused = { code: 'SIDECARLESS_INVALID_OPTION', option: 'tls', message: /https:\/\// };
    assert.throws(() => new ConsulResolver({ service: 'web', address: 'http://127.0.0.1:8500', tls }), refused);
    assert.throws(() => new ConsulResolver({ service: 'web', address: '127.0.0.1:8500', tls: {} }), refused);
    for (const endpoints of [['http://127.0.0.1:2379'], ['127.0.0.1:2379', 'http://10.0.0.2:2379']]) {
      assert.throws(
        () => new EtcdResolver({ prefix: '/p/', endpoints, username: 'u', password: 'p', tls }),
        refused,
        endpoints.join(),
      );
      assert.throws(() => new EtcdResolver({ prefix: '/p/', endpoints, tls: {} }), refused, endpoints.join());
    }
    // One https:// member is what the settings are for.
    assert.doesNotThrow(() => new EtcdResolver({ prefix: '/p/', endpoints: ['https://127.0.0.1:2379'], tls }));
    assert.doesNotThrow(
      () => new EtcdResolver({ prefix: '/p/', endpoints: ['http://10.0.0.1:2379', 'https://10.0.0.2:2379'], tls }),
    );
  });

  it('refuses etcd credentials over a member list mixing http:// and https:// (the password in clear to some)', () => {
    const refused = { code: 'SIDECARLESS_INVALID_OPTION', option: 'endpoints', message: /https:\/\// };
    const mixed = ['https://10.0.0.1:2379', 'http://10.0.0.2:2379'];
    for (const endpoints of [mixed, ['https://10.0.0.1:2379', '10.0.0.2:2379']]) {
      assert.throws(() => new EtcdResolver({ prefix: '/p/', endpoints, username: 'u', password: 'p' }), refused);
      assert.throws(
        () => new EtcdResolver({ prefix: '/p/', endpoints, username: 'u', password: 'p', tls: {} }),
        refused,
      );
      // Without credentials there is nothing to leak: a mixed list stays the user's choice.
      assert.doesNotThrow(() => new EtcdResolver({ prefix: '/p/', endpoints }));
    }
    // One scheme throughout, either one, takes credentials.
    for (const endpoints of [
      ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      ['http://10.0.0.1:2379', '10.0.0.2:2379'],
    ]) {
      assert.doesNotThrow(() => new EtcdResolver({ prefix: '/p/', endpoints, username: 'u', password: 'p' }));
    }
  });

  it('refuses tls.passphrase without tls.key, as the client does, but for Kubernetes (its kubeconfig key) (probe 24)', () => {
    for (const [name, build] of builders) {
      const attempt = () => build({ tls: { passphrase: 'secret-words' } });
      if (name === 'kubernetes') assert.doesNotThrow(attempt, name);
      else assert.throws(attempt, { code: 'SIDECARLESS_INVALID_OPTION', option: 'tls.passphrase' }, name);
    }
  });

  it('validates backoff and random the same way, and takes the injected clock', () => {
    const remote: RemoteResolverOptions = { backoff: { initialMs: 10, maxMs: 100 }, clock: new FakeClock() };
    for (const [name, build] of builders) {
      assert.throws(() => build({ backoff: { maxMs: 1, initialMs: 10 } }), { option: 'backoff.maxMs' }, name);
      assert.throws(() => build({ random: 0.5 }), { option: 'random' }, name);
      assert.doesNotThrow(() => build({ ...remote, random: seededRandom(1) }), name);
    }
  });
});

describe('remote resolvers: text that can never go out as configured is refused at construction (probe 20)', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

  it('refuses tls.ca, tls.cert and tls.key that are not PEM text, and a tls.servername that is no host name', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ca: 'x' }, 'tls.ca'],
      [{ ca: '' }, 'tls.ca'],
      [{ ca: null }, 'tls.ca'],
      [{ ca: Number.NaN }, 'tls.ca'],
      [{ ca: 0 }, 'tls.ca'],
      [{ ca: false }, 'tls.ca'],
      [{ ca: [] }, 'tls.ca'],
      [{ ca: [pem, Buffer.from('3082', 'hex')] }, 'tls.ca[1]'],
      [{ cert: 'x', key: pem }, 'tls.cert'],
      [{ servername: 'svc\u0000evil' }, 'tls.servername'],
      [{ servername: 'a\r\nb' }, 'tls.servername'],
      [{ servername: 'ü日本' }, 'tls.servername'],
      [{ servername: 'a'.repeat(1 << 20) }, 'tls.servername'],
    ];
    for (const [name, build] of builders) {
      for (const [tls, option] of cases) {
        assert.throws(
          () => build({ tls }),
          // null is refused as every option's null is (omit it), the rest by what the option takes.
          { code: 'SIDECARLESS_INVALID_OPTION', option, message: /expected (PEM text|a host name)|got null/ },
          `${name} ${option}`,
        );
      }
      assert.doesNotThrow(() => build({ tls: { ca: [pem, Buffer.from(pem)], servername: 'registry.internal' } }), name);
    }
  });

  it('takes PEM bytes as any ArrayBufferView, tls.passphrase for an encrypted key, and IP server names (probe 22)', () => {
    const { cert, key } = selfSigned('client');
    const passphrase = 'correct horse';
    const encrypted = createPrivateKey(key)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
      .toString();
    for (const [name, build] of builders) {
      const cloned = structuredClone({
        tls: { ca: Buffer.from(cert), cert: Buffer.from(cert), key: Buffer.from(key) },
      });
      assert.ok(!Buffer.isBuffer(cloned.tls.ca));
      assert.doesNotThrow(() => build(cloned), name);
      assert.doesNotThrow(() => build({ tls: { ca: [pem, new DataView(Buffer.from(cert).buffer)] } }), name);
      assert.doesNotThrow(() => build({ tls: { cert, key: encrypted, passphrase } }), name);
      assert.throws(() => build({ tls: { cert, key: encrypted } }), { option: 'tls.key', message: /tls\.passphrase/ });
      assert.throws(() => build({ tls: { cert, key: encrypted, passphrase: 'wrong' } }), { option: 'tls.passphrase' });
      assert.throws(() => build({ tls: { passphrase: 7 } }), { option: 'tls.passphrase' }, name);
      for (const servername of ['10.0.0.7', '::1', '2001:db8::7']) {
        assert.doesNotThrow(() => build({ tls: { servername } }), `${name} ${servername}`);
      }
      assert.throws(() => build({ tls: { servername: '[::1]' } }), { option: 'tls.servername', message: /brackets/ });
    }
  });

  it('refuses a Consul or Kubernetes token that is not a header value, without quoting it', () => {
    const withToken: Array<[string, (token: unknown) => unknown]> = [
      ['consul', (token) => new ConsulResolver({ service: 'web', address: 'http://127.0.0.1:8500', token } as never)],
      [
        'kubernetes',
        (token) =>
          new KubernetesResolver({
            service: 'web',
            namespace: 'a',
            apiServer: 'http://127.0.0.1:1',
            env: {},
            token,
          } as never),
      ],
    ];
    for (const [name, build] of withToken) {
      for (const token of ['tök日本', 'a\r\nx-evil: 1', 'a\u0000b', '\u00e9t\u00e9']) {
        assert.throws(
          () => build(token),
          (err: Error & { code?: string; option?: string }) => {
            assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
            assert.equal(err.option, 'token');
            assert.match(err.message, /expected a header value: non-empty visible ASCII/);
            assert.ok(!err.message.includes(token), err.message);
            return true;
          },
          `${name} ${JSON.stringify(token)}`,
        );
      }
      assert.doesNotThrow(() => build('0f1e2d3c-aaaa-bbbb-cccc-0123456789ab'), name);
    }
    // Consul's token from the environment is sent the same way: refused the same way.
    assert.throws(
      () => new ConsulResolver({ service: 'web', address: 'http://127.0.0.1:8500', env: { CONSUL_HTTP_TOKEN: 'tök' } }),
      { code: 'SIDECARLESS_INVALID_OPTION', option: 'token' },
    );
  });
});
