/**
 * The per-request cost of the balanced dispatcher (and fetch), against raw undici in the same run (issue 14).
 *
 * Closed loop: `--concurrency` workers send requests back to back through `undici.request` (or the platform `fetch`)
 * with each contender's dispatcher, to `--backends` HTTP/1.1 servers in a child process (so the client's CPU is
 * this process's only). Each contender runs `--rounds` rounds of `--count` requests, interleaved with the others;
 * the median round is reported. Per round:
 * - CPU µs per request: `process.cpuUsage()` (user + system) of this process over the round;
 * - bytes allocated per request: the growth of V8's used heap plus whatever every collection during the round freed
 *   (`v8.GCProfiler`), after a full collection, as `heap.ts` measures bytes per pick;
 * - req/s and p99 / p99.9 latency (ms, send to body end).
 * Ratios are against raw undici (one `Pool` per backend, in turn) and undici's `BalancedPool` of the same run.
 *
 * `npm run bench:dispatch [-- --count 20000 --rounds 5 --concurrency 32 --backends 2 --json out.json --fetch
 * --only <name substring> --baseline <another copy's src/index.ts> --style method|url]`. `--baseline` adds the sidecarless rows of
 * another copy of the library (say, the previous commit's, from `git archive`), for a before/after in one run.
 *
 * @module
 */
import { writeFileSync } from 'node:fs';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { parseArgs } from 'node:util';
import { BalancedPool, type Dispatcher, Pool, request } from 'undici';
import { type Client, createClient } from '../../src/index.js';
import { importBaseline } from '../baseline.js';
import { startBackends } from './backends.js';
import { collectGarbage } from './heap.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
    backends: { type: 'string', default: '2' },
    json: { type: 'string' },
    fetch: { type: 'boolean', default: false },
    only: { type: 'string' },
    baseline: { type: 'string' },
    style: { type: 'string', default: 'method' },
  },
});
const COUNT = Number(args.count);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
const BACKENDS = Number(args.backends);
const PATH = '/bench';

interface Contender {
  readonly name: string;
  /** Sends one request and reads the whole body. */
  readonly send: () => Promise<unknown>;
  readonly client?: Client;
  close(): Promise<void>;
}

/**
 * `--style method` (the default, as the e2e bench does): `dispatcher.request({ origin, path, method })`, options of
 * one shape. `--style url`: undici's top-level `request(url, { dispatcher })`, whose options object is a spread that
 * V8 gives a hidden class of its own on nearly every request (measured: 280 of 300), which every dispatcher then
 * reads through megamorphic loads.
 */
const TOP_LEVEL = args.style === 'url';

async function viaRequest(origin: string, dispatcher: Dispatcher, url = `${origin}${PATH}`): Promise<number> {
  const res = TOP_LEVEL
    ? await request(url, { dispatcher })
    : await dispatcher.request({ origin, path: PATH, method: 'GET' });
  await res.body.dump();
  return res.statusCode;
}

async function viaFetch(url: string, dispatcher: Dispatcher): Promise<number> {
  const res = await fetch(url, { dispatcher } as unknown as RequestInit);
  await res.arrayBuffer();
  return res.status;
}

const RAW = 'undici Pool (raw)';
const BALANCED_POOL = 'undici BalancedPool';
const RAW_FETCH = 'fetch (raw undici Pool)';

type CreateClient = typeof createClient;
const baseline: CreateClient | undefined = await importBaseline(args.baseline);

function contenders(addresses: readonly string[]): Contender[] {
  const list: Contender[] = [];
  {
    const pools = addresses.map((a) => new Pool(`http://${a}`));
    const origins = addresses.map((a) => `http://${a}`);
    const urls = addresses.map((a) => `http://${a}${PATH}`);
    let i = 0;
    list.push({
      name: RAW,
      send: () => {
        const k = i++ % pools.length;
        return viaRequest(origins[k] as string, pools[k] as Pool, urls[k] as string);
      },
      close: async () => void (await Promise.all(pools.map((p) => p.close()))),
    });
  }
  {
    const bp = new BalancedPool(addresses.map((a) => `http://${a}`));
    const origin = `http://${addresses[0]}`;
    const url = `${origin}${PATH}`;
    list.push({ name: BALANCED_POOL, send: () => viaRequest(origin, bp, url), close: () => bp.close() });
  }
  const sidecarless = (name: string, options: Record<string, unknown>, create: CreateClient = createClient): void => {
    const client = create({ target: [...addresses], ...options });
    const d = client.dispatcher;
    list.push({
      name,
      client,
      send: () => viaRequest('http://svc', d, `http://svc${PATH}`),
      close: () => client.close(),
    });
  };
  const lean = { retry: false, retryBudget: false, outlierDetection: false };
  sidecarless('sidecarless dispatcher', {});
  sidecarless('sidecarless dispatcher, lean (retry, retry budget, outlier detection off)', lean);
  if (baseline !== undefined) {
    sidecarless('baseline: sidecarless dispatcher', {}, baseline);
    sidecarless('baseline: sidecarless dispatcher, lean', lean, baseline);
  }
  if (args.fetch) {
    const pools = addresses.map((a) => new Pool(`http://${a}`));
    const urls = addresses.map((a) => `http://${a}${PATH}`);
    let i = 0;
    list.push({
      name: RAW_FETCH,
      send: () => {
        const k = i++ % pools.length;
        return viaFetch(urls[k] as string, pools[k] as Pool);
      },
      close: async () => void (await Promise.all(pools.map((p) => p.close()))),
    });
    const viaClientFetch = (name: string, create: CreateClient): void => {
      const client = create({ target: [...addresses] });
      const url = `http://svc${PATH}`;
      list.push({
        name,
        client,
        send: async () => {
          const res = await client.fetch(url);
          await res.arrayBuffer();
          return res.status;
        },
        close: () => client.close(),
      });
    };
    viaClientFetch('sidecarless fetch', createClient);
    if (baseline !== undefined) viaClientFetch('baseline: sidecarless fetch', baseline);
  }
  const only = args.only;
  return only === undefined
    ? list
    : list.filter((c) => c.name === RAW || c.name === BALANCED_POOL || c.name === RAW_FETCH || c.name.includes(only));
}

interface Round {
  readonly cpuUsPerReq: number;
  readonly bytesPerReq: number;
  readonly rps: number;
  readonly p99: number;
  readonly p999: number;
  readonly failed: number;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

async function round(c: Contender, count: number): Promise<Round> {
  const latencies = new Float64Array(count);
  let sent = 0;
  let done = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (sent < count) {
      sent++;
      const t0 = performance.now();
      try {
        await c.send();
      } catch {
        failed++;
      }
      latencies[done++] = performance.now() - t0;
    }
  };
  collectGarbage();
  const profiler = new GCProfiler();
  profiler.start();
  const heapBefore = getHeapStatistics().used_heap_size;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const heapAfter = getHeapStatistics().used_heap_size;
  let freed = 0;
  for (const gc of profiler.stop().statistics) {
    freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
  }
  latencies.sort();
  return {
    cpuUsPerReq: (used.user + used.system) / count,
    bytesPerReq: Math.max(0, heapAfter - heapBefore + freed) / count,
    rps: (count / elapsed) * 1000,
    p99: quantile(latencies, 0.99),
    p999: quantile(latencies, 0.999),
    failed,
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

interface Row extends Round {
  readonly name: string;
  readonly rounds: Round[];
}

async function main(): Promise<void> {
  const { child, addresses } = await startBackends(BACKENDS);
  const list = contenders(addresses);
  try {
    for (const c of list) await c.client?.ready(5000);
    // Warm-up: connections open, code optimised.
    for (const c of list) await round(c, Math.min(COUNT, 5000));
    const rounds = new Map<string, Round[]>(list.map((c) => [c.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of list) rounds.get(c.name)?.push(await round(c, COUNT));
    }
    const rows: Row[] = list.map((c) => {
      const rs = rounds.get(c.name) ?? [];
      return {
        name: c.name,
        rounds: rs,
        cpuUsPerReq: median(rs.map((x) => x.cpuUsPerReq)),
        bytesPerReq: median(rs.map((x) => x.bytesPerReq)),
        rps: median(rs.map((x) => x.rps)),
        p99: median(rs.map((x) => x.p99)),
        p999: median(rs.map((x) => x.p999)),
        failed: rs.reduce((a, x) => a + x.failed, 0),
      };
    });
    report(rows);
  } finally {
    for (const c of list) await c.close();
    child.disconnect();
  }
}

function report(rows: Row[]): void {
  const by = (name: string): Row | undefined => rows.find((r) => r.name === name);
  const raw = by(RAW) as Row;
  const bp = by(BALANCED_POOL) as Row;
  const rawFetch = by(RAW_FETCH);
  const f = (n: number, d = 2): string => n.toFixed(d);
  const lines = [
    `dispatch bench: ${COUNT} requests x ${ROUNDS} rounds (median), concurrency ${CONCURRENCY}, ${BACKENDS} backends, node ${process.version}`,
    '',
    '| contender | req/s | vs raw | vs BalancedPool | CPU µs/req | CPU vs BalancedPool µs | bytes/req | bytes vs BalancedPool | p99 ms | p99.9 ms | p99 vs raw | failed |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const out = rows.map((r) => {
    const base = r.name.includes('fetch') && rawFetch !== undefined ? rawFetch : raw;
    const o = {
      name: r.name,
      rps: r.rps,
      rpsVsRaw: r.rps / base.rps,
      rpsVsBalancedPool: r.rps / bp.rps,
      cpuUsPerReq: r.cpuUsPerReq,
      cpuVsBalancedPoolUs: r.cpuUsPerReq - bp.cpuUsPerReq,
      bytesPerReq: r.bytesPerReq,
      bytesVsBalancedPool: r.bytesPerReq - bp.bytesPerReq,
      p99: r.p99,
      p999: r.p999,
      p99VsRaw: r.p99 / base.p99,
      failed: r.failed,
      rounds: r.rounds,
    };
    lines.push(
      `| ${o.name} | ${f(o.rps, 0)} | ${f(o.rpsVsRaw)}x | ${f(o.rpsVsBalancedPool)}x | ${f(o.cpuUsPerReq, 1)} | ${o.cpuVsBalancedPoolUs >= 0 ? '+' : ''}${f(o.cpuVsBalancedPoolUs, 1)} | ${f(o.bytesPerReq, 0)} | ${o.bytesVsBalancedPool >= 0 ? '+' : ''}${f(o.bytesVsBalancedPool, 0)} | ${f(o.p99)} | ${f(o.p999)} | ${f(o.p99VsRaw)}x | ${o.failed} |`,
    );
    return o;
  });
  console.log(lines.join('\n'));
  const json = {
    count: COUNT,
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    backends: BACKENDS,
    node: process.version,
    rows: out,
  };
  if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(json, null, 2)}\n`);
}

await main();
