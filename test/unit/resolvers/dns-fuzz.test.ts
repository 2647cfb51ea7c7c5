/**
 * Fuzzes the reply-handling path with seeded mutations: bit flips, byte overwrites, truncations, extensions,
 * random garbage, oversized messages and compression-pointer loops. Nothing may throw, reject unhandled, or
 * replace a working set with anything but a valid endpoint set.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { DnsResolver } from '../../../src/resolvers/dns/resolver.js';
import { extractAddresses, extractSrv, parseReply } from '../../../src/resolvers/dns/packet.js';
import { SrvResolver } from '../../../src/resolvers/dns/srv.js';
import type { RandomSource } from '../../../src/common/runtime.js';
import { a, type FakeDnsServer, type FakeQuery, reply, startFakeDns } from '../../helpers/dns-fake-server.js';
import { keys, RecordingListener } from '../../helpers/dns-listener.js';
import { seededRandom } from '../../helpers/fake-clock.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);
const servers: FakeDnsServer[] = [];
after(async () => {
  process.off('unhandledRejection', onUnhandled);
  for (const s of servers) await s.close();
});

const ID = 0x1234;
function base(type: 'A' | 'SRV'): Buffer {
  const questions = [{ name: 'h.test', type, class: 'IN' as const }];
  const answers: dnsPacket.Answer[] =
    type === 'A'
      ? [a('h.test', '10.0.0.1'), a('h.test', '10.0.0.2'), { type: 'CNAME', name: 'h.test', ttl: 5, data: 'x.test' }]
      : [
          { type: 'SRV', name: 'h.test', ttl: 5, data: { priority: 1, weight: 0, port: 80, target: 'x.test' } },
          { type: 'SRV', name: 'h.test', ttl: 5, data: { priority: 9, weight: 3, port: 81, target: '.' } },
        ];
  return dnsPacket.encode({
    type: 'response',
    id: ID,
    flags: 0x0400,
    questions,
    answers,
    authorities: [
      {
        type: 'SOA',
        name: 'test',
        ttl: 9,
        data: { mname: 'ns.test', rname: 'a.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 },
      },
    ],
    additionals: [a('x.test', '10.0.0.3'), { type: 'AAAA', name: 'x.test', ttl: 3, data: '::3' }],
  });
}

const int = (random: RandomSource, n: number) => Math.floor(random() * n);

/** One fuzzed message derived from `seed` bytes; the ID is kept most of the time so the checks go deep. */
function mutate(random: RandomSource, seed: Buffer, id: number): Buffer {
  let buf: Buffer = Buffer.from(seed);
  const kind = int(random, 8);
  switch (kind) {
    case 0: // bit flips
      for (let i = int(random, 8) + 1; i > 0; i--) {
        const at = int(random, buf.length);
        buf[at] = (buf[at] ?? 0) ^ (1 << int(random, 8));
      }
      break;
    case 1: // byte overwrites, biased to the header and the first name
      for (let i = int(random, 6) + 1; i > 0; i--) buf[int(random, Math.min(buf.length, 40))] = int(random, 256);
      break;
    case 2: // truncation
      buf = buf.subarray(0, int(random, buf.length));
      break;
    case 3: // extension with junk
      buf = Buffer.concat([buf, Buffer.from(Array.from({ length: int(random, 64) + 1 }, () => int(random, 256)))]);
      break;
    case 4: // pure garbage
      buf = Buffer.from(Array.from({ length: int(random, 600) }, () => int(random, 256)));
      break;
    case 5: {
      // compression loops: a pointer to itself, a forward pointer, or two pointers to each other (RFC 1035 §4.1.4)
      const at = 12 + int(random, Math.max(1, buf.length - 14));
      const target = [at, at + 2, 12, buf.length + 5][int(random, 4)] ?? at;
      buf.writeUInt16BE(0xc000 | (target & 0x3fff), Math.min(at, buf.length - 2));
      if (random() < 0.5 && buf.length > 16) buf.writeUInt16BE(0xc000 | at, 12);
      break;
    }
    case 6: // oversized: counts claim thousands of records, or the message is large
      buf.writeUInt16BE(int(random, 65536), 4 + 2 * int(random, 4));
      if (random() < 0.3) buf = Buffer.concat([buf, Buffer.alloc(60_000 + int(random, 5000), int(random, 256))]);
      break;
    default: // rdlength and TTL edits somewhere in the records
      for (let i = 0; i < 3; i++) {
        const at = 30 + int(random, Math.max(1, buf.length - 32));
        if (at + 2 <= buf.length) buf.writeUInt16BE(int(random, 65536), at);
      }
  }
  if (buf.length >= 2 && random() < 0.9) buf.writeUInt16BE(id, 0);
  if (buf.length >= 4 && random() < 0.8) buf[2] = (buf[2] ?? 0) | 0x80;
  return buf;
}

describe('DNS reply fuzzing', () => {
  it('parseReply and the record extraction never throw and only yield valid records (5000 inputs)', () => {
    const random = seededRandom(0xd15ea5e);
    const seeds = { A: base('A'), SRV: base('SRV') };
    const verdicts: Record<string, number> = {};
    const started = performance.now();
    const N = 5000;
    for (let i = 0; i < N; i++) {
      const type = random() < 0.5 ? 'A' : 'SRV';
      const input = mutate(random, seeds[type], ID);
      const verdict = parseReply(input, ID, 'h.test', type);
      verdicts[verdict.kind] = (verdicts[verdict.kind] ?? 0) + 1;
      if (verdict.kind !== 'reply') continue;
      const names = new Set(['h.test', 'x.test']);
      for (const r of extractAddresses(verdict.packet.answers, names)) {
        createEndpoint({ host: r.address, port: 80 });
        assert.ok(r.ttl >= 0 && r.ttl <= 0x7fffffff);
      }
      extractAddresses(verdict.packet.additionals, undefined);
      for (const s of extractSrv(verdict.packet.answers, names)) {
        assert.ok(s.port >= 0 && s.port <= 65535 && s.weight >= 0 && s.priority >= 0);
      }
    }
    const ms = Math.round(performance.now() - started);
    console.log(`# fuzz: ${N} replies through parseReply in ${ms} ms, verdicts ${JSON.stringify(verdicts)}`);
    assert.ok((verdicts.reply ?? 0) > 0 && (verdicts.malformed ?? 0) > 0 && (verdicts.ignore ?? 0) > 0);
  });

  it('over a socket: a flood of broken replies never replaces the last known good set', async () => {
    const random = seededRandom(42);
    let phase: 'good' | 'broken' | 'any' = 'good';
    let sent = 0;
    const answer = (q: FakeQuery) => {
      const id = q.packet.id ?? 0;
      const type = q.packet.questions?.[0]?.type === 'SRV' ? 'SRV' : 'A';
      if (phase === 'good') {
        q.send(
          type === 'A'
            ? reply(q, { answers: [a('h.test', '10.0.0.1'), a('h.test', '10.0.0.2')] })
            : reply(q, {
                answers: [
                  { type: 'SRV', name: 'h.test', ttl: 5, data: { priority: 1, weight: 1, port: 80, target: 'x.test' } },
                ],
                additionals: [a('x.test', '10.0.0.3')],
              }),
        );
        return;
      }
      const seed = base(type);
      for (let i = 0; i < 25; i++) {
        let bytes: Buffer;
        if (phase === 'broken') {
          // Certainly invalid: garbage, cut inside the question, or a question name that loops.
          const k = int(random, 3);
          if (k === 0) bytes = Buffer.from(Array.from({ length: 12 + int(random, 500) }, () => int(random, 256)));
          else if (k === 1) bytes = Buffer.from(seed.subarray(0, 12 + int(random, 8)));
          else {
            bytes = Buffer.from(seed);
            bytes.writeUInt16BE(0xc00c, 12);
          }
          bytes.writeUInt16BE(id, 0);
          bytes[2] = (bytes[2] ?? 0) | 0x80;
        } else bytes = mutate(random, seed, id);
        q.send(bytes);
        sent++;
      }
    };
    // TCP too: garbage that has TC set sends the client to TCP, where the fuzzing goes on.
    const server = await startFakeDns(answer, true);
    servers.push(server);
    const common = {
      nameservers: [server.address],
      resolvConf: false as const,
      hostsFile: false as const,
      timeoutMs: 40,
      retries: 0,
      minTtlMs: 1,
      maxTtlMs: 5,
      backoff: { initialMs: 1, maxMs: 5 },
      family: 4 as const,
    };
    const dns = new RecordingListener();
    const srv = new RecordingListener();
    const r1 = new DnsResolver({ ...common, host: 'h.test' });
    const r2 = new SrvResolver({ ...common, name: 'h.test' });
    r1.start(dns);
    r2.start(srv);
    await dns.waitFor(() => dns.updates.length === 1, 2000, 'good A set');
    await srv.waitFor(() => srv.updates.length === 1, 2000, 'good SRV set');
    const goodA = keys(dns.last);
    const goodSrv = keys(srv.last);
    phase = 'broken';
    await dns.waitFor(() => dns.errors.length >= 15 && srv.errors.length >= 15, 8000, 'errors under garbage');
    assert.deepEqual(keys(dns.last), goodA);
    assert.deepEqual(keys(srv.last), goodSrv);
    assert.equal(dns.updates.length + srv.updates.length, 2, 'no set delivered from garbage');
    for (const e of [...dns.errors, ...srv.errors])
      assert.match(e.code, /^SIDECARLESS_DNS_(MALFORMED|TIMEOUT|NETWORK)$/);
    const brokenSent = sent;
    phase = 'any';
    const errorsBefore = dns.errors.length + srv.errors.length;
    await dns.waitFor(() => dns.errors.length + srv.errors.length >= errorsBefore + 20, 8000, 'more fuzz rounds');
    r1.close();
    r2.close();
    // Arbitrary mutations may form valid answers (even NXDOMAIN): every set delivered must still be valid.
    for (const set of [...dns.updates, ...srv.updates]) for (const e of set) createEndpoint(e);
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(unhandled, []);
    console.log(
      `# fuzz: ${sent} datagrams over UDP (${brokenSent} certainly broken), ${dns.errors.length + srv.errors.length} resolver errors, 0 crashes`,
    );
  });
});
