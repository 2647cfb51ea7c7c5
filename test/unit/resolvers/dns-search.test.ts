/**
 * The system resolver's semantics in `dns:` and `srv:`, with a hosts file and a resolv.conf of the test's own and a
 * scriptable fake server: search-list order, the hosts file (and its changes), the combined negative answer naming
 * every tried name, the precedence of options over resolv.conf (nameservers, timeout, attempts), and validation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type dnsPacket from 'dns-packet';
import { DnsResolver, type SidecarlessError, SrvResolver } from 'sidecarless';
import { a, type FakeDnsServer, type FakeQuery, reply, startFakeDns } from '../../helpers/dns-fake-server.js';
import { keys, RecordingListener } from '../../helpers/dns-listener.js';
import { FakeClock } from '../../helpers/fake-clock.js';

let dir: string;
const servers: FakeDnsServer[] = [];
const resolvers: Array<{ close(): void | Promise<void> }> = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sidecarless-dns-search-'));
});
after(async () => {
  for (const r of resolvers) await r.close();
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

let files = 0;
async function file(text: string): Promise<string> {
  const path = join(dir, `f${files++}`);
  await writeFile(path, text);
  return path;
}

async function until(predicate: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A server that answers `records` (name -> IPv4) and NXDOMAIN for anything else. */
async function zone(records: Record<string, string>): Promise<FakeDnsServer> {
  const server = await startFakeDns((q: FakeQuery) => {
    const name = q.packet.questions?.[0]?.name ?? '';
    const address = records[name];
    q.send(address === undefined ? reply(q, { rcode: 3 }) : reply(q, { answers: [a(name, address, 30)] }));
  });
  servers.push(server);
  return server;
}

const asked = (server: FakeDnsServer) => server.queries.map((q) => q.packet.questions?.[0]?.name);

function track<T extends { close(): void | Promise<void> }>(r: T): T {
  resolvers.push(r);
  return r;
}

describe('dns: follows resolv.conf search and ndots', () => {
  it('a short name goes through the search list in order (ndots 2), then as it is', async () => {
    const server = await zone({ 'users.b.test': '10.0.0.5' });
    const resolvConf = await file('search a.test b.test\noptions ndots:2\n');
    const listener = new RecordingListener();
    const r = track(
      new DnsResolver({ host: 'users', port: 8080, family: 4, nameservers: [server.address], resolvConf }),
    );
    r.start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'first set');
    assert.deepEqual(keys(listener.last), ['10.0.0.5:8080']);
    assert.equal(listener.last?.[0]?.metadata.dnsName, 'users.b.test');
    assert.deepEqual(asked(server), ['users.a.test', 'users.b.test']);
  });

  it('a name with at least ndots dots is tried as it is first; a trailing dot means absolute', async () => {
    const server = await zone({ 'users.shop.a.test': '10.0.0.6', 'users.shop': '10.0.0.7' });
    const resolvConf = await file('search a.test\noptions ndots:1\n');
    const first = new RecordingListener();
    track(new DnsResolver({ host: 'users.shop', family: 4, nameservers: [server.address], resolvConf })).start(first);
    await first.waitFor(() => first.updates.length > 0, 3000, 'as-is answer');
    assert.deepEqual(keys(first.last), ['10.0.0.7:80']);
    assert.deepEqual(asked(server), ['users.shop']);

    const absolute = new RecordingListener();
    track(
      new DnsResolver({ host: 'users.', family: 4, nameservers: [server.address], resolvConf, minTtlMs: 10 }),
    ).start(absolute);
    await absolute.waitFor(() => absolute.errors.length > 0, 3000, 'NXDOMAIN');
    assert.deepEqual(asked(server).slice(1), ['users'], 'no search-list name asked for an absolute name');
  });

  it('NXDOMAIN on every candidate: an empty set, and one typed error naming every tried name as its cause', async () => {
    const server = await zone({});
    const resolvConf = await file('search a.test b.test\noptions ndots:5\n');
    const listener = new RecordingListener();
    track(new DnsResolver({ host: 'users.shop', family: 4, nameservers: [server.address], resolvConf })).start(
      listener,
    );
    await listener.waitFor(() => listener.errors.length > 0, 3000, 'the negative answer');
    assert.deepEqual(listener.last, []);
    const error = listener.errors[0] as SidecarlessError & { triedNames: string[]; queryName: string };
    assert.equal(error.code, 'SIDECARLESS_DNS_NXDOMAIN');
    assert.equal(error.queryName, 'users.shop');
    assert.deepEqual(error.triedNames, ['users.shop.a.test', 'users.shop.b.test', 'users.shop']);
    assert.match(error.message, /users\.shop\.a\.test \(NXDOMAIN\), users\.shop\.b\.test \(NXDOMAIN\), users\.shop/);
  });

  it('a SERVFAIL stops the search (it is not an answer): the error is reported and the set kept', async () => {
    let servfail = false;
    const server = await startFakeDns((q) => {
      const name = q.packet.questions?.[0]?.name;
      if (name === 'users.a.test' && servfail) q.send(reply(q, { rcode: 2 }));
      else if (name === 'users.a.test') q.send(reply(q, { answers: [a(name, '10.0.0.8', 1)] }));
      else q.send(reply(q, { answers: [a(name ?? '', '10.9.9.9', 1)] }));
    });
    servers.push(server);
    const clock = new FakeClock();
    const resolvConf = await file('search a.test b.test\n');
    const listener = new RecordingListener();
    track(
      new DnsResolver({ host: 'users', family: 4, nameservers: [server.address], resolvConf, clock, retries: 0 }),
    ).start(listener);
    await until(() => listener.updates.length === 1, 'first set');
    servfail = true;
    clock.advance(1000);
    await until(() => listener.errors.length === 1, 'SERVFAIL reported');
    assert.equal(listener.errors[0]?.code, 'SIDECARLESS_DNS_SERVFAIL');
    assert.deepEqual(keys(listener.last), ['10.0.0.8:80']);
    assert.ok(!asked(server).includes('users.b.test'), 'did not move on to the next candidate');
  });

  it('srv: expands a short SRV name through the search list', async () => {
    const server = await startFakeDns((q) => {
      const name = q.packet.questions?.[0]?.name ?? '';
      if (name === '_http._tcp.users.b.test') {
        q.send(
          reply(q, {
            answers: [{ type: 'SRV', name, ttl: 30, data: { priority: 0, weight: 1, port: 9000, target: 'x.b.test' } }],
            additionals: [a('x.b.test', '10.0.0.9')],
          }),
        );
      } else q.send(reply(q, { rcode: 3 }));
    });
    servers.push(server);
    const resolvConf = await file('search a.test b.test\noptions ndots:5\n');
    const listener = new RecordingListener();
    track(new SrvResolver({ name: '_http._tcp.users', family: 4, nameservers: [server.address], resolvConf })).start(
      listener,
    );
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'SRV set');
    assert.deepEqual(keys(listener.last), ['10.0.0.9:9000']);
    assert.equal(listener.last?.[0]?.metadata.srvName, '_http._tcp.users.b.test');
    assert.deepEqual(asked(server), ['_http._tcp.users.a.test', '_http._tcp.users.b.test']);
  });
});

describe('dns: and srv: search-list answers hold no longer than the negative answers before them', () => {
  const soa = (minimum: number): dnsPacket.Answer => ({
    type: 'SOA',
    name: 'test',
    ttl: 60,
    data: { mname: 'ns.test', rname: 'admin.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
  });

  it('regression (the answer under a later search name outlived the NXDOMAIN of an earlier one): re-asked at its negative TTL (probe 23)', async () => {
    // The preferred name does not exist (negative TTL 2 s); the next one answers with TTL 300 s.
    let created = false;
    const server = await startFakeDns((q) => {
      const name = q.packet.questions?.[0]?.name ?? '';
      const srv = (target: string): dnsPacket.Answer => ({
        type: 'SRV',
        name,
        ttl: 300,
        data: { priority: 0, weight: 1, port: 9000, target },
      });
      if (name === 'web.b.test') q.send(reply(q, { answers: [a(name, '10.0.0.2', 300)] }));
      else if (name === '_h._tcp.web.b.test') q.send(reply(q, { answers: [srv('x.b.test')] }));
      else if (created && name === 'web.a.test') q.send(reply(q, { answers: [a(name, '10.0.0.1', 300)] }));
      else if (created && name === '_h._tcp.web.a.test') q.send(reply(q, { answers: [srv('x.a.test')] }));
      else if (name === 'x.b.test') q.send(reply(q, { answers: [a(name, '10.0.0.2', 300)] }));
      else if (name === 'x.a.test') q.send(reply(q, { answers: [a(name, '10.0.0.1', 300)] }));
      else q.send(reply(q, { rcode: 3, authorities: [soa(2)] }));
    });
    servers.push(server);
    const clock = new FakeClock();
    const resolvConf = await file('search a.test b.test\noptions ndots:5\n');
    const options = { family: 4, nameservers: [server.address], resolvConf, hostsFile: false, clock } as const;
    const dnsListener = new RecordingListener();
    track(new DnsResolver({ host: 'web', ...options })).start(dnsListener);
    const srvListener = new RecordingListener();
    track(new SrvResolver({ name: '_h._tcp.web', ...options })).start(srvListener);
    await until(() => dnsListener.updates.length === 1 && srvListener.updates.length === 1, 'the b.test answers');
    assert.deepEqual(keys(dnsListener.last), ['10.0.0.2:80']);
    assert.deepEqual(keys(srvListener.last), ['10.0.0.2:9000']);
    created = true;
    clock.advance(2000);
    await until(() => dnsListener.updates.length === 2 && srvListener.updates.length === 2, 'the a.test answers');
    assert.deepEqual(keys(dnsListener.last), ['10.0.0.1:80']);
    assert.equal(dnsListener.last?.[0]?.metadata.dnsName, 'web.a.test');
    assert.deepEqual(keys(srvListener.last), ['10.0.0.1:9000']);
    assert.equal(srvListener.last?.[0]?.metadata.srvName, '_h._tcp.web.a.test');
  });
});

describe('dns: answers from the hosts file', () => {
  it('a name in the hosts file is answered from it, without a query; edits are picked up; removal falls back', async () => {
    const server = await zone({ 'web.test': '10.0.0.20' });
    const hostsFile = await file('127.0.0.1 localhost\n10.0.0.10 web.test web\n::1 localhost\n');
    const clock = new FakeClock();
    const listener = new RecordingListener();
    const common = { nameservers: [server.address], hostsFile, resolvConf: false as const, clock };
    track(new DnsResolver({ ...common, host: 'web.test', port: 81 })).start(listener);
    const local = new RecordingListener();
    const localhost = track(new DnsResolver({ ...common, host: 'localhost', port: 82 }));
    localhost.start(local);
    await until(() => listener.updates.length === 1 && local.updates.length === 1, 'answers from the hosts file');
    assert.deepEqual(keys(listener.last), ['10.0.0.10:81']);
    assert.deepEqual(keys(local.last), ['127.0.0.1:82', '[::1]:82']);
    assert.equal(server.queries.length, 0, 'no DNS query for names in the hosts file');
    localhost.close();

    await writeFile(hostsFile, '10.0.0.11 web.test\n');
    clock.advance(4999);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(listener.updates.length, 1, 'a hosts answer is used for 5 s');
    clock.advance(1);
    await until(() => keys(listener.last).includes('10.0.0.11:81'), 'edited hosts file');

    await writeFile(hostsFile, '# nothing\n');
    clock.advance(5000);
    await until(() => keys(listener.last).includes('10.0.0.20:81'), 'DNS once the name left the hosts file');
    assert.deepEqual(asked(server), ['web.test', 'web.test']);
  });

  it('a name answered by DNS sees a hosts entry added for it at its next re-resolution (its TTL), not after 5 s', async () => {
    const server = await zone({ 'late.test': '10.0.0.20' }); // TTL 30 s
    const hostsFile = await file('127.0.0.1 localhost\n');
    const clock = new FakeClock();
    const listener = new RecordingListener();
    const common = { nameservers: [server.address], hostsFile, resolvConf: false as const, clock };
    track(new DnsResolver({ ...common, host: 'late.test', port: 81, family: 4 })).start(listener);
    await until(() => listener.updates.length === 1, 'the DNS answer');
    assert.deepEqual(keys(listener.last), ['10.0.0.20:81']);
    await writeFile(hostsFile, '127.0.0.1 localhost\n10.0.0.10 late.test\n');
    clock.advance(29_999);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(listener.updates.length, 1, 'the DNS answer is used for its TTL');
    clock.advance(1);
    await until(() => keys(listener.last).includes('10.0.0.10:81'), 'the hosts entry');
    assert.deepEqual(asked(server), ['late.test'], 'answered from the hosts file, without a query');
  });

  it('family 6 skips IPv4-only hosts entries and asks DNS', async () => {
    const server = await startFakeDns((q) => q.send(reply(q, { rcode: 3 })));
    servers.push(server);
    const hostsFile = await file('10.0.0.10 v4only.test\n');
    const listener = new RecordingListener();
    track(
      new DnsResolver({ host: 'v4only.test', family: 6, nameservers: [server.address], hostsFile, resolvConf: false }),
    ).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'negative set');
    assert.deepEqual(listener.last, []);
    assert.equal(server.queries.length, 1);
  });

  it('a hosts file or resolv.conf the user named must be readable: the resolution fails, typed', async () => {
    const listener = new RecordingListener();
    track(
      new DnsResolver({ host: 'web.test', hostsFile: join(dir, 'missing-hosts'), nameservers: ['127.0.0.1:9'] }),
    ).start(listener);
    await listener.waitFor(() => listener.errors.length > 0, 3000, 'error');
    assert.equal(listener.errors[0]?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.match(listener.errors[0]?.message ?? '', /hosts file .*missing-hosts/);
    assert.equal(listener.updates.length, 0);
  });
});

describe('precedence: options over resolv.conf over defaults', () => {
  it('the file gives timeout and attempts (tries = attempts x nameservers); the nameservers option wins', async () => {
    const silent = await startFakeDns(() => {});
    servers.push(silent);
    // resolv.conf cannot name a port, so the silent server comes through the option, which wins over this line.
    const resolvConf = await file(`nameserver 192.0.2.1\noptions timeout:3 attempts:2\n`);
    const clock = new FakeClock();
    const listener = new RecordingListener();
    track(
      new DnsResolver({
        host: 'x.test',
        nameservers: [silent.address],
        resolvConf,
        clock,
        family: 4,
        hostsFile: false,
      }),
    ).start(listener);
    await until(() => silent.queries.length === 1, 'first try');
    clock.advance(2999);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(silent.queries.length, 1, 'timeout:3 means 3 s per try');
    clock.advance(1);
    await until(() => silent.queries.length === 2, 'second try (attempts:2, one nameserver)');
    clock.advance(3000);
    await until(() => listener.errors.length === 1, 'timeout error');
    assert.equal(silent.queries.length, 2);
    assert.equal(listener.errors[0]?.code, 'SIDECARLESS_DNS_TIMEOUT');
    assert.match(listener.errors[0]?.message ?? '', /within 3000 ms/);
  });

  it('timeoutMs and retries given as options win over the file', async () => {
    const silent = await startFakeDns(() => {});
    servers.push(silent);
    const resolvConf = await file('options timeout:3 attempts:5\n');
    const clock = new FakeClock();
    const listener = new RecordingListener();
    track(
      new DnsResolver({
        host: 'x.test',
        nameservers: [silent.address],
        resolvConf,
        clock,
        family: 4,
        timeoutMs: 100,
        retries: 0,
        hostsFile: false,
      }),
    ).start(listener);
    await until(() => silent.queries.length === 1, 'first try');
    clock.advance(100);
    await until(() => listener.errors.length === 1, 'timeout error');
    assert.equal(silent.queries.length, 1);
    assert.match(listener.errors[0]?.message ?? '', /within 100 ms/);
  });

  it("the named file's nameserver lines are asked when no nameservers option is given", async () => {
    // The fake server listens on an ephemeral port; resolv.conf cannot carry a port, so check which address was
    // asked through the error it produces (nothing listens on 127.0.0.1:53 here, or something refuses).
    const resolvConf = await file('nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const listener = new RecordingListener();
    track(new DnsResolver({ host: 'x.test', resolvConf, hostsFile: false, family: 4 })).start(listener);
    await listener.waitFor(() => listener.errors.length > 0, 5000, 'error');
    assert.equal((listener.errors[0] as { nameserver?: string }).nameserver, '127.0.0.1:53');
  });
});

describe('options are validated at construction', () => {
  it('hostsFile, resolvConf, search and ndots', () => {
    assert.throws(() => new DnsResolver({ host: 'h', hostsFile: '' }), { option: 'hostsFile' });
    assert.throws(() => new DnsResolver({ host: 'h', resolvConf: 3 as never }), { option: 'resolvConf' });
    assert.throws(() => new DnsResolver({ host: 'h', resolvConf: true as never }), { option: 'resolvConf' });
    assert.throws(() => new SrvResolver({ name: '_a._tcp.h', search: 'a.test' as never }), { option: 'search' });
    assert.throws(() => new DnsResolver({ host: 'h', search: ['ok.test', 'bad name'] }), { option: 'search[1]' });
    assert.throws(() => new DnsResolver({ host: 'h', ndots: 16 }), { option: 'ndots' });
    assert.doesNotThrow(
      () => new DnsResolver({ host: 'h', hostsFile: false, resolvConf: false, search: [], ndots: 0 }),
    );
  });

  it('search and ndots options replace the file', async () => {
    const server = await zone({ 'users.c.test': '10.0.0.30' });
    const resolvConf = await file('search a.test\noptions ndots:1\n');
    const listener = new RecordingListener();
    track(
      new DnsResolver({
        host: 'users',
        family: 4,
        nameservers: [server.address],
        resolvConf,
        hostsFile: false,
        search: ['c.test'],
        ndots: 0,
      }),
    ).start(listener);
    await listener.waitFor(() => listener.updates.length > 0, 3000, 'set');
    assert.deepEqual(keys(listener.last), ['10.0.0.30:80']);
    assert.deepEqual(asked(server), ['users', 'users.c.test'], 'ndots 0: as it is first');
  });
});
