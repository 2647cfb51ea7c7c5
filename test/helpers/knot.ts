/**
 * A real authoritative DNS server for integration tests: knotd (Knot DNS 3.x) started as a child process on
 * 127.0.0.1 with an ephemeral port, its config, zone files and control socket in a temp directory.
 *
 * Needs the `knot` Debian package (`apt-get install -y knot`); {@link requireKnot} fails loudly without it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const KNOTD_PATHS = ['/usr/sbin/knotd', '/usr/local/sbin/knotd', '/usr/bin/knotd'];
const KNOTC_PATHS = ['/usr/sbin/knotc', '/usr/local/sbin/knotc', '/usr/bin/knotc'];

/** Paths of knotd and knotc; throws a loud, actionable error when knot is not installed. */
export function requireKnot(): { knotd: string; knotc: string } {
  const knotd = KNOTD_PATHS.find((p) => existsSync(p));
  const knotc = KNOTC_PATHS.find((p) => existsSync(p));
  if (knotd === undefined || knotc === undefined) {
    throw new Error(
      'knotd/knotc not found: the DNS integration tests need a real DNS server. Run `apt-get install -y knot` ' +
        '(Debian/Ubuntu) and re-run the tests.',
    );
  }
  return { knotd, knotc };
}

/** A port free for both UDP and TCP on 127.0.0.1 (checked by binding both). */
export async function freeUdpTcpPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as net.AddressInfo).port));
    });
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve());
      } catch {
        resolve();
      }
    });
    if (ok) return port;
  }
  throw new Error('no free UDP+TCP port found on 127.0.0.1');
}

export interface KnotServer {
  readonly port: number;
  /** `127.0.0.1:port`, for `nameservers` and target authorities. */
  readonly address: string;
  readonly dir: string;
  /** Rewrites a zone's records (the SOA with a bumped serial is added) and reloads it; resolves once served. */
  setZone(zone: string, records: string): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same zones. */
  restart(): Promise<void>;
  /** Server log so far, for failure messages. */
  log(): string;
}

/** The zone's owner name with its trailing dot (`.` for the root zone). */
const fqdn = (zone: string) => (zone === '.' ? '.' : `${zone}.`);
/** The zone's file name (`root.zone` for the root zone). */
const fileOf = (zone: string) => (zone === '.' ? 'root.zone' : `${zone}.zone`);

function zoneText(zone: string, serial: number, records: string): string {
  return [
    `$ORIGIN ${fqdn(zone)}`,
    '$TTL 5',
    `@ 3600 IN SOA ns${zone === '.' ? '' : '.'}${fqdn(zone)} admin${zone === '.' ? '' : '.'}${fqdn(zone)} ${serial} 3600 600 86400 1`,
    '@ 3600 IN NS ns',
    'ns 3600 IN A 127.0.0.1',
    records,
    '',
  ].join('\n');
}

/**
 * Starts knotd serving `zones` (name -> record lines relative to the zone origin, e.g.
 * `"web 5 IN A 127.0.0.2"`; `'.'` is the root zone, so that any name outside the others gets NXDOMAIN as from a
 * recursive resolver). Every zone has SOA MINIMUM 1 s, so negative answers are cached for 1 s.
 */
export async function startKnot(zones: Record<string, string>): Promise<KnotServer> {
  const { knotd, knotc } = requireKnot();
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-knot-'));
  const port = await freeUdpTcpPort();
  const socket = join(dir, 'knot.sock');
  const serials = new Map<string, number>();
  for (const [zone, records] of Object.entries(zones)) {
    serials.set(zone, 1);
    await writeFile(join(dir, fileOf(zone)), zoneText(zone, 1, records));
  }
  const conf = [
    'server:',
    `    rundir: "${dir}"`,
    '    user: root:root',
    `    listen: 127.0.0.1@${port}`,
    `    pidfile: "${join(dir, 'knot.pid')}"`,
    '    udp-workers: 1',
    '    tcp-workers: 1',
    '    background-workers: 1',
    'database:',
    `    storage: "${join(dir, 'db')}"`,
    'control:',
    `    listen: "${socket}"`,
    'log:',
    '  - target: stderr',
    '    any: info',
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    '    zonefile-sync: -1',
    '    zonefile-load: whole',
    '    journal-content: none',
    '    semantic-checks: off',
    'zone:',
    ...Object.keys(zones).map((z) => `  - domain: "${fqdn(z)}"\n    file: "${fileOf(z)}"`),
    '',
  ].join('\n');
  const confPath = join(dir, 'knot.conf');
  await writeFile(confPath, conf);
  // As root knotd switches to `user`; as anyone else drop that line.
  if (process.getuid?.() !== 0) await writeFile(confPath, conf.replace('    user: root:root\n', ''));

  let child: ChildProcess | undefined;
  let output = '';
  const knotc$ = (...args: string[]) => run(knotc, ['-s', socket, '-t', '5', ...args], { timeout: 10_000 });

  const start = async () => {
    const proc = spawn(knotd, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    proc.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`knotd exited with ${proc.exitCode}:\n${output}`);
      // Ready when the control socket answers and every zone is loaded.
      const ok = await knotc$('zone-status').then(
        (r) => Object.keys(zones).every((z) => r.stdout.includes(`[${fqdn(z)}]`) && !r.stdout.includes('serial: none')),
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`knotd did not become ready within 10 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), 3000);
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };

  await start();
  return {
    port,
    address: `127.0.0.1:${port}`,
    dir,
    async setZone(zone, records) {
      const serial = (serials.get(zone) ?? 1) + 1;
      serials.set(zone, serial);
      await writeFile(join(dir, fileOf(zone)), zoneText(zone, serial, records));
      await knotc$('zone-reload', zone);
      const deadline = Date.now() + 5000;
      for (;;) {
        const r = await knotc$('zone-status', zone).catch(() => ({ stdout: '' }));
        if (r.stdout.includes(`serial: ${serial}`)) return;
        if (Date.now() > deadline) throw new Error(`zone ${zone} did not reach serial ${serial}:\n${output}`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    log: () => output,
  };
}

/** Stops the server and removes its directory. */
export async function disposeKnot(server: KnotServer | undefined): Promise<void> {
  if (server === undefined) return;
  await server.stop();
  await rm(server.dir, { recursive: true, force: true });
}
