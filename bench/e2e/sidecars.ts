/**
 * nginx and HAProxy as a local sidecar in front of the benchmark backends: each runs as a child process in the
 * foreground with a config written to a fresh temp dir (logs and pid file there too), listening on a free
 * 127.0.0.1 port, round robin over the backends with keep-alive connections to them. Missing binaries are reported
 * as `undefined` from {@link findBinary} so the scenario can say "skipped" instead of failing.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDir, trackChild, trackDir } from './fleet.js';

export type SidecarKind = 'nginx' | 'haproxy';

const CANDIDATES: Record<SidecarKind, readonly string[]> = {
  nginx: ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'],
  haproxy: ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy', '/usr/local/bin/haproxy'],
};

/** The binary's path, or undefined when it is not installed. */
export function findBinary(kind: SidecarKind): string | undefined {
  for (const p of CANDIDATES[kind]) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Next candidate.
    }
  }
  return undefined;
}

/** A free ephemeral port on 127.0.0.1 (bound and released; the sidecar binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

function nginxConfig(dir: string, port: number, backends: readonly string[]): string {
  return `worker_processes 1;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream backends {
${backends.map((b) => `    server ${b} max_fails=0;`).join('\n')}
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} reuseport;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
    }
  }
}
`;
}

function haproxyConfig(dir: string, port: number, backends: readonly string[]): string {
  return `global
  nbthread 1
  maxconn 8192
  pidfile ${join(dir, 'haproxy.pid')}
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${backends.map((b, i) => `  server s${i} ${b}`).join('\n')}
`;
}

/** A running sidecar. */
export class Sidecar {
  readonly kind: SidecarKind;
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #dir: string;

  private constructor(kind: SidecarKind, port: number, child: ChildProcess, dir: string) {
    this.kind = kind;
    this.port = port;
    this.#child = child;
    this.#dir = dir;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts `kind` in front of `backends` (host:port) and waits until it accepts connections (10 s at most). */
  static async start(kind: SidecarKind, binary: string, backends: readonly string[]): Promise<Sidecar> {
    const dir = mkdtempSync(join(tmpdir(), `sidecarless-e2e-${kind}-`));
    trackDir(dir);
    let child: ChildProcess | undefined;
    try {
      const port = await freePort();
      const conf = join(dir, `${kind}.conf`);
      let args: string[];
      if (kind === 'nginx') {
        writeFileSync(conf, nginxConfig(dir, port, backends));
        args = ['-p', dir, '-c', conf, '-g', 'daemon off;', '-e', join(dir, 'error.log')];
      } else {
        writeFileSync(conf, haproxyConfig(dir, port, backends));
        args = ['-f', conf, '-db'];
      }
      const stderr: Buffer[] = [];
      const started = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      trackChild(started);
      started.stderr?.on('data', (c: Buffer) => {
        if (stderr.length < 64) stderr.push(c);
      });
      const deadline = Date.now() + 10_000;
      while (!(await canConnect(port))) {
        if (started.exitCode !== null || started.signalCode !== null) {
          throw new Error(`${kind} exited at start: ${Buffer.concat(stderr).toString().trim().slice(0, 500)}`);
        }
        if (Date.now() > deadline) throw new Error(`${kind} did not listen on ${port} within 10 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return new Sidecar(kind, port, started, dir);
    } catch (err) {
      if (child !== undefined) await stopChild(child);
      removeDir(dir);
      throw err;
    }
  }

  /** Stops the process (SIGTERM, SIGKILL after 2 s) and removes its temp dir. */
  async stop(): Promise<void> {
    await stopChild(this.#child);
    removeDir(this.#dir);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
  await gone;
  clearTimeout(timer);
}
