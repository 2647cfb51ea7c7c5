/**
 * Same-window ratios (issue 14): the overhead scenario's contenders in short slices interleaved within one window,
 * so a drift of the shared machine's speed (in a full e2e run raw undici alone ranged from 21,000 to 43,000 req/s
 * over its rounds) falls on every contender alike. The e2e overhead scenario measures each contender in a phase of
 * its own (0.6 s after a full GC and a settle), which also yields bytes and latency percentiles per contender, but
 * its per-round ratios spread over about +/-10 %; here they spread over about +/-5 %.
 *
 * Method: 3 local backends (`fleet.ts`), closed loop at `--concurrency`. Each contender is warmed up (2 s). Each
 * round: a full GC, then `--settle` ms of each contender's load unmeasured, then `--slices` slices of `--slice` ms per
 * contender, in an order rotated every slice and reversed every other one. A contender's round figure is its
 * completed requests over its slices' time; its ratio is that over raw undici's (`request`) or raw fetch's of the
 * same round, and its CPU the client process's CPU per request over its slices minus raw's. The report is the median
 * of the rounds and the middle half. No bytes per request (garbage made in one slice is collected in another).
 *
 * `npm run bench:interleaved [-- --rounds 20 --slices 6 --slice 100 --settle 150 --concurrency 32 --fetch
 * --baseline <file> --no-lean --json <file>]` (about 2 minutes; 3 with `--fetch`). `--fetch` adds raw undici `fetch`
 * and the balanced `fetch` as a second group, their ratio against raw fetch. `--baseline` adds the dispatcher of
 * another copy of the library (its `src/index.ts`, say the previous commit's from `git archive`) to the request
 * group: a before/after measured in the same window, the only comparison here fine enough for changes of a few
 * percent. `--no-lean` leaves the lean dispatcher out (a shorter run).
 *
 * @module
 */
import { writeFileSync } from 'node:fs';
import { importBaseline } from '../baseline.js';
import { checkFlags, positiveFlag } from '../flags.js';
import { balancedDispatcher, balancedFetch, balancedPool, type Contender, rawFetch, rawRequest } from './contenders.js';
import { killAllChildren, startFleet } from './fleet.js';
import { closedLoop } from './load.js';
import { fullGc, LEAN_DISPATCHER } from './scenarios.js';
import { median, middleHalf } from '../stats.js';

const given = checkFlags(
  'bench:interleaved',
  {
    valued: ['rounds', 'slices', 'slice', 'settle', 'concurrency', 'json', 'baseline'],
    switches: ['fetch', 'no-lean'],
  },
  `Usage: npm run bench:interleaved [-- <flags>]
  --rounds <n>       rounds, each a figure per contender (default 20)
  --slices <n>       slices per contender and round (default 6)
  --slice <ms>       slice length (default 100)
  --settle <ms>      each contender's unmeasured load after the round's full GC (default 150)
  --concurrency <n>  closed-loop workers (default 32)
  --fetch            also raw fetch against the balanced fetch
  --baseline <file>  also the dispatcher of another copy of the library (the path of its src/index.ts)
  --no-lean          without the lean dispatcher
  --json <file>      the figures as JSON
  --help             this text`,
);
const flag = (name: string, fallback: number): number => positiveFlag(given, name, fallback);
const ROUNDS = Math.round(flag('rounds', 20));
const SLICES = Math.round(flag('slices', 6));
const SLICE_MS = flag('slice', 100);
const SETTLE_MS = flag('settle', 150);
const CONCURRENCY = Math.round(flag('concurrency', 32));
const FETCH = given.has('fetch');
const JSON_OUT = given.get('json') as string | undefined;
const BASELINE = given.get('baseline') as string | undefined;
const baseline = await importBaseline(BASELINE);

interface Row {
  readonly name: string;
  /** The contender its ratios are against (raw undici `request`, or raw fetch). */
  readonly against: string;
  readonly ratio: number[];
  readonly cpuUs: number[];
}

const load = (c: Contender, ms: number): ReturnType<typeof closedLoop> =>
  closedLoop({ name: c.name, send: c.send, concurrency: CONCURRENCY, count: 1e7, durationMs: ms });

/** Runs `group` (its first member is the reference) for every round; a row per contender. */
async function measure(group: readonly Contender[]): Promise<Row[]> {
  for (const c of group) await load(c, 2000);
  const ratio: number[][] = group.map(() => []);
  const cpuUs: number[][] = group.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    fullGc();
    for (const c of group) await load(c, SETTLE_MS);
    const done = group.map(() => 0);
    const ms = group.map(() => 0);
    const cpuMs = group.map(() => 0);
    for (let k = 0; k < SLICES; k++) {
      const order = group.map((_, i) => (i + k + round) % group.length);
      if (k % 2 === 1) order.reverse();
      for (const i of order) {
        const r = await load(group[i] as Contender, SLICE_MS);
        done[i] = (done[i] as number) + r.completed;
        ms[i] = (ms[i] as number) + r.elapsedMs;
        cpuMs[i] = (cpuMs[i] as number) + r.cpuUserMs + r.cpuSystemMs;
      }
    }
    const rate = (i: number): number => (done[i] as number) / (ms[i] as number);
    const perRequestUs = (i: number): number => ((cpuMs[i] as number) * 1000) / Math.max(1, done[i] as number);
    group.forEach((_, i) => {
      (ratio[i] as number[]).push(rate(i) / rate(0));
      (cpuUs[i] as number[]).push(perRequestUs(i) - perRequestUs(0));
    });
  }
  const against = (group[0] as Contender).name;
  return group.map((c, i) => ({ name: c.name, against, ratio: ratio[i] as number[], cpuUs: cpuUs[i] as number[] }));
}

const fleet = await startFleet(3, 'i');
const rows: Row[] = [];
const contenders: Contender[] = [];
try {
  const addrs = fleet.map((b) => b.address);
  const requestGroup = [rawRequest(addrs), balancedDispatcher({ target: addrs }), balancedPool(addrs)];
  if (!given.has('no-lean')) {
    const lean = { target: addrs, retry: false, retryBudget: false, outlierDetection: false } as const;
    requestGroup.push(balancedDispatcher(lean, LEAN_DISPATCHER));
  }
  if (baseline !== undefined) {
    requestGroup.push(balancedDispatcher({ target: addrs }, 'baseline: sidecarless dispatcher', baseline));
  }
  contenders.push(...requestGroup);
  rows.push(...(await measure(requestGroup)));
  if (FETCH) {
    const fetchGroup = [rawFetch(addrs), balancedFetch({ target: addrs })];
    contenders.push(...fetchGroup);
    rows.push(...(await measure(fetchGroup)));
  }
} finally {
  await Promise.all(contenders.map((c) => c.close().catch(() => {})));
  killAllChildren();
}

console.log(
  `interleaved: ${ROUNDS} rounds x ${SLICES} slices of ${SLICE_MS} ms per contender, concurrency ${CONCURRENCY}, node ${process.version}\n`,
);
// Against BalancedPool too, round by round (the request group only).
const bp = rows.find((r) => r.name === 'undici BalancedPool');
const vsBalancedPool = (r: Row): number[] | undefined =>
  bp === undefined || r.against !== bp.against ? undefined : r.ratio.map((x, k) => x / (bp.ratio[k] as number));
console.log(
  '| contender | against | req/s ratio (median) | middle half | vs BalancedPool (median) | client CPU µs / req over it (median) |',
);
console.log('|---|---|--:|--:|--:|--:|');
const f = (x: number): string => x.toFixed(3);
for (const r of rows) {
  if (r.name === r.against) continue;
  const cpu = median(r.cpuUs);
  const vs = vsBalancedPool(r);
  console.log(
    `| ${r.name} | ${r.against} | ${f(median(r.ratio))}x | ${middleHalf(r.ratio).map(f).join('-')} | ${vs === undefined ? '-' : `${f(median(vs))}x`} | ${cpu >= 0 ? '+' : ''}${cpu.toFixed(2)} |`,
  );
}
// The before/after of a change, round by round (`--baseline`).
const base = rows.find((r) => r.name === 'baseline: sidecarless dispatcher');
const current = rows.find((r) => r.name === 'sidecarless dispatcher');
if (base !== undefined && current !== undefined) {
  const vsBase = current.ratio.map((x, k) => x / (base.ratio[k] as number));
  const cpu = current.cpuUs.map((x, k) => x - (base.cpuUs[k] as number));
  console.log(
    `\nsidecarless dispatcher vs the baseline's: req/s ${f(median(vsBase))}x (middle half ${middleHalf(vsBase).map(f).join('-')}), client CPU ${median(cpu) >= 0 ? '+' : ''}${median(cpu).toFixed(2)} µs / req`,
  );
}
if (JSON_OUT !== undefined) {
  const out = rows.map((r) => ({ ...r, vsBalancedPool: vsBalancedPool(r) }));
  writeFileSync(
    JSON_OUT,
    JSON.stringify({ node: process.version, rounds: ROUNDS, slices: SLICES, rows: out }, null, 2),
  );
  console.log(`\nJSON written to ${JSON_OUT}`);
}
process.exit(0);
