/**
 * Option validation of the Consul and etcd resolvers through the options toolkit: unknown keys are refused with a
 * suggestion, and the names renamed in 0.2.0 with their new name (the DNS family is tested in dns-client.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConsulResolver } from '../../../src/resolvers/consul/resolver.js';
import { EtcdResolver } from '../../../src/resolvers/etcd/resolver.js';

describe('Consul resolver options', () => {
  it('refuses the pre-0.2.0 names, saying what they were renamed to', () => {
    for (const [old, renamed] of [
      ['minRequestInterval', 'minRequestIntervalMs'],
      ['refreshInterval', 'refreshIntervalMs'],
    ]) {
      assert.throws(() => new ConsulResolver({ service: 'web', [old as string]: 1000 } as never), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: old,
        message: new RegExp(`renamed to "${renamed}" in 0\\.2\\.0`),
      });
    }
  });

  it('refuses unknown keys with a suggestion, and validates the renamed ones as durations', () => {
    assert.throws(() => new ConsulResolver({ service: 'web', datacentre: 'dc1' } as never), {
      option: 'datacentre',
      message: /did you mean "datacenter"/,
    });
    assert.throws(() => new ConsulResolver({ service: 'web', tls: { cA: 'x' } } as never), { option: 'tls.cA' });
    for (const value of [-1, Number.NaN, 2 ** 31, '5000' as never]) {
      assert.throws(() => new ConsulResolver({ service: 'web', refreshIntervalMs: value }), {
        option: 'refreshIntervalMs',
      });
    }
  });
});

describe('etcd resolver options', () => {
  it('refuses the pre-0.2.0 names, saying what they were renamed to', () => {
    for (const [old, renamed] of [
      ['refreshInterval', 'refreshIntervalMs'],
      ['minRelistInterval', 'minRelistIntervalMs'],
      ['requestTimeout', 'requestTimeoutMs'],
      ['watchIdleTimeout', 'watchIdleTimeoutMs'],
    ]) {
      assert.throws(() => new EtcdResolver({ prefix: '/p/', [old as string]: 1000 } as never), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: old,
        message: new RegExp(`renamed to "${renamed}" in 0\\.2\\.0`),
      });
    }
  });

  it('takes username and password in the options object, and refuses unknown keys with a suggestion', async () => {
    const r = new EtcdResolver({ prefix: '/p/', endpoints: ['127.0.0.1:2379'], username: 'u', password: 'p' });
    await r.close();
    assert.throws(() => new EtcdResolver({ prefix: '/p/', user: 'u' } as never), {
      option: 'user',
      message: /unknown option/,
    });
    assert.throws(() => new EtcdResolver({ prefix: '/p/', endpoints: ['a:1', 7 as never] }), {
      option: 'endpoints[1]',
    });
  });
});

describe('DNS resolver backoff defaults', () => {
  it('a partial backoff takes the resolver’s own defaults (cap 30 s), not the connection backoff’s 120 s', async () => {
    const { resolveDnsPollingOptions } = await import('../../../src/resolvers/dns/poller.js');
    const base = { hostsFile: false, resolvConf: false, nameservers: ['127.0.0.1'] } as const;
    assert.equal(resolveDnsPollingOptions({ ...base }).backoff.maxMs, 30_000);
    assert.equal(resolveDnsPollingOptions({ ...base, backoff: { initialMs: 1000 } }).backoff.maxMs, 30_000);
    assert.equal(resolveDnsPollingOptions({ ...base, backoff: { multiplier: 2 } }).backoff.maxMs, 30_000);
    // A first delay above the default cap raises the cap with it, rather than being refused.
    assert.equal(resolveDnsPollingOptions({ ...base, backoff: { initialMs: 60_000 } }).backoff.maxMs, 60_000);
  });
});
