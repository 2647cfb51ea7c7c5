import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type dnsPacket from 'dns-packet';
import { DnsResolver } from '../../../src/resolvers/dns/resolver.js';
import { SrvResolver } from '../../../src/resolvers/dns/srv.js';
import { a, type FakeDnsServer, type FakeQuery, reply, startFakeDns } from '../../helpers/dns-fake-server.js';
import { keys, RecordingListener } from '../../helpers/dns-listener.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

/** These tests are about scheduling: no hosts file and no search list from the machine running them. */
const noSystem = { resolvConf: false, hostsFile: false } as const;

const servers: FakeDnsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** Real-time bounded wait for something the sockets do. */
async function until(predicate: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function setup(handler: (q: FakeQuery) => void) {
  const server = await startFakeDns(handler);
  servers.push(server);
  const clock = new FakeClock();
  const listener = new RecordingListener();
  return { server, clock, listener };
}

const soa: dnsPacket.Answer = {
  type: 'SOA',
  name: 'test',
  ttl: 60,
  data: { mname: 'ns.test', rname: 'admin.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 7 },
};

describe('DnsResolver scheduling (fake clock, fake server)', () => {
  it('re-resolves when the TTL expires, clamped to maxTtlMs; TTL 0 polls at minTtlMs', async () => {
    let ttl = 5;
    const { server, clock, listener } = await setup((q) =>
      q.send(reply(q, { answers: [a('h.test', '10.0.0.1', ttl)] })),
    );
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      maxTtlMs: 3000,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'first update');
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80']);
    ttl = 0;
    clock.advance(2999);
    assert.equal(server.queries.length, 1);
    clock.advance(1);
    await until(() => server.queries.length === 2, 'second query at maxTtlMs');
    await new Promise((res) => setTimeout(res, 10));
    clock.advance(999); // TTL 0 -> minTtlMs (1000 ms)
    assert.equal(server.queries.length, 2);
    clock.advance(1);
    await until(() => server.queries.length === 3, 'third query at minTtlMs');
    assert.equal(listener.updates.length, 1, 'an unchanged set is not delivered again');
    r.close();
    assert.equal(clock.pending, 0, 'no timer left after close');
  });

  it('errors keep the last set: onError with the typed code, retry with backoff, recover', async () => {
    let mode: 'ok' | 'silent' | 'servfail' = 'ok';
    const { server, clock, listener } = await setup((q) => {
      if (mode === 'ok') q.send(reply(q, { answers: [a('h.test', '10.0.0.1', 1)] }));
      else if (mode === 'servfail') q.send(reply(q, { rcode: 2 }));
    });
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      random: seededRandom(1),
      timeoutMs: 500,
      retries: 0,
      backoff: { initialMs: 100, jitter: 0, multiplier: 2, maxMs: 1000 },
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'first update');
    mode = 'silent';
    clock.advance(1000);
    await until(() => server.queries.length === 2, 'second query');
    clock.advance(500); // the per-try timeout
    await until(() => listener.errors.length === 1, 'timeout error');
    assert.equal(listener.errors[0]?.code, 'SIDECARLESS_DNS_TIMEOUT');
    mode = 'servfail';
    clock.advance(100); // first backoff delay
    await until(() => listener.errors.length === 2, 'servfail error');
    assert.equal(listener.errors[1]?.code, 'SIDECARLESS_DNS_SERVFAIL');
    assert.equal(listener.updates.length, 1, 'the working set was never replaced');
    mode = 'ok';
    clock.advance(199);
    assert.equal(server.queries.length, 3);
    clock.advance(1); // second backoff delay: 200 ms
    await until(() => server.queries.length === 4, 'retry');
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(listener.errors.length, 2);
    r.close();
  });

  it('NXDOMAIN and NODATA are authoritative: an empty set, re-asked after the SOA negative TTL', async () => {
    let rcode = 3;
    const { server, clock, listener } = await setup((q) => q.send(reply(q, { rcode, authorities: [soa] })));
    const r = new DnsResolver({ host: 'h.test', nameservers: [server.address], ...noSystem, family: 4, clock });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'empty set');
    assert.deepEqual(listener.last, []);
    // The answer that emptied the set is reported once, as the cause requests will see.
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_DNS_NXDOMAIN'],
    );
    rcode = 0;
    clock.advance(6999);
    assert.equal(server.queries.length, 1);
    clock.advance(1); // min(SOA TTL 60, MINIMUM 7) = 7 s
    await until(() => server.queries.length === 2, 'NODATA query');
    await new Promise((res) => setTimeout(res, 10));
    // The set stayed empty, but its reason changed (probe 12): the new one is delivered and reported, once.
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_DNS_NXDOMAIN', 'SIDECARLESS_DNS_NODATA'],
    );
    clock.advance(7000);
    await until(() => server.queries.length === 3, 'second NODATA query');
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(listener.errors.length, 2, 'the same reason again: nothing new to report');
    r.close();
  });

  it('refresh() resolves early, but not more often than minTtlMs', async () => {
    const { server, clock, listener } = await setup((q) =>
      q.send(reply(q, { answers: [a('h.test', '10.0.0.1', 300)] })),
    );
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      minTtlMs: 1000,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'first update');
    clock.advance(100);
    r.refresh();
    r.refresh();
    clock.advance(899);
    assert.equal(server.queries.length, 1, 'rate-limited');
    clock.advance(1);
    await until(() => server.queries.length === 2, 'early re-resolution');
    await new Promise((res) => setTimeout(res, 10));
    clock.advance(0);
    r.refresh();
    clock.advance(999);
    assert.equal(server.queries.length, 2);
    clock.advance(1);
    await until(() => server.queries.length === 3, 'second refresh');
    r.close();
    r.refresh();
    assert.equal(clock.pending, 0);
  });

  it('refresh() during the backoff after a failure is ignored; after a success it works again', async () => {
    let rcode = 2;
    const { server, clock, listener } = await setup((q) =>
      q.send(reply(q, { rcode, answers: rcode === 0 ? [a('h.test', '10.0.0.1', 300)] : [] })),
    );
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      retries: 0,
      minTtlMs: 100,
      backoff: { initialMs: 1000, jitter: 0, multiplier: 2, maxMs: 10_000 },
    });
    r.start(listener);
    await until(() => listener.errors.length === 1, 'SERVFAIL');
    await new Promise((res) => setTimeout(res, 10));
    r.refresh();
    r.refresh();
    clock.advance(999);
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(server.queries.length, 1, 'the hint did not cut the backoff short (minTtlMs is 100 ms)');
    rcode = 0;
    clock.advance(1);
    await until(() => listener.updates.length === 1, 'the retry at the backoff delay');
    await new Promise((res) => setTimeout(res, 10));
    assert.equal(server.queries.length, 2);
    r.refresh(); // no longer backing off: early, at minTtlMs after the last start
    clock.advance(99);
    assert.equal(server.queries.length, 2);
    clock.advance(1);
    await until(() => server.queries.length === 3, 'the early re-resolution');
    r.close();
  });

  it('regression (a reply cut off inside its last record emptied the set as NODATA): malformed, the set kept', async () => {
    let cut = false;
    const server = await startFakeDns((q) => {
      if (!cut) return q.send(reply(q, { answers: [a('h.test', '10.0.0.1', 1)] }));
      if (q.transport === 'udp') return q.send(reply(q, { tc: true }));
      const bytes = reply(q, { answers: [a('h.test', '10.0.0.1', 1)] });
      q.send(bytes.subarray(0, bytes.length - 3));
    }, true);
    servers.push(server);
    const clock = new FakeClock();
    const listener = new RecordingListener();
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      retries: 0,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'first update');
    cut = true;
    clock.advance(1000);
    await until(() => listener.errors.length === 1, 'the malformed reply reported');
    r.close();
    assert.equal(listener.errors[0]?.code, 'SIDECARLESS_DNS_MALFORMED');
    assert.equal(listener.updates.length, 1, 'no empty set delivered');
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80']);
  });

  it("regression (family 'any' failed with DNS_TIMEOUT when a nameserver dropped AAAA queries): the A records are used, the timeout reported", async () => {
    const { server, clock, listener } = await setup((q) => {
      if (q.packet.questions?.[0]?.type === 'A') q.send(reply(q, { answers: [a('h.test', '10.0.0.1', 30)] }));
    });
    const r = new DnsResolver({ host: 'h.test', nameservers: [server.address], ...noSystem, clock, retries: 0 });
    r.start(listener);
    // The A reply has been handled when its try's timer is gone: then only the AAAA try's timer is left.
    await until(() => server.queries.length === 2 && clock.pending === 1, 'the A answer, the AAAA query unanswered');
    clock.advance(2000);
    await until(() => listener.updates.length === 1, 'the A half');
    r.close();
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80']);
    assert.deepEqual(
      listener.errors.map((e) => [e.code, (e as { queryType?: string }).queryType]),
      [['SIDECARLESS_DNS_TIMEOUT', 'AAAA']],
    );
  });

  it("family 'any': when one family fails, its addresses from the previous answer stay (last known good, per family)", async () => {
    let round = 0;
    const { server, clock, listener } = await setup((q) => {
      const type = q.packet.questions?.[0]?.type;
      if (type === 'A') return q.send(reply(q, { answers: [a('h.test', round === 0 ? '10.0.0.1' : '10.0.0.2', 1)] }));
      if (round > 0) return q.send(reply(q, { rcode: 2 }));
      q.send(reply(q, { answers: [{ type: 'AAAA', name: 'h.test', ttl: 1, class: 'IN', data: '2001:db8::1' }] }));
    });
    const r = new DnsResolver({ host: 'h.test', nameservers: [server.address], ...noSystem, clock, retries: 0 });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'both families');
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80', '[2001:db8::1]:80']);
    round = 1;
    clock.advance(1000);
    await until(() => listener.updates.length === 2, 'the new A record with the last AAAA one');
    r.close();
    assert.deepEqual(keys(listener.last), ['10.0.0.2:80', '[2001:db8::1]:80']);
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_DNS_SERVFAIL'],
    );
  });

  it("regression (family 'any': the AAAA NODATA's negative TTL was dropped once A answered): re-asked at it (probe 23)", async () => {
    // A with TTL 300, AAAA NODATA with negative TTL 7 (the SOA's MINIMUM); then an AAAA record appears.
    let v6 = false;
    const { server, clock, listener } = await setup((q) => {
      const name = q.packet.questions?.[0]?.name ?? '';
      if (q.packet.questions?.[0]?.type === 'A') return q.send(reply(q, { answers: [a(name, '10.0.0.1', 300)] }));
      if (!v6) return q.send(reply(q, { authorities: [soa] }));
      q.send(reply(q, { answers: [{ type: 'AAAA', name, ttl: 300, class: 'IN', data: '2001:db8::1' }] }));
    });
    const r = new DnsResolver({ host: 'h.test', nameservers: [server.address], ...noSystem, clock });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'the A half');
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80']);
    v6 = true;
    clock.advance(7000);
    await until(() => listener.updates.length === 2, 'both families');
    r.close();
    assert.deepEqual(keys(listener.last), ['10.0.0.1:80', '[2001:db8::1]:80']);

    // An SRV target: its cached addresses expire at the AAAA's negative TTL too.
    v6 = false;
    const srvListener = new RecordingListener();
    const srvClock = new FakeClock();
    const srv = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      ...noSystem,
      clock: srvClock,
    });
    server.handler = (q) => {
      const question = q.packet.questions?.[0];
      const name = question?.name ?? '';
      if (question?.type === 'SRV') {
        const data = { priority: 0, weight: 1, port: 9000, target: 't.test' };
        return q.send(reply(q, { answers: [{ type: 'SRV', name, ttl: 300, data }] }));
      }
      if (question?.type === 'A') return q.send(reply(q, { answers: [a(name, '10.0.0.1', 300)] }));
      if (!v6) return q.send(reply(q, { authorities: [soa] }));
      q.send(reply(q, { answers: [{ type: 'AAAA', name, ttl: 300, class: 'IN', data: '2001:db8::1' }] }));
    };
    srv.start(srvListener);
    await until(() => srvListener.updates.length === 1, 'the A half of the target');
    assert.deepEqual(keys(srvListener.last), ['10.0.0.1:9000']);
    v6 = true;
    srvClock.advance(7000);
    await until(() => srvListener.updates.length === 2, 'both families of the target');
    srv.close();
    assert.deepEqual(keys(srvListener.last), ['10.0.0.1:9000', '[2001:db8::1]:9000']);
  });

  it('skips and reports an address no connection can be made to (0.0.0.0, multicast); with none usable, the set is kept', async () => {
    let answers = [a('h.test', '10.0.0.1', 1)];
    const { server, clock, listener } = await setup((q) => q.send(reply(q, { answers })));
    const r = new DnsResolver({
      host: 'h.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      backoff: { initialMs: 100, jitter: 0, multiplier: 1, maxMs: 100 },
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'first update');
    // A hosts-file style "blocked" answer next to a real one, and a multicast address: skipped, the rest used.
    answers = [a('h.test', '0.0.0.0', 1), a('h.test', '10.0.0.2', 1), a('h.test', '224.0.0.1', 1)];
    clock.advance(1000);
    await until(() => listener.updates.length === 2, 'the second set');
    assert.deepEqual(keys(listener.last), ['10.0.0.2:80']);
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_INVALID_ENDPOINT'],
    );
    assert.match(listener.errors[0]?.message ?? '', /"0\.0\.0\.0" is the unspecified address/);
    // The report names the DNS name that gave the address (probe 10).
    assert.match(listener.errors[0]?.message ?? '', /^h\.test resolved to 0\.0\.0\.0: /);
    // Nothing usable: the resolution fails (reported), the last set stays.
    answers = [a('h.test', '0.0.0.0', 1), a('h.test', '255.255.255.255', 1)];
    clock.advance(1000);
    await until(() => listener.errors.length === 2, 'the failed resolution');
    assert.equal(listener.errors[1]?.code, 'SIDECARLESS_INVALID_ENDPOINT');
    assert.equal(listener.updates.length, 2, 'no set without a usable address');
    assert.deepEqual(keys(listener.last), ['10.0.0.2:80']);
    r.close();
    // An IP literal target that is no unicast address is refused at construction, naming the option.
    assert.throws(() => new DnsResolver({ host: '0.0.0.0', ...noSystem }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'host',
    });
  });

  it('never calls the listener after close, nor synchronously from start', async () => {
    const { server, clock, listener } = await setup((q) =>
      setTimeout(() => q.send(reply(q, { answers: [a('h.test', '10.0.0.1')] })), 20),
    );
    const r = new DnsResolver({ host: 'h.test', nameservers: [server.address], ...noSystem, family: 4, clock });
    r.start(listener);
    assert.equal(listener.updates.length, 0);
    await until(() => server.queries.length === 1, 'query');
    r.close();
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(listener.updates.length + listener.errors.length, 0);
  });
});

describe('SrvResolver (fake server)', () => {
  it('uses additional-section addresses, else looks targets up once and caches them for their TTL', async () => {
    const srv = (name: string, priority: number, weight: number, port: number, target: string): dnsPacket.Answer => ({
      type: 'SRV',
      name,
      ttl: 60,
      data: { priority, weight, port, target },
    });
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        q.send(
          reply(q, {
            answers: [
              srv('_h._tcp.s.test', 1, 10, 8080, 'in.s.test'),
              srv('_h._tcp.s.test', 2, 0, 8081, 'out.s.test'),
              srv('_h._tcp.s.test', 3, 5, 8080, 'in.s.test'),
              srv('_h._tcp.s.test', 0, 1, 9, '.'),
            ],
            additionals: [a('in.s.test', '10.0.0.1', 60), a('stray.s.test', '10.6.6.6')],
          }),
        );
      } else if (question?.type === 'A' && question.name === 'out.s.test') {
        q.send(reply(q, { answers: [a('out.s.test', '10.0.0.2', 2), a('out.s.test', '10.0.0.2', 2)] }));
      } else q.send(reply(q, { authorities: [soa] }));
    });
    const r = new SrvResolver({ name: '_h._tcp.s.test', nameservers: [server.address], ...noSystem, family: 4, clock });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'SRV set');
    const set = listener.last ?? [];
    assert.deepEqual(
      set.map((e) => [e.key, e.weight, e.priority, e.metadata.srvTarget]),
      [
        ['10.0.0.1:8080', 10, 1, 'in.s.test'],
        ['10.0.0.2:8081', 0.01, 2, 'out.s.test'],
      ],
    );
    const lookups = () => server.queries.filter((q) => q.packet.questions?.[0]?.name === 'out.s.test').length;
    assert.equal(lookups(), 1);
    clock.advance(1000); // TTL 2 of out.s.test clamps to 2 s; at 1 s nothing happens
    assert.equal(server.queries.length, 2);
    clock.advance(1000);
    await until(() => lookups() === 2, 'address re-lookup after its TTL');
    r.close();
  });

  it("regression (family 'any': a target's A glue was taken as all its addresses): the missing AAAA is asked (probe 23)", async () => {
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      const name = question?.name ?? '';
      if (question?.type === 'SRV') {
        const data = (target: string) => ({ priority: 1, weight: 1, port: 8080, target });
        const glue = [a('t.test', '10.0.0.2', 30), a('both.test', '10.0.0.3', 30)];
        glue.push({ type: 'AAAA', name: 'both.test', ttl: 30, class: 'IN', data: '2001:db8::3' });
        glue.push({ type: 'AAAA', name: 'six.test', ttl: 30, class: 'IN', data: '2001:db8::4' });
        const answers: dnsPacket.Answer[] = ['t.test', 'both.test', 'six.test'].map((target) => ({
          type: 'SRV',
          name,
          ttl: 30,
          data: data(target),
        }));
        q.send(reply(q, { answers, additionals: glue }));
      } else if (name === 't.test' && question?.type === 'AAAA') {
        q.send(reply(q, { answers: [{ type: 'AAAA', name, ttl: 30, class: 'IN', data: '2001:db8::2' }] }));
      } else if (name === 'six.test' && question?.type === 'A') q.send(reply(q, { answers: [a(name, '10.0.0.4')] }));
      else q.send(reply(q, { rcode: 2 }));
    });
    const r = new SrvResolver({ name: '_h._tcp.s.test', nameservers: [server.address], ...noSystem, clock });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'SRV set');
    r.close();
    assert.deepEqual(keys(listener.last), [
      '10.0.0.2:8080',
      '10.0.0.3:8080',
      '10.0.0.4:8080',
      '[2001:db8::2]:8080',
      '[2001:db8::3]:8080',
      '[2001:db8::4]:8080',
    ]);
    // Only the families the glue left out were asked; a target with both had none.
    const asked = server.queries.map((q) => `${q.packet.questions?.[0]?.type} ${q.packet.questions?.[0]?.name}`);
    assert.deepEqual(asked.sort(), ['A six.test', 'AAAA t.test', 'SRV _h._tcp.s.test']);
    assert.deepEqual(listener.errors, []);
  });

  it('regression (refresh() re-asked SRV but kept a moved target on its cached address): the target is asked again', async () => {
    let address = '10.0.0.2';
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        const data = { priority: 0, weight: 1, port: 8080, target: 't.s.test' };
        return q.send(reply(q, { answers: [{ type: 'SRV', name: question.name, ttl: 300, class: 'IN', data }] }));
      }
      q.send(reply(q, { answers: question?.type === 'A' ? [a('t.s.test', address, 300)] : [] }));
    });
    const r = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      minTtlMs: 1000,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'SRV set');
    assert.deepEqual(keys(listener.last), ['10.0.0.2:8080']);
    address = '10.0.0.3';
    r.refresh(); // an endpoint refused connections
    clock.advance(1000);
    await until(() => listener.updates.length === 2, 'the moved target');
    r.close();
    assert.deepEqual(keys(listener.last), ['10.0.0.3:8080']);
    assert.deepEqual(
      server.queries.map((q) => q.packet.questions?.[0]?.type),
      ['SRV', 'A', 'SRV', 'A'],
    );
  });

  it("family 'any': a target whose AAAA query fails is used with its A records, the failure reported", async () => {
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        const data = { priority: 0, weight: 1, port: 8080, target: 't.s.test' };
        return q.send(reply(q, { answers: [{ type: 'SRV', name: question.name, ttl: 30, class: 'IN', data }] }));
      }
      if (question?.type === 'A') return q.send(reply(q, { answers: [a('t.s.test', '10.0.0.2', 30)] }));
      q.send(reply(q, { rcode: 2 }));
    });
    const r = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      ...noSystem,
      clock,
      retries: 0,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'SRV set');
    r.close();
    assert.deepEqual(keys(listener.last), ['10.0.0.2:8080']);
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_DNS_SERVFAIL'],
    );
  });

  it('one target that cannot be resolved (SERVFAIL) does not hold back the others: used, the failure reported (probe 12)', async () => {
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        const good = { priority: 0, weight: 1, port: 8080, target: 'good.s.test' };
        const bad = { priority: 0, weight: 1, port: 8080, target: 'bad.s.test' };
        return q.send(
          reply(q, {
            answers: [
              { type: 'SRV', name: question.name, ttl: 300, class: 'IN', data: good },
              { type: 'SRV', name: question.name, ttl: 300, class: 'IN', data: bad },
            ],
          }),
        );
      }
      if (question?.name === 'good.s.test') return q.send(reply(q, { answers: [a('good.s.test', '10.0.0.2', 300)] }));
      q.send(reply(q, { rcode: 2 })); // SERVFAIL
    });
    const r = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      ...noSystem,
      family: 4,
      clock,
      retries: 0,
    });
    r.start(listener);
    await until(() => listener.updates.length === 1, 'the set of the good target');
    assert.deepEqual(keys(listener.last), ['10.0.0.2:8080']);
    assert.deepEqual(
      listener.errors.map((e) => e.code),
      ['SIDECARLESS_DNS_SERVFAIL'],
    );
    r.close();
  });

  it('an empty set because every target does not exist carries the reason, as for dns: (probe 12)', async () => {
    const { server, clock } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        const data = { priority: 0, weight: 1, port: 8080, target: 'gone.s.test' };
        return q.send(reply(q, { answers: [{ type: 'SRV', name: question.name, ttl: 300, class: 'IN', data }] }));
      }
      q.send(reply(q, { rcode: 3, authorities: [soa] })); // NXDOMAIN
    });
    const updates: Array<{ keys: string[]; notFound: string | undefined; cause: string | undefined }> = [];
    const r = new SrvResolver({ name: '_h._tcp.s.test', nameservers: [server.address], ...noSystem, family: 4, clock });
    r.start({
      onUpdate: (endpoints, notFound) =>
        updates.push({
          keys: keys(endpoints),
          notFound: notFound?.constructor.name,
          cause: (notFound?.cause as { code?: string } | undefined)?.code,
        }),
      onError: () => {},
    });
    await until(() => updates.length === 1, 'the empty set');
    r.close();
    assert.deepEqual(updates, [{ keys: [], notFound: 'ServiceNotFoundError', cause: 'SIDECARLESS_DNS_NXDOMAIN' }]);
  });

  it("regression (every target NXDOMAIN: the SRV name waited for the target's negative TTL, not its own TTL): asked again at the SRV TTL (probe 14)", async () => {
    let target = 'gone.s.test';
    const longSoa = { ...soa, ttl: 300, data: { ...(soa.data as object), minimum: 300 } } as dnsPacket.Answer;
    const { server, clock } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type === 'SRV') {
        const data = { priority: 0, weight: 1, port: 8080, target };
        return q.send(reply(q, { answers: [{ type: 'SRV', name: question.name, ttl: 2, class: 'IN', data }] }));
      }
      if (question?.name === 'up.s.test') return q.send(reply(q, { answers: [a('up.s.test', '10.0.0.9', 60)] }));
      q.send(reply(q, { rcode: 3, authorities: [longSoa] })); // NXDOMAIN, negative TTL 300 s
    });
    const updates: Array<{ keys: string[]; notFound: boolean }> = [];
    const r = new SrvResolver({ name: '_h._tcp.s.test', nameservers: [server.address], ...noSystem, family: 4, clock });
    r.start({
      onUpdate: (endpoints, nf) => updates.push({ keys: keys(endpoints), notFound: nf !== undefined }),
      onError: () => {},
    });
    await until(() => updates.length === 1, 'the empty set');
    const srvQueries = () => server.queries.filter((q) => q.packet.questions?.[0]?.type === 'SRV').length;
    target = 'up.s.test';
    clock.advance(1999);
    assert.equal(srvQueries(), 1);
    clock.advance(1); // the SRV record's TTL (2 s), well before the target's 300 s
    await until(() => updates.length === 2, 'the new target');
    // Again with every target gone: a target still cached as NXDOMAIN is the empty set's reason too.
    target = 'gone.s.test';
    clock.advance(2000);
    await until(() => updates.length === 3, 'the empty set again');
    r.close();
    assert.deepEqual(updates, [
      { keys: [], notFound: true },
      { keys: ['10.0.0.9:8080'], notFound: false },
      { keys: [], notFound: true },
    ]);
    assert.equal(srvQueries(), 3);
  });

  it('regression (additional-section glue overrode a hosts-file line for an SRV target): the hosts file wins (probe 14)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sidecarless-srv-hosts-'));
    const hostsFile = join(dir, 'hosts');
    await writeFile(hostsFile, '10.0.0.99 pinned.s.test\n');
    const { server, clock, listener } = await setup((q) => {
      const question = q.packet.questions?.[0];
      if (question?.type !== 'SRV') return q.send(reply(q, { rcode: 2 })); // no target is to be asked
      const record = (port: number, target: string): dnsPacket.Answer => ({
        type: 'SRV',
        name: question.name,
        ttl: 30,
        data: { priority: 0, weight: 1, port, target },
      });
      q.send(
        reply(q, {
          answers: [record(8001, 'pinned.s.test'), record(8002, 'glued.s.test')],
          additionals: [a('pinned.s.test', '10.0.0.50', 30), a('glued.s.test', '10.0.0.51', 30)],
        }),
      );
    });
    const r = new SrvResolver({
      name: '_h._tcp.s.test',
      nameservers: [server.address],
      resolvConf: false,
      hostsFile,
      family: 4,
      clock,
    });
    r.start(listener);
    try {
      await until(() => listener.updates.length === 1, 'SRV set');
    } finally {
      r.close();
      await rm(dir, { recursive: true, force: true });
    }
    assert.deepEqual(keys(listener.last), ['10.0.0.51:8002', '10.0.0.99:8001']);
    assert.deepEqual(
      server.queries.map((q) => q.packet.questions?.[0]?.type),
      ['SRV'],
    );
  });
});
