/**
 * Before/after ratios of picks on a loaded machine: `node --import tsx bench/micro/pickers-compare.ts --old DIR`,
 * where DIR holds an older `src/` (e.g. `git archive 0e952f9 src | tar -x -C /tmp/old`).
 *
 * Wall-clock ns on a shared machine are noise, so this compares the older and the current pickers in one process,
 * on the main thread's CPU time (Linux `/proc/thread-self/schedstat`; wall time where it is missing), in interleaved
 * rounds (the order alternating), keeping each case's lowest round. The targets are the picker bench's: N endpoints
 * shaped as subchannels (in-flight counts in a shared table, where a side has them; `--plain`: plain objects),
 * weights 1..5 cycling for the weighted cases, fixed random in-flight counts 0..9, a latency EWMA per target (every
 * other one without an estimate in the `cold` case). Each case has its own loop function (its own type feedback).
 *
 * Flags: --old DIR (required)  --new DIR (default: this checkout)  --n 10,100,1000,10000  --rounds 7  --picks 1000000
 *   --plain
 *   --cases least-request-w,least-request,peak-ewma,peak-ewma-cold,weighted-random,ring-hash-key
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type LoadModule, targetMaker } from './slotted.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const OLD = flag('old');
if (OLD === undefined) throw new Error('--old DIR (a directory holding an older src/) is required');
const NS = (flag('n') ?? '10,100,1000,10000').split(',').map(Number);
const ROUNDS = Number(flag('rounds') ?? 7);
const PICKS = Number(flag('picks') ?? 4_000_000);
/** Custom targets' shape (a plain `inFlight` field) on both sides, instead of the subchannels' shared counts. */
const PLAIN = process.argv.includes('--plain');
const CASES = (flag('cases') ?? 'least-request-w,least-request,peak-ewma,peak-ewma-cold').split(',');

const SCHEDSTAT = '/proc/thread-self/schedstat';
const mainCpu = existsSync(SCHEDSTAT);
/** The main thread's CPU time, ns. */
const cpuNs = (): number => (mainCpu ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) : performance.now() * 1e6);

/** A policy of either side (the two sides' types are distinct). */
interface AnyPolicy {
  build(targets: unknown[], config: unknown, env: unknown): unknown;
}

interface Side {
  registry: { configure(o: unknown): { policy: AnyPolicy; config: unknown } };
  PeakEwma: new (o: unknown) => { observe(ms: number): void };
  createEndpoint: (o: unknown) => { key: string };
  seededRandom: (seed: number) => () => number;
  clock: unknown;
  load: LoadModule;
}

async function load(root: string): Promise<Side> {
  const at = (p: string) => import(pathToFileURL(resolve(root, 'src', p)).href);
  const [registry, loadMod, endpoint, runtime] = await Promise.all([
    at('pickers/registry.ts'),
    at('pickers/load.ts'),
    at('common/endpoint.ts'),
    at('common/runtime.ts'),
  ]);
  return {
    registry: registry.createPickerRegistry(),
    PeakEwma: loadMod.PeakEwma,
    createEndpoint: endpoint.createEndpoint,
    seededRandom: runtime.seededRandom,
    clock: runtime.systemClock,
    load: loadMod,
  };
}

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The picker bench's targets, built with one side's classes. */
function targets(side: Side, n: number, weighted: boolean, cold: boolean): unknown[] {
  const rnd = seeded(n);
  const make = targetMaker(side.load, PLAIN);
  return Array.from({ length: n }, (_, i) => {
    const endpoint = side.createEndpoint({
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      weight: weighted ? 1 + (i % 5) : 1,
    });
    const load = new side.PeakEwma({ clock: side.clock });
    const rtt = 5 + rnd() * 50;
    if (!cold || i % 2 === 0) load.observe(rtt);
    return make({ key: endpoint.key, endpoint, load }, Math.floor(rnd() * 10));
  });
}

const CASE_DEFS: Record<string, { policy: unknown; weighted: boolean; cold: boolean; keyed?: boolean }> = {
  'least-request-w': { policy: 'least-request', weighted: true, cold: false },
  'least-request-w-bias2': { policy: { name: 'least-request', activeRequestBias: 2 }, weighted: true, cold: false },
  'least-request': { policy: 'least-request', weighted: false, cold: false },
  'peak-ewma': { policy: 'peak-ewma', weighted: false, cold: false },
  'peak-ewma-cold': { policy: 'peak-ewma', weighted: false, cold: true },
  'weighted-random': { policy: 'weighted-random', weighted: true, cold: false },
  'ring-hash-key': { policy: { name: 'ring-hash', hashKey: { header: 'x-key' } }, weighted: false, cold: false },
};

const HEX = '0123456789abcdef';
const rk = seeded(42);
const contexts = Array.from({ length: 65536 }, () => {
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) bytes[i] = HEX.charCodeAt(Math.floor(rk() * 16));
  return { method: 'GET', path: '/', authority: 'svc', headers: { 'x-key': bytes.toString('latin1') } };
});

function loop(picker: unknown): (calls: number) => unknown {
  return new Function(
    'p',
    'inputs',
    'let j = 0; return (calls) => { let last; for (let i = 0; i < calls; i++) last = p.pick(inputs[j++ & 65535]); return last; };',
  )(picker, contexts) as (calls: number) => unknown;
}

const NEW = flag('new') ?? '.';
const sides = { old: await load(OLD), new: await load(NEW) };
const sink: unknown[] = [];
process.stdout.write(
  `pickers-compare: old=${OLD} new=${NEW} N=${NS.join(',')} rounds=${ROUNDS} picks=${PICKS} clock=${mainCpu ? 'main-thread CPU' : 'wall'} node=${process.version}\n`,
);
for (const n of NS) {
  for (const name of CASES) {
    const def = CASE_DEFS[name];
    if (def === undefined) throw new Error(`unknown case ${name}`);
    const runs = (['old', 'new'] as const).map((label) => {
      const side = sides[label];
      const { policy, config } = side.registry.configure(def.policy);
      const picker = policy.build(targets(side, n, def.weighted, def.cold), config, {
        random: side.seededRandom(1),
        clock: side.clock,
      });
      const fn = loop(picker);
      sink[0] = fn(PICKS >> 1); // warm up
      return { label, fn, best: Number.POSITIVE_INFINITY };
    });
    for (let r = 0; r < ROUNDS; r++) {
      for (const run of r % 2 === 0 ? runs : [...runs].reverse()) {
        const t = cpuNs();
        sink[0] = run.fn(PICKS);
        run.best = Math.min(run.best, (cpuNs() - t) / PICKS);
      }
    }
    const [o, w] = runs as [(typeof runs)[0], (typeof runs)[0]];
    process.stdout.write(
      `${name.padEnd(22)} N=${String(n).padEnd(6)} old ${o.best.toFixed(1).padStart(6)} ns  new ${w.best.toFixed(1).padStart(6)} ns  new/old ${(w.best / o.best).toFixed(3)}\n`,
    );
  }
}
