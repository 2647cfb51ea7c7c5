// The ZooKeeper resolver's close() with the real node-zookeeper-client against an in-process stand-in for a member
// (a TCP server that answers connect requests, or one that never answers): whenever close() is called, the process
// must not crash, no connection may be opened after it, and every connection must end (probe 17).
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { createClient, createResolverRegistry } from 'sidecarless';
import { registerZooKeeper, ZooKeeperResolver, type ZooKeeperResolverEvent } from 'sidecarless/zookeeper';

/**
 * A ZooKeeper member on the wire, as far as connecting goes: `answer` replies to every connect request with a session
 * (then answers nothing else), `silent` accepts connections and never sends a byte (a frozen server, a half-open
 * load balancer). Counts the connections it accepted and the ones still open.
 */
class FakeMember {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  accepted = 0;

  constructor(mode: 'answer' | 'silent') {
    this.#server = net.createServer((socket) => {
      this.accepted++;
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
      if (mode === 'silent') return void socket.resume();
      socket.once('data', () => socket.write(connectResponse()));
      socket.resume();
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  get open(): number {
    return this.#sockets.size;
  }

  /** Cuts every connection (the member goes away for the clients). */
  cut(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * A ConnectResponse (protocol 0, 30 s, a session id, a password) in its length-prefixed frame. The session id's low
 * half, read as the error code of a reply header, is no ZooKeeper code, as with a real server's session ids.
 */
function connectResponse(): Buffer {
  const body = Buffer.alloc(4 + 4 + 8 + 4 + 16);
  body.writeInt32BE(0, 0);
  body.writeInt32BE(30_000, 4);
  body.writeUInt32BE(0x0100_0000, 8);
  body.writeUInt32BE(0x2cb4_0001, 12);
  body.writeInt32BE(16, 16);
  const frame = Buffer.alloc(4);
  frame.writeInt32BE(body.length, 0);
  return Buffer.concat([frame, body]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (bounded, generously: the machine is shared) until `predicate` holds. */
async function until(predicate: () => boolean, what: string, timeoutMs = 10_000, pollMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await (pollMs === 0 ? new Promise((resolve) => setImmediate(resolve)) : sleep(pollMs));
  }
}

/** Records uncaught exceptions while `body` runs (the test runner would report them against another test). */
async function withoutUncaught(body: () => Promise<void>): Promise<void> {
  const uncaught: unknown[] = [];
  const record = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', record);
  try {
    await body();
    await sleep(50);
  } finally {
    process.off('uncaughtException', record);
  }
  assert.deepEqual(uncaught, [], 'no uncaught exception');
}

/** Calls `handler` with every `sidecarless:zookeeper` event of the resolver watching `path`, until disposed. */
function onEvents(path: string, handler: (event: ZooKeeperResolverEvent) => void): () => void {
  const listener = (message: unknown) => {
    const event = message as ZooKeeperResolverEvent;
    if (event.path === path) handler(event);
  };
  diagnostics.subscribe('sidecarless:zookeeper', listener);
  return () => diagnostics.unsubscribe('sidecarless:zookeeper', listener);
}

const listener = { onUpdate() {}, onError() {} };

describe('ZooKeeperResolver close() with node-zookeeper-client (probe 17)', () => {
  const members: FakeMember[] = [];
  after(async () => {
    await Promise.all(members.map((m) => m.close()));
  });
  const member = async (mode: 'answer' | 'silent') => {
    const m = new FakeMember(mode);
    members.push(m);
    return { member: m, connect: await m.listen() };
  };

  it('regression (probe 17, crash): close() at any time after start() neither crashes nor leaves a connection', async () => {
    const { member: m, connect } = await member('answer');
    const timings: Record<string, () => Promise<unknown>> = {
      synchronously: async () => {},
      'after a microtask': () => Promise.resolve(),
      'after a nextTick': () => new Promise((resolve) => process.nextTick(resolve)),
      'after setImmediate': () => new Promise((resolve) => setImmediate(resolve)),
      'after 1 ms': () => sleep(1),
      'after 5 ms': () => sleep(5),
      'after 20 ms': () => sleep(20),
    };
    for (const [when, wait] of Object.entries(timings)) {
      await withoutUncaught(async () => {
        const resolver = new ZooKeeperResolver({ connect, path: '/svc' });
        resolver.start(listener);
        if (when === 'synchronously') resolver.close();
        else await wait().then(() => resolver.close());
        await until(() => m.open === 0, `every connection ended (close ${when})`);
      });
    }
  });

  it('regression (probe 17, crash): createClient with a zookeeper: target, then client.close()', async () => {
    const { member: m, connect } = await member('answer');
    await withoutUncaught(async () => {
      const client = createClient({
        target: `zookeeper://${connect}/services/users`,
        resolvers: registerZooKeeper(createResolverRegistry()),
      });
      await client.close();
      await sleep(100);
      await until(() => m.open === 0, 'every connection ended');
    });
  });

  it('regression (probe 17, 18, hang): close() while the client waits to retry opens no connection and leaves no timer', async () => {
    const { member: m, connect } = await member('silent');
    let failed = false;
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const baseline = timers();
    const resolver = new ZooKeeperResolver({ connect, path: '/svc', connectTimeoutMs: 100 });
    try {
      resolver.start({ onUpdate() {}, onError: () => void (failed = true) });
      await until(() => failed, 'the attempt dropped after connectTimeoutMs');
      // Once the member saw the dropped attempt end, the client has scheduled its next one (after up to 1 s).
      await until(() => m.open === 0, 'the attempt ended', 10_000, 0);
      const before = m.accepted;
      resolver.close();
      // The client's pause before its next attempt (up to 1 s) is a timer of its own with no handle: left running, it
      // held the process open after close() (probe 18).
      assert.equal(timers(), baseline, 'no timer left holding the process after close()');
      await sleep(1500);
      assert.equal(m.accepted, before, 'no connection after close()');
      await until(() => m.open === 0, 'every connection ended');
    } finally {
      resolver.close();
    }
  });

  it('regression (probe 17, hang): close() from the diagnostics `disconnected` event stops the client reconnecting', async () => {
    const { member: m, connect } = await member('answer');
    const path = '/close-on-disconnected';
    const resolver = new ZooKeeperResolver({ connect, path });
    let connected = false;
    let closedWith = -1;
    const dispose = onEvents(path, (event) => {
      if (event.kind === 'connected') connected = true;
      if (event.kind === 'disconnected' && closedWith < 0) {
        closedWith = m.accepted;
        resolver.close();
      }
    });
    try {
      resolver.start(listener);
      await until(() => connected, 'a session');
      m.cut();
      await until(() => closedWith >= 0, 'close() on disconnected');
      await sleep(300);
      assert.equal(m.accepted, closedWith, 'no connection after close()');
      assert.equal(resolver.stats.state, 'closed');
      await until(() => m.open === 0, 'every connection ended');
    } finally {
      dispose();
      resolver.close();
    }
  });
});
