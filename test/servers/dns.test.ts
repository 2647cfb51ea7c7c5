/**
 * The dns: and srv: resolvers against a real authoritative server (Knot DNS on 127.0.0.1, ephemeral port).
 * Needs `apt-get install -y knot`; without it this file fails (it does not skip).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
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
let backends: Backend[];

before(async () => {
  backends = await startBackends(2);
  knot = await startKnot({
    'svc.test': SVC,
    'other.test': 'ext 30 IN A 127.0.0.50',
    'live.test': 'svc 1 IN A 127.0.0.21\nzero 0 IN A 127.0.0.31',
    'e2e.test':
      backends.map((b) => `_http._tcp 1 IN SRV 0 1 ${b.port} b${b.id}`).join('\n') +
      '\nbb0 1 IN A 127.0.0.1\nbb1 1 IN A 127.0.0.1',
  });
});

after(async () => {
  for (const r of resolvers) await r.close();
  await disposeKnot(knot);
  await stopAll(backends ?? []);
});

const fast = () => ({ nameservers: [knot.address], timeoutMs: 500, retries: 1 });

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
    const client = new DnsClient({ ...fast(), udpPayloadSize: 512 });
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
    const client = new DnsClient(fast());
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
      assert.equal(nx.errors.length + nodata.errors.length, 0);
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
    const r = track(new CountingDnsResolver({ ...fast(), host: 'svc.live.test', minTtl: 100, family: 4 }));
    r.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    assert.deepEqual(listener.lastKeys, ['127.0.0.21:80']);
    await knot.setZone('live.test', 'svc 1 IN A 127.0.0.22\nsvc 1 IN A 127.0.0.23\nzero 0 IN A 127.0.0.31');
    const mark = r.lookups; // setZone returned: every poll started from here on is answered from the new zone
    // The bound only catches a hang: without the 1 s TTL the next poll would be 30 s (or maxTtl) away.
    await listener.waitFor(() => listener.lastKeys.includes('127.0.0.23:80'), 10_000, 'changed set');
    // At most the one poll in flight at the change answered from the old zone: the change came with the next.
    assert.ok(r.lookups - mark <= 1, `${r.lookups - mark} polls after the change`);
    assert.deepEqual(listener.lastKeys, ['127.0.0.22:80', '127.0.0.23:80']);
  });

  it('TTL 0 polls at minTtl', async () => {
    const listener = new RecordingListener();
    const r = track(new CountingDnsResolver({ ...fast(), host: 'zero.live.test', minTtl: 150, family: 4 }));
    r.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    // Nothing changes, yet it keeps asking: a TTL 0 answer is good for minTtl only, never cached for longer.
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
        minTtl: 100,
        maxTtl: 300,
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

describe('createClient over srv: end to end', () => {
  it('sends traffic to the HTTP backends named by SRV records, and follows a record change', async () => {
    const client = createClient({ target: `srv://${knot.address}/_http._tcp.e2e.test?minTtl=100&family=4` });
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
