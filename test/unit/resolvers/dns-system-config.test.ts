/**
 * resolv.conf and hosts file parsing and search-list expansion, against glibc's semantics (`man 5 resolv.conf`,
 * `man 5 hosts`, `res_nsearch`), plus a seeded fuzz test of both parsers.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseHosts, parseResolvConf, searchCandidates } from '../../../src/resolvers/dns/system-config.js';

const KUBERNETES = [
  'search shop.svc.cluster.local svc.cluster.local cluster.local',
  'nameserver 10.96.0.10',
  'options ndots:5',
  '',
].join('\n');

describe('parseResolvConf', () => {
  it('reads a Kubernetes pod resolv.conf', () => {
    assert.deepEqual(parseResolvConf(KUBERNETES), {
      nameservers: ['10.96.0.10'],
      search: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      ndots: 5,
      timeoutMs: undefined,
      attempts: undefined,
      rotate: false,
      useVc: false,
      edns0: false,
    });
  });

  it('defaults: ndots 1, no search list without domain or search (host name without a dot)', () => {
    assert.deepEqual(parseResolvConf(''), {
      nameservers: [],
      search: [],
      ndots: 1,
      timeoutMs: undefined,
      attempts: undefined,
      rotate: false,
      useVc: false,
      edns0: false,
    });
  });

  it('without search or domain, the search list is the domain of the host name', () => {
    assert.deepEqual(parseResolvConf('nameserver 10.0.0.2\n', 'web1.corp.example').search, ['corp.example']);
    assert.deepEqual(parseResolvConf('', 'web1').search, []);
  });

  it('search and domain replace each other: the last one wins; domain is a one-entry list', () => {
    assert.deepEqual(parseResolvConf('search a.example b.example\ndomain c.example\n').search, ['c.example']);
    assert.deepEqual(parseResolvConf('domain c.example d.example\nsearch a.example b.example\n').search, [
      'a.example',
      'b.example',
    ]);
  });

  it('comments start with # or ; in the first column; keywords need a blank after them', () => {
    const text = [
      '# nameserver 10.0.0.1',
      '; search hidden.example',
      'nameserver\t10.0.0.2',
      'nameservers 10.0.0.3',
      ' nameserver 10.0.0.4',
      'search\tA.Example.  b.example',
    ].join('\n');
    const conf = parseResolvConf(text);
    assert.deepEqual(conf.nameservers, ['10.0.0.2']);
    assert.deepEqual(conf.search, ['a.example', 'b.example']);
  });

  it('nameservers: IP literals only, at most 3 (MAXNS), an IPv6 zone dropped, CRLF tolerated', () => {
    const text =
      'nameserver ns.example\r\nnameserver fe80::1%eth0\r\nnameserver 10.0.0.2 # x\r\n' +
      'nameserver ::1\r\nnameserver 10.0.0.9\r\n';
    assert.deepEqual(parseResolvConf(text).nameservers, ['fe80::1', '10.0.0.2', '::1']);
  });

  it('options ndots, timeout and attempts, clamped as glibc clamps them; unknown options ignored', () => {
    const conf = parseResolvConf('options rotate ndots:2 timeout:3 attempts:4 edns0\n');
    assert.deepEqual([conf.ndots, conf.timeoutMs, conf.attempts], [2, 3000, 4]);
    const big = parseResolvConf('options ndots:99 timeout:100 attempts:9\n');
    assert.deepEqual([big.ndots, big.timeoutMs, big.attempts], [15, 30_000, 5]);
    const small = parseResolvConf('options ndots:0 timeout:0 attempts:0\n');
    assert.deepEqual([small.ndots, small.timeoutMs, small.attempts], [0, 1000, 1]);
    assert.equal(parseResolvConf('options ndots:-1 ndots:x\n').ndots, 1);
  });

  it('options rotate, use-vc and edns0 (glibc RES_ROTATE, RES_USEVC, RES_USE_EDNS0); `tcp` is not a glibc option', () => {
    const conf = parseResolvConf('options rotate ndots:2 use-vc edns0\n');
    assert.deepEqual([conf.rotate, conf.useVc, conf.edns0, conf.ndots], [true, true, true, 2]);
    const none = parseResolvConf('options tcp rotate:1 use_vc edns\n');
    assert.deepEqual([none.rotate, none.useVc, none.edns0], [false, false, false]);
    const env = parseResolvConf('options ndots:3\n', '', { RES_OPTIONS: 'rotate  use-vc edns0' });
    assert.deepEqual([env.rotate, env.useVc, env.edns0, env.ndots], [true, true, true, 3]);
  });

  it('LOCALDOMAIN replaces the search list, RES_OPTIONS applies after the file', () => {
    const conf = parseResolvConf(KUBERNETES, '', { LOCALDOMAIN: 'a.example  b.example', RES_OPTIONS: 'ndots:1' });
    assert.deepEqual(conf.search, ['a.example', 'b.example']);
    assert.equal(conf.ndots, 1);
  });

  it('drops unusable and duplicate search domains', () => {
    assert.deepEqual(parseResolvConf('search a..b .x ok.example ok.example. b@d\n').search, ['ok.example']);
  });
});

describe('parseHosts', () => {
  it('maps every name and alias to its addresses, in file order, case-insensitively', () => {
    const hosts = parseHosts(
      [
        '127.0.0.1\tlocalhost',
        '::1 localhost ip6-localhost ip6-loopback # loopback',
        '# 10.0.0.9 commented',
        '10.1.2.3 Pod-0.Web.Shop.svc.cluster.local. pod-0',
        '10.1.2.4 pod-0',
        '127.0.0.1 localhost',
      ].join('\n'),
    );
    assert.deepEqual(hosts.get('localhost'), ['127.0.0.1', '::1']);
    assert.deepEqual(hosts.get('ip6-loopback'), ['::1']);
    assert.deepEqual(hosts.get('pod-0.web.shop.svc.cluster.local'), ['10.1.2.3']);
    assert.deepEqual(hosts.get('pod-0'), ['10.1.2.3', '10.1.2.4']);
    assert.equal(hosts.has('10.0.0.9'), false);
    assert.equal(hosts.has('commented'), false);
  });

  it('skips lines without a name, with a non-IP address, and names with bad characters', () => {
    const hosts = parseHosts('10.0.0.1\nhost.example 10.0.0.2\n10.0.0.3 ok bad/name\n');
    assert.deepEqual([...hosts.keys()], ['ok']);
  });
});

describe('searchCandidates (glibc res_nsearch order)', () => {
  const k8s = ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];

  it('fewer dots than ndots: the search list first, then the name as it is', () => {
    assert.deepEqual(searchCandidates('users', k8s, 5), [
      'users.shop.svc.cluster.local',
      'users.svc.cluster.local',
      'users.cluster.local',
      'users',
    ]);
    assert.deepEqual(searchCandidates('users.shop', k8s, 5), [
      'users.shop.shop.svc.cluster.local',
      'users.shop.svc.cluster.local',
      'users.shop.cluster.local',
      'users.shop',
    ]);
  });

  it('at least ndots dots: the name as it is first, then the search list', () => {
    assert.deepEqual(searchCandidates('a.b.c.d.e.f', ['x.example'], 5), ['a.b.c.d.e.f', 'a.b.c.d.e.f.x.example']);
    assert.deepEqual(searchCandidates('users.internal', ['corp.example'], 1), [
      'users.internal',
      'users.internal.corp.example',
    ]);
    assert.deepEqual(searchCandidates('users', ['corp.example'], 0), ['users', 'users.corp.example']);
  });

  it('a trailing dot means absolute: only the name itself', () => {
    assert.deepEqual(searchCandidates('Users.Shop.svc.cluster.local.', k8s, 5), ['users.shop.svc.cluster.local']);
  });

  it('no search list: only the name; a root entry adds nothing twice; over-long candidates are skipped', () => {
    assert.deepEqual(searchCandidates('users', [], 1), ['users']);
    assert.deepEqual(searchCandidates('users', ['', 'a.example'], 1), ['users', 'users.a.example']);
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}`;
    assert.deepEqual(searchCandidates(long, ['example.com'], 5), [long]);
  });
});

describe('parsers under fuzzing (fast-check, seeded)', () => {
  const line = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc
      .tuple(
        fc.constantFrom('nameserver', 'search', 'domain', 'options', '#', ';', 'nameservers', ''),
        fc.constantFrom(' ', '\t', '  ', ''),
        fc.array(
          fc.oneof(
            fc.string({ maxLength: 20 }),
            fc.ipV4(),
            fc.ipV6(),
            fc.domain(),
            fc.constantFrom('ndots:3', 'timeout:0', 'attempts:99', 'ndots:', 'rotate'),
          ),
          { maxLength: 8 },
        ),
      )
      .map(([k, sep, rest]) => `${k}${sep}${rest.join(' ')}`),
  );
  const text = fc
    .tuple(fc.array(line, { maxLength: 30 }), fc.constantFrom('\n', '\r\n'))
    .map(([lines, eol]) => lines.join(eol));

  it('never throw and always return values within the documented bounds', () => {
    fc.assert(
      fc.property(text, fc.string({ maxLength: 40 }), (t, hostname) => {
        const conf = parseResolvConf(t, hostname, { RES_OPTIONS: t.slice(0, 30), LOCALDOMAIN: hostname });
        assert.ok(conf.nameservers.length <= 3 && conf.nameservers.every((s) => isIP(s) !== 0));
        assert.ok(Number.isInteger(conf.ndots) && conf.ndots >= 0 && conf.ndots <= 15);
        assert.ok(conf.timeoutMs === undefined || (conf.timeoutMs >= 1000 && conf.timeoutMs <= 30_000));
        assert.ok(conf.attempts === undefined || (conf.attempts >= 1 && conf.attempts <= 5));
        assert.ok(conf.search.every((d) => d === d.toLowerCase() && !d.endsWith('.') && !d.includes('..')));
        const hosts = parseHosts(t);
        for (const [name, addresses] of hosts) {
          assert.ok(name.length > 0 && name === name.toLowerCase() && !name.endsWith('.'));
          assert.ok(addresses.length > 0 && addresses.every((a) => isIP(a) !== 0));
          assert.equal(new Set(addresses).size, addresses.length);
        }
        for (const candidate of searchCandidates(hostname || 'x', conf.search, conf.ndots)) {
          assert.ok(candidate.length <= 253);
        }
      }),
      { seed: 16, numRuns: 2000 },
    );
  });
});
