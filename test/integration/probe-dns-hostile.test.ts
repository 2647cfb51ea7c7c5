// Outside-in probe (wave 5): hostile and unusual DNS answers through the public resolvers (`sidecarless`), against
// the scriptable fake server. The bar: a typed error or the last good set, never a crash, a hang or a busy loop.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type dnsPacket from 'dns-packet';
import { createClient, DnsResolver, SrvResolver } from 'sidecarless';
import { a, type FakeDnsServer, type FakeQuery, reply, startFakeDns } from '../helpers/dns-fake-server.js';
import { RecordingListener } from '../helpers/dns-listener.js';
import { FakeClock } from '../helpers/fake-clock.js';

const noSystem = { resolvConf: false, hostsFile: false } as const;
const servers: FakeDnsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function fake(handler: (q: FakeQuery) => void, tcp = false): Promise<FakeDnsServer> {
  const s = await startFakeDns(handler, tcp);
  servers.push(s);
  return s;
}
const qname = (q: FakeQuery) => q.packet.questions?.[0]?.name ?? '';
const qtype = (q: FakeQuery) => q.packet.questions?.[0]?.type ?? '';
/** A resolver of `host`'s A records asking only `server` (no system files), one try of `timeoutMs`. */
const dnsOf = (host: string, server: FakeDnsServer, timeoutMs: number, extra: object = {}): DnsResolver =>
  new DnsResolver({ host, nameservers: [server.address], ...noSystem, family: 4, timeoutMs, retries: 0, ...extra });
/** Starts `r`, waits (at most `ms`) for its first update or error, and closes it. */
async function firstOutcome(r: DnsResolver, ms: number): Promise<RecordingListener> {
  const l = new RecordingListener();
  r.start(l);
  try {
    await l.waitFor(() => l.errors.length > 0 || l.updates.length > 0, ms, 'an outcome');
  } finally {
    r.close();
  }
  return l;
}

describe('probe: hostile DNS answers', () => {
  it('a reply whose name is a compression pointer to itself is a typed error, not a hang', async () => {
    const server = await fake((q) => {
      const good = reply(q, { answers: [a(qname(q), '10.0.0.1')] });
      // Replace the answer's name (a pointer to the question, 0xc00c) by a pointer to itself.
      const at = 12 + (q.raw.length - 12 - (q.raw.length - q.raw.indexOf(0, 12) - 1)) + 5;
      const bad = Buffer.from(good);
      bad.writeUInt16BE(0xc000 | at, at);
      q.send(bad);
    });
    const l = await firstOutcome(dnsOf('h.test', server, 300), 5000);
    if (l.errors.length > 0) assert.match(l.errors[0]!.code, /^SIDECARLESS_/);
  });

  it('a TCP answer with 2500 A records: all of them, one update', async () => {
    const server = await fake((q) => {
      if (q.transport === 'udp') return q.send(reply(q, { tc: true }));
      const answers = Array.from({ length: 2500 }, (_, i) => a(qname(q), `10.${(i >> 8) & 255}.${i & 255}.1`));
      q.send(reply(q, { answers }));
    }, true);
    const l = await firstOutcome(dnsOf('big.test', server, 3000), 10_000);
    assert.equal(l.errors.length, 0, String(l.errors[0]));
    assert.equal(l.last?.length, 2500);
  });

  it('slow-loris over TCP (a byte every 30 ms) ends with a typed timeout within timeoutMs', async () => {
    const timers = new Set<NodeJS.Timeout>();
    // Replace the TCP handling: write the length prefix, then trickle.
    const trickle = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        let n = 0;
        const t = setInterval(() => {
          if (n++ > 200 || socket.destroyed) return clearInterval(t);
          socket.write(Buffer.from([n === 1 ? 0x10 : 0]));
        }, 30);
        timers.add(t);
      });
    });
    // The client connects over TCP to the port it asked over UDP: the trickling server listens on the fake UDP
    // server's port. Another process may hold that port over TCP on a shared machine (EADDRINUSE, an 'error' event,
    // not a rejection): then another fake server, another port (the after hook closes them all).
    const listened = (port: number) =>
      new Promise<boolean>((resolve) => {
        const failed = (): void => resolve(false);
        trickle.once('error', failed);
        trickle.listen(port, '127.0.0.1', () => {
          trickle.off('error', failed);
          resolve(true);
        });
      });
    let server: FakeDnsServer | undefined;
    for (let tries = 0; server === undefined && tries < 20; tries++) {
      const candidate = await fake((q) => {
        if (q.transport === 'udp') return q.send(reply(q, { tc: true }));
      });
      if (await listened(candidate.port)) server = candidate;
    }
    assert.ok(server !== undefined, 'a port free over both UDP and TCP');
    const started = Date.now();
    const l = await firstOutcome(dnsOf('slow.test', server, 400), 10_000);
    for (const t of timers) clearInterval(t);
    await new Promise<void>((resolve) => trickle.close(() => resolve()));
    assert.equal(l.updates.length, 0);
    assert.match(l.errors[0]!.code, /^SIDECARLESS_DNS_/);
    assert.ok(Date.now() - started < 8000);
  });

  it('a CNAME loop in the answer section is a typed error or an empty answer, never a hang', async () => {
    const server = await fake((q) => {
      const answers: dnsPacket.Answer[] = [
        { type: 'CNAME', name: 'loop.test', ttl: 30, class: 'IN', data: 'b.test' },
        { type: 'CNAME', name: 'b.test', ttl: 30, class: 'IN', data: 'loop.test' },
      ];
      q.send(reply(q, { answers }));
    });
    const l = await firstOutcome(dnsOf('loop.test', server, 300), 5000);
    if (l.errors.length > 0) assert.match(l.errors[0]!.code, /^SIDECARLESS_/);
  });

  it('a name with a trailing dot is absolute: asked once as it is, no search list', async () => {
    const server = await fake((q) => q.send(reply(q, { answers: [a(qname(q), '10.0.0.9')] })));
    const l = await firstOutcome(dnsOf('dot.test.', server, 300, { search: ['corp.test'], ndots: 5 }), 5000);
    assert.equal(l.errors.length, 0, String(l.errors[0]));
    assert.deepEqual(server.queries.map(qname), ['dot.test']);
    assert.deepEqual(l.lastKeys, ['10.0.0.9:80']);
  });

  it('regression (SRV port 0 failed the whole answer): a port-0 record is skipped and reported, the rest used; a target that does not resolve is left out', async () => {
    const server = await fake((q) => {
      const name = qname(q);
      if (qtype(q) === 'SRV') {
        const srv = (target: string, port: number, weight: number, priority: number): dnsPacket.Answer => ({
          type: 'SRV',
          name,
          ttl: 30,
          class: 'IN',
          data: { target, port, weight, priority },
        });
        return q.send(
          reply(q, {
            answers: [
              srv('ok.test', 8080, 0, 0),
              srv('gone.test', 8081, 10, 0),
              srv('b.test', 8082, 5, 1),
              srv('ok.test', 0, 5, 0),
            ],
          }),
        );
      }
      if (name === 'gone.test') return q.send(reply(q, { rcode: 3 }));
      if (qtype(q) === 'A')
        return q.send(reply(q, { answers: [a(name, name === 'ok.test' ? '10.0.0.1' : '10.0.0.2')] }));
      q.send(reply(q));
    });
    const r = new SrvResolver({
      name: '_http._tcp.svc.test',
      nameservers: [server.address],
      ...noSystem,
      timeoutMs: 300,
      retries: 0,
    });
    const l = new RecordingListener();
    r.start(l);
    await l.waitFor(() => l.updates.length > 0, 5000, 'an update');
    r.close();
    assert.deepEqual(
      l.errors.map((e) => e.code),
      ['SIDECARLESS_INVALID_ENDPOINT'],
    );
    const byKey = new Map((l.last ?? []).map((e) => [e.key, e]));
    assert.deepEqual([...byKey.keys()].sort(), ['10.0.0.1:8080', '10.0.0.2:8082']);
    assert.equal(byKey.get('10.0.0.2:8082')?.priority, 1);
  });

  it('regression (a non-ASCII SRV target sent a malformed query and failed the whole answer): skipped and reported, the rest used', async () => {
    const server = await fake((q) => {
      const name = qname(q);
      if (qtype(q) === 'SRV') {
        const srv = (target: string, port: number): dnsPacket.Answer => ({
          type: 'SRV',
          name,
          ttl: 30,
          class: 'IN',
          data: { target, port, weight: 1, priority: 0 },
        });
        const bytes = reply(q, { answers: [srv('good.test', 8080), srv('zzzz.test', 9090)] });
        // Replace the second target's first label by 63 bytes of 0xff (dns-packet decodes each as U+FFFD), and fix
        // that record's RDLENGTH, 8 bytes before its target.
        const needle = Buffer.from('\x04zzzz\x04test\x00', 'latin1');
        const at = bytes.indexOf(needle);
        const label = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0xff), needle.subarray(5)]);
        const out = Buffer.concat([bytes.subarray(0, at), label, bytes.subarray(at + needle.length)]);
        out.writeUInt16BE(out.readUInt16BE(at - 8) - needle.length + label.length, at - 8);
        return q.send(out);
      }
      q.send(reply(q, { answers: qtype(q) === 'A' ? [a(name, '10.0.0.2')] : [] }));
    });
    const r = new SrvResolver({
      name: '_h._tcp.x.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      timeoutMs: 5000,
      retries: 0,
    });
    const l = new RecordingListener();
    r.start(l);
    // The skipped record is reported just before the set is delivered; any other error is a failed resolution.
    const failed = () => l.errors.some((e) => e.code !== 'SIDECARLESS_INVALID_ENDPOINT');
    await l.waitFor(() => l.updates.length > 0 || failed(), 10_000, 'an outcome');
    r.close();
    assert.deepEqual(l.lastKeys, ['10.0.0.2:8080']);
    assert.deepEqual(
      l.errors.map((e) => e.code),
      ['SIDECARLESS_INVALID_ENDPOINT'],
    );
    assert.deepEqual(server.queries.map(qname), ['_h._tcp.x.test', 'good.test'], 'no query for the bad target');
  });

  it('regression (an SRV answer naming 1200 targets opened 2400 UDP sockets at once: EMFILE): at most 64 look-ups in flight', async () => {
    let pending = 0;
    let most = 0;
    const timers = new Set<NodeJS.Timeout>();
    const server = await fake((q) => {
      const name = qname(q);
      if (qtype(q) === 'SRV') {
        if (q.transport === 'udp') return q.send(reply(q, { tc: true }));
        const answers = Array.from({ length: 1200 }, (_, i) => ({
          type: 'SRV' as const,
          name,
          ttl: 30,
          class: 'IN' as const,
          data: { target: `t${i}.x`, port: 80, weight: 1, priority: 0 },
        }));
        return q.send(reply(q, { answers }));
      }
      pending++;
      most = Math.max(most, pending);
      const t = setTimeout(() => {
        timers.delete(t);
        pending--;
        const i = Number(name.slice(1).split('.')[0]);
        q.send(reply(q, { answers: qtype(q) === 'A' ? [a(name, `10.${(i >> 8) & 255}.${i & 255}.1`)] : [] }));
      }, 2);
      timers.add(t);
    }, true);
    const r = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      ...noSystem,
      timeoutMs: 5000,
      retries: 0,
    });
    const l = new RecordingListener();
    r.start(l);
    await l.waitFor(() => l.updates.length > 0 || l.errors.length > 0, 60_000, 'an outcome');
    r.close();
    for (const t of timers) clearTimeout(t);
    assert.equal(l.errors.length, 0, String(l.errors[0]));
    assert.equal(l.last?.length, 1200);
    assert.ok(most <= 64, `${most} look-ups in flight at once`);
  });

  it('an IPv6-only name (AAAA, no A): requests reach the [::1] endpoint with the logical Host', async () => {
    const backend = http.createServer((req, res) => res.end(`host=${req.headers.host}`));
    await new Promise<void>((resolve) => backend.listen(0, '::1', resolve));
    const port = (backend.address() as net.AddressInfo).port;
    const server = await fake((q) => {
      if (qtype(q) === 'AAAA') {
        return q.send(reply(q, { answers: [{ type: 'AAAA', name: qname(q), ttl: 30, class: 'IN', data: '::1' }] }));
      }
      q.send(reply(q));
    });
    const client = createClient({
      name: 'six',
      target: new DnsResolver({ host: 'six.test', port, nameservers: [server.address], ...noSystem }),
    });
    const res = await client.fetch('http://six/');
    assert.equal(await res.text(), 'host=six');
    assert.deepEqual(
      client.endpoints.map((e) => e.key),
      [`[::1]:${port}`],
    );
    await client.close();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  it("regression (a hosts line with a zoned address, macOS's `fe80::1%lo0 localhost`, failed the name): skipped", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'probe-hosts-'));
    const hostsFile = join(dir, 'hosts');
    writeFileSync(hostsFile, '127.0.0.1 localhost\n::1 localhost\nfe80::1%lo0 localhost\n');
    const r = new DnsResolver({
      host: 'localhost',
      port: 8080,
      hostsFile,
      resolvConf: false,
      nameservers: ['127.0.0.1:9'],
    });
    const l = new RecordingListener();
    r.start(l);
    try {
      await l.waitFor(() => l.updates.length > 0 || l.errors.length > 0, 5000, 'an outcome');
    } finally {
      r.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(l.errors.length, 0, String(l.errors[0]));
    assert.deepEqual(l.lastKeys, ['127.0.0.1:8080', '[::1]:8080']);
  });

  it('an SRV answer whose every record has port 0 keeps the last good set, with a typed error', async () => {
    let port = 8080;
    const server = await fake((q) => {
      const name = qname(q);
      if (qtype(q) === 'SRV') {
        const data = { target: 'ok.test', port, weight: 1, priority: 0 };
        return q.send(reply(q, { answers: [{ type: 'SRV', name, ttl: 0, class: 'IN', data }] }));
      }
      q.send(reply(q, { answers: qtype(q) === 'A' ? [a(name, '10.0.0.1', 0)] : [] }));
    });
    const clock = new FakeClock();
    const r = new SrvResolver({
      name: '_h._tcp.zero.test',
      nameservers: [server.address],
      ...noSystem,
      clock,
      minTtlMs: 1000,
    });
    const l = new RecordingListener();
    r.start(l);
    await l.waitFor(() => l.updates.length > 0, 5000, 'the first set');
    port = 0;
    clock.advance(1000);
    await l.waitFor(() => l.errors.length > 0, 5000, 'an error');
    r.close();
    assert.equal(l.errors[0]?.code, 'SIDECARLESS_INVALID_ENDPOINT');
    assert.equal(l.updates.length, 1, 'no empty set delivered');
    assert.deepEqual(l.lastKeys, ['10.0.0.1:8080']);
  });
});
