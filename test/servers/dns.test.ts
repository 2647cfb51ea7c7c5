/**
 * The dns: and srv: resolvers against a real authoritative server (Knot DNS on 127.0.0.1, ephemeral port), with a
 * hosts file and a resolv.conf of the test's own (a Kubernetes-like search list over the `cluster.test` zone).
 * Needs `apt-get install -y knot`; without it this file fails (it does not skip).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createClient as createClientFromPackage,
  DnsResolver as PackageDnsResolver,
  findSidecarlessError,
  SrvResolver as PackageSrvResolver,
} from 'sidecarless';
import { createClient } from '../../src/client/client.js';
import { DnsResolver } from '../../src/resolvers/dns/resolver.js';
import { DnsClient } from '../../src/resolvers/dns/client.js';
import type { Resolver } from '../../src/resolvers/resolver.js';
import { SrvResolver } from '../../src/resolvers/dns/srv.js';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { RecordingListener } from '../helpers/dns-listener.js';
import { disposeKnot, type KnotServer, requireKnot, startKnot } from '../helpers/knot.js';

// Fail loudly (not skip) when the server is missing: the message says to `apt-get install -y knot`.
requireKnot();

const BIG = Array.from({ length: 60 }, (_, i) => `big 30 IN A 10.1.0.${i + 1}`).join('\n');
const SVC = [
  'a 30 IN A 127.0.0.11',
  'b 30 IN A 127.0.0.12',
  'b 30 IN AAAA ::12',
  'c 30 IN A 127.0.0.13',
  'd 30 IN A 127.0.0.14',
  'web 20 IN A 127.0.0.2',
  'web 10 IN AAAA ::2',
  'nodata 30 IN TXT "no address here"',
  '_multi._tcp 30 IN SRV 0 60 8080 a',
  '_multi._tcp 30 IN SRV 0 0 8081 b',
  '_multi._tcp 30 IN SRV 10 5 8082 c',
  '_multi._tcp 30 IN SRV 300 1 8083 d',
  '_ext._tcp 30 IN SRV 1 1 9000 ext.other.test.',
  '_none._tcp 30 IN SRV 0 0 0 .',
  BIG,
].join('\n');

const resolvers: Resolver[] = [];
function track<T extends Resolver>(r: T): T {
  resolvers.push(r);
  return r;
}

let knot: KnotServer;
/** A second server playing cluster DNS: the root zone (NXDOMAIN for any other name, as a recursive server would
 * answer) and `cluster.test`. */
let clusterDns: KnotServer;
let backends: Backend[];
/** The test's own system files: `plain` (no search list), `k8s` (a pod's search list and ndots 5), `hosts`. */
const files = { plain: '', k8s: '', hosts: '' };

/** A Kubernetes-like zone: a headless service `users` in namespace `shop`, with a named port `http`. */
function clusterZone(): string {
  const [b0, b1] = backends as [Backend, Backend];
  return [
    'users.shop.svc 5 IN A 127.0.0.1',
    `_http._tcp.users.shop.svc 5 IN SRV 0 50 ${b0.port} pod-0.users.shop.svc`,
    `_http._tcp.users.shop.svc 5 IN SRV 0 50 ${b1.port} pod-1.users.shop.svc`,
    'pod-0.users.shop.svc 5 IN A 127.0.0.1',
    'pod-1.users.shop.svc 5 IN A 127.0.0.1',
  ].join('\n');
}

before(async () => {
  backends = await startBackends(2);
  knot = await startKnot({
    'svc.test': SVC,
    'other.test': 'ext 30 IN A 127.0.0.50',
    'live.test': 'svc 1 IN A 127.0.0.21\nzero 0 IN A 127.0.0.31',
    'ref.test': 'web.sub 30 IN A 127.0.0.41\n_h._tcp.sub 30 IN SRV 0 1 8080 web.sub',
    'first.test': '',
    'second.test': 'web 30 IN A 127.0.0.52\nv4 30 IN A 127.0.0.53',
    'e2e.test':
      backends.map((b) => `_http._tcp 1 IN SRV 0 1 ${b.port} b${b.id}`).join('\n') +
      '\nbb0 1 IN A 127.0.0.1\nbb1 1 IN A 127.0.0.1',
  });
  clusterDns = await startKnot({ '.': '', 'cluster.test': clusterZone() });
  files.plain = join(knot.dir, 'resolv-plain.conf');
  files.k8s = join(knot.dir, 'resolv-k8s.conf');
  files.hosts = join(knot.dir, 'hosts');
  await writeFile(files.plain, `nameserver 127.0.0.1\noptions ndots:1\n`);
  await writeFile(
    files.k8s,
    'nameserver 127.0.0.1\nsearch shop.svc.cluster.test svc.cluster.test cluster.test\noptions ndots:5 timeout:1\n',
  );
  await writeFile(files.hosts, '127.0.0.1 localhost\n127.0.0.1 pinned.svc.test pinned\n');
});

after(async () => {
  for (const r of resolvers) await r.close();
  await disposeKnot(knot);
  await disposeKnot(clusterDns);
  await stopAll(backends ?? []);
});

const fast = () => ({
  nameservers: [knot.address],
  timeoutMs: 500,
  retries: 1,
  resolvConf: files.plain,
  hostsFile: files.hosts,
});
/** A pod in namespace `shop`: Kubernetes' search list and ndots 5, knot as the cluster DNS. */
const pod = () => ({ nameservers: [clusterDns.address], resolvConf: files.k8s, hostsFile: files.hosts });
/** DnsClient options (the client alone reads no system files). */
const direct = () => ({ nameservers: [knot.address], timeoutMs: 500, retries: 1 });

/** Counts resolutions started: one poll each, so tests can count polls between events instead of timing them. */
class CountingDnsResolver extends DnsResolver {
  lookups = 0;
  protected override lookup() {
    this.lookups++;
    return super.lookup();
  }
}

class CountingSrvResolver extends SrvResolver {
  lookups = 0;
  protected override lookup() {
    this.lookups++;
    return super.lookup();
  }
}

/** Polls `predicate` every 10 ms, failing after `ms` (a bound for a hang, not a speed requirement). */
async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('SrvResolver against knot', () => {
  it('maps several priorities and weights into endpoints (weight 0 small, priority clamped to 127)', async () => {
    const listener = new RecordingListener();
    track(new SrvResolver({ ...fast(), name: '_multi._tcp.svc.test' })).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first SRV set');
    const byKey = new Map((listener.last ?? []).map((e) => [e.key, e]));
    assert.deepEqual([...byKey.keys()].sort(), [
      '127.0.0.11:8080',
      '127.0.0.12:8081',
      '127.0.0.13:8082',
      '127.0.0.14:8083',
      '[::12]:8081',
    ]);
    assert.equal(byKey.get('127.0.0.11:8080')?.weight, 60);
    assert.equal(byKey.get('127.0.0.11:8080')?.priority, 0);
    assert.equal(byKey.get('127.0.0.12:8081')?.weight, 0.01);
    assert.equal(byKey.get('127.0.0.12:8081')?.metadata.srvWeight, '0');
    assert.equal(byKey.get('127.0.0.13:8082')?.priority, 10);
    assert.equal(byKey.get('127.0.0.14:8083')?.priority, 127);
    assert.equal(byKey.get('127.0.0.14:8083')?.metadata.srvPriority, '300');
    assert.equal(byKey.get('127.0.0.13:8082')?.metadata.srvTarget, 'c.svc.test');
    assert.equal(listener.errors.length, 0);
  });

  it('looks up targets missing from the additional section, with family=4 filtering', async () => {
    const listener = new RecordingListener();
    track(new SrvResolver({ ...fast(), name: '_ext._tcp.svc.test', family: 4 })).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'SRV set');
    assert.deepEqual(listener.lastKeys, ['127.0.0.50:9000']);
  });

  it('a sole "." target means the service is not available: an empty set', async () => {
    const listener = new RecordingListener();
    track(new SrvResolver({ ...fast(), name: '_none._tcp.svc.test' })).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'empty set');
    assert.deepEqual(listener.last, []);
  });
});

describe('DnsResolver against knot', () => {
  it('resolves A and AAAA (family any), and only A with family 4', async () => {
    const any = new RecordingListener();
    const v4 = new RecordingListener();
    track(new DnsResolver({ ...fast(), host: 'web.svc.test', port: 8080 })).start(any);
    track(new DnsResolver({ ...fast(), host: 'web.svc.test', port: 8080, family: 4 })).start(v4);
    await any.waitFor(() => any.updates.length > 0, 3000, 'A+AAAA');
    await v4.waitFor(() => v4.updates.length > 0, 3000, 'A');
    assert.deepEqual(any.lastKeys, ['127.0.0.2:8080', '[::2]:8080']);
    assert.deepEqual(v4.lastKeys, ['127.0.0.2:8080']);
    assert.equal(any.last?.[0]?.metadata.dnsName, 'web.svc.test');
  });

  it('falls back to TCP when the UDP answer is truncated (60 A records, 512-byte UDP, no EDNS)', async () => {
    const client = new DnsClient({ ...direct(), udpPayloadSize: 512 });
    const answer = await client.resolveAddresses('big.svc.test', 4);
    client.close();
    assert.equal(answer.transport, 'tcp');
    assert.equal(answer.records.length, 60);
    const listener = new RecordingListener();
    track(new DnsResolver({ ...fast(), host: 'big.svc.test', udpPayloadSize: 512, family: 4 })).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'big set');
    assert.equal(listener.last?.length, 60);
  });

  it('tells NXDOMAIN, NODATA, REFUSED and timeout apart, and delivers negative answers as empty sets', async () => {
    const client = new DnsClient(direct());
    await assert.rejects(client.resolveAddresses('missing.svc.test', 4), {
      code: 'SIDECARLESS_DNS_NXDOMAIN',
      rcode: 'NXDOMAIN',
      negativeTtl: 1,
    });
    await assert.rejects(client.resolveAddresses('nodata.svc.test', 4), { code: 'SIDECARLESS_DNS_NODATA' });
    await assert.rejects(client.resolveSrv('web.svc.test'), { code: 'SIDECARLESS_DNS_NODATA' });
    await assert.rejects(client.resolveAddresses('elsewhere.example', 4), { code: 'SIDECARLESS_DNS_REFUSED' });
    client.close();

    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    try {
      const port = silent.address().port;
      const mute = new DnsClient({ nameservers: [`127.0.0.1:${port}`], timeoutMs: 150, retries: 1 });
      await assert.rejects(mute.resolveAddresses('web.svc.test', 4), { code: 'SIDECARLESS_DNS_TIMEOUT' });
      mute.close();

      const nx = new RecordingListener();
      const nodata = new RecordingListener();
      const timeout = new RecordingListener();
      track(new DnsResolver({ ...fast(), host: 'missing.svc.test' })).start(nx);
      track(new DnsResolver({ ...fast(), host: 'nodata.svc.test' })).start(nodata);
      track(
        new DnsResolver({ nameservers: [`127.0.0.1:${port}`], timeoutMs: 100, retries: 0, host: 'web.svc.test' }),
      ).start(timeout);
      await nx.waitFor(() => nx.updates.length > 0, 3000, 'NXDOMAIN empty set');
      await nodata.waitFor(() => nodata.updates.length > 0, 3000, 'NODATA empty set');
      await timeout.waitFor(() => timeout.errors.length > 0, 3000, 'timeout error');
      assert.deepEqual(nx.last, []);
      assert.deepEqual(nodata.last, []);
      // The negative answer behind each empty set is reported once: it is what SIDECARLESS_NO_ENDPOINTS carries.
      assert.deepEqual(
        [...nx.errors, ...nodata.errors].map((e) => e.code),
        ['SIDECARLESS_DNS_NXDOMAIN', 'SIDECARLESS_DNS_NODATA'],
      );
      assert.equal(timeout.errors[0]?.code, 'SIDECARLESS_DNS_TIMEOUT');
      assert.equal(timeout.updates.length, 0);
    } finally {
      silent.close();
    }
  });
});

describe('live changes against knot', () => {
  it('picks up a changed record within its TTL (1 s): the first poll after the change sees it', async () => {
    const listener = new RecordingListener();
    const r = track(new CountingDnsResolver({ ...fast(), host: 'svc.live.test', minTtlMs: 100, family: 4 }));
    r.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    assert.deepEqual(listener.lastKeys, ['127.0.0.21:80']);
    await knot.setZone('live.test', 'svc 1 IN A 127.0.0.22\nsvc 1 IN A 127.0.0.23\nzero 0 IN A 127.0.0.31');
    const mark = r.lookups; // setZone returned: every poll started from here on is answered from the new zone
    // The bound only catches a hang: without the 1 s TTL the next poll would be 30 s (or maxTtlMs) away.
    await listener.waitFor(() => listener.lastKeys.includes('127.0.0.23:80'), 10_000, 'changed set');
    // At most the one poll in flight at the change answered from the old zone: the change came with the next.
    assert.ok(r.lookups - mark <= 1, `${r.lookups - mark} polls after the change`);
    assert.deepEqual(listener.lastKeys, ['127.0.0.22:80', '127.0.0.23:80']);
  });

  it('TTL 0 polls at minTtlMs', async () => {
    const listener = new RecordingListener();
    const r = track(new CountingDnsResolver({ ...fast(), host: 'zero.live.test', minTtlMs: 150, family: 4 }));
    r.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    // Nothing changes, yet it keeps asking: a TTL 0 answer is good for minTtlMs only, never cached for longer.
    await until(() => r.lookups >= 4, 10_000, 'repeated polls of a TTL 0 record');
    assert.equal(listener.updates.length, 1, 'the unchanged set is not delivered again');
    await knot.setZone('live.test', 'svc 1 IN A 127.0.0.22\nzero 0 IN A 127.0.0.32');
    const mark = r.lookups;
    await listener.waitFor(() => listener.lastKeys.includes('127.0.0.32:80'), 10_000, 'changed set');
    assert.ok(r.lookups - mark <= 1, `${r.lookups - mark} polls after the change`);
  });

  it('keeps the last known good set and calls onError while the server is down, recovers after', async () => {
    const listener = new RecordingListener();
    const resolver = track(
      new CountingSrvResolver({
        nameservers: [knot.address],
        timeoutMs: 200,
        retries: 0,
        name: '_multi._tcp.svc.test',
        minTtlMs: 100,
        maxTtlMs: 300,
        backoff: { initialMs: 100, maxMs: 200 },
      }),
    );
    resolver.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    const good = listener.lastKeys;
    await knot.stop();
    try {
      await listener.waitFor(() => listener.errors.length >= 2, 4000, 'errors while down');
      assert.deepEqual(listener.lastKeys, good);
      assert.ok(
        listener.updates.every((u) => u.length > 0),
        'never emptied',
      );
      assert.match(listener.errors[0]?.code ?? '', /^SIDECARLESS_DNS_(NETWORK|TIMEOUT)$/);
    } finally {
      await knot.restart();
    }
    // Recovery: polls started after the restart succeed (same set: no new update, no more errors). Polls run one at
    // a time, so once the second one after the restart has started, the first has finished.
    const mark = resolver.lookups;
    await until(() => resolver.lookups >= mark + 2, 10_000, 'two polls after the restart');
    const settled = listener.errors.length;
    await until(() => resolver.lookups >= mark + 4, 10_000, 'two more polls');
    assert.equal(listener.errors.length, settled, 'errors kept coming after the restart');
    assert.deepEqual(listener.lastKeys, good);
  });
});

describe('negative answers and referrals against knot (probe 23)', () => {
  it('regression (a referral emptied the set as NODATA): after the zone delegates the name, the last set stays', async () => {
    const dnsListener = new RecordingListener();
    const srvListener = new RecordingListener();
    const options = {
      ...fast(),
      family: 4 as const,
      minTtlMs: 100,
      maxTtlMs: 300,
      backoff: { initialMs: 100, maxMs: 200 },
    };
    track(new DnsResolver({ ...options, host: 'web.sub.ref.test.' })).start(dnsListener);
    track(new SrvResolver({ ...options, name: '_h._tcp.sub.ref.test.' })).start(srvListener);
    await until(() => dnsListener.updates.length > 0 && srvListener.updates.length > 0, 3000, 'first sets');
    assert.deepEqual(dnsListener.lastKeys, ['127.0.0.41:80']);
    assert.deepEqual(srvListener.lastKeys, ['127.0.0.41:8080']);
    // knotd now answers for sub.ref.test with a referral: NOERROR, no answer, NS in the authority section, AA clear.
    await knot.setZone('ref.test', 'sub 3600 IN NS ns.elsewhere.test.');
    const client = new DnsClient(direct());
    await assert.rejects(client.resolveAddresses('web.sub.ref.test', 4), {
      code: 'SIDECARLESS_DNS_SERVFAIL',
      rcode: 'NOERROR',
    });
    client.close();
    await until(() => dnsListener.errors.length > 0 && srvListener.errors.length > 0, 10_000, 'the referrals');
    for (const listener of [dnsListener, srvListener]) {
      assert.deepEqual([...new Set(listener.errors.map((e) => e.code))], ['SIDECARLESS_DNS_SERVFAIL']);
      assert.equal(listener.updates.length, 1, 'the set was not replaced');
    }
    assert.deepEqual(dnsListener.lastKeys, ['127.0.0.41:80']);
    assert.deepEqual(srvListener.lastKeys, ['127.0.0.41:8080']);
  });

  it("regression (a search-list answer or family 'any' outlived a 1 s NXDOMAIN/NODATA): the change is seen at the negative TTL", async () => {
    // Every zone's SOA MINIMUM is 1 s; the answers that stand in meanwhile have TTL 30 s.
    const search = new RecordingListener();
    track(
      new DnsResolver({ ...fast(), host: 'web', family: 4, search: ['first.test', 'second.test'], ndots: 1 }),
    ).start(search);
    const any = new RecordingListener();
    track(new DnsResolver({ ...fast(), host: 'v4.second.test.', family: 'any' })).start(any);
    await until(() => search.updates.length > 0 && any.updates.length > 0, 3000, 'first sets');
    assert.deepEqual(search.lastKeys, ['127.0.0.52:80']);
    assert.deepEqual(any.lastKeys, ['127.0.0.53:80']);
    await knot.setZone('first.test', 'web 30 IN A 127.0.0.51');
    await knot.setZone('second.test', 'web 30 IN A 127.0.0.52\nv4 30 IN A 127.0.0.53\nv4 30 IN AAAA ::53');
    // The bound only catches the old behaviour: the 30 s TTL of the answers that stood in.
    await until(() => search.lastKeys.includes('127.0.0.51:80'), 10_000, 'the preferred search name');
    await until(() => any.lastKeys.includes('[::53]:80'), 10_000, 'the AAAA record');
    assert.equal(search.last?.[0]?.metadata.dnsName, 'web.first.test');
    assert.deepEqual(any.lastKeys, ['127.0.0.53:80', '[::53]:80']);
  });
});

describe('createClient over srv: end to end', () => {
  it('sends traffic to the HTTP backends named by SRV records, and follows a record change', async () => {
    const client = createClient({ target: `srv://${knot.address}/_http._tcp.e2e.test?minTtlMs=100&family=4` });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const res = await client.fetch('http://users/hello').catch((e) => {
          throw new Error(`fetch failed: ${String(e.cause?.stack ?? e)}`);
        });
        assert.equal(res.status, 200);
        seen.add(((await res.json()) as { backend: string }).backend);
      }
      assert.deepEqual([...seen].sort(), ['b0', 'b1']);
      const [b0, b1] = backends as [Backend, Backend];
      await knot.setZone('e2e.test', `_http._tcp 1 IN SRV 0 1 ${b1.port} bb1\nbb1 1 IN A 127.0.0.1`);
      const deadline = Date.now() + 3000;
      while (client.endpoints.length !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        client.endpoints.map((e) => e.key),
        [`127.0.0.1:${b1.port}`],
      );
      const before0 = b0.hits;
      for (let i = 0; i < 5; i++) await (await client.fetch('http://users/again')).arrayBuffer();
      assert.equal(b0.hits, before0);
    } finally {
      await client.close();
    }
  });
});

describe('examples/dns-srv.ts', () => {
  it('runs standalone against its in-process responder, and against knot when given a target', async () => {
    const script = fileURLToPath(new URL('../../examples/dns-srv.ts', import.meta.url));
    const run = async (args: string[]) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(timer);
      assert.equal(code, 0, out);
      return out;
    };
    const standalone = await run([]);
    assert.match(standalone, /200 backend a/);
    assert.match(standalone, /200 backend b/);
    const [b1] = backends.slice(1) as [Backend];
    const viaKnot = await run([`srv://${knot.address}/_http._tcp.e2e.test?family=4`]);
    assert.match(viaKnot, new RegExp(`127\\.0\\.0\\.1:${b1.port}`));
  });
});

/** Fetches through `client` and returns which backend answered. */
async function backendOf(client: { fetch(url: string): Promise<Response> }, url: string): Promise<string> {
  const res = await client.fetch(url);
  assert.equal(res.status, 200);
  return ((await res.json()) as { backend: string }).backend;
}

describe('the system resolver semantics against knot (issue 16)', () => {
  it('dns:///localhost:PORT is answered from the hosts file (regression: NXDOMAIN, then NO_ENDPOINTS)', async () => {
    const [b0] = backends as [Backend];
    // The plain target reads the machine's /etc/hosts, which names localhost everywhere we run.
    const plain = createClientFromPackage({ target: `dns:///localhost:${b0.port}?family=4` });
    // The same through the test's own hosts file, with a nameserver that would not know the name.
    const own = createClientFromPackage({
      target: new PackageDnsResolver({ ...pod(), host: 'localhost', port: b0.port }),
    });
    try {
      assert.equal(await backendOf(plain, 'http://users/'), b0.id);
      assert.equal(await backendOf(own, 'http://users/'), b0.id);
      assert.deepEqual(
        own.endpoints.map((e) => e.key),
        [`127.0.0.1:${b0.port}`],
      );
    } finally {
      await plain.close();
      await own.close();
    }
  });

  it('Kubernetes short names resolve through the search list: users, users.shop, and the absolute name', async () => {
    const [b0] = backends as [Backend];
    for (const host of ['users', 'users.shop', 'users.shop.svc', 'users.shop.svc.cluster.test.']) {
      const client = createClientFromPackage({ target: new PackageDnsResolver({ ...pod(), host, port: b0.port }) });
      try {
        assert.equal(await backendOf(client, 'http://users/'), b0.id, host);
        const listener = new RecordingListener();
        track(new DnsResolver({ ...pod(), host, port: b0.port })).start(listener);
        await listener.waitFor(() => listener.updates.length > 0, 3000, host);
        assert.equal(listener.last?.[0]?.metadata.dnsName, 'users.shop.svc.cluster.test', host);
      } finally {
        await client.close();
      }
    }
  });

  it('SRV for a named port by its short name (_http._tcp.users): both pods get traffic', async () => {
    const client = createClientFromPackage({
      target: new PackageSrvResolver({ ...pod(), name: '_http._tcp.users', family: 4 }),
    });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add(await backendOf(client, 'http://users/'));
      assert.deepEqual([...seen].sort(), (backends as Backend[]).map((b) => b.id).sort());
      const listener = new RecordingListener();
      track(new SrvResolver({ ...pod(), name: '_http._tcp.users', family: 4 })).start(listener);
      await listener.waitFor(() => listener.updates.length > 0, 3000, 'SRV set');
      assert.deepEqual(
        // Same priority and weight: the server may list them in any order.
        listener.last?.map((e) => [e.metadata.srvName, e.metadata.srvTarget]).sort(),
        [
          ['_http._tcp.users.shop.svc.cluster.test', 'pod-0.users.shop.svc.cluster.test'],
          ['_http._tcp.users.shop.svc.cluster.test', 'pod-1.users.shop.svc.cluster.test'],
        ],
      );
    } finally {
      await client.close();
    }
  });

  it('NXDOMAIN on every search candidate: requests fail with NO_ENDPOINTS whose cause names every tried name', async () => {
    const client = createClientFromPackage({
      target: new PackageDnsResolver({ ...pod(), host: 'nosuch', family: 4 }),
      waitForReadyTimeoutMs: 100,
    });
    try {
      await client.ready(3000).catch(() => undefined);
      const err = await client.fetch('http://users/').then(
        () => assert.fail('should reject'),
        (e: unknown) => e,
      );
      const failure = findSidecarlessError(err);
      assert.equal(failure?.code, 'SIDECARLESS_NO_ENDPOINTS');
      // "No such service" (issue 15.7), caused by the DnsError that names every name tried.
      const notFound = failure?.cause as { name?: string; service?: string; cause?: unknown } | undefined;
      assert.equal(notFound?.name, 'ServiceNotFoundError');
      const cause = notFound?.cause as { code?: string; triedNames?: string[]; message?: string } | undefined;
      assert.equal(cause?.code, 'SIDECARLESS_DNS_NXDOMAIN');
      assert.deepEqual(cause?.triedNames, [
        'nosuch.shop.svc.cluster.test',
        'nosuch.svc.cluster.test',
        'nosuch.cluster.test',
        'nosuch',
      ]);
      assert.match(cause?.message ?? '', /nosuch\.shop\.svc\.cluster\.test \(NXDOMAIN\)/);
    } finally {
      await client.close();
    }
  });

  it('without a nameservers option, dns.setServers() is honoured (it wins over resolv.conf defaults)', async () => {
    const saved = dns.getServers();
    dns.setServers([knot.address]);
    try {
      const listener = new RecordingListener();
      // The default resolv.conf is used for search and options; nameservers come from dns.getServers().
      track(new DnsResolver({ host: 'web.svc.test', family: 4, hostsFile: files.hosts })).start(listener);
      await listener.waitFor(() => listener.updates.length > 0, 3000, 'answer from the server set by setServers');
      assert.deepEqual(listener.lastKeys, ['127.0.0.2:80']);
    } finally {
      dns.setServers(saved);
    }
  });

  it('a name in the hosts file wins over DNS; a trailing-dot name skips the search list', async () => {
    const pinned = new RecordingListener();
    track(new DnsResolver({ ...pod(), host: 'pinned.svc.test', family: 4 })).start(pinned);
    const absolute = new RecordingListener();
    track(new DnsResolver({ ...pod(), host: 'users.', family: 4 })).start(absolute);
    await pinned.waitFor(() => pinned.updates.length > 0, 3000, 'hosts answer');
    await absolute.waitFor(() => absolute.errors.length > 0, 3000, 'NXDOMAIN for the absolute name');
    assert.deepEqual(pinned.lastKeys, ['127.0.0.1:80']);
    assert.deepEqual((absolute.errors[0] as unknown as { triedNames: string[] }).triedNames, ['users']);
  });
});
