/**
 * `resolv.conf` options `rotate`, `use-vc` and `edns0` (and the same through `RES_OPTIONS`), with glibc's semantics
 * (`man 5 resolv.conf`), through `DnsResolver` from the package entry point against the scriptable fake server:
 * which nameserver a query starts at, which transport it uses, and whether it carries an OPT record.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type dnsPacket from 'dns-packet';
import { DnsResolver, type DnsResolverOptions, type Endpoint } from 'sidecarless';
import { a, type FakeDnsServer, type FakeQuery, reply, startFakeDns } from '../../helpers/dns-fake-server.js';

let dir: string;
let files = 0;
const servers: FakeDnsServer[] = [];
const resolvers: DnsResolver[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sidecarless-resolv-options-'));
});
afterEach(async () => {
  for (const r of resolvers.splice(0)) r.close();
  for (const s of servers.splice(0)) await s.close();
});
after(() => rm(dir, { recursive: true, force: true }));

async function resolvConf(text: string): Promise<string> {
  const path = join(dir, `resolv${files++}.conf`);
  await writeFile(path, text);
  return path;
}

async function until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; !predicate(); i++) {
    if (Date.now() > deadline || i > 100_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A server answering every A query with `count` records of TTL 0 (so the resolver asks again every minTtlMs). */
async function server(label: string, log: string[], count = 1, withTcp = false): Promise<FakeDnsServer> {
  const s = await startFakeDns((q: FakeQuery) => {
    log.push(`${label}/${q.transport}`);
    const name = q.packet.questions?.[0]?.name ?? '';
    const answers = Array.from({ length: count }, (_, i) => a(name, `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`, 0));
    let bytes = reply(q, { answers });
    // As a real server: over UDP, an answer larger than the client's advertised size is truncated (RFC 6891 §7).
    const opt = q.packet.additionals?.find((r) => r.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    const limit = opt === undefined ? 512 : Math.max(512, opt.udpPayloadSize);
    if (q.transport === 'udp' && bytes.length > limit) bytes = reply(q, { tc: true });
    q.send(bytes);
  }, withTcp);
  servers.push(s);
  return s;
}

function start(options: DnsResolverOptions): { updates: (readonly Endpoint[])[] } {
  const r = new DnsResolver({ port: 80, family: 4, hostsFile: false, minTtlMs: 5, ...options });
  resolvers.push(r);
  const updates: (readonly Endpoint[])[] = [];
  r.start({ onUpdate: (e) => void updates.push(e), onError: () => {} });
  return { updates };
}

describe('resolv.conf options rotate, use-vc, edns0', () => {
  it('rotate: each query starts at the next nameserver (round robin); without it, always at the first', async () => {
    const log: string[] = [];
    const [x, y] = [await server('x', log), await server('y', log)];
    start({
      host: 'users.test.',
      nameservers: [x.address, y.address],
      resolvConf: await resolvConf('options rotate\n'),
    });
    await until(() => log.length >= 4, 'four queries');
    assert.deepEqual(log.slice(0, 4), ['x/udp', 'y/udp', 'x/udp', 'y/udp']);

    const plain: string[] = [];
    const [p, q] = [await server('p', plain), await server('q', plain)];
    start({
      host: 'users.test.',
      nameservers: [p.address, q.address],
      resolvConf: await resolvConf('options ndots:1\n'),
    });
    await until(() => plain.length >= 4, 'four queries');
    assert.deepEqual(plain.slice(0, 4), ['p/udp', 'p/udp', 'p/udp', 'p/udp']);
  });

  it("regression (rotate with family 'any' never rotated A queries): a name's A and AAAA are one rotation step", async () => {
    const log: string[] = [];
    const typed = async (label: string) => {
      const s = await startFakeDns((q: FakeQuery) => {
        const question = q.packet.questions?.[0];
        log.push(`${label} ${question?.type}`);
        // A records with TTL 0 (asked again every minTtlMs); NODATA for AAAA.
        q.send(reply(q, { answers: question?.type === 'A' ? [a(question.name, '10.0.0.1', 0)] : [] }));
      });
      servers.push(s);
      return s;
    };
    const [x, y] = [await typed('x'), await typed('y')];
    start({
      host: 'users.test.',
      family: 'any',
      nameservers: [x.address, y.address],
      resolvConf: await resolvConf('options rotate\n'),
    });
    await until(() => log.length >= 8, 'four resolutions');
    // The two queries of one resolution arrive in either order.
    const pairs = [0, 2, 4, 6].map((i) =>
      log
        .slice(i, i + 2)
        .sort()
        .join(', '),
    );
    assert.deepEqual(pairs, ['x A, x AAAA', 'y A, y AAAA', 'x A, x AAAA', 'y A, y AAAA']);
  });

  it('rotate: a failing nameserver is still followed by the others in order from the rotated start', async () => {
    const log: string[] = [];
    const x = await server('x', log);
    const dead = await startFakeDns(() => void log.push('dead/udp'));
    servers.push(dead);
    const { updates } = start({
      host: 'users.test.',
      nameservers: [dead.address, x.address],
      timeoutMs: 50,
      retries: 1,
      resolvConf: await resolvConf('options rotate\n'),
    });
    await until(() => updates.length >= 1 && log.length >= 4, 'answers through the live one');
    // Query 1 starts at dead (times out) then x; query 2 starts at x.
    assert.deepEqual(log.slice(0, 3), ['dead/udp', 'x/udp', 'x/udp']);
  });

  it('use-vc: queries go over TCP, never UDP', async () => {
    const log: string[] = [];
    const x = await server('x', log, 1, true);
    const { updates } = start({
      host: 'users.test.',
      nameservers: [x.address],
      resolvConf: await resolvConf('options use-vc\n'),
    });
    await until(() => updates.length >= 1 && log.length >= 2, 'answers over TCP');
    assert.ok(
      log.every((l) => l === 'x/tcp'),
      log.join(),
    );
    assert.deepEqual(
      updates[0]?.map((e) => e.key),
      ['10.0.0.1:80'],
    );
  });

  it('edns0: queries carry an OPT record (1232 bytes, at least glibc 1200), so a 60-record answer comes over UDP', async () => {
    const log: string[] = [];
    const x = await server('x', log, 60, true);
    const { updates } = start({
      host: 'users.test.',
      nameservers: [x.address],
      resolvConf: await resolvConf('options edns0\n'),
    });
    await until(() => updates.length >= 1, 'the large answer');
    assert.equal(updates[0]?.length, 60);
    assert.deepEqual(log.slice(0, 1), ['x/udp'], 'not truncated: no TCP fallback');
    const opt = x.queries[0]?.packet.additionals?.find((r) => r.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    assert.ok(opt !== undefined, 'an OPT record');
    assert.ok(opt.udpPayloadSize >= 1200, `advertised ${opt.udpPayloadSize}`);
  });

  it('RES_OPTIONS: rotate and use-vc apply from the environment too', async () => {
    const saved = process.env.RES_OPTIONS;
    process.env.RES_OPTIONS = 'rotate use-vc';
    try {
      const log: string[] = [];
      const [x, y] = [await server('x', log, 1, true), await server('y', log, 1, true)];
      start({ host: 'users.test.', nameservers: [x.address, y.address], resolvConf: await resolvConf('') });
      await until(() => log.length >= 4, 'four queries');
      assert.deepEqual(log.slice(0, 4), ['x/tcp', 'y/tcp', 'x/tcp', 'y/tcp']);
    } finally {
      if (saved === undefined) delete process.env.RES_OPTIONS;
      else process.env.RES_OPTIONS = saved;
    }
  });
});
