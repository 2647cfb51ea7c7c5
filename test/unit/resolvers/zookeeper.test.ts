// Unit tests of the ZooKeeper resolver: node parsing (Curator instances, host:port by name or data), options and
// targets, and the resolver's session handling against a double of node-zookeeper-client on a fake clock (watches
// re-armed, disconnection and reconnection, expiry and a new session, connect timeout, close).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import {
  createClient,
  createResolverRegistry,
  type Endpoint,
  InvalidOptionError,
  InvalidTargetError,
  type SidecarlessError,
} from 'sidecarless';
import { registerZooKeeper, ZooKeeperError, ZooKeeperResolver, zooKeeperResolverFactory } from 'sidecarless/zookeeper';
import { parseZooKeeperNode } from '../../../src/resolvers/zookeeper/parse.js';
import {
  parseConnectString,
  resolveZooKeeperOptions,
  zooKeeperOptionsFromTarget,
} from '../../../src/resolvers/zookeeper/options.js';
import type { ZooKeeperClientLike } from '../../../src/resolvers/zookeeper/session.js';
import { parseTarget } from '../../../src/resolvers/target.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const AUTO = { layout: 'auto', curatorPort: 'port' } as const;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const curator = (extra: Record<string, unknown>) =>
  json({
    name: 'users',
    id: 'i-1',
    address: '10.0.0.1',
    port: 8080,
    sslPort: null,
    payload: null,
    serviceType: 'DYNAMIC',
    ...extra,
  });

describe('zookeeper parse: instance nodes', () => {
  it('reads a Curator ServiceInstance with its metadata', () => {
    const e = parseZooKeeperNode(
      'i-1',
      curator({ payload: { '@class': 'x.Y', zone: 'a', n: 2, deep: { x: 1 } } }),
      AUTO,
    );
    assert.equal(e?.key, '10.0.0.1:8080');
    assert.deepEqual(e?.metadata, {
      'zookeeper.node': 'i-1',
      'curator.id': 'i-1',
      'curator.name': 'users',
      'curator.serviceType': 'DYNAMIC',
      'curator.port': '8080',
      'curator.payload': '{"@class":"x.Y","zone":"a","n":2,"deep":{"x":1}}',
      'payload.zone': 'a',
      'payload.n': '2',
    });
  });

  it('chooses port or sslPort; an instance without the chosen one is a bad node naming the option', () => {
    const both = curator({ sslPort: 8443 });
    assert.equal(parseZooKeeperNode('i', both, AUTO)?.port, 8080);
    assert.equal(parseZooKeeperNode('i', both, { ...AUTO, curatorPort: 'sslPort' })?.port, 8443);
    assert.equal(parseZooKeeperNode('i', both, AUTO)?.metadata['curator.sslPort'], '8443');
    assert.throws(
      () => parseZooKeeperNode('i', curator({ port: null, sslPort: 8443 }), AUTO),
      (err: ZooKeeperError) =>
        err.reason === 'bad-response' && /without a port \(it has a sslPort: set curatorPort\)/.test(err.message),
    );
  });

  it('leaves out a disabled instance without an error', () => {
    assert.equal(parseZooKeeperNode('i', curator({ enabled: false }), AUTO), undefined);
    assert.equal(parseZooKeeperNode('i', curator({ enabled: true }), AUTO)?.key, '10.0.0.1:8080');
  });

  it('refuses Curator instances without an address, with a bad port, or with an unusable host', () => {
    for (const bad of [
      { address: '' },
      { address: 7 },
      { port: 0 },
      { port: 70_000 },
      { port: '80' },
      { address: '999.1.1.1' },
      { address: '0.0.0.0' },
      { address: '::' },
      { address: '224.0.0.1' },
    ]) {
      assert.throws(() => parseZooKeeperNode('i', curator(bad), AUTO), ZooKeeperError, JSON.stringify(bad));
    }
  });

  it('reads an IPv6 Curator address', () => {
    assert.equal(parseZooKeeperNode('i', curator({ address: '::1' }), AUTO)?.key, '[::1]:8080');
  });

  it('reads host:port from the name, else from the data', () => {
    assert.equal(parseZooKeeperNode('10.0.0.2:81', undefined, AUTO)?.key, '10.0.0.2:81');
    assert.equal(parseZooKeeperNode('[::1]:81', Buffer.alloc(0), AUTO)?.key, '[::1]:81');
    assert.equal(parseZooKeeperNode('member-1', Buffer.from(' 10.0.0.3:82\n'), AUTO)?.key, '10.0.0.3:82');
    assert.deepEqual(parseZooKeeperNode('member-1', Buffer.from('10.0.0.3:82'), AUTO)?.metadata, {
      'zookeeper.node': 'member-1',
    });
  });

  it('regression (probe 17): reads a Dubbo provider node, named by its URL-encoded provider URL', () => {
    const provider = (url: string) => encodeURIComponent(url);
    const name = provider(
      'dubbo://10.0.0.1:20880/com.foo.BarService?anyhost=true&application=demo&interface=com.foo.BarService' +
        '&methods=a,b&side=provider&version=1.0.0&group=g1&timestamp=1700000000000',
    );
    // Dubbo writes its node through Curator, whose default data is the local IP address (no port).
    const endpoint = parseZooKeeperNode(name, Buffer.from('10.0.0.9'), AUTO);
    assert.equal(endpoint?.key, '10.0.0.1:20880');
    assert.deepEqual(endpoint?.metadata, {
      'zookeeper.node': name,
      'dubbo.protocol': 'dubbo',
      'dubbo.application': 'demo',
      'dubbo.interface': 'com.foo.BarService',
      'dubbo.version': '1.0.0',
      'dubbo.group': 'g1',
    });
    const plain = { layout: 'host-port', curatorPort: 'port' } as const;
    assert.equal(
      parseZooKeeperNode(provider('tri://[::1]:50051/x.Y?side=provider'), undefined, plain)?.key,
      '[::1]:50051',
    );
    assert.equal(parseZooKeeperNode(provider('dubbo://10.0.0.1:20880/x.Y?enabled=false'), undefined, AUTO), undefined);
    for (const bad of ['dubbo://10.0.0.1/x.Y', 'consumer://10.0.0.1/x.Y?side=consumer']) {
      assert.throws(
        () => parseZooKeeperNode(provider(bad), undefined, AUTO),
        (err: unknown) => err instanceof ZooKeeperError && err.reason === 'bad-response',
      );
    }
    assert.throws(() => parseZooKeeperNode('dubbo%3A%2F%2F%E0%A4%A', undefined, AUTO), ZooKeeperError);
  });

  it('refuses what is neither, and follows the layout asked', () => {
    assert.throws(() => parseZooKeeperNode('member', Buffer.from('nonsense'), AUTO), ZooKeeperError);
    assert.throws(() => parseZooKeeperNode('member', undefined, AUTO), ZooKeeperError);
    assert.throws(() => parseZooKeeperNode('member', Buffer.from('{"broken'), AUTO), ZooKeeperError);
    assert.throws(() => parseZooKeeperNode('0.0.0.0:81', undefined, AUTO), /unspecified address/);
    const curatorOnly = { layout: 'curator', curatorPort: 'port' } as const;
    assert.throws(
      () => parseZooKeeperNode('10.0.0.2:81', undefined, curatorOnly),
      /expected a Curator service instance/,
    );
    const plain = { layout: 'host-port', curatorPort: 'port' } as const;
    assert.throws(() => parseZooKeeperNode('i-1', curator({}), plain), ZooKeeperError);
    assert.equal(parseZooKeeperNode('10.0.0.2:81', curator({}), plain)?.key, '10.0.0.2:81');
  });
});

describe('zookeeper options and targets', () => {
  it('a zookeeper: target without registerZooKeeper says how to register it', () => {
    assert.throws(
      () => createClient({ target: 'zookeeper://zk1:2181/services/users' }),
      (err: SidecarlessError) =>
        err.code === 'SIDECARLESS_UNKNOWN_SCHEME' &&
        err.message.includes("'sidecarless/zookeeper'") &&
        err.message.includes('registerZooKeeper(createResolverRegistry())'),
    );
    const client = createClient({
      target: 'zookeeper://127.0.0.1:1/services/users',
      resolvers: registerZooKeeper(createResolverRegistry()),
    });
    return client.close();
  });

  it('defaults', () => {
    const o = resolveZooKeeperOptions({ path: '/services/users/' });
    assert.equal(o.connect, '127.0.0.1:2181');
    assert.equal(o.path, '/services/users');
    assert.deepEqual(
      [o.layout, o.curatorPort, o.sessionTimeoutMs, o.connectTimeoutMs, o.requestTimeoutMs],
      ['auto', 'port', 30_000, 10_000, 10_000],
    );
    assert.deepEqual(o.backoff, { initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 30_000 });
  });

  it('parses connection strings: members, default port, chroot', () => {
    assert.deepEqual(parseConnectString('zk1:2181,zk2,10.0.0.3:2182/apps/x'), {
      servers: ['zk1:2181', 'zk2:2181', '10.0.0.3:2182'],
      chroot: '/apps/x',
    });
    for (const bad of ['', 'zk1:2181,,zk2', 'zk1:99999', '[::1]:2181', 'zk1/apps/', 'zk1/a//b']) {
      assert.throws(() => parseConnectString(bad), Error, bad);
    }
  });

  it('names a bad option by its path, never echoing the digest', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{}, /`path`: required/],
      [{ path: 'services' }, /`path`: expected an absolute ZooKeeper path/],
      [{ path: '/a/../b' }, /`path`: expected an absolute/],
      [{ path: '/a', connect: 'zk:0' }, /`connect`: bad member/],
      [{ path: '/a', layout: 'dubbo' }, /`layout`: expected one of/],
      [{ path: '/a', curatorPort: 'ssl' }, /`curatorPort`: expected one of/],
      [{ path: '/a', sessionTimeoutMs: 0 }, /`sessionTimeoutMs`: expected a number of ms above 0/],
      [{ path: '/a', backoff: { initialMs: -1 } }, /`backoff\.initialMs`/],
      [
        { path: '/a', sessionTimeout: 5 },
        /sessionTimeout: renamed to "sessionTimeoutMs"|did you mean "sessionTimeoutMs"/,
      ],
      [{ path: '/a', digest: 'nocolon-s3cret' }, /`digest`: expected "user:password"/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => new ZooKeeperResolver(options as never),
        (err: InvalidOptionError) =>
          err instanceof InvalidOptionError && message.test(err.message) && !err.message.includes('s3cret'),
        JSON.stringify(options),
      );
    }
  });

  it('reads targets: members, path, chroot, layout, curatorPort; refuses credentials and unknown parameters', () => {
    assert.deepEqual(
      zooKeeperOptionsFromTarget(
        parseTarget('zookeeper://zk1:2181,zk2:2181/services/users?chroot=/apps&layout=curator&curatorPort=sslPort'),
      ),
      {
        connect: 'zk1:2181,zk2:2181/apps',
        path: '/services/users',
        layout: 'curator',
        curatorPort: 'sslPort',
      },
    );
    assert.deepEqual(zooKeeperOptionsFromTarget(parseTarget('zookeeper:///services/users')), {
      connect: '127.0.0.1:2181',
      path: '/services/users',
    });
    const context = { clock: new FakeClock(), random: seededRandom(1), cluster: 'c' };
    for (const [target, message] of [
      ['zookeeper://zk1/', /non-empty path/],
      ['zookeeper://u:p@zk1/x', /credentials are not accepted/],
      ['zookeeper://zk1/x?digest=u:s3cret', /credentials go in the options object/],
      ['zookeeper://zk1/x?wait=1', /unknown query parameter "wait"/],
      ['zookeeper://zk1/x?chroot=apps', /chroot must start with/],
      ['zookeeper://zk1/x?layout=nope', /`layout`: expected one of/],
    ] as const) {
      assert.throws(
        () => zooKeeperResolverFactory(parseTarget(target), context),
        (err: InvalidTargetError) =>
          err instanceof InvalidTargetError && message.test(err.message) && !err.message.includes('s3cret'),
        target,
      );
    }
  });
});

/** A double of node-zookeeper-client: a tree in memory, state changes and watch events on demand. */
class FakeZooKeeper implements ZooKeeperClientLike {
  static instances: FakeZooKeeper[] = [];
  readonly tree: Map<string, Buffer>;
  connected = false;
  closed = false;
  auth: string[] = [];
  #state: ((state: { name: string; code: number }) => void) | undefined;
  readonly #queued: Array<() => void> = [];
  readonly watches = { children: new Map<string, (e: never) => void>(), data: new Map<string, (e: never) => void>() };
  reads = 0;

  constructor(tree: Map<string, Buffer>) {
    this.tree = tree;
    FakeZooKeeper.instances.push(this);
  }
  connect(): void {}
  close(): void {
    this.closed = true;
  }
  addAuthInfo(scheme: string, auth: Buffer): void {
    this.auth.push(`${scheme}:${auth.toString()}`);
  }
  on(_event: 'state', listener: (state: { name: string; code: number }) => void): unknown {
    this.#state = listener;
    return this;
  }
  state(name: 'SYNC_CONNECTED' | 'DISCONNECTED' | 'EXPIRED'): void {
    this.connected = name === 'SYNC_CONNECTED';
    this.#state?.({ name, code: 0 });
    if (this.connected) for (const op of this.#queued.splice(0)) op();
  }
  /** Reads get no answer (a member that stopped answering). */
  hang = false;
  #run(op: () => void): void {
    if (this.hang) return;
    if (this.connected) queueMicrotask(op);
    else this.#queued.push(op);
  }
  getChildren(
    path: string,
    watcher: ((e: never) => void) | undefined,
    cb: (e: Error | null, c: string[]) => void,
  ): void {
    this.#run(() => {
      this.reads++;
      if (!this.tree.has(path)) return cb(Object.assign(new Error('NO_NODE'), { code: -101 }), []);
      if (watcher !== undefined) this.watches.children.set(path, watcher);
      const prefix = `${path}/`;
      cb(
        null,
        [...this.tree.keys()]
          .filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/'))
          .map((k) => k.slice(prefix.length)),
      );
    });
  }
  getData(
    path: string,
    watcher: ((e: never) => void) | undefined,
    cb: (e: Error | null, d: Buffer | undefined) => void,
  ): void {
    this.#run(() => {
      this.reads++;
      const data = this.tree.get(path);
      if (data === undefined) return cb(Object.assign(new Error('NO_NODE'), { code: -101 }), undefined);
      if (watcher !== undefined) this.watches.data.set(path, watcher);
      cb(null, data);
    });
  }
  exists(path: string, _watcher: unknown, cb: (e: Error | null, stat: unknown) => void): void {
    this.#run(() => cb(null, this.tree.has(path) ? {} : null));
  }
  /** Fires (and consumes, as ZooKeeper does) the watch of `kind` on `path`; false when none was armed. */
  fire(kind: 'children' | 'data', path: string, type: number): boolean {
    const watcher = this.watches[kind].get(path);
    if (watcher === undefined) return false;
    this.watches[kind].delete(path);
    (watcher as (e: { type: number; name: string; path: string }) => void)({ type, name: '', path });
    return true;
  }
}

/** node-zookeeper-client's connection manager as the session reaches into it: connected, a socket, the timeout. */
function attachManager(zk: FakeZooKeeper, sessionTimeout: number) {
  const m = {
    state: 2,
    sessionTimeout,
    destroyed: 0,
    socket: Object.assign(new EventEmitter(), { destroy: () => m.destroyed++ }),
  };
  Object.assign(zk, { connectionManager: m });
  return m;
}

/** Lets promise callbacks run (the double answers on microtasks, the resolver awaits them). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

function harness(extra: Record<string, unknown> = {}) {
  FakeZooKeeper.instances = [];
  const tree = new Map<string, Buffer>([
    ['/svc', Buffer.alloc(0)],
    ['/svc/10.0.0.1:80', Buffer.alloc(0)],
  ]);
  const clock = new FakeClock();
  const updates: (readonly Endpoint[])[] = [];
  const errors: SidecarlessError[] = [];
  const reasons: (string | undefined)[] = [];
  const resolver = new ZooKeeperResolver({
    path: '/svc',
    clock,
    random: seededRandom(3),
    backoff: { initialMs: 1000, maxMs: 1000, jitter: 0 },
    minRelistIntervalMs: 0,
    ...extra,
  }).setClientFactory(() => new FakeZooKeeper(tree));
  resolver.start({
    onUpdate: (e, notFound) => (updates.push(e), reasons.push(notFound?.message)),
    onError: (e) => errors.push(e),
  });
  const zk = () => FakeZooKeeper.instances.at(-1) as FakeZooKeeper;
  const keys = () => (updates.at(-1) ?? []).map((e) => e.key);
  return { tree, clock, updates, errors, reasons, resolver, zk, keys };
}

describe('ZooKeeperResolver sessions and watches (client double, fake clock)', () => {
  it('re-arms children and data watches after every event', async () => {
    const h = harness();
    await settle();
    h.zk().state('SYNC_CONNECTED');
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80']);
    for (let i = 2; i <= 4; i++) {
      h.tree.set(`/svc/10.0.0.${i}:80`, Buffer.alloc(0));
      assert.ok(h.zk().fire('children', '/svc', 4), `children watch armed before event ${i}`);
      await settle();
      assert.equal(h.keys().length, i);
    }
    h.tree.set('/svc/member', Buffer.from('10.0.0.9:80'));
    h.zk().fire('children', '/svc', 4);
    await settle();
    for (const port of [81, 82, 83]) {
      h.tree.set('/svc/member', Buffer.from(`10.0.0.9:${port}`));
      assert.ok(h.zk().fire('data', '/svc/member', 3), `data watch armed before port ${port}`);
      await settle();
      assert.ok(h.keys().includes(`10.0.0.9:${port}`), `port ${port} seen`);
    }
    assert.equal(h.resolver.stats.lists, 1, 'events re-read, they do not re-list everything');
    assert.equal(h.errors.length, 0);
    h.resolver.close();
    assert.ok(h.zk().closed, 'the client closed');
  });

  it('regression (the only child turning unusable emptied the set): the last set stays, reported; a real removal still empties it', async () => {
    const h = harness({ layout: 'host-port' });
    await settle();
    h.zk().state('SYNC_CONNECTED');
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80']);
    const deliveries = h.updates.length;
    // Its only child is replaced by one whose data names no usable endpoint (port 0).
    h.tree.delete('/svc/10.0.0.1:80');
    h.tree.set('/svc/member', Buffer.from('10.0.0.9:0'));
    h.zk().fire('children', '/svc', 4);
    await settle();
    assert.equal(h.updates.length, deliveries, 'nothing delivered: the last set stays');
    assert.ok(
      h.errors.some((e) => e.code === 'SIDECARLESS_RESOLVER_FAILED' && /keeping the last set|unusable/.test(e.message)),
    );
    assert.equal(h.resolver.stats.skipped, 1);
    // The service emptied for real (no child left): that is delivered.
    h.tree.delete('/svc/member');
    h.zk().fire('children', '/svc', 4);
    await settle();
    assert.deepEqual(h.keys(), []);
    h.resolver.close();
  });

  it('regression (probe 17): the client gets the members as validated, trimmed, not the string as given', async () => {
    const seen: string[] = [];
    const resolver = new ZooKeeperResolver({ connect: ' 10.0.0.1:2181 , zk2 /apps', path: '/svc' }).setClientFactory(
      (connect) => (seen.push(connect), new FakeZooKeeper(new Map())),
    );
    resolver.start({ onUpdate() {}, onError() {} });
    await settle();
    resolver.close();
    assert.deepEqual(seen, ['10.0.0.1:2181,zk2:2181/apps']);
  });

  it('sends the digest with every session', async () => {
    const h = harness({ digest: 'reader:pw' });
    await settle();
    assert.deepEqual(h.zk().auth, ['digest:reader:pw']);
    h.resolver.close();
  });

  it('reports a connect timeout, keeps trying, and delivers once connected', async () => {
    const h = harness({ connectTimeoutMs: 5000 });
    await settle();
    h.clock.advance(5000);
    await settle();
    assert.equal((h.errors[0] as ZooKeeperError).reason, 'timeout');
    assert.equal(h.updates.length, 0);
    h.clock.advance(1000); // the backoff: the next cycle waits on the same session
    await settle();
    h.zk().state('SYNC_CONNECTED');
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80']);
    assert.equal(h.resolver.stats.sessions, 1);
    h.resolver.close();
  });

  it('keeps the set on a disconnection and lists again as soon as the session reconnects (no backoff wait)', async () => {
    const h = harness();
    await settle();
    h.zk().state('SYNC_CONNECTED');
    await settle();
    h.zk().state('DISCONNECTED');
    await settle();
    assert.equal((h.errors.at(-1) as ZooKeeperError).reason, 'connection');
    assert.equal(h.updates.length, 1, 'the last set stays');
    h.tree.set('/svc/10.0.0.2:80', Buffer.alloc(0));
    h.zk().state('SYNC_CONNECTED'); // before the 1 s backoff is over: wake() runs the cycle now
    h.clock.advance(0);
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80', '10.0.0.2:80']);
    assert.deepEqual([h.resolver.stats.sessions, h.resolver.stats.lists, h.resolver.stats.disconnections], [1, 2, 1]);
    h.resolver.close();
  });

  it('regression: a session that expired stays expired when the client then reports DISCONNECTED; a new one lists again', async () => {
    const h = harness();
    await settle();
    const first = h.zk();
    first.state('SYNC_CONNECTED');
    await settle();
    first.state('DISCONNECTED');
    await settle();
    first.state('EXPIRED');
    first.state('DISCONNECTED'); // node-zookeeper-client does this right after EXPIRED
    await settle();
    h.clock.advance(1000);
    await settle();
    assert.equal(FakeZooKeeper.instances.length, 2, 'a new session');
    h.zk().state('SYNC_CONNECTED');
    await settle();
    assert.equal(h.resolver.stats.expirations, 1);
    assert.equal(h.resolver.stats.sessions, 2);
    assert.ok(
      h.errors.some((e) => (e as ZooKeeperError).reason === 'session-expired'),
      'the expiry reported',
    );
    assert.equal(h.updates.length, 2, 'the same set delivered again after the failure');
    h.resolver.close();
  });

  it('regression: a connection attempt whose handshake never gets an answer is dropped after connectTimeoutMs', async () => {
    const h = harness({ connectTimeoutMs: 5000 });
    await settle();
    // node-zookeeper-client's internals as the resolver sees them: connecting (state 1), a socket open.
    let destroyed = 0;
    Object.assign(h.zk(), { connectionManager: { state: 1, socket: { destroy: () => destroyed++ } } });
    h.clock.advance(4999);
    await settle();
    assert.equal(destroyed, 0);
    h.clock.advance(1);
    await settle();
    assert.equal(destroyed, 1, 'the stalled attempt dropped, so the client tries the next member');
    assert.equal((h.errors[0] as ZooKeeperError).reason, 'timeout');
    h.resolver.close();
  });

  it('regression (probe 12): the "not found" reason follows the node: "has no usable instance", then "does not exist" once deleted', async () => {
    const h = harness();
    await settle();
    h.zk().state('SYNC_CONNECTED');
    await settle();
    h.tree.delete('/svc/10.0.0.1:80');
    h.zk().fire('children', '/svc', 4);
    await settle();
    h.tree.delete('/svc');
    h.zk().fire('children', '/svc', 2); // NODE_DELETED
    await settle();
    assert.deepEqual(h.reasons, [
      undefined,
      'ZooKeeper node /svc has no usable instance',
      'ZooKeeper node /svc does not exist',
    ]);
    h.resolver.close();
  });

  it('regression (probe 12, half-open member): a connection silent for 2/3 of the session timeout is dropped, and the session resumed on the next member lists again', async () => {
    const h = harness({ sessionTimeoutMs: 3000 });
    await settle();
    const m = attachManager(h.zk(), 3000);
    h.zk().state('SYNC_CONNECTED');
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80']);
    h.clock.advance(1500);
    m.socket.emit('data'); // a ping reply
    h.clock.advance(1999);
    await settle();
    assert.equal(m.destroyed, 0, 'something was received within 2000 ms');
    h.clock.advance(1);
    await settle();
    assert.equal(m.destroyed, 1, 'silent for 2000 ms (2/3 of 3000): dropped');
    // The client reports the loss, then resumes the session on another member.
    h.zk().state('DISCONNECTED');
    await settle();
    assert.equal((h.errors.at(-1) as ZooKeeperError).reason, 'connection');
    const next = attachManager(h.zk(), 3000);
    h.tree.set('/svc/10.0.0.2:80', Buffer.alloc(0));
    h.zk().state('SYNC_CONNECTED');
    h.clock.advance(0);
    await settle();
    assert.deepEqual(h.keys(), ['10.0.0.1:80', '10.0.0.2:80']);
    h.clock.advance(1999);
    assert.equal(next.destroyed, 0);
    next.socket.emit('data');
    h.clock.advance(1999);
    assert.equal(next.destroyed, 0, 'the rule follows the new connection');
    h.resolver.close();
  });

  it('regression (probe 12): an operation that times out drops the connection it was sent on', async () => {
    const h = harness({ requestTimeoutMs: 1000 });
    await settle();
    const m = attachManager(h.zk(), 30_000);
    h.zk().hang = true;
    h.zk().state('SYNC_CONNECTED');
    await settle();
    h.clock.advance(1000);
    await settle();
    assert.equal((h.errors.at(-1) as ZooKeeperError).reason, 'timeout');
    assert.equal(m.destroyed, 1, 'the client moves to the next member');
    h.resolver.close();
  });

  it('regression (probe 12, close while the server is frozen): the socket is destroyed 1 s after the close request', async () => {
    const h = harness();
    await settle();
    const m = attachManager(h.zk(), 30_000);
    h.zk().state('SYNC_CONNECTED');
    await settle();
    h.resolver.close();
    assert.ok(h.zk().closed, 'the close request queued');
    h.clock.advance(999);
    assert.equal(m.destroyed, 0, 'the server may still end it');
    h.clock.advance(1);
    assert.equal(m.destroyed, 1);
  });

  it('delivers nothing after close', async () => {
    const h = harness();
    await settle();
    h.zk().state('SYNC_CONNECTED');
    h.resolver.close();
    await settle();
    h.clock.advance(60_000);
    await settle();
    assert.deepEqual([h.updates.length, h.errors.length], [0, 0]);
  });
});

describe('zookeeper parse: fuzzed node data', () => {
  it('answers an endpoint, undefined or a ZooKeeperError for any name and data, never another error', () => {
    const random = seededRandom(18);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const values: unknown[] = [
      null,
      true,
      0,
      -1,
      1.5,
      65_535,
      65_536,
      8080,
      '',
      'x',
      '10.0.0.1',
      '::1',
      [],
      {},
      '999.1.1.1',
    ];
    const fields = ['address', 'port', 'sslPort', 'payload', 'enabled', 'id', 'name', 'serviceType', '@class'];
    let inputs = 0;
    for (let i = 0; i < 3000; i++) {
      let data: Buffer | undefined;
      switch (i % 3) {
        case 0: {
          const instance: Record<string, unknown> = { address: '10.0.0.1', port: 8080 };
          for (let k = 0; k < 3; k++) instance[pick(fields)] = pick(values);
          data = Buffer.from(JSON.stringify(instance));
          break;
        }
        case 1: {
          const text = Buffer.from(JSON.stringify({ address: '10.0.0.1', port: 8080, payload: { a: 1 } }));
          for (let k = 0; k < 3; k++) text[Math.floor(random() * text.length)] = Math.floor(random() * 256);
          data = text;
          break;
        }
        default:
          data =
            random() < 0.2
              ? undefined
              : Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
      }
      const name = pick(['i-1', '10.0.0.2:80', '[::1]:80', 'host:0', 'a:b:c', '', 'x'.repeat(300)]);
      for (const layout of ['auto', 'curator', 'host-port'] as const) {
        inputs++;
        try {
          const endpoint = parseZooKeeperNode(name, data, { layout, curatorPort: random() < 0.5 ? 'port' : 'sslPort' });
          if (endpoint !== undefined) assert.ok(endpoint.port >= 1 && endpoint.port <= 65_535, endpoint.key);
        } catch (err) {
          assert.ok(err instanceof ZooKeeperError, `${String(err)} for ${JSON.stringify(name)}`);
          assert.equal((err as ZooKeeperError).reason, 'bad-response');
        }
      }
    }
    console.log(`# fuzz: ${inputs} ZooKeeper nodes through parseZooKeeperNode`);
  });
});
