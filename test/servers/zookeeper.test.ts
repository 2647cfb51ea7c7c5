/**
 * The ZooKeeper resolver against a real ZooKeeper 3.8 (Debian's zookeeperd; see test/helpers/zookeeper.ts): both
 * layouts, chroot, digest ACLs, watches re-armed, ephemeral nodes vanishing with their session, a server restart, a
 * session expiry (forced through a TCP proxy that makes the ensemble unreachable for longer than the session
 * timeout), and traffic through `createClient` with a `zookeeper:` target from the package entry points.
 *
 * Every wait is bounded (generous deadlines, polled); nothing asserts on how long anything took.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { createClient, createResolverRegistry, type Endpoint, type SidecarlessError } from 'sidecarless';
import {
  registerZooKeeper,
  ZooKeeperError,
  ZooKeeperResolver,
  type ZooKeeperResolverEvent,
  type ZooKeeperResolverOptions,
} from 'sidecarless/zookeeper';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { runExample } from '../helpers/run-example.js';
import { digestAcl, freePort, ZooKeeperAdmin, ZooKeeperProxy, ZooKeeperServer } from '../helpers/zookeeper.js';

/** Records what a resolver delivers; `until` waits (bounded) for a condition. */
class Recorder {
  readonly updates: (readonly Endpoint[])[] = [];
  readonly errors: SidecarlessError[] = [];
  readonly listener = {
    onUpdate: (endpoints: readonly Endpoint[]) => {
      this.updates.push(endpoints);
    },
    onError: (error: SidecarlessError) => {
      this.errors.push(error);
    },
  };

  get last(): readonly Endpoint[] | undefined {
    return this.updates.at(-1);
  }

  /** Waits until `predicate` holds, polling every 20 ms, for at most `timeoutMs` (generous: the machine is shared). */
  async until(predicate: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        const errors = this.errors.map((e) => e.message).join('; ');
        throw new Error(
          `timed out waiting for ${what}; last set ${JSON.stringify(keys(this.last))}; errors: ${errors}`,
        );
      }
      await sleep(20);
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const keys = (set: readonly Endpoint[] | undefined) => (set ?? []).map((e) => e.key).sort();
const FAST = { initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0.1 };

function curator(address: string, port: number | null, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    name: 'users',
    id: randomUUID(),
    address,
    port,
    sslPort: null,
    payload: null,
    registrationTimeUTC: 1_700_000_000_000,
    serviceType: 'DYNAMIC',
    uriSpec: null,
    ...extra,
  });
}

describe('ZooKeeperResolver against a real ZooKeeper', () => {
  let zk: ZooKeeperServer;
  let admin: ZooKeeperAdmin;
  const resolvers: ZooKeeperResolver[] = [];
  const admins: ZooKeeperAdmin[] = [];

  /** A started resolver (closed after the suite) and its recorder. */
  function watch(options: ZooKeeperResolverOptions): { resolver: ZooKeeperResolver; rec: Recorder } {
    const resolver = new ZooKeeperResolver({ connect: zk.address, backoff: FAST, minRelistIntervalMs: 0, ...options });
    const rec = new Recorder();
    resolver.start(rec.listener);
    resolvers.push(resolver);
    return { resolver, rec };
  }

  async function registrar(options: { connect?: string; digest?: string } = {}): Promise<ZooKeeperAdmin> {
    const client = await zk.admin(options);
    admins.push(client);
    return client;
  }

  before(async () => {
    zk = await ZooKeeperServer.start();
    admin = await zk.admin();
  });

  after(async () => {
    for (const r of resolvers) r.close();
    for (const a of admins) await a.close().catch(() => {});
    await admin?.close().catch(() => {});
    await zk?.close();
  });

  it('reads Curator service instances: port by default, sslPort when asked, disabled ones left out', async () => {
    const base = '/curator/services/users';
    await admin.mkdirp(base);
    await admin.create(`${base}/${randomUUID()}`, curator('127.0.0.1', 8080, { payload: { zone: 'a', v: 2 } }));
    await admin.create(`${base}/${randomUUID()}`, curator('127.0.0.2', 8080, { sslPort: 8443 }));
    await admin.create(`${base}/${randomUUID()}`, curator('127.0.0.3', 8080, { enabled: false }));
    const { rec, resolver } = watch({ path: base, layout: 'curator' });
    await rec.until(() => keys(rec.last).length === 2, 'two Curator instances');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:8080', '127.0.0.2:8080']);
    const first = rec.last?.find((e) => e.host === '127.0.0.1');
    assert.equal(first?.metadata['curator.serviceType'], 'DYNAMIC');
    assert.equal(first?.metadata['payload.zone'], 'a');
    assert.equal(first?.metadata['curator.payload'], '{"zone":"a","v":2}');
    assert.equal(resolver.stats.skipped, 0, 'a disabled instance is not a bad node');

    const ssl = watch({ path: base, curatorPort: 'sslPort' });
    await ssl.rec.until(() => ssl.rec.updates.length > 0, 'the sslPort set');
    assert.deepEqual(keys(ssl.rec.last), ['127.0.0.2:8443'], 'instances without an sslPort are skipped');
    assert.equal(ssl.resolver.stats.skipped, 1);
    assert.ok(
      ssl.rec.errors.some((e) => e instanceof ZooKeeperError && e.reason === 'bad-response'),
      'reported',
    );
  });

  it('reads children named host:port, or holding host:port as data; re-arms data and children watches', async () => {
    const base = '/plain/orders';
    await admin.mkdirp(base);
    await admin.create(`${base}/127.0.0.1:9001`, undefined);
    await admin.create(`${base}/member-2`, '127.0.0.2:9002');
    const { rec, resolver } = watch({ path: base, layout: 'host-port' });
    await rec.until(() => keys(rec.last).length === 2, 'both layouts of host:port');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:9001', '127.0.0.2:9002']);
    // Data watch, three times in a row: each read re-armed it.
    for (const port of [9003, 9004, 9005]) {
      await admin.setData(`${base}/member-2`, `127.0.0.2:${port}`);
      await rec.until(() => keys(rec.last).includes(`127.0.0.2:${port}`), `data change to ${port}`);
    }
    // Children watch, twice: re-armed too.
    await admin.create(`${base}/127.0.0.3:9001`, undefined);
    await rec.until(() => keys(rec.last).includes('127.0.0.3:9001'), 'a new child');
    await admin.remove(`${base}/127.0.0.1:9001`);
    await rec.until(() => !keys(rec.last).includes('127.0.0.1:9001'), 'a removed child');
    assert.equal(resolver.stats.sessions, 1);
    assert.ok(resolver.stats.dataEvents >= 3 && resolver.stats.childEvents >= 2, JSON.stringify(resolver.stats));
  });

  it('regression (probe 17): reads Dubbo provider nodes, named by their URL-encoded provider URL', async () => {
    const base = '/dubbo/com.foo.BarService/providers';
    await admin.mkdirp(base);
    const url = (port: number) =>
      `dubbo://127.0.0.1:${port}/com.foo.BarService?anyhost=true&application=demo&interface=com.foo.BarService&side=provider`;
    // As Dubbo registers through Curator: the data is Curator's default, the local IP address.
    await admin.create(`${base}/${encodeURIComponent(url(20880))}`, '127.0.0.1');
    await admin.create(`${base}/${encodeURIComponent(url(20881))}`, '127.0.0.1');
    const { rec, resolver } = watch({ path: base });
    await rec.until(() => keys(rec.last).length === 2, 'both providers');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:20880', '127.0.0.1:20881']);
    assert.equal(rec.last?.[0]?.metadata['dubbo.interface'], 'com.foo.BarService');
    assert.equal(resolver.stats.skipped, 0);
  });

  it('regression (probe 17, crash): close() at any time after start() or createClient never crashes the process', async () => {
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    try {
      const waits: (() => Promise<unknown>)[] = [
        () => Promise.resolve(),
        () => new Promise((resolve) => process.nextTick(resolve)),
        () => new Promise((resolve) => setImmediate(resolve)),
        () => sleep(5),
        () => sleep(50),
      ];
      for (const wait of waits) {
        const resolver = new ZooKeeperResolver({ connect: zk.address, path: '/services/users' });
        resolver.start({ onUpdate() {}, onError() {} });
        await wait();
        resolver.close();
      }
      const client = createClient({
        target: `zookeeper://${zk.address}/services/users`,
        resolvers: registerZooKeeper(createResolverRegistry()),
      });
      await client.close();
      await sleep(1500); // a connection the client still made would be answered (and crash) well within this
    } finally {
      process.off('uncaughtException', record);
    }
    assert.deepEqual(uncaught, []);
  });

  it('skips and counts unusable nodes, and reports them; the rest is delivered', async () => {
    const base = '/bad/nodes';
    await admin.mkdirp(base);
    await admin.create(`${base}/127.0.0.1:9100`, undefined);
    await admin.create(`${base}/garbage`, 'not an address');
    await admin.create(`${base}/no-address`, JSON.stringify({ port: 80 }));
    await admin.create(`${base}/bad-port`, curator('127.0.0.9', 70_000));
    const { rec, resolver } = watch({ path: base });
    await rec.until(() => rec.updates.length > 0, 'the set');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:9100']);
    assert.equal(resolver.stats.skipped, 3);
    assert.equal(resolver.stats.nodes, 4);
    const reported = rec.errors.find((e) => e instanceof ZooKeeperError && e.reason === 'bad-response');
    assert.match(reported?.message ?? '', /skipped 3 unusable nodes/);
    // A bad node that becomes good joins the set.
    await admin.setData(`${base}/garbage`, '127.0.0.2:9100');
    await rec.until(() => keys(rec.last).includes('127.0.0.2:9100'), 'the repaired node');
  });

  it('drops an ephemeral node when the session that created it closes', async () => {
    const base = '/ephemeral/web';
    await admin.mkdirp(base);
    const owner = await zk.admin();
    await owner.create(`${base}/${randomUUID()}`, curator('127.0.0.5', 8080), { ephemeral: true });
    await admin.create(`${base}/${randomUUID()}`, curator('127.0.0.6', 8080));
    const { rec } = watch({ path: base });
    await rec.until(() => keys(rec.last).length === 2, 'both instances');
    await owner.close();
    await rec.until(() => keys(rec.last).join() === '127.0.0.6:8080', 'the ephemeral instance gone');
  });

  it('delivers an empty "not found" set for a missing node, then the instances once it is created', async () => {
    const base = '/late/service';
    const { rec } = watch({ path: base });
    await rec.until(() => rec.updates.length > 0, 'the empty set');
    assert.deepEqual(keys(rec.last), []);
    await admin.mkdirp(base);
    await admin.create(`${base}/127.0.0.1:9200`, undefined);
    await rec.until(() => keys(rec.last).length === 1, 'the instance under the new node');
  });

  it('honours a chroot in the connection string', async () => {
    await admin.mkdirp('/tenant-a/services/users');
    await admin.create('/tenant-a/services/users/127.0.0.1:9300', undefined);
    await admin.mkdirp('/services/users-outside');
    const { rec } = watch({ connect: `${zk.address}/tenant-a`, path: '/services/users' });
    await rec.until(() => keys(rec.last).length === 1, 'the set under the chroot');
    assert.deepEqual(keys(rec.last), ['127.0.0.1:9300']);
    await admin.create('/tenant-a/services/users/127.0.0.2:9300', undefined);
    await rec.until(() => keys(rec.last).length === 2, 'a watch event under the chroot');
  });

  it('reads nodes behind a digest ACL with the credentials, and reports forbidden without them', async () => {
    const acl = digestAcl('reader', 's3cret');
    const owner = await registrar({ digest: 'reader:s3cret' });
    await owner.mkdirp('/secure');
    await owner.create('/secure/billing', undefined, { acl });
    await owner.create('/secure/billing/127.0.0.1:9400', undefined, { acl });
    const denied = watch({ path: '/secure/billing' });
    await denied.rec.until(() => denied.rec.errors.length > 0, 'the NO_AUTH error');
    const error = denied.rec.errors[0] as ZooKeeperError;
    assert.ok(error instanceof ZooKeeperError, 'a ZooKeeperError');
    assert.equal(error.reason, 'forbidden');
    assert.equal(error.zooKeeperCode, 'NO_AUTH');
    assert.equal(error.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.deepEqual(denied.rec.updates, [], 'nothing delivered without the credentials');

    const allowed = watch({ path: '/secure/billing', digest: 'reader:s3cret' });
    await allowed.rec.until(() => keys(allowed.rec.last).length === 1, 'the set with credentials');
    assert.ok(
      allowed.rec.errors.every((e) => !e.message.includes('s3cret')),
      'no password in messages',
    );
    assert.ok(
      denied.rec.errors.every((e) => !e.message.includes('s3cret')),
      'no password in messages',
    );
  });

  it('connects to any member of the ensemble string (a dead one listed too)', async () => {
    await admin.mkdirp('/members/svc');
    await admin.create('/members/svc/127.0.0.1:9500', undefined);
    const [dead1, dead2] = [await freePort(), await freePort()];
    // node-zookeeper-client shuffles the members: over a few resolvers both orders occur; every one connects.
    const watched = [0, 1, 2, 3].map(() =>
      watch({ connect: `127.0.0.1:${dead1},${zk.address},127.0.0.1:${dead2}`, path: '/members/svc' }),
    );
    for (const { rec } of watched) await rec.until(() => keys(rec.last).length === 1, 'the set via the live member');
  });

  it('refresh() lists again on the same session', async () => {
    await admin.mkdirp('/refresh/svc');
    await admin.create('/refresh/svc/127.0.0.1:9600', undefined);
    const { rec, resolver } = watch({ path: '/refresh/svc', refreshIntervalMs: 0 });
    await rec.until(() => rec.updates.length === 1, 'the first set');
    resolver.refresh();
    await rec.until(() => resolver.stats.lists === 2, 'a second listing');
    assert.equal(resolver.stats.sessions, 1);
    assert.equal(rec.updates.length, 1, 'an unchanged set is not delivered again');
  });

  it('keeps the last set while the connection is lost, and lists again on reconnection (same session)', async () => {
    await admin.mkdirp('/reconnect/svc');
    await admin.create('/reconnect/svc/127.0.0.1:9700', undefined);
    const proxy = await ZooKeeperProxy.start(zk.port);
    try {
      const { rec, resolver } = watch({ connect: proxy.address, path: '/reconnect/svc', sessionTimeoutMs: 30_000 });
      await rec.until(() => keys(rec.last).length === 1, 'the first set');
      const before = rec.updates.length;
      proxy.pause();
      await rec.until(() => rec.errors.some((e) => (e as ZooKeeperError).reason === 'connection'), 'the loss');
      assert.equal(rec.updates.length, before, 'nothing delivered during the outage: the last set stays');
      await admin.create('/reconnect/svc/127.0.0.2:9700', undefined); // a change while out of reach
      proxy.resume();
      await rec.until(() => keys(rec.last).length === 2, 'the change seen after reconnecting');
      assert.equal(resolver.stats.sessions, 1, 'the session survived');
      assert.equal(resolver.stats.expirations, 0);
      assert.ok(resolver.stats.disconnections >= 1 && resolver.stats.lists >= 2, JSON.stringify(resolver.stats));
      resolver.close(); // its session ends now, not when the server expires it during a later test
    } finally {
      await proxy.close();
    }
  });

  it('opens a new session and lists again after the session expired', async () => {
    await admin.mkdirp('/expiry/svc');
    await admin.create('/expiry/svc/127.0.0.1:9800', undefined);
    const proxy = await ZooKeeperProxy.start(zk.port);
    const events: ZooKeeperResolverEvent[] = [];
    const onEvent = (message: unknown) => events.push(message as ZooKeeperResolverEvent);
    diagnostics.subscribe('sidecarless:zookeeper', onEvent);
    try {
      // A short session (the server's minimum is 2 ticks, 400 ms here); nothing else shares the proxy.
      const { rec, resolver } = watch({ connect: proxy.address, path: '/expiry/svc', sessionTimeoutMs: 2000 });
      await rec.until(() => keys(rec.last).length === 1, 'the first set');
      const sessions = Number((await zk.mntr()).zk_global_sessions);
      proxy.pause();
      // The server expires the session once it heard nothing for the timeout: wait until it has dropped it.
      const deadline = Date.now() + 60_000;
      while (Number((await zk.mntr()).zk_global_sessions) >= sessions) {
        assert.ok(Date.now() < deadline, 'the server never expired the session');
        await sleep(100);
      }
      await admin.create('/expiry/svc/127.0.0.2:9800', undefined);
      assert.deepEqual(keys(rec.last), ['127.0.0.1:9800'], 'the last set stays while out of reach');
      proxy.resume();
      await rec.until(() => keys(rec.last).length === 2, 'the set listed by the new session');
      assert.equal(resolver.stats.expirations, 1);
      assert.equal(resolver.stats.sessions, 2);
      assert.ok(
        rec.errors.some((e) => e instanceof ZooKeeperError && e.reason === 'session-expired'),
        'expiry reported',
      );
      assert.ok(
        events.some((e) => e.kind === 'expired' && e.path === '/expiry/svc'),
        'expired event',
      );
      assert.equal(events.filter((e) => e.kind === 'session' && e.path === '/expiry/svc').length, 2);
      resolver.close();
    } finally {
      diagnostics.unsubscribe('sidecarless:zookeeper', onEvent);
      await proxy.close();
    }
  });

  it('survives a server restart: the last set stays during the outage, updates resume after', async () => {
    await admin.mkdirp('/restart/svc');
    await admin.create('/restart/svc/127.0.0.1:9900', undefined);
    const { rec, resolver } = watch({ path: '/restart/svc', connectTimeoutMs: 2000 });
    await rec.until(() => keys(rec.last).length === 1, 'the first set');
    const before = rec.updates.length;
    await admin.close();
    await zk.stop();
    await rec.until(() => rec.errors.length > 0, 'the outage reported');
    await sleep(500); // let a few failed reconnections happen
    assert.equal(rec.updates.length, before, 'the set is never emptied by the outage');
    await zk.start();
    admin = await zk.admin();
    await admin.create('/restart/svc/127.0.0.2:9900', undefined);
    await rec.until(() => keys(rec.last).length === 2, 'updates after the restart');
    assert.ok(
      rec.updates.every((set) => set.length > 0),
      'no empty set at any point',
    );
    assert.ok(resolver.stats.lists >= 2, JSON.stringify(resolver.stats));
  });

  it('balances requests through createClient with a zookeeper: target (package entry points)', async () => {
    const backends: Backend[] = await startBackends(2);
    try {
      await admin.mkdirp('/e2e/services/users');
      for (const b of backends) {
        await admin.create(`/e2e/services/users/${randomUUID()}`, curator('127.0.0.1', b.port), { ephemeral: true });
      }
      const client = createClient({
        name: 'users',
        target: `zookeeper://${zk.address}/services/users?chroot=/e2e&layout=curator`,
        resolvers: registerZooKeeper(createResolverRegistry()),
      });
      try {
        await client.ready(60_000, { minEndpoints: 2 });
        const seen = new Set<string>();
        for (let i = 0; i < 8; i++) {
          const res = await client.fetch('http://users/hello');
          seen.add(((await res.json()) as { backend: string }).backend);
        }
        assert.deepEqual([...seen].sort(), backends.map((b) => b.id).sort());
      } finally {
        await client.close();
      }
      // Without the registration, the scheme is unknown.
      assert.throws(
        () => createClient({ target: `zookeeper://${zk.address}/services/users` }),
        (err: SidecarlessError) =>
          err.code === 'SIDECARLESS_UNKNOWN_SCHEME' &&
          /registerZooKeeper\(createResolverRegistry\(\)\)/.test(err.message),
      );
    } finally {
      await stopAll(backends);
    }
  });
  it('maxEndpoints: more children than the bound is a limit error; the held nodes and the last set stay; recovers', async () => {
    const base = '/limit/users';
    await admin.mkdirp(base);
    for (let i = 1; i <= 3; i++) await admin.create(`${base}/127.0.0.1:${9100 + i}`, undefined);
    const { rec, resolver } = watch({ path: base, layout: 'host-port', maxEndpoints: 5 });
    await rec.until(() => keys(rec.last).length === 3, 'the first three');
    const good = keys(rec.last);
    // A hostile registrar adds children past the bound.
    for (let i = 4; i <= 12; i++) await admin.create(`${base}/127.0.0.1:${9100 + i}`, undefined);
    await rec.until(() => rec.errors.some((e) => e instanceof ZooKeeperError && e.reason === 'limit'), 'a limit error');
    const limit = rec.errors.find((e) => e instanceof ZooKeeperError && e.reason === 'limit');
    assert.equal(limit?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.ok(resolver.stats.nodes <= 5, `held ${resolver.stats.nodes} nodes`);
    assert.ok(
      rec.updates.every((u) => u.length > 0 && u.length <= 5),
      'never empty, never past the bound',
    );
    // Children created one by one: the last good set is the one at the bound.
    assert.ok(
      good.every((k) => keys(rec.last).includes(k)),
      'the last good set stays',
    );
    // The registry becomes sane again: the resolver follows it by itself.
    const updatesBefore = rec.updates.length;
    for (let i = 4; i <= 12; i++) await admin.remove(`${base}/127.0.0.1:${9100 + i}`);
    await admin.create(`${base}/127.0.0.1:9199`, undefined);
    await rec.until(
      () => rec.updates.length > updatesBefore && keys(rec.last).includes('127.0.0.1:9199'),
      'the sane set after the limit',
    );
    assert.equal(keys(rec.last).length, 4);
    assert.ok(resolver.stats.nodes <= 5);
  });
});

describe('examples/zookeeper.ts', () => {
  it('runs standalone against a throw-away ZooKeeper', async () => {
    const out = await runExample('zookeeper.ts', [], 120_000);
    assert.match(out, /answers: .*backend a.*|answers: .*backend b.*/);
    assert.match(out, /after the instance left: backend b, backend b/);
  });
});
