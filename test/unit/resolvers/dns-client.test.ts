import assert from 'node:assert/strict';
import dns from 'node:dns';
import { after, describe, it } from 'node:test';
import { DnsResolver } from '../../../src/resolvers/dns/resolver.js';
import dnsPacket from 'dns-packet';
import { DnsClient, parseNameserver } from '../../../src/resolvers/dns/client.js';
import { chainOf, encodeQuery, parseReply } from '../../../src/resolvers/dns/packet.js';
import { createResolverRegistry } from '../../../src/resolvers/registry.js';
import { SrvResolver } from '../../../src/resolvers/dns/srv.js';
import { systemClock } from '../../../src/common/runtime.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { a, type FakeDnsServer, reply, startFakeDns } from '../../helpers/dns-fake-server.js';

const servers: FakeDnsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function fake(...args: Parameters<typeof startFakeDns>): Promise<FakeDnsServer> {
  const s = await startFakeDns(...args);
  servers.push(s);
  return s;
}

/**
 * A `DnsResolver` of `web.test` (IPv4) asking only `nameserver`, on a fake clock, started and past its first set (or
 * 5 s): its updates (endpoint keys), its error codes, and the deadline its test waits to.
 */
async function watching(nameserver: string) {
  const updates: string[][] = [];
  const errors: string[] = [];
  const clock = new FakeClock();
  const r = new DnsResolver({
    host: 'web.test',
    family: 4,
    nameservers: [nameserver],
    hostsFile: false,
    resolvConf: false,
    clock,
  });
  r.start({ onUpdate: (eps) => updates.push(eps.map((e) => e.key)), onError: (e) => errors.push(e.code) });
  const deadline = Date.now() + 5000;
  while (updates.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  return { r, clock, updates, errors, deadline };
}

describe('DnsClient reply checks (fake server)', () => {
  it('ignores a reply with the wrong ID and accepts the right one that follows', async () => {
    const server = await fake((q) => {
      const wrong = reply(q, { answers: [a('h.test', '10.0.0.66')] });
      wrong.writeUInt16BE(((q.packet.id ?? 0) + 1) & 0xffff, 0);
      q.send(wrong);
      setTimeout(() => q.send(reply(q, { answers: [a('h.test', '10.0.0.1')] })), 20);
    });
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    const answer = await client.resolveAddresses('h.test', 4);
    assert.deepEqual(
      answer.records.map((r) => r.address),
      ['10.0.0.1'],
    );
    client.close();
  });

  it('ignores a reply to another question (name, type) or without QR, accepts a case-changed name', async () => {
    const server = await fake((q) => {
      const other = reply(
        { ...q, packet: { ...q.packet, questions: [{ name: 'evil.test', type: 'A', class: 'IN' }] } },
        {
          answers: [a('evil.test', '10.6.6.6')],
        },
      );
      q.send(other);
      const otherType = reply({
        ...q,
        packet: { ...q.packet, questions: [{ name: 'h.test', type: 'AAAA', class: 'IN' }] },
      });
      q.send(otherType);
      const noQr = reply(q, { answers: [a('h.test', '10.0.0.77')] });
      noQr.writeUInt16BE(noQr.readUInt16BE(2) & 0x7fff, 2);
      q.send(noQr);
      setTimeout(() => {
        const upper = reply(
          { ...q, packet: { ...q.packet, questions: [{ name: 'H.TEST', type: 'A', class: 'IN' }] } },
          {
            answers: [a('H.Test', '10.0.0.2')],
          },
        );
        q.send(upper);
      }, 20);
    });
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    const answer = await client.resolveAddresses('h.test', 4);
    assert.deepEqual(
      answer.records.map((r) => r.address),
      ['10.0.0.2'],
    );
    client.close();
  });

  it('garbage with the right ID is ignored; only garbage until the timeout is SIDECARLESS_DNS_MALFORMED', async () => {
    const server = await fake((q) => {
      const junk = Buffer.from('\x00\x00\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xff\xff\xff', 'latin1');
      junk.writeUInt16BE(q.packet.id ?? 0, 0);
      q.send(junk);
      q.send(Buffer.from([1, 2, 3]));
    });
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 150, retries: 1 });
    await assert.rejects(client.resolveAddresses('h.test', 4), { code: 'SIDECARLESS_DNS_MALFORMED' });
    assert.equal(server.queries.length, 2, 'retried once');
    client.close();
  });

  it('switches to TCP when TC is set, and sends no EDNS at udpPayloadSize 512', async () => {
    const server = await fake((q) => {
      if (q.transport === 'udp') q.send(reply(q, { tc: true }));
      else q.send(reply(q, { answers: [a('h.test', '10.0.0.3'), a('h.test', '10.0.0.4')] }));
    }, true);
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0, udpPayloadSize: 512 });
    const answer = await client.resolveAddresses('h.test', 4);
    assert.equal(answer.transport, 'tcp');
    assert.equal(answer.records.length, 2);
    assert.equal(server.queries[0]?.packet.additionals?.length ?? 0, 0, 'no OPT record');
    client.close();
    const edns = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    await edns.resolveAddresses('h.test', 4);
    const opt = server.queries.at(-2)?.packet.additionals?.[0] as { type: string; udpPayloadSize: number };
    assert.equal(opt.type, 'OPT');
    assert.equal(opt.udpPayloadSize, 1232);
    edns.close();
  });

  it('maps RCODEs: NXDOMAIN (not retried), SERVFAIL and REFUSED (retried on the next server)', async () => {
    const rcodes = new Map([
      ['nx.test', 3],
      ['fail.test', 2],
      ['ref.test', 5],
    ]);
    const s1 = await fake((q) => q.send(reply(q, { rcode: rcodes.get(q.packet.questions?.[0]?.name ?? '') ?? 0 })));
    const s2 = await fake((q) => q.send(reply(q, { rcode: rcodes.get(q.packet.questions?.[0]?.name ?? '') ?? 0 })));
    const client = new DnsClient({ nameservers: [s1.address, s2.address], timeoutMs: 500, retries: 1 });
    await assert.rejects(client.resolveAddresses('nx.test', 4), {
      code: 'SIDECARLESS_DNS_NXDOMAIN',
      rcode: 'NXDOMAIN',
    });
    assert.equal(s1.queries.length + s2.queries.length, 1);
    await assert.rejects(client.resolveAddresses('fail.test', 4), {
      code: 'SIDECARLESS_DNS_SERVFAIL',
      rcode: 'SERVFAIL',
    });
    await assert.rejects(client.resolveAddresses('ref.test', 4), { code: 'SIDECARLESS_DNS_REFUSED' });
    assert.equal(s2.queries.length, 2, 'second tries went to the second server');
    await assert.rejects(client.resolveAddresses('empty.test', 4), { code: 'SIDECARLESS_DNS_NODATA' });
    client.close();
    await assert.rejects(client.resolveAddresses('x.test', 4), { code: 'SIDECARLESS_RESOLVER_FAILED' });
  });

  it('follows a CNAME chain in the answer section', async () => {
    const server = await fake((q) =>
      q.send(
        reply(q, {
          answers: [
            { type: 'CNAME', name: 'alias.test', ttl: 7, data: 'real.test' },
            a('real.test', '10.0.0.9', 60),
            a('unrelated.test', '10.6.6.6'),
          ],
        }),
      ),
    );
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 500, retries: 0 });
    const answer = await client.resolveAddresses('alias.test', 4);
    assert.deepEqual(answer.records, [{ name: 'real.test', ttl: 7, address: '10.0.0.9', family: 4 }]);
    client.close();
  });

  it('follows a 9-link CNAME chain whatever the order of its records; a loop is no answer', async () => {
    const chain = (links: number): dnsPacket.Answer[] => {
      const answers: dnsPacket.Answer[] = [];
      let owner = 'alias.test';
      for (let i = 0; i < links; i++) {
        answers.push({ type: 'CNAME', name: owner, ttl: 30 - i, data: `c${i}.test` });
        owner = `c${i}.test`;
      }
      answers.push(a(owner, '10.0.0.9', 60));
      return answers;
    };
    const server = await fake((q) => q.send(reply(q, { answers: chain(9).reverse() })));
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    const answer = await client.resolveAddresses('alias.test', 4);
    client.close();
    assert.deepEqual(answer.records, [{ name: 'c8.test', ttl: 22, address: '10.0.0.9', family: 4 }]);
    // One pass over the section, whatever the order: a long chain listed in reverse is followed to its end.
    assert.equal(chainOf(chain(500).reverse(), 'alias.test').names.has('c499.test'), true);
    const loop: dnsPacket.Answer[] = [
      { type: 'CNAME', name: 'b.test', ttl: 5, data: 'alias.test' },
      { type: 'CNAME', name: 'alias.test', ttl: 5, data: 'b.test' },
    ];
    assert.deepEqual([...chainOf(loop, 'alias.test').names], ['alias.test', 'b.test']);
  });

  it('regression (a chain past 32 CNAME links read as NODATA and emptied a working set): followed to its end, as glibc does', async () => {
    let links = 0;
    const server = await fake((q) => {
      const answers: dnsPacket.Answer[] = [];
      let owner = 'web.test';
      for (let i = 0; i < links; i++) {
        answers.push({ type: 'CNAME', name: owner, ttl: 30, data: `c${i}.test` });
        owner = `c${i}.test`;
      }
      answers.push(a(owner, links === 0 ? '10.0.0.5' : '10.0.0.8', 30));
      q.send(reply(q, { answers }));
    });
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    links = 41;
    const answer = await client.resolveAddresses('web.test', 4);
    client.close();
    assert.deepEqual(answer.records, [{ name: 'c40.test', ttl: 30, address: '10.0.0.8', family: 4 }]);

    // Through the resolver: a working set, then the long chain; the set moves to the chain's address, never empty.
    links = 0;
    const { r, clock, updates, errors, deadline } = await watching(server.address);
    links = 41;
    clock.advance(30_000); // the TTL: the next resolution gets the long chain
    while (updates.length < 2 && errors.length === 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 5));
    }
    r.close();
    assert.deepEqual(errors, []);
    assert.deepEqual(updates, [['10.0.0.5:80'], ['10.0.0.8:80']]);
  });

  it('regression (a referral was read as NODATA and emptied a working set): the next nameserver is asked, the set kept', async () => {
    // A reply without the AA bit (a server that does not hold the name, or does not recurse).
    const notAuthoritative = (buf: Buffer) => {
      buf.writeUInt16BE(buf.readUInt16BE(2) & ~0x0400, 2);
      return buf;
    };
    const ns = (name: string): dnsPacket.Answer => ({ type: 'NS', name, ttl: 3600, data: 'ns.elsewhere.test' });
    const soa: dnsPacket.Answer = {
      type: 'SOA',
      name: 'test',
      ttl: 60,
      data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 7 },
    };
    let referring = false;
    const s1 = await fake((q) => {
      const name = q.packet.questions?.[0]?.name ?? '';
      if (name === 'lame.test') q.send(notAuthoritative(reply(q)));
      else if (name === 'soa.test') q.send(notAuthoritative(reply(q, { authorities: [soa] })));
      else if (referring || name === 'sub.test') q.send(reply(q, { authorities: [ns('sub.test')] }));
      else q.send(reply(q, { answers: [a(name, '10.0.0.5')] }));
    });
    const s2 = await fake((q) => q.send(reply(q, { answers: [a(q.packet.questions?.[0]?.name ?? '', '10.0.0.6')] })));
    const client = new DnsClient({ nameservers: [s1.address, s2.address], timeoutMs: 1000, retries: 1 });
    // RFC 2308 §2.2: NS and no SOA in the authority section is a referral, with AA set or not.
    assert.equal((await client.resolveAddresses('sub.test', 4)).records[0]?.address, '10.0.0.6');
    // glibc's "referred query": nothing at all, AA and RA clear.
    assert.equal((await client.resolveAddresses('lame.test', 4)).records[0]?.address, '10.0.0.6');
    // An SOA makes an empty reply NODATA whatever its flags, with the SOA's negative TTL; not retried.
    const queries = s2.queries.length;
    await assert.rejects(client.resolveAddresses('soa.test', 4), { code: 'SIDECARLESS_DNS_NODATA', negativeTtl: 7 });
    assert.equal(s2.queries.length, queries);
    const only = new DnsClient({ nameservers: [s1.address], timeoutMs: 1000, retries: 1 });
    await assert.rejects(only.resolveAddresses('sub.test', 4), { code: 'SIDECARLESS_DNS_SERVFAIL', rcode: 'NOERROR' });
    await assert.rejects(only.resolveSrv('sub.test'), { code: 'SIDECARLESS_DNS_SERVFAIL', rcode: 'NOERROR' });
    only.close();
    client.close();

    // Through the resolver: every nameserver refers, the resolution fails and the last set stays.
    const { r, clock, updates, errors, deadline } = await watching(s1.address);
    referring = true;
    clock.advance(30_000);
    while (errors.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    r.close();
    assert.deepEqual(errors, ['SIDECARLESS_DNS_SERVFAIL']);
    assert.deepEqual(updates, [['10.0.0.5:80']]);
  });

  it('regression (a reply cut off inside its last record was read as another address, or NODATA): malformed', async () => {
    // dns-packet reads past the end of a cut record: the AAAA 2001:db8::1 cut by a byte read as 2001:db8::.
    const query = encodeQuery(0x4242, 'h.test', 'AAAA', 512);
    const whole = reply(
      { packet: dnsPacket.decode(query), raw: query, transport: 'udp', send: () => {} },
      { answers: [{ type: 'AAAA', name: 'h.test', ttl: 30, class: 'IN', data: '2001:db8::1' }] },
    );
    assert.equal(parseReply(whole, 0x4242, 'h.test', 'AAAA').kind, 'reply');
    for (const cut of [1, 3, 15]) {
      const verdict = parseReply(whole.subarray(0, whole.length - cut), 0x4242, 'h.test', 'AAAA');
      assert.equal(verdict.kind, 'malformed', `cut by ${cut} bytes`);
    }
    // Over TCP a malformed reply fails the try at once: an A answer cut by 3 bytes is no NODATA.
    const server = await fake((q) => {
      if (q.transport === 'udp') return q.send(reply(q, { tc: true }));
      const bytes = reply(q, { answers: [a('h.test', '10.0.0.5')] });
      q.send(bytes.subarray(0, bytes.length - 3));
    }, true);
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 5000, retries: 0 });
    await assert.rejects(client.resolveAddresses('h.test', 4), { code: 'SIDECARLESS_DNS_MALFORMED' });
    client.close();
  });

  it('regression (a nameserver written in a non-canonical IPv6 form never got an answer): its replies count', async () => {
    const server = await fake((q) => q.send(reply(q, { answers: [a('h.test', '10.0.0.6')] })), false, '::1');
    for (const written of [`[0:0:0:0:0:0:0:1]:${server.port}`, `[::0001]:${server.port}`]) {
      const client = new DnsClient({ nameservers: [written], timeoutMs: 5000, retries: 0 });
      assert.deepEqual(client.nameservers, [`[::1]:${server.port}`]);
      const answer = await client.resolveAddresses('h.test', 4);
      client.close();
      assert.deepEqual(
        answer.records.map((r) => r.address),
        ['10.0.0.6'],
        written,
      );
    }
    // resolv.conf `nameserver` lines go through the same parser.
    assert.equal(parseNameserver('2001:0DB8::53', 'resolvConf').host, '2001:db8::53');
    assert.equal(parseNameserver('2001:0db8::53', 'resolvConf').label, '[2001:db8::53]:53');
  });

  it('gives every query a fresh random ID (RFC 5452): 20 queries, more than 15 distinct IDs', async () => {
    const server = await fake((q) => q.send(reply(q, { answers: [a('h.test', '10.0.0.1')] })));
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 1000, retries: 0 });
    for (let i = 0; i < 20; i++) await client.resolveAddresses('h.test', 4);
    client.close();
    const ids = server.queries.map((q) => q.packet.id);
    assert.equal(ids.length, 20);
    // Random 16-bit IDs collide rarely (P(more than 4 repeats in 20) is about 1e-9); a counter or constant fails.
    assert.ok(new Set(ids).size > 15, `IDs ${ids.join(', ')}`);
    const sorted = [...ids].sort((x, y) => (x ?? 0) - (y ?? 0));
    const sequential = ids.every((id, i) => i === 0 || id === ((ids[i - 1] ?? 0) + 1) % 65536);
    assert.ok(!sequential && sorted.join() !== ids.join(), `IDs look sequential: ${ids.join(', ')}`);
  });

  it('with no nameservers option, asks the system ones (dns.getServers()), read at construction', async () => {
    const server = await fake((q) => q.send(reply(q, { answers: [a('sys.test', '10.0.0.42')] })));
    const original = dns.getServers();
    let client: DnsClient;
    dns.setServers([server.address]);
    try {
      client = new DnsClient({ timeoutMs: 1000, retries: 0 });
    } finally {
      dns.setServers(original);
    }
    assert.deepEqual(client.nameservers, [server.address]);
    const answer = await client.resolveAddresses('sys.test', 4);
    client.close();
    assert.deepEqual(
      answer.records.map((r) => r.address),
      ['10.0.0.42'],
    );
    assert.equal(answer.nameserver, server.address);
    assert.equal(server.queries.length, 1);
  });

  it('close() aborts a query in flight at once', async () => {
    const server = await fake(() => {});
    const client = new DnsClient({ nameservers: [server.address], timeoutMs: 10_000, retries: 0 });
    const pending = client.resolveAddresses('h.test', 4);
    setTimeout(() => client.close(), 20);
    await assert.rejects(pending, { code: 'SIDECARLESS_RESOLVER_FAILED' });
  });
});

describe('dns:/srv: targets and options', () => {
  const ctx = { clock: systemClock, random: Math.random, cluster: 't' };
  const registry = createResolverRegistry();

  it('accepts the gRPC forms and query options', async () => {
    for (const t of [
      'dns:///users.internal:8080',
      'dns:///users.internal',
      'dns://127.0.0.1:5353/users.internal:8080?minTtlMs=500&maxTtlMs=60000&family=4',
      'dns://[::1]:53/users.internal?family=any&timeoutMs=100&retries=0&udpPayloadSize=512',
      'dns:///10.0.0.1:80',
      'srv:///_http._tcp.svc.example',
      'srv://127.0.0.1:5353/_svc._tcp.name?family=6',
    ]) {
      const r = registry.create(t, ctx);
      await r.close();
    }
    const r = registry.create('dns:///users.internal', ctx) as DnsResolver;
    assert.equal(r.port, 80);
    await r.close();
  });

  it('rejects malformed targets and options with typed errors naming the option', () => {
    const bad: Array<[string, RegExp]> = [
      ['dns:///', /host/],
      ['dns:///bad_host!:80', /host/],
      ['dns:///h:0', /port/],
      ['dns:///h:99999', /port/],
      ['dns://not-an-ip/h:80', /nameserver/],
      ['dns:///h:80?minTtlMs=abc', /minTtlMs/],
      ['dns:///h:80?minTtlMs=0', /minTtlMs/],
      ['dns:///h:80?minTtlMs=5000&maxTtlMs=10', /maxTtlMs/],
      ['dns:///h:80?family=5', /family/],
      ['dns:///h:80?udpPayloadSize=100', /udpPayloadSize/],
      ['dns:///h:80?bogus=1', /bogus/],
      ['srv:///', /srv/],
      ['srv:///_http._tcp.x:80', /port/],
    ];
    for (const [t, message] of bad) {
      assert.throws(() => registry.create(t, ctx), { code: 'SIDECARLESS_INVALID_TARGET', message }, t);
    }
    assert.throws(() => new DnsResolver({ host: 'h', minTtlMs: -1 }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'minTtlMs',
    });
    assert.throws(() => new DnsResolver({ host: 'h', timeoutMs: 0 }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'timeoutMs',
    });
    assert.throws(() => new DnsResolver({ host: 'h', nameservers: [] }), { option: 'nameservers' });
    assert.throws(() => new DnsResolver({ host: 'h', nameservers: ['dns.google'] }), { option: 'nameservers[0]' });
    assert.throws(() => new DnsResolver({ host: 'h', family: 5 as never }), { option: 'family' });
    assert.throws(() => new DnsResolver({ host: 'h', backoff: { multiplier: 0 } }), { option: 'backoff.multiplier' });
    assert.throws(() => new SrvResolver({ name: '' }), { option: 'name' });
    assert.throws(() => new SrvResolver({ name: '_a._tcp.x', cacheSize: 0 }), { option: 'cacheSize' });
    assert.throws(() => new DnsResolver({ host: 'h', bogus: 1 } as never), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'bogus',
      message: /unknown option/,
    });
  });

  it('regression (cacheSize 2^31 aborted the process: the cache allocates up front): at most 65536', () => {
    for (const cacheSize of [65_537, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => new SrvResolver({ name: '_a._tcp.x', cacheSize, resolvConf: false, hostsFile: false }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'cacheSize',
        message: /65536/,
      });
    }
    new SrvResolver({ name: '_a._tcp.x', cacheSize: 65_536, resolvConf: false, hostsFile: false }).close();
  });

  it('refuses the pre-0.2.0 option names, saying what they were renamed to', () => {
    const renamed = { code: 'SIDECARLESS_INVALID_OPTION', option: 'timeout', message: /renamed to "timeoutMs"/ };
    assert.throws(() => new DnsResolver({ host: 'h', timeout: 500 } as never), renamed);
    assert.throws(() => new SrvResolver({ name: '_a._tcp.x', timeout: 500 } as never), renamed);
    assert.throws(() => new DnsClient({ timeout: 500 } as never), renamed);
    assert.throws(() => registry.create('dns:///h:80?timeout=500', ctx), {
      code: 'SIDECARLESS_INVALID_TARGET',
      message: /renamed to "timeoutMs"/,
    });
  });

  it('regression (a name or host whose reads throw escaped as a raw Error): options read once, typed errors', () => {
    const throwing = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    const toPrimitive = {
      get [Symbol.toPrimitive]() {
        throw new Error('getter');
      },
    };
    for (const name of [throwing, toPrimitive]) {
      assert.throws(() => new SrvResolver({ name: name as never }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'name',
      });
      assert.throws(() => new DnsResolver({ host: name as never }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'host',
      });
    }
    // A getter of an option that throws is named after that option, and every option is read once.
    let reads = 0;
    const getter = (value: unknown) => ({
      enumerable: true,
      get() {
        reads++;
        if (value instanceof Error) throw value;
        return value;
      },
    });
    assert.throws(() => new SrvResolver(Object.defineProperty({}, 'name', getter(new Error('g'))) as never), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'name',
      message: /could not be read: g/,
    });
    assert.throws(
      () => new DnsResolver(Object.defineProperties({ host: 'h' }, { minTtlMs: getter(new TypeError('t')) }) as never),
      { code: 'SIDECARLESS_INVALID_OPTION', option: 'minTtlMs' },
    );
    reads = 0;
    const options = Object.defineProperties({}, { name: getter('_a._tcp.x'), resolvConf: getter(false) });
    new SrvResolver(options as never).close();
    assert.equal(reads, 2, 'each option read once');
  });

  it('regression (only setTimeout was checked): a clock without clearTimeout or now fails at construction', () => {
    const noop = () => 0;
    for (const clock of [{ now: noop, setTimeout: noop }, { setTimeout: noop, clearTimeout: noop }, {}, 5]) {
      assert.throws(() => new DnsClient({ nameservers: ['127.0.0.1'], clock: clock as never }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'clock',
      });
      assert.throws(() => new DnsResolver({ host: 'h', clock: clock as never }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'clock',
      });
    }
    new DnsClient({ nameservers: ['127.0.0.1'], clock: systemClock }).close();
  });

  it('regression (holes were mapped around): search and nameservers with a hole are refused, naming it', () => {
    // eslint-disable-next-line no-sparse-arrays
    const holed = [, '127.0.0.1'] as unknown as string[];
    assert.throws(() => new DnsClient({ nameservers: holed }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'nameservers[0]',
      message: /holes/,
    });
    assert.throws(() => new DnsResolver({ host: 'h', nameservers: holed }), { option: 'nameservers[0]' });
    // eslint-disable-next-line no-sparse-arrays
    const search = ['a.test', , 'b.test'] as unknown as string[];
    assert.throws(() => new DnsResolver({ host: 'h', search }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'search[1]',
      message: /holes/,
    });
    assert.throws(() => new SrvResolver({ name: '_a._tcp.x', search }), { option: 'search[1]' });
  });
});
