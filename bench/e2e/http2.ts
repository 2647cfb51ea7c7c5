/**
 * Scenario 6 of the e2e benchmark, HTTP/2 (issue 18): the same three TLS backends (`h2-backend.ts`, one process
 * each, speaking both HTTP/2 and HTTP/1.1) reached over HTTP/2 and over HTTP/1.1, through sidecarless's dispatcher
 * (`http2: true` or not) and through raw undici (one `Pool` per backend, `allowH2` with one connection and 100
 * streams, or plain), in one run: closed loop at `--concurrency`, warm-up, then `rounds` slices with the order
 * rotated and reversed between rounds and a full GC and a settle before each, as the overhead scenario. The certificate is made for the run with openssl.
 *
 * @module
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Dispatcher, Pool } from 'undici';
import { type ClientOptions, createClient } from '../../src/index.js';
import type { Contender } from './contenders.js';
import { removeDir, trackChild, trackDir } from './fleet.js';
import { closedLoop, type LoadResult, type SendResult } from './load.js';
import { closedPhase, collectAndSettle, type PhaseSummary, roundOrder, type Settings, summarize } from './scenarios.js';

const BACKEND_SCRIPT = fileURLToPath(new URL('./h2-backend.ts', import.meta.url));
const PATH = '/bench';
const NAME = 'svc';

export interface Http2Result {
  readonly backends: number;
  readonly concurrency: number;
  readonly phaseMs: number;
  readonly countPerRound: number | undefined;
  readonly rounds: number;
  readonly rows: readonly PhaseSummary[];
}

/** The row names, also used by the report. */
export const HTTP2_ROWS = {
  rawH1: 'undici request (raw Pool), HTTP/1.1',
  rawH2: 'undici request (raw Pool, allowH2), HTTP/2',
  ourH1: 'sidecarless dispatcher, HTTP/1.1',
  ourH2: 'sidecarless dispatcher, http2: true',
} as const;

async function startBackend(id: string, key: string, cert: string): Promise<{ address: string; stop(): void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BACKEND_SCRIPT, id, key, cert], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  trackChild(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`h2 backend ${id} did not start`)), 20_000);
    child.once('message', (m: { port: number }) => {
      clearTimeout(timer);
      resolve(m.port);
    });
    child.once('exit', (code) => reject(new Error(`h2 backend ${id} exited (${code})`)));
  });
  return { address: `127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

async function viaRequest(d: Dispatcher, opts: Dispatcher.RequestOptions): Promise<SendResult> {
  const { statusCode, headers, body } = await d.request(opts);
  await body.dump();
  const b = headers['x-backend'];
  return { status: statusCode, backend: Array.isArray(b) ? b[0] : b };
}

function rawPools(name: string, addresses: readonly string[], ca: string, h2: boolean): Contender {
  const pools = addresses.map(
    (a) =>
      new Pool(`https://${a}`, {
        connect: { ca, servername: NAME },
        ...(h2 ? { allowH2: true, connections: 1, pipelining: 100 } : {}),
      }),
  );
  let i = 0;
  return {
    name,
    client: undefined,
    send: () => viaRequest(pools[i++ % pools.length] as Pool, { path: PATH, method: 'GET' }),
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

function ours(name: string, options: ClientOptions): Contender {
  const client = createClient(options);
  const d = client.dispatcher;
  return {
    name,
    client,
    send: () => viaRequest(d, { origin: `https://${NAME}`, path: PATH, method: 'GET' }),
    close: () => client.close(),
  };
}

export async function http2Scenario(s: Settings): Promise<Http2Result> {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-bench-h2-'));
  trackDir(dir);
  const key = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${NAME}`,
      '-addext', `subjectAltName=DNS:${NAME}`, '-keyout', key, '-out', certPath], // prettier-ignore
    { stdio: 'ignore' },
  );
  const ca = readFileSync(certPath, 'utf8');
  const backends = await Promise.all(['h2-0', 'h2-1', 'h2-2'].map((id) => startBackend(id, key, certPath)));
  const addrs = backends.map((b) => b.address);
  const contenders = [
    rawPools(HTTP2_ROWS.rawH1, addrs, ca, false),
    rawPools(HTTP2_ROWS.rawH2, addrs, ca, true),
    ours(HTTP2_ROWS.ourH1, { target: addrs, tls: { ca } }),
    ours(HTTP2_ROWS.ourH2, { target: addrs, tls: { ca }, http2: true }),
  ];
  try {
    const phaseMs = Math.max(200, (s.durationS * 500) / s.rounds);
    const bounds = closedPhase(s, phaseMs);
    const runs = new Map<Contender, LoadResult[]>(contenders.map((c) => [c, []]));
    for (const c of contenders) {
      await closedLoop({
        name: `http2 warm-up ${c.name}`,
        send: c.send,
        concurrency: s.concurrency,
        count: 1e7,
        durationMs: s.warmMs,
      });
    }
    for (let round = 0; round < s.rounds; round++) {
      const order = roundOrder(contenders, round);
      for (const c of order) {
        await collectAndSettle(c, s);
        runs
          .get(c)
          ?.push(await closedLoop({ name: `http2 ${c.name}`, send: c.send, concurrency: s.concurrency, ...bounds }));
      }
    }
    return {
      backends: backends.length,
      concurrency: s.concurrency,
      phaseMs,
      countPerRound: s.count,
      rounds: s.rounds,
      rows: contenders.map((c) => summarize(c.name, runs.get(c) ?? [])),
    };
  } finally {
    await Promise.all(contenders.map((c) => c.close().catch(() => {})));
    for (const b of backends) b.stop();
    removeDir(dir);
  }
}
