/**
 * The balancer's own cost per request, with undici's I/O stubbed out (issue 14): `Pool.prototype.dispatch` is
 * replaced, in this process only, by a stub that answers every request in a microtask (`onConnect`, `onHeaders` 200,
 * one `onData`, `onComplete`). What is left is each dispatcher's JavaScript above undici's `Pool`: no sockets, no
 * parser, no other process, so a few rounds give figures to a few nanoseconds where `bench:dispatch` (real
 * connections on a shared 2-core machine) moves by a microsecond between runs.
 *
 * Contenders: a raw `Pool` (the stub alone, the floor), undici's `BalancedPool` over 3 pools, the sidecarless
 * dispatcher with its defaults and lean (retries, retry budget and outlier detection off), and with `--baseline`
 * the same two rows of another copy of the library. Closed loop, 32 in flight, a minimal legacy handler (no
 * `undici.request()` body stream: that cost is the same for every contender). Rounds are interleaved, the order
 * rotated; the first two are warm-up. Reports the median ns per request, its interquartile range, and the difference
 * from `BalancedPool` of the same run.
 *
 * `node --import tsx bench/micro/dispatch-stubbed.ts [--rounds 9] [--count 100000] [--baseline <another copy's
 * src/index.ts>] [--evict <KiB>] [--evict-code <n>] [--only <contender>] [--json <file>]`. `--cpu-prof` on it
 * profiles the balancer's code alone. `--evict` reads a buffer of that many KiB before each answer (1024: this machine's L2), `--evict-code` runs
 * n distinct functions of about 1 KiB of machine code each (400: the instruction cache and most of the L2), evicting
 * what the request left in the caches as the real I/O path does (undici's, Node's and the kernel's code and data run
 * between a request's dispatch and its answer); their own time is left out of the figures. `--only` runs one
 * contender (its row's name), e.g. under `valgrind --tool=callgrind --cache-sim=yes` with `node --single-threaded`
 * and two `--count`s, whose difference gives instructions and cache misses per request (docs/benchmarks.md).
 *
 * @module
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BalancedPool, type Dispatcher, Pool } from 'undici';
import { createClient } from '../../src/index.js';
import { importBaseline } from '../baseline.js';
import { median, middleHalf } from '../stats.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    count: { type: 'string', default: '100000' },
    baseline: { type: 'string' },
    json: { type: 'string' },
    evict: { type: 'string', default: '0' },
    'evict-code': { type: 'string', default: '0' },
    only: { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const COUNT = Number(args.count);
const WARMUP = 2;
const EVICT_KIB = Number(args.evict);
if (!(EVICT_KIB >= 0)) throw new Error('--evict: KiB, 0 or more');
const IN_FLIGHT = 32;
if (!(ROUNDS >= 1 && COUNT >= IN_FLIGHT)) throw new Error(`--rounds >= 1 and --count >= ${IN_FLIGHT}`);

const HEADERS = [Buffer.from('content-length'), Buffer.from('2')];
const BODY = Buffer.from('ok');
interface StubHandler {
  onConnect?(abort: () => void): void;
  onHeaders?(status: number, headers: Buffer[], resume: () => void, text: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[]): void;
}
const noop = (): void => {};
// `--evict`: before each answer, a read of every cache line of a buffer this large, so that the answer finds the
// caches as a real one does after the kernel, the parser and the backends have run (the same for every contender;
// the differences between contenders are what is read).
// The sweep's own time is left out of the figures (it is far longer than the differences, and varies).
const sweep = new Uint8Array(EVICT_KIB * 1024);
let swept = 0;
let sweepNs = 0;
// `--evict-code <n>`: n distinct functions of about 1 KiB of optimized machine code each, all run before each answer,
// so that the answer also finds the instruction cache as a real one does (undici's, Node's and the kernel's code
// ran in between).
const CODE = Number(args['evict-code']);
if (!(Number.isInteger(CODE) && CODE >= 0)) throw new Error('--evict-code: a number of functions, 0 or more');
const bodies = Array.from({ length: CODE }, (_, k) => {
  const lines = Array.from(
    { length: 24 },
    (_, j) => `x = (x * ${((k * 31 + j * 7) % 97) + 3} + ${k + j}) | 0; if (x === ${k * 1000 + j}) y++;`,
  );
  return new Function('x', `let y = 0; ${lines.join(' ')} return x + y;`) as (x: number) => number;
});
for (const f of bodies) for (let i = 0; i < 20000; i++) swept += f(i) === 0.5 ? 1 : 0;
function evict(): void {
  const start = process.hrtime.bigint();
  let sum = 0;
  for (let i = 0; i < sweep.length; i += 64) sum += sweep[i] as number;
  for (let k = 0; k < bodies.length; k++) sum += (bodies[k] as (x: number) => number)(k) === 0.5 ? 1 : 0;
  swept += sum;
  sweepNs += Number(process.hrtime.bigint() - start);
}
(Pool.prototype as unknown as { dispatch: (o: unknown, h: StubHandler) => boolean }).dispatch = (_o, h) => {
  queueMicrotask(() => {
    if (EVICT_KIB > 0 || CODE > 0) evict();
    h.onConnect?.(noop);
    h.onHeaders?.(200, HEADERS, noop, 'OK');
    h.onData?.(BODY);
    h.onComplete?.([]);
  });
  return true;
};

const ADDRESSES = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];
type Create = typeof createClient;
const baseline: Create | undefined = await importBaseline(args.baseline);
const LEAN = { retry: false, retryBudget: false, outlierDetection: false } as const;

interface Contender {
  readonly name: string;
  readonly dispatcher: Dispatcher;
  readonly origin: string;
}

async function sidecarless(name: string, create: Create, lean: boolean): Promise<Contender> {
  const client = create({ target: [...ADDRESSES], ...(lean ? LEAN : {}) });
  // The stub never connects: ready() only waits for the resolver's set.
  await client.ready(5000);
  return { name, dispatcher: client.dispatcher as unknown as Dispatcher, origin: 'http://svc' };
}

const contenders: Contender[] = [
  { name: 'undici Pool (the stub alone)', dispatcher: new Pool(`http://${ADDRESSES[0]}`), origin: '' },
  { name: 'undici BalancedPool', dispatcher: new BalancedPool(ADDRESSES.map((a) => `http://${a}`)), origin: '' },
  await sidecarless('sidecarless dispatcher', createClient, false),
  await sidecarless('sidecarless dispatcher, lean', createClient, true),
];
if (baseline !== undefined) {
  contenders.push(await sidecarless('baseline: sidecarless dispatcher', baseline, false));
  contenders.push(await sidecarless('baseline: sidecarless dispatcher, lean', baseline, true));
}
for (const c of contenders) if (c.origin === '') (c as { origin: string }).origin = `http://${ADDRESSES[0]}`;
// `--only <name>`: that contender alone (its row's name exactly), e.g. for an instruction count under callgrind.
if (args.only !== undefined) {
  const kept = contenders.filter((c) => c.name === args.only);
  if (kept.length === 0) throw new Error(`--only: no contender named "${args.only}"`);
  contenders.splice(0, contenders.length, ...kept);
}

/**
 * The caller's handler: a class, as undici's own (`RequestHandler`). A literal of arrow functions made per request
 * cost the stub alone about 1,100 ns a request instead of 120 (measured on Node 20), which would drown the rest.
 */
class Caller {
  readonly #loop: Loop;
  constructor(loop: Loop) {
    this.#loop = loop;
  }
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.#loop.completed();
  }
  onError(err: Error): void {
    this.#loop.failed(err);
  }
}

/** One round: `COUNT` requests, `IN_FLIGHT` at a time. */
class Loop {
  #sent = 0;
  #done = 0;
  readonly #start = process.hrtime.bigint();
  readonly #sweepAtStart = sweepNs;
  readonly #options: Dispatcher.DispatchOptions;
  constructor(
    readonly contender: Contender,
    readonly resolve: (nsPerRequest: number) => void,
    readonly reject: (err: Error) => void,
  ) {
    this.#options = { origin: contender.origin, path: '/stub', method: 'GET' };
    for (let i = 0; i < IN_FLIGHT; i++) this.#send();
  }
  #send(): void {
    this.#sent++;
    this.contender.dispatcher.dispatch(this.#options, new Caller(this) as unknown as Dispatcher.DispatchHandler);
  }
  completed(): void {
    if (++this.#done === COUNT) {
      this.resolve((Number(process.hrtime.bigint() - this.#start) - (sweepNs - this.#sweepAtStart)) / COUNT);
    } else if (this.#sent < COUNT) this.#send();
  }
  failed(err: Error): void {
    this.reject(err);
  }
}

const round = (contender: Contender): Promise<number> =>
  new Promise((resolve, reject) => void new Loop(contender, resolve, reject));

const samples: number[][] = contenders.map(() => []);
for (let r = 0; r < ROUNDS + WARMUP; r++) {
  for (let k = 0; k < contenders.length; k++) {
    const i = (r + k) % contenders.length;
    const ns = await round(contenders[i] as Contender);
    if (r >= WARMUP) (samples[i] as number[]).push(ns);
  }
}

const rows = contenders.map((c, i) => {
  const s = samples[i] as number[];
  const [q1, q3] = middleHalf(s);
  return { name: c.name, nsPerRequest: median(s), q1, q3 };
});
const bp = rows.find((r) => r.name === 'undici BalancedPool')?.nsPerRequest ?? Number.NaN;
console.log(
  `dispatch bench, undici's I/O stubbed out: ${COUNT} requests x ${ROUNDS} rounds (median), ${IN_FLIGHT} in flight, node ${process.version}\n`,
);
console.log('| contender | ns / request | middle half of the rounds | vs BalancedPool |\n|---|--:|--:|--:|');
for (const r of rows) {
  const d = r.nsPerRequest - bp;
  console.log(
    `| ${r.name} | ${r.nsPerRequest.toFixed(0)} | ${r.q1.toFixed(0)}-${r.q3.toFixed(0)} | ${d >= 0 ? '+' : ''}${d.toFixed(0)} |`,
  );
}
if (args.json !== undefined) {
  writeFileSync(args.json, JSON.stringify({ node: process.version, count: COUNT, rounds: ROUNDS, rows }, null, 2));
  console.log(`\nJSON written to ${args.json}`);
}
if (swept !== 0) console.log('(unreachable: the sweep buffer is zeros)');
// The clients' resolvers and the pools hold nothing open that would keep the process alive, but do not wait on it.
process.exit(0);
