/**
 * A real etcd (v3.4, `apt-get install -y etcd-server`) for integration tests: one member on 127.0.0.1 with
 * ephemeral client and peer ports and a temporary data dir. `stop()` / `start()` restart it on the same ports and
 * data; `close()` stops it and removes the dir. Writes go through the JSON gateway.
 *
 * Also a tiny HTTP proxy in front of it whose `/v3/watch` forwarding can be held, to force a watch to start from a
 * revision that has been compacted meanwhile, or muted, to play a half-open watch connection.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { terminate } from './process.js';

const ETCD = process.env.ETCD_BIN ?? 'etcd';

function assertEtcdInstalled(): void {
  const probe = spawnSync(ETCD, ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `etcd is required for the etcd integration tests but "${ETCD}" could not be run ` +
        `(${probe.error?.message ?? `exit ${probe.status}`}). Install it: apt-get install -y etcd-server`,
    );
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * POSTs JSON with a fresh connection (no agent keeps sockets open) and parses the JSON answer; `token` goes in the
 * `Authorization` header, as etcd's gateway expects once auth is enabled.
 */
export function postJson(
  url: string,
  body: unknown,
  timeoutMs = 5000,
  token?: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = token;
    const req = http.request(url, { method: 'POST', agent: false, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, json: text.length > 0 ? JSON.parse(text) : undefined });
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

export class EtcdServer {
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(clientPort: number, peerPort: number, dataDir: string) {
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.dataDir = dataDir;
  }

  /** Starts a fresh single-member etcd; throws a loud error if etcd is not installed. */
  static async start(): Promise<EtcdServer> {
    assertEtcdInstalled();
    const dir = await mkdtemp(path.join(tmpdir(), 'sidecarless-etcd-'));
    const server = new EtcdServer(await freePort(), await freePort(), dir);
    await server.start();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get address(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts (or restarts) the member on the same ports and data dir, and waits until it is healthy (≤ 15 s). */
  async start(): Promise<void> {
    if (this.#child !== undefined) return;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      ETCD,
      [
        '--name',
        'test',
        '--data-dir',
        path.join(this.dataDir, 'data'),
        '--listen-client-urls',
        this.url,
        '--advertise-client-urls',
        this.url,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `test=${peer}`,
        '--initial-cluster-state',
        'new',
        '--log-level',
        'warn',
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
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (this.#child !== child) throw new Error(`etcd exited during start-up:\n${this.#log}`);
      try {
        const res = await postJson(`${this.url}/v3/kv/range`, { key: b64('health') }, 1000);
        if (res.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`etcd did not become healthy within 15 s:\n${this.#log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops the member (SIGTERM, SIGKILL after 5 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    await terminate(child, 5000);
    this.#child = undefined;
  }

  /** Stops the member and removes its data dir. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  // Root's token once auth is enabled: the helper's own writes go as root.
  #token: string | undefined;

  async #call(api: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await postJson(`${this.url}${api}`, body, 5000, this.#token);
    if (res.status !== 200) throw new Error(`etcd ${api} answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json as Record<string, unknown>;
  }

  /**
   * Turns on etcd auth: a `root` user (password `rootpw`), and `user` with `password` allowed to read keys under
   * `prefix` only. The helper's later writes authenticate as root.
   */
  async enableAuth(user: string, password: string, prefix: string): Promise<void> {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    await this.#call('/v3/auth/user/add', { name: 'root', password: 'rootpw' });
    await this.#call('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await this.#call('/v3/auth/role/add', { name: 'readers' });
    await this.#call('/v3/auth/role/grant', {
      name: 'readers',
      perm: { permType: 'READ', key: b64(prefix), range_end: b64(end) },
    });
    await this.#call('/v3/auth/user/add', { name: user, password });
    await this.#call('/v3/auth/user/grant', { user, role: 'readers' });
    await this.#call('/v3/auth/enable', {});
    const auth = await this.#call('/v3/auth/authenticate', { name: 'root', password: 'rootpw' });
    this.#token = String(auth.token);
  }

  /** Puts a key (a Buffer for bytes that are not UTF-8); returns the new revision. */
  async put(key: string | Buffer, value: string | Buffer): Promise<number> {
    const res = await this.#call('/v3/kv/put', { key: b64(key), value: b64(value) });
    return Number((res.header as { revision: string }).revision);
  }

  /** Puts several keys in one transaction (one revision, one watch message). */
  async putAll(entries: Readonly<Record<string, string>>): Promise<number> {
    const success = Object.entries(entries).map(([key, value]) => ({
      request_put: { key: b64(key), value: b64(value) },
    }));
    const res = await this.#call('/v3/kv/txn', { success });
    return Number((res.header as { revision: string }).revision);
  }

  async delete(key: string | Buffer): Promise<number> {
    const res = await this.#call('/v3/kv/deleterange', { key: b64(key) });
    return Number((res.header as { revision: string }).revision);
  }

  /** Deletes every key under the prefix. */
  async deletePrefix(prefix: string): Promise<void> {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    await this.#call('/v3/kv/deleterange', { key: b64(prefix), range_end: b64(end) });
  }

  async revision(): Promise<number> {
    const res = await this.#call('/v3/kv/range', { key: b64('\0') });
    return Number((res.header as { revision: string }).revision);
  }

  async compact(revision: number): Promise<void> {
    await this.#call('/v3/kv/compaction', { revision: String(revision), physical: true });
  }
}

/**
 * An HTTP proxy to etcd whose `/v3/watch` requests can be held back while `holdWatch` is true, or muted while
 * `muteWatch` is true.
 */
export class EtcdProxy {
  readonly #server: http.Server;
  readonly #target: EtcdServer;
  readonly #held: Array<() => void> = [];
  holdWatch = false;
  /**
   * While true, a new watch gets etcd's response headers and then nothing: its body (the `created` message, events,
   * progress notifications) is read from etcd and dropped, so the stream stays open and silent, as a half-open
   * connection looks to the client.
   */
  muteWatch = false;
  port = 0;
  watchRequests = 0;

  private constructor(target: EtcdServer) {
    this.#target = target;
    this.#server = http.createServer((req, res) => {
      const mute = req.url === '/v3/watch' && this.muteWatch;
      const forward = () => {
        const upstream = http.request(
          { host: '127.0.0.1', port: this.#target.clientPort, method: req.method, path: req.url, headers: req.headers },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            if (mute) {
              res.flushHeaders();
              up.resume();
            } else {
              up.pipe(res);
            }
          },
        );
        upstream.on('error', () => res.destroy());
        res.on('close', () => upstream.destroy());
        req.pipe(upstream);
      };
      if (req.url === '/v3/watch') {
        this.watchRequests++;
        if (this.holdWatch) {
          this.#held.push(forward);
          return;
        }
      }
      forward();
    });
  }

  static async start(target: EtcdServer): Promise<EtcdProxy> {
    const proxy = new EtcdProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Watch requests waiting to be forwarded. */
  get held(): number {
    return this.#held.length;
  }

  /** Forwards every held watch request and stops holding. */
  release(): void {
    this.holdWatch = false;
    for (const forward of this.#held.splice(0)) forward();
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
