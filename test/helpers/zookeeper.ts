/**
 * A real ZooKeeper (Debian's `zookeeperd`, 3.8: `apt-get install -y --no-install-recommends zookeeperd`, which brings
 * a Java runtime) for integration tests: one standalone server on 127.0.0.1 with an ephemeral client port, a
 * temporary data dir and its own zoo.cfg (tickTime 200 ms, so sessions may be as short as 400 ms; admin server off;
 * the `ruok` and `mntr` four-letter words on). It runs `java -cp /usr/share/java/zookeeper.jar
 * org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg` (the jar's manifest names its dependencies); set
 * `ZOOKEEPER_CLASSPATH` or `JAVA` to use another. `stop()` / `start()` restart it on the same port and data;
 * `close()` stops it and removes the dir.
 *
 * Also an admin client (node-zookeeper-client, promisified) to register instances, and a TCP proxy whose `pause()`
 * cuts every connection and refuses new ones: the ensemble becomes unreachable for the clients behind it while the
 * server runs on, so their sessions expire on the server (how the suite forces a session expiry).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { terminate } from './process.js';

const JAVA = process.env.JAVA ?? 'java';
const CLASSPATH = process.env.ZOOKEEPER_CLASSPATH ?? '/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar';

function assertZooKeeperInstalled(): void {
  const probe = spawnSync(JAVA, ['-cp', CLASSPATH, 'org.apache.zookeeper.Version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `ZooKeeper is required for the ZooKeeper integration tests but could not be run with ${JAVA} -cp ${CLASSPATH} ` +
        `(${probe.error?.message ?? `exit ${probe.status}: ${probe.stderr}`}). Install it: ` +
        'apt-get install -y --no-install-recommends zookeeperd',
    );
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sends a four-letter word and returns the answer ('' when the server cannot be reached). */
export function fourLetterWord(port: number, word: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(word));
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(answer));
  });
}

export class ZooKeeperServer {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** Starts a fresh standalone server; throws a loud error if ZooKeeper is not installed. */
  static async start(): Promise<ZooKeeperServer> {
    assertZooKeeperInstalled();
    const dir = await mkdtemp(path.join(tmpdir(), 'sidecarless-zookeeper-'));
    const server = new ZooKeeperServer(await freePort(), dir);
    await writeFile(
      path.join(dir, 'zoo.cfg'),
      [
        'tickTime=200',
        `dataDir=${path.join(dir, 'data')}`,
        `clientPort=${server.port}`,
        'clientPortAddress=127.0.0.1',
        'maxSessionTimeout=60000',
        'maxClientCnxns=0',
        'admin.enableServer=false',
        '4lw.commands.whitelist=ruok,mntr,srvr',
        'snapCount=100000',
        '',
      ].join('\n'),
    );
    await server.start();
    return server;
  }

  /** `127.0.0.1:port`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts (or restarts) the server on the same port and data dir; waits until it answers `imok` (≤ 60 s). */
  async start(): Promise<void> {
    if (this.#child !== undefined) return;
    const child = spawn(
      JAVA,
      [
        '-Xmx128m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
        '-Dzookeeper.admin.enableServer=false',
        '-cp',
        CLASSPATH,
        'org.apache.zookeeper.server.ZooKeeperServerMain',
        path.join(this.dir, 'zoo.cfg'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    const collect = (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-8000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.#child !== child) throw new Error(`ZooKeeper exited during start-up:\n${this.#log}`);
      if ((await fourLetterWord(this.port, 'ruok', 1000)) === 'imok') return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`ZooKeeper did not answer within 60 s:\n${this.#log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Stops the server (SIGTERM, SIGKILL after 10 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    await terminate(child, 10_000);
    this.#child = undefined;
  }

  /** Stops the server and removes its data dir. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** The server's `mntr` figures (e.g. `zk_global_sessions`). */
  async mntr(): Promise<Record<string, string>> {
    const text = await fourLetterWord(this.port, 'mntr');
    const out: Record<string, string> = {};
    for (const line of text.split('\n')) {
      const [key, value] = line.split('\t');
      if (key !== undefined && value !== undefined) out[key] = value.trim();
    }
    return out;
  }

  /** Opens an admin client (connected) to this server, or to `connect` when given. */
  admin(options: { connect?: string; digest?: string; sessionTimeoutMs?: number } = {}): Promise<ZooKeeperAdmin> {
    return ZooKeeperAdmin.open(options.connect ?? this.address, options.digest, options.sessionTimeoutMs ?? 30_000);
  }
}

/** The ACL that lets `user` (with `password`) do everything, and no one else anything. */
export function digestAcl(user: string, password: string): zookeeper.ACL[] {
  const hash = createHash('sha1').update(`${user}:${password}`).digest('base64');
  return [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', `${user}:${hash}`))];
}

type Callback<T> = (error: Error | zookeeper.Exception | null, value: T) => void;

/** A node-zookeeper-client client with promise-returning writes, for registering instances in tests. */
export class ZooKeeperAdmin {
  readonly client: zookeeper.Client;

  private constructor(client: zookeeper.Client) {
    this.client = client;
  }

  static async open(connect: string, digest: string | undefined, sessionTimeout: number): Promise<ZooKeeperAdmin> {
    const client = zookeeper.createClient(connect, { sessionTimeout, spinDelay: 100, retries: 0 });
    if (digest !== undefined) client.addAuthInfo('digest', Buffer.from(digest));
    const connected = once(client, 'connected');
    client.connect();
    const timer = setTimeout(() => client.emit('error', new Error(`no ZooKeeper at ${connect} within 60 s`)), 60_000);
    try {
      await connected;
    } finally {
      clearTimeout(timer);
    }
    return new ZooKeeperAdmin(client);
  }

  #call<T>(fn: (cb: Callback<T>) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      fn((error, value) => (error ? reject(error) : resolve(value)));
    });
  }

  /** Creates every missing node on the way to `path` (persistent, open ACL unless `acl`). */
  mkdirp(path: string, acl?: zookeeper.ACL[]): Promise<string> {
    return this.#call((cb) => (acl === undefined ? this.client.mkdirp(path, cb) : this.client.mkdirp(path, acl, cb)));
  }

  /** Creates a node; `ephemeral` ones go with this client's session. */
  create(
    path: string,
    data: string | Buffer | undefined,
    options: { ephemeral?: boolean; acl?: zookeeper.ACL[] } = {},
  ): Promise<string> {
    const mode = options.ephemeral === true ? zookeeper.CreateMode.EPHEMERAL : zookeeper.CreateMode.PERSISTENT;
    const buffer = data === undefined ? null : Buffer.from(data);
    const acl = options.acl ?? (zookeeper.ACL as unknown as { OPEN_ACL_UNSAFE: zookeeper.ACL[] }).OPEN_ACL_UNSAFE;
    return this.#call((cb) => this.client.create(path, buffer as Buffer, acl, mode, cb));
  }

  setData(path: string, data: string): Promise<unknown> {
    return this.#call((cb) => this.client.setData(path, Buffer.from(data), cb));
  }

  remove(path: string): Promise<void> {
    return this.#call<void>((cb) => this.client.remove(path, (error) => cb(error, undefined)));
  }

  /** Removes `path` and everything under it (ignores a missing node). */
  async removeTree(path: string): Promise<void> {
    let children: string[];
    try {
      children = await this.#call((cb) => this.client.getChildren(path, cb));
    } catch {
      return;
    }
    for (const child of children) await this.removeTree(`${path}/${child}`);
    await this.remove(path).catch(() => {});
  }

  /** Closes the session: its ephemeral nodes are deleted by the server at once. */
  async close(): Promise<void> {
    const disconnected = once(this.client, 'disconnected');
    this.client.close();
    await Promise.race([disconnected, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  }
}

/**
 * A TCP proxy to a ZooKeeper server. `pause()` destroys every proxied connection and refuses new ones until
 * `resume()`: to the clients behind it the ensemble is unreachable, while the server keeps running.
 */
export class ZooKeeperProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #target: number;
  #paused = false;
  port = 0;
  connections = 0;

  private constructor(target: number) {
    this.#target = target;
    this.#server = net.createServer((client) => {
      if (this.#paused) {
        client.destroy();
        return;
      }
      this.connections++;
      const upstream = net.connect(this.#target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  static async start(targetPort: number): Promise<ZooKeeperProxy> {
    const proxy = new ZooKeeperProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  pause(): void {
    this.#paused = true;
    for (const s of this.#sockets) s.destroy();
  }

  resume(): void {
    this.#paused = false;
  }

  async close(): Promise<void> {
    this.pause();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
