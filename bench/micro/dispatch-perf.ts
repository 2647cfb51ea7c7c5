/**
 * Where the dispatcher's extra time per request goes in situ, against `BalancedPool` in the same window (issue 14).
 *
 * The stubbed bench (dispatch-stubbed.ts) times the balancer's JavaScript with everything in cache; in a real run the
 * backends, the kernel and undici run between a request's dispatch and its response, and the same code costs several
 * times more. The e2e and interleaved benches give the total but not where it goes; a CPU profile of one contender at
 * a time gives where, but the shared machine's speed drifts by 20-50 % between two runs. Here both at once:
 *
 * - the contenders (`BalancedPool`, the dispatcher and, with `--baseline`, another copy's dispatcher) take turns in
 *   slices of `--slice` ms (closed loop, 32 in flight, 3 backends in a child process), each slice's start and end
 *   logged on the monotonic clock;
 * - the whole run is sampled by Linux `perf` (`cpu-clock`, 1999 Hz, call chains, the JIT's symbols from
 *   `--perf-basic-prof`), on the same clock;
 * - each sample of the main thread goes to the contender whose slice it fell in, and to a category by its innermost
 *   JavaScript frame: the library's own code (`src/` of either copy: whatever V8 inlined into it included),
 *   undici, Node's core, none (the kernel, V8's runtime and GC), other.
 *
 * Printed: µs of main-thread CPU per request by category, per contender, and the library's functions by µs per
 * request (with `--symbols`, also every innermost frame: V8's builtins and collector, Node's, the kernel's), the
 * largest difference between contenders first. Differences between contenders of one run are good to about 0.5 µs
 * a request (an A/A run: 0.2-0.3 %).
 *
 * `--fetch` compares fetch instead, as the e2e bench's overhead scenario does: Node's own fetch over one undici
 * `Pool` per backend against the client's `fetch` (and with `--baseline`, the other copy's). A fetch costs some 200
 * µs of main-thread CPU on a slow host, so differences under about 3 % are noise there (an A/A run, the same code
 * twice: 3 %).
 *
 * Needs `perf` (Debian `linux-perf`) with `cpu-clock` sampling allowed (`perf_event_paranoid` <= 2 for one's own
 * processes). `node --import tsx bench/micro/dispatch-perf.ts [-- --slices 80 --slice 150 --lean --floor --fetch
 * --symbols --baseline <src/index.ts>]`
 * (about a minute, then perf's processing).
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importBaseline } from '../baseline.js';
import { balancedFetch, rawFetch } from '../e2e/contenders.js';
import { closedLoop, type Send } from '../e2e/load.js';
import { checkFlags, positiveFlag } from '../flags.js';
import { type BenchContender, startBackends, startContender } from './backends.js';
import { floorContenders } from './floor.js';

const given = checkFlags(
  'dispatch-perf',
  { valued: ['slices', 'slice', 'baseline', 'child-log'], switches: ['lean', 'fetch', 'symbols', 'floor'] },
  `Usage: node --import tsx bench/micro/dispatch-perf.ts [-- <flags>]
  --slices <n>       slices per contender (default 80)
  --slice <ms>       slice length (default 150)
  --baseline <file>  also the dispatcher of another copy of the library (the path of its src/index.ts)
  --lean             also the lean dispatcher (retries, retry budget and outlier detection off)
  --floor            also the floor of any balancer: backends in turn, handlers passed on, to undici Pools
                     (\`pools\`) and to Clients of its own (\`clients\`, no Pool layer); see floor.ts
  --fetch            fetch instead: Node's fetch over raw undici Pools against the client's fetch
  --symbols          also the innermost frames (any code: V8, the kernel, Node) by µs per request
  --help             this text`,
);
const SLICES = Math.round(positiveFlag(given, 'slices', 80));
const SLICE_MS = positiveFlag(given, 'slice', 150);
const BASELINE = given.get('baseline') as string | undefined;
const CHILD_LOG = given.get('child-log') as string | undefined;
if (given.has('fetch') && (given.has('lean') || given.has('floor'))) {
  console.error('dispatch-perf: --lean and --floor add request() contenders; --fetch compares fetch alone');
  process.exit(2);
}
const CONCURRENCY = 32;

/** One contender of a slice: a request through it, its response read to the end. */
interface Sender {
  readonly send: Send;
  close(): Promise<void>;
}

function viaDispatcher(c: BenchContender): Sender {
  return {
    send: async () => {
      const res = await c.dispatcher.request({ origin: c.origin, path: '/bench', method: 'GET' });
      await res.body.dump();
      return { status: res.statusCode, backend: undefined };
    },
    close: () => c.close(),
  };
}

/** The load: runs under perf, writes `name startNs endNs requests` per slice to `log`. */
async function load(log: string): Promise<void> {
  const { child, addresses } = await startBackends(3);
  const baseline = await importBaseline(BASELINE);
  const contenders: [string, Sender][] = [];
  if (given.has('fetch')) {
    // The e2e bench's two fetch contenders (a slice's warm-up waits for the client's endpoints).
    const target = [...addresses];
    contenders.push(['raw-fetch', rawFetch(addresses)], ['client.fetch', balancedFetch({ target })]);
    if (baseline !== undefined) contenders.push(['baseline.fetch', balancedFetch({ target }, undefined, baseline)]);
  } else {
    contenders.push(
      ['BalancedPool', viaDispatcher(await startContender('balanced-pool', addresses))],
      ['dispatcher', viaDispatcher(await startContender('sidecarless', addresses))],
    );
    if (given.has('lean')) contenders.push(['lean', viaDispatcher(await startContender('lean', addresses))]);
    if (given.has('floor'))
      for (const [name, c] of floorContenders(addresses)) contenders.push([name, viaDispatcher(c)]);
    if (baseline !== undefined) {
      contenders.push([
        'baseline',
        viaDispatcher(await startContender('sidecarless', addresses, { create: baseline })),
      ]);
    }
  }
  // The e2e benches' closed loop (bounded in time, failures counted rather than thrown).
  const slice = async ([name, c]: [string, Sender], ms: number): Promise<number> => {
    const r = await closedLoop({ name, send: c.send, concurrency: CONCURRENCY, count: 1e7, durationMs: ms });
    if (r.failed > 0) throw new Error(`${name}: ${r.failed} requests failed (${JSON.stringify(r.failures)})`);
    return r.completed;
  };
  for (const c of contenders) await slice(c, 2000);
  const lines: string[] = [];
  for (let s = 0; s < SLICES; s++) {
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(s + k) % contenders.length] as [string, Sender];
      const start = process.hrtime.bigint();
      const n = await slice(contender, SLICE_MS);
      const [name] = contender;
      lines.push(`${name} ${start} ${process.hrtime.bigint()} ${n}`);
    }
  }
  writeFileSync(log, `${process.pid}\n${lines.join('\n')}\n`);
  await Promise.all(contenders.map(([, c]) => c.close()));
  child.kill();
}

interface Slice {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

const CATEGORIES = ['library', 'undici', 'node', 'none', 'other'] as const;
type Category = (typeof CATEGORIES)[number];

function category(frame: string | undefined): [Category, string] {
  if (frame === undefined) return ['none', ''];
  const name = frame.replace(/^JS:[*~^']?/, '');
  if (name.includes('/node_modules/undici/')) return ['undici', name];
  if (name.includes('/src/') && !name.includes('/node_modules/')) return ['library', name];
  if (name.includes('node:')) return ['node', name];
  return ['other', name];
}

/** Reads `perf script` output (tid, time, call chain) and the slice log; prints the table. */
function analyse(script: string, log: string): void {
  const [pidLine, ...rest] = readFileSync(log, 'utf8').trim().split('\n');
  const tid = (pidLine as string).trim();
  const slices: Slice[] = [];
  const requests = new Map<string, number>();
  const wallNs = new Map<string, number>();
  for (const line of rest) {
    const [name, start, end, n] = line.split(' ') as [string, string, string, string];
    slices.push({ name, start: Number(start), end: Number(end) });
    requests.set(name, (requests.get(name) ?? 0) + Number(n));
    wallNs.set(name, (wallNs.get(name) ?? 0) + Number(end) - Number(start));
  }
  slices.sort((a, b) => a.start - b.start);
  const byCategory = new Map<string, Map<Category, number>>();
  const byFunction = new Map<string, Map<string, number>>();
  const add = <K>(m: Map<string, Map<K, number>>, who: string, key: K): void => {
    let inner = m.get(who);
    if (inner === undefined) m.set(who, (inner = new Map()));
    inner.set(key, (inner.get(key) ?? 0) + 1);
  };
  const sliceAt = (t: number): Slice | undefined => {
    let lo = 0;
    let hi = slices.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = slices[mid] as Slice;
      if (t < s.start) hi = mid - 1;
      else if (t > s.end) lo = mid + 1;
      else return s;
    }
    return undefined;
  };
  // perf script: a header line "tid time:" then one frame per line (innermost first), then a blank line.
  let header: [string, number] | undefined;
  let firstJs: string | undefined;
  let innermost: string | undefined;
  const byInnermost = new Map<string, Map<string, number>>();
  const flush = (): void => {
    if (header === undefined) return;
    const [sampleTid, t] = header;
    const s = sampleTid === tid ? sliceAt(t) : undefined;
    if (s !== undefined) {
      const [cat, name] = category(firstJs);
      add(byCategory, s.name, cat);
      if (cat === 'library') add(byFunction, s.name, name.replace(/file:\/\/\/.*?\/src\//, 'src/'));
      add(byInnermost, s.name, `${cat}: ${(innermost ?? '?').replace(/file:\/\/\/.*?\/(src|node_modules)\//, '$1/')}`);
    }
    header = undefined;
    firstJs = undefined;
    innermost = undefined;
  };
  for (const line of script.split('\n')) {
    if (line.trim() === '') flush();
    else if (!line.startsWith('\t')) {
      const [sampleTid, time] = line.trim().split(/\s+/) as [string, string];
      header = [sampleTid, Math.round(Number.parseFloat(time) * 1e9)];
    } else if (firstJs === undefined) {
      const sym = line.trim().split(/\s+/).slice(1).join(' ');
      innermost ??= sym;
      if (sym.startsWith('JS:')) firstJs = sym;
    }
  }
  flush();
  const usPerSample = 1e6 / 1999;
  console.log(`dispatch-perf: ${SLICES} slices of ${SLICE_MS} ms per contender, node ${process.version}\n`);
  console.log(`| contender | requests | req/s | main thread µs / req | ${CATEGORIES.join(' | ')} |`);
  console.log(`|---|--:|--:|--:|${CATEGORIES.map(() => '--:').join('|')}|`);
  for (const [name, n] of requests) {
    const cats = byCategory.get(name) ?? new Map<Category, number>();
    const per = (samples: number): string => ((samples * usPerSample) / n).toFixed(2);
    const total = [...cats.values()].reduce((a, b) => a + b, 0);
    const rate = (n / ((wallNs.get(name) as number) / 1e9)).toFixed(0);
    console.log(
      `| ${name} | ${n} | ${rate} | ${per(total)} | ${CATEGORIES.map((c) => per(cats.get(c) ?? 0)).join(' | ')} |`,
    );
  }
  perFrame('library function (innermost JS frame)', byFunction, requests, usPerSample);
  if (given.has('symbols')) perFrame('innermost frame, by category', byInnermost, requests, usPerSample, 40);
}

/** Prints the top `top` frames by µs per request, a column per contender, the largest difference first. */
function perFrame(
  title: string,
  by: Map<string, Map<string, number>>,
  requests: Map<string, number>,
  usPerSample: number,
  top = 25,
): void {
  const names = [...by.keys()];
  const frames = new Set(names.flatMap((name) => [...(by.get(name) as Map<string, number>).keys()]));
  const us = (name: string, fn: string): number =>
    (((by.get(name) as Map<string, number>).get(fn) ?? 0) * usPerSample) / (requests.get(name) as number);
  // The largest difference between contenders first.
  const spread = (fn: string): number => {
    const v = names.map((n) => us(n, fn));
    return Math.max(...v) - Math.min(...v);
  };
  const rows = [...frames].sort((a, b) => spread(b) - spread(a));
  console.log(`\n| ${title} | ${names.join(' | ')} |`);
  console.log(`|---|${names.map(() => '--:').join('|')}|`);
  for (const fn of rows.slice(0, top)) console.log(`| ${fn} | ${names.map((n) => us(n, fn).toFixed(3)).join(' | ')} |`);
}

if (CHILD_LOG !== undefined) {
  await load(CHILD_LOG);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'dispatch-perf-'));
  const log = join(dir, 'slices.txt');
  try {
    const data = join(dir, 'perf.data');
    const own = process.argv.slice(2);
    const record = spawnSync(
      'perf',
      [
        'record',
        '-q',
        '-k',
        'CLOCK_MONOTONIC',
        '-g',
        '-e',
        'cpu-clock',
        '-F',
        '1999',
        '-o',
        data,
        '--',
        process.execPath,
        '--perf-basic-prof',
        // V8 would also write an isolate-*.log per isolate into the working directory.
        '--no-logfile-per-isolate',
        `--logfile=${join(dir, 'v8.log')}`,
        '--import',
        'tsx',
        process.argv[1] as string,
        ...own,
        '--child-log',
        log,
      ],
      { stdio: 'inherit' },
    );
    if (record.error !== undefined || record.status !== 0) {
      console.error(
        `dispatch-perf: perf record failed (${record.error?.message ?? `exit ${record.status}`}); is linux-perf installed?`,
      );
      process.exit(1);
    }
    const script = spawnSync('perf', ['script', '-i', data, '-F', 'tid,time,ip,sym', '--ns', '--no-demangle'], {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    if (script.status !== 0) {
      console.error(`dispatch-perf: perf script failed: ${script.stderr}`);
      process.exit(1);
    }
    analyse(script.stdout, log);
  } finally {
    // --perf-basic-prof leaves the JIT's symbol map behind, named by the process id the log starts with.
    const pid = existsSync(log) ? readFileSync(log, 'utf8').split('\n')[0] : undefined;
    if (pid !== undefined && /^\d+$/.test(pid)) rmSync(`/tmp/perf-${pid}.map`, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
