/**
 * The five e2e scenarios of issue #9. Each takes the shared backend fleet (reset to healthy, zero latency before
 * it starts) and the run settings, and returns plain data for the JSON and the report. A scenario that cannot run
 * a contender (a missing proxy binary, an unregistered picker policy) reports it as skipped with the reason.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type ClientOptions, StaticResolver } from '../../src/index.js';
import {
  balancedDispatcher,
  balancedFetch,
  balancedPool,
  type Contender,
  rawFetch,
  rawRequest,
  viaProxy,
} from './contenders.js';
import type { Backend } from './fleet.js';
import type { CdfPoint } from './histogram.js';
import { closedLoop, type LoadResult, type OnResult, openLoop, type Timeline } from './load.js';
import { findBinary, Sidecar, type SidecarKind } from './sidecars.js';
import { median, middleHalf } from '../stats.js';

export interface Settings {
  readonly smoke: boolean;
  /** Base phase length, s; every scenario's phases are derived from it. */
  readonly durationS: number;
  readonly concurrency: number;
  readonly rate: number;
  readonly rounds: number;
  readonly warmMs: number;
  /**
   * Unmeasured load right after the full GC that precedes each measured phase of the overhead and http2 scenarios, ms
   * (see {@link collectAndSettle}).
   */
  readonly settleMs: number;
  /**
   * Count mode (`--count`): every measured phase sends this many requests (overhead: per contender and round)
   * instead of running for a derived duration; undefined in duration mode.
   */
  readonly count: number | undefined;
  /** Count mode: the longest a closed-loop phase may run before it ends short of `count`, ms. */
  readonly maxPhaseMs: number;
  /** Picker policies registered in `createPickerRegistry()`. */
  readonly policies: readonly string[];
}

/** One round's figures of a phase measured in rounds (the overhead and http2 scenarios). Latencies in ms. */
export interface RoundFigures {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly cpuPer1kMs: number;
  readonly bytesPerRequest: number;
}

/**
 * Summary of one load phase, for JSON and tables. Latencies in ms. A phase measured in rounds reports its median
 * round: req/s, p50, p99, p99.9, CPU and bytes are each the median of the rounds' figures (one disturbed round on a
 * shared machine moves a median of rounds less than a sum), `max` and the counts are over every round, and `rounds`
 * keeps each round's figures so that ratios between contenders can be taken round by round ({@link roundRatio}).
 */
export interface PhaseSummary {
  readonly name: string;
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  readonly cpuPer1kMs: number;
  /** Heap bytes the client allocated per completed request. */
  readonly bytesPerRequest: number;
  readonly elapsedMs: number;
  /** Each round's figures, in the order the rounds ran. */
  readonly rounds: readonly RoundFigures[];
}

export interface Skipped {
  readonly name: string;
  readonly skipped: string;
}

export { median };

/**
 * `a`'s figure over `b`'s, round by round, and the median of those ratios: contenders measured in the same round ran
 * within seconds of each other, so a slow stretch of the machine moves both sides of a round's ratio together.
 * Falls back to the ratio of the medians when the round counts differ.
 */
export function roundRatio(
  a: PhaseSummary,
  b: PhaseSummary,
  figure: (r: RoundFigures) => number = (r) => r.rps,
): number {
  if (a.rounds.length === 0 || a.rounds.length !== b.rounds.length) {
    return figure(medianRound(a)) / figure(medianRound(b));
  }
  return median(a.rounds.map((r, i) => figure(r) / figure(b.rounds[i] as RoundFigures)));
}

/**
 * The middle half of the round-by-round values `pair(a's round, b's round)` (first and third quartile), to print
 * beside a median: how far one round's comparison strays on this machine. `undefined` with fewer than 4 rounds.
 */
export function roundSpread(
  a: PhaseSummary,
  b: PhaseSummary,
  pair: (x: RoundFigures, y: RoundFigures) => number,
): [number, number] | undefined {
  if (a.rounds.length < 4 || a.rounds.length !== b.rounds.length) return undefined;
  return middleHalf(a.rounds.map((r, i) => pair(r, b.rounds[i] as RoundFigures)));
}

/**
 * The median over the rounds of `a`'s figure minus `b`'s in the same round (a paired difference, as
 * {@link roundRatio} is a paired ratio); the difference of the medians when the round counts differ.
 */
export function roundDifference(a: PhaseSummary, b: PhaseSummary, figure: (r: RoundFigures) => number): number {
  if (a.rounds.length === 0 || a.rounds.length !== b.rounds.length) {
    return figure(medianRound(a)) - figure(medianRound(b));
  }
  return median(a.rounds.map((r, i) => figure(r) - figure(b.rounds[i] as RoundFigures)));
}

function medianRound(s: PhaseSummary): RoundFigures {
  return {
    rps: s.rps,
    p50: s.p50,
    p99: s.p99,
    p999: s.p999,
    cpuPer1kMs: s.cpuPer1kMs,
    bytesPerRequest: s.bytesPerRequest,
  };
}

export function summarize(name: string, results: readonly LoadResult[]): PhaseSummary {
  const [first, ...rest] = results;
  if (first === undefined) throw new Error(`no results for ${name}`);
  const ms = (us: number) => us / 1000;
  // Each round's percentiles before the histograms are merged into the first.
  const rounds: RoundFigures[] = results.map((r) => ({
    rps: r.elapsedMs > 0 ? (r.completed / r.elapsedMs) * 1000 : 0,
    p50: ms(r.latency.percentile(50)),
    p99: ms(r.latency.percentile(99)),
    p999: ms(r.latency.percentile(99.9)),
    cpuPer1kMs: r.completed === 0 ? 0 : ((r.cpuUserMs + r.cpuSystemMs) / r.completed) * 1000,
    bytesPerRequest: r.completed === 0 ? 0 : r.allocatedBytes / r.completed,
  }));
  const h = first.latency;
  for (const r of rest) h.add(r.latency);
  const sum = (f: (r: LoadResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const completed = sum((r) => r.completed);
  const elapsed = sum((r) => r.elapsedMs);
  const failures: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  const of = (f: (r: RoundFigures) => number) => median(rounds.map(f));
  return {
    name,
    requests: completed,
    ok: sum((r) => r.ok),
    failed: sum((r) => r.failed),
    failures,
    rps: of((r) => r.rps),
    p50: of((r) => r.p50),
    p90: ms(h.percentile(90)),
    p99: of((r) => r.p99),
    p999: of((r) => r.p999),
    max: ms(h.max),
    mean: ms(h.mean),
    cpuPer1kMs: of((r) => r.cpuPer1kMs),
    bytesPerRequest: of((r) => r.bytesPerRequest),
    elapsedMs: elapsed,
    rounds,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `action` `ms` after now; the returned promise settles when it has run (or rejects with its error). */
function after(ms: number, action: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    setTimeout(() => action().then(resolve, reject), ms);
  });
}

/**
 * An open-loop phase: its schedule is fixed, so a request count and a length are the same thing. Count mode turns
 * `--count` into the length at `rate`; events placed at fractions of the phase stay where they were meant to be.
 */
function openPhase(s: Settings, ms: number): { count: number; durationMs: number } {
  if (s.count === undefined) return { count: Math.ceil((s.rate * ms) / 1000), durationMs: ms };
  return { count: s.count, durationMs: Math.ceil((s.count * 1000) / s.rate) };
}

/**
 * A closed-loop phase of nominal length `ms`: in duration mode it runs `ms` (the count, 100 requests per ms, is a
 * backstop loopback never reaches); in count mode it sends `share` × `--count` requests, bounded by `--max-phase`.
 */
export function closedPhase(s: Settings, ms: number, share = 1): { count: number; durationMs: number } {
  if (s.count === undefined) return { count: Math.ceil(ms * 100), durationMs: ms };
  return { count: Math.max(1, Math.round(s.count * share)), durationMs: s.maxPhaseMs };
}

/**
 * Actions placed at fractions of a closed-loop phase: by time in duration mode, by completed requests in count
 * mode (where the phase's length is not known in advance). `end()` settles the actions a phase cut short by its
 * time bound never reached, without running them, so nothing waits on them forever.
 */
function milestones(s: Settings, phaseMs: number, count: number) {
  const pending: Array<{ at: number; run: () => void; skip: () => void }> = [];
  let completed = 0;
  return {
    at(fraction: number, action: () => Promise<void>): Promise<void> {
      if (s.count === undefined) return after(phaseMs * fraction, action);
      return new Promise<void>((resolve, reject) => {
        pending.push({
          at: Math.floor(count * fraction),
          run: () => void action().then(resolve, reject),
          skip: resolve,
        });
      });
    },
    /** Called once per completed request. */
    tick(): void {
      completed++;
      for (let i = pending.length - 1; i >= 0; i--) {
        const m = pending[i] as (typeof pending)[number];
        if (completed < m.at) continue;
        pending.splice(i, 1);
        m.run();
      }
    },
    end(): void {
      for (const m of pending.splice(0)) m.skip();
    },
  };
}

async function resetAll(backends: readonly Backend[], config: Parameters<Backend['reset']>[0] = {}): Promise<void> {
  await Promise.all(backends.map((b) => b.reset(config)));
}

async function withContender<T>(make: () => Contender, use: (c: Contender) => Promise<T>): Promise<T> {
  const c = make();
  try {
    return await use(c);
  } finally {
    // A bounded close: a contender wedged by a failed phase must not hang the run.
    const closing = c.close().catch(() => {});
    await Promise.race([closing, sleep(5_000)]);
    if (c.client !== undefined) await c.client.destroy().catch(() => {});
  }
}

/** The overhead row with the request layer's defaults turned off, to show where the cost is. */
export const LEAN_DISPATCHER = 'sidecarless dispatcher, lean (retry, retry budget, outlier detection off)';

// ---- 1. overhead --------------------------------------------------------------------------------------------

export interface OverheadResult {
  readonly backends: number;
  readonly concurrency: number;
  readonly phaseMs: number;
  /** Count mode: requests per contender and round (each slice bounded by `--max-phase`). */
  readonly countPerRound: number | undefined;
  readonly rounds: number;
  readonly rows: ReadonlyArray<PhaseSummary | Skipped>;
}

const DISPLAY_ORDER = [
  'undici request (raw)',
  'sidecarless dispatcher',
  LEAN_DISPATCHER,
  'fetch (raw undici Pool)',
  'sidecarless fetch',
  'undici BalancedPool',
];

/** A contender's place in the overhead table (sidecars last, in the order they were started). */
function displayRank(name: string): number {
  const i = DISPLAY_ORDER.indexOf(name);
  return i === -1 ? DISPLAY_ORDER.length : i;
}

export async function overhead(fleet: readonly Backend[], s: Settings): Promise<OverheadResult> {
  const backends = fleet.slice(0, 3);
  await resetAll(fleet);
  const addrs = backends.map((b) => b.address);
  const rows: Array<PhaseSummary | Skipped> = [];
  const sidecars: Sidecar[] = [];
  const makers: Array<() => Contender> = [
    // The contenders the targets compare (raw undici, the dispatcher, BalancedPool; raw and sidecarless fetch) are
    // neighbours in this order, and stay neighbours as roundOrder rotates and reverses it: a target's ratio compares
    // phases run one right after the other.
    () => balancedPool(addrs),
    () => balancedDispatcher({ target: addrs }),
    () => rawRequest(addrs),
    () =>
      balancedDispatcher({ target: addrs, retry: false, retryBudget: false, outlierDetection: false }, LEAN_DISPATCHER),
    () => rawFetch(addrs),
    () => balancedFetch({ target: addrs }),
  ];
  try {
    for (const kind of ['nginx', 'haproxy'] as SidecarKind[]) {
      const bin = findBinary(kind);
      if (bin === undefined) {
        rows.push({ name: `${kind} sidecar`, skipped: `${kind} not installed` });
        continue;
      }
      const sc = await Sidecar.start(kind, bin, addrs);
      sidecars.push(sc);
      makers.push(() => viaProxy(sc.address, `${kind} sidecar (undici request)`));
    }
    const contenders = makers.map((m) => m());
    try {
      const phaseMs = Math.max(200, (s.durationS * 750) / s.rounds);
      const bounds = closedPhase(s, phaseMs);
      const runs = new Map<Contender, LoadResult[]>();
      for (const c of contenders) {
        runs.set(c, []);
        await closedLoop({
          name: `overhead warm-up ${c.name}`,
          send: c.send,
          concurrency: s.concurrency,
          count: 1e7,
          durationMs: s.warmMs,
        });
      }
      for (let round = 0; round < s.rounds; round++) {
        // Rotate the order each round so no contender always runs first (or after the same neighbour).
        const order = roundOrder(contenders, round);
        for (const c of order) {
          await collectAndSettle(c, s);
          const r = await closedLoop({
            name: `overhead ${c.name}`,
            send: c.send,
            concurrency: s.concurrency,
            ...bounds,
          });
          runs.get(c)?.push(r);
        }
      }
      // Printed in the order the tables have always had: raw undici first, then sidecarless, BalancedPool, sidecars.
      const shown = [...contenders].sort((a, b) => displayRank(a.name) - displayRank(b.name));
      rows.unshift(...shown.map((c) => summarize(c.name, runs.get(c) ?? [])));
      return {
        backends: backends.length,
        concurrency: s.concurrency,
        phaseMs,
        countPerRound: s.count,
        rounds: s.rounds,
        rows,
      };
    } finally {
      await Promise.all(contenders.map((c) => Promise.race([c.close().catch(() => {}), sleep(5_000)])));
    }
  } finally {
    await Promise.all(sidecars.map((sc) => sc.stop()));
  }
}

// ---- 2. one slow backend -------------------------------------------------------------------------------------

export interface SlowRun {
  readonly policy: string;
  readonly healthy: PhaseSummary;
  readonly slow: PhaseSummary;
  /** Share of requests the slow backend served while it was slow. */
  readonly slowShareDuringWindow: number;
  readonly cdf: readonly CdfPoint[];
  readonly healthyCdf: readonly CdfPoint[];
  readonly timeline: Timeline | undefined;
  /** The slow window, ms since the start of the slow phase. */
  readonly window: readonly [number, number];
}

export interface SlowResult {
  readonly backends: number;
  readonly rate: number;
  readonly latency: string;
  readonly slowFactor: number;
  readonly slowBackend: string;
  readonly phaseMs: number;
  readonly healthyMs: number;
  readonly runs: ReadonlyArray<SlowRun | Skipped>;
}

const SLOW_LATENCY = { kind: 'lognormal', medianMs: 5, sigma: 0.25 } as const;

export async function slowBackend(fleet: readonly Backend[], s: Settings): Promise<SlowResult> {
  const backends = fleet.slice(0, 10);
  const victim = backends[backends.length - 1] as Backend;
  const addrs = backends.map((b) => b.address);
  const slowPhase = openPhase(s, s.durationS * 1250);
  const phaseMs = slowPhase.durationMs;
  // The all-healthy phase is 0.4x the slow one, in count mode too.
  const healthyPhase =
    s.count === undefined
      ? openPhase(s, s.durationS * 500)
      : openPhase({ ...s, count: Math.max(1, Math.round(s.count * 0.4)) }, 0);
  const healthyMs = healthyPhase.durationMs;
  const bucketMs = phaseMs / 30;
  const runs: Array<SlowRun | Skipped> = [];
  const policies: Array<[string, () => Contender]> = [];
  for (const p of ['round-robin', 'least-request', 'peak-ewma']) {
    if (!s.policies.includes(p)) runs.push({ name: p, skipped: `picker policy "${p}" is not registered` });
    else policies.push([p, () => balancedDispatcher({ target: addrs, picker: p }, `sidecarless ${p}`)]);
  }
  policies.push(['BalancedPool', () => balancedPool(addrs)]);
  for (const [policy, make] of policies) {
    await resetAll(backends, { latency: SLOW_LATENCY, slowFactor: 10 });
    await resetAll(fleet.slice(10));
    const run = await withContender(make, async (c) => {
      await closedLoop({
        name: `slow warm-up ${policy}`,
        send: c.send,
        concurrency: 4,
        count: 1e6,
        durationMs: s.warmMs,
      });
      const healthy = await openLoop({
        name: `slow-backend all healthy ${policy}`,
        send: c.send,
        rate: s.rate,
        ...healthyPhase,
      });
      const healthyCdf = healthy.latency.cdf();
      const t0 = performance.now();
      const window: [number, number] = [0, 0];
      const on = after(phaseMs / 3, async () => {
        await victim.configure({ slow: true });
        window[0] = performance.now() - t0;
      });
      const off = after((2 * phaseMs) / 3, async () => {
        await victim.configure({ slow: false });
        window[1] = performance.now() - t0;
      });
      let inWindow = 0;
      let victimInWindow = 0;
      const onResult: OnResult = (r, _e, t) => {
        if (t >= window[0] && window[0] > 0 && (window[1] === 0 || t < window[1])) {
          inWindow++;
          if (r?.backend === victim.id) victimInWindow++;
        }
      };
      const slow = await openLoop({
        name: `slow-backend ${policy}`,
        send: c.send,
        rate: s.rate,
        ...slowPhase,
        timelineBucketMs: bucketMs,
        onResult,
      });
      await Promise.all([on, off]);
      const cdf = slow.latency.cdf();
      return {
        policy,
        healthy: summarize(`${policy} all healthy`, [healthy]),
        slow: summarize(`${policy} one slow`, [slow]),
        slowShareDuringWindow: inWindow === 0 ? 0 : victimInWindow / inWindow,
        cdf,
        healthyCdf,
        timeline: slow.timeline,
        window,
      } satisfies SlowRun;
    });
    runs.push(run);
  }
  await resetAll(fleet);
  return {
    backends: backends.length,
    rate: s.rate,
    latency: `log-normal, median ${SLOW_LATENCY.medianMs} ms, sigma ${SLOW_LATENCY.sigma}`,
    slowFactor: 10,
    slowBackend: victim.id,
    phaseMs,
    healthyMs,
    runs,
  };
}

// ---- 3. one failing backend ----------------------------------------------------------------------------------

/**
 * Envoy's outlier defaults (10 s sweep, 30 s base ejection) scaled down so an ejected endpoint can return within a
 * loopback phase (scenarios 3 and 4); everything else stays at its default.
 */
function scaledOutlierDetection(s: Settings): { intervalMs: number; baseEjectionTimeMs: number } {
  return s.smoke ? { intervalMs: 200, baseEjectionTimeMs: 300 } : { intervalMs: 1000, baseEjectionTimeMs: 2000 };
}

/**
 * The faults of scenario 3, each on the one failing backend from the onset to the heal: half its answers 503; half
 * its connections reset without an answer; a fifth of its requests stall for {@link STALL_MS} (twice the per-try
 * timeout, so sidecarless abandons and retries them) before the socket is destroyed; its listener closed (refused).
 */
export const FAULTS = ['50% 503', 'resets', 'stalls', 'hard down (refused)'] as const;

/** Per-try timeout of the sidecarless client in scenario 3 (off by default): what turns a stall into a retry. */
export const PER_TRY_TIMEOUT_MS = 250;
/** How long a stalled request hangs before the backend destroys its socket. */
export const STALL_MS = 2 * PER_TRY_TIMEOUT_MS;
const RESET_RATE = 0.5;
const STALL_RATE = 0.2;

async function injectFault(victim: Backend, fault: FailingRun['fault'], on: boolean): Promise<void> {
  switch (fault) {
    case '50% 503':
      return victim.configure({ errorRate: on ? 0.5 : 0 });
    case 'resets':
      return victim.configure({ resetRate: on ? RESET_RATE : 0 });
    case 'stalls':
      return victim.configure(on ? { stallRate: STALL_RATE, stallMs: STALL_MS } : { stallRate: 0 });
    case 'hard down (refused)':
      return on ? victim.refuse() : victim.listen();
  }
}

export interface FailingRun {
  readonly contender: string;
  readonly fault: (typeof FAULTS)[number];
  readonly summary: PhaseSummary;
  /** Requests that failed at the caller (after retries). */
  readonly callerErrors: number;
  /**
   * sidecarless only: attempts sent to the failing backend from the onset of the fault until it left the rotation
   * (ejected by outlier detection, or in connection backoff after refused connects), and how long that took.
   */
  readonly attemptsUntilOut: number | undefined;
  readonly msToOut: number | undefined;
  readonly outBy: 'ejection' | 'connect backoff' | undefined;
  /** sidecarless only: attempts sent to the failing backend over the whole fault window (probes included). */
  readonly attemptsWhileFaulty: number | undefined;
  /** Requests the failing backend itself received during the fault window (server side; 0 when refusing). */
  readonly servedWhileFaulty: number;
  /** From the fault being cleared to the first successful response from that backend. */
  readonly msToReturn: number | undefined;
  readonly onsetMs: number;
  readonly healMs: number;
}

export interface FailingResult {
  readonly backends: number;
  readonly rate: number;
  readonly outlierDetection: Record<string, number>;
  readonly perTryTimeoutMs: number;
  readonly resetRate: number;
  readonly stallRate: number;
  readonly stallMs: number;
  readonly phaseMs: number;
  readonly runs: ReadonlyArray<FailingRun>;
}

export async function failingBackend(fleet: readonly Backend[], s: Settings): Promise<FailingResult> {
  const backends = fleet.slice(0, 5);
  const victim = backends[backends.length - 1] as Backend;
  const victimKey = victim.address;
  const addrs = backends.map((b) => b.address);
  const phase = openPhase(s, Math.max(1500, s.durationS * 1000));
  const phaseMs = phase.durationMs;
  const onsetAt = phaseMs * 0.1;
  const healAt = phaseMs * 0.4;
  const outlierDetection = scaledOutlierDetection(s);
  const options: ClientOptions = { target: addrs, outlierDetection, retry: { perTryTimeoutMs: PER_TRY_TIMEOUT_MS } };
  const runs: FailingRun[] = [];
  for (const fault of FAULTS) {
    for (const make of [() => balancedDispatcher(options), () => balancedPool(addrs)]) {
      await resetAll(fleet, { latency: { kind: 'uniform', minMs: 1, maxMs: 3 } });
      runs.push(
        await withContender(make, async (c) => {
          const t0 = performance.now();
          let onset = 0;
          let heal = 0;
          let outAt: number | undefined;
          let outBy: FailingRun['outBy'];
          let attemptsAtOnset = 0;
          let attemptsUntilOut: number | undefined;
          let attemptsWhileFaulty: number | undefined;
          let servedWhileFaulty = 0;
          let returnedAt: number | undefined;
          const victimStats = () => c.client?.stats().clusters[0]?.endpoints.find((e) => e.key === victimKey);
          // Poll the client's stats while the fault lasts, to see when the endpoint leaves the rotation.
          let poll: NodeJS.Timeout | undefined;
          const watch = () => {
            const e = victimStats();
            if (e === undefined || outAt !== undefined) return;
            if (e.ejected || e.state === 'transient-failure') {
              outAt = performance.now() - t0;
              outBy = e.ejected ? 'ejection' : 'connect backoff';
              attemptsUntilOut = e.attempts - attemptsAtOnset;
            }
          };
          const start = after(onsetAt, async () => {
            await victim.hits(true);
            attemptsAtOnset = victimStats()?.attempts ?? 0;
            onset = performance.now() - t0;
            await injectFault(victim, fault, true);
            if (c.client !== undefined) poll = setInterval(watch, 1);
          });
          const stop = after(healAt, async () => {
            clearInterval(poll);
            watch();
            if (c.client !== undefined) attemptsWhileFaulty = (victimStats()?.attempts ?? 0) - attemptsAtOnset;
            await injectFault(victim, fault, false);
            heal = performance.now() - t0;
            servedWhileFaulty = (await victim.hits()).requests;
          });
          const onResult: OnResult = (r, _e, t) => {
            if (returnedAt === undefined && heal > 0 && r?.backend === victim.id && r.status === 200) {
              returnedAt = t;
            }
          };
          try {
            const res = await openLoop({
              name: `failing ${fault} ${c.name}`,
              send: c.send,
              rate: s.rate,
              ...phase,
              onResult,
            });
            await Promise.all([start, stop]);
            return {
              contender: c.name,
              fault,
              summary: summarize(`${c.name} ${fault}`, [res]),
              callerErrors: res.failed,
              attemptsUntilOut,
              msToOut: outAt === undefined ? undefined : outAt - onset,
              outBy,
              attemptsWhileFaulty,
              servedWhileFaulty,
              msToReturn: returnedAt === undefined ? undefined : returnedAt - heal,
              onsetMs: onset,
              healMs: heal,
            };
          } finally {
            clearInterval(poll);
          }
        }),
      );
    }
  }
  await resetAll(fleet);
  return {
    backends: backends.length,
    rate: s.rate,
    outlierDetection,
    perTryTimeoutMs: PER_TRY_TIMEOUT_MS,
    resetRate: RESET_RATE,
    stallRate: STALL_RATE,
    stallMs: STALL_MS,
    phaseMs,
    runs,
  };
}

// ---- 4. backend killed and restarted -------------------------------------------------------------------------

export interface KillRun {
  readonly contender: string;
  readonly summary: PhaseSummary;
  /** Idempotent (GET) requests that failed at the caller. */
  readonly lost: number;
  readonly killedAtMs: number;
  readonly restartedAtMs: number;
  /** Responses from the restarted backend after its restart. */
  readonly victimAfterRestart: number;
  /**
   * From the restarted process being ready to the first successful response from it: how long the client took to
   * take it back (connection backoff and, for sidecarless, the rest of an outlier ejection). Undefined: not within
   * the phase.
   */
  readonly msToReturn: number | undefined;
  readonly extraAttempts: number | undefined;
  /** sidecarless only: the restarted endpoint at the end of the phase (state, ejected by outlier detection). */
  readonly victimAtEnd: string | undefined;
}

export interface KillResult {
  readonly backends: number;
  readonly concurrency: number;
  readonly outlierDetection: Record<string, number>;
  /** Duration mode: the phase length; count mode: its time bound. */
  readonly phaseMs: number;
  /** Count mode: requests per phase (kill at a third of them, restart at half). */
  readonly count: number | undefined;
  readonly runs: readonly KillRun[];
}

export async function killRestart(fleet: readonly Backend[], s: Settings): Promise<KillResult> {
  const backends = fleet.slice(0, 3);
  const victim = backends[1] as Backend;
  const addrs = backends.map((b) => b.address);
  // At least 3 s: a restarted process is up ~0.5 s after its start, and the connection backoff (gRPC's 1 s x 1.6,
  // left at its default) then takes up to ~1.5 s more to try it again; a shorter phase ends before the return.
  const nominalMs = Math.max(3000, s.durationS * 750);
  const bounds = closedPhase(s, nominalMs);
  const phaseMs = bounds.durationMs;
  const runs: KillRun[] = [];
  // With the default 30 s base ejection the restarted backend could not come back within the phase.
  const outlierDetection = scaledOutlierDetection(s);
  const makers = [
    () => balancedDispatcher({ target: addrs, outlierDetection }),
    () => balancedFetch({ target: addrs, outlierDetection }),
    () => balancedPool(addrs),
  ];
  for (const make of makers) {
    await resetAll(fleet, { latency: { kind: 'uniform', minMs: 1, maxMs: 3 } });
    runs.push(
      await withContender(make, async (c) => {
        const t0 = performance.now();
        let killedAt = 0;
        let restartedAt = 0;
        let returnedAt: number | undefined;
        let victimAfter = 0;
        const at = milestones(s, nominalMs, bounds.count);
        const kill = at.at(1 / 3, async () => {
          await victim.kill();
          killedAt = performance.now() - t0;
        });
        const restart = at.at(1 / 2, async () => {
          await kill;
          await victim.start();
          restartedAt = performance.now() - t0;
        });
        let res: LoadResult;
        try {
          res = await closedLoop({
            name: `kill-restart ${c.name}`,
            send: c.send,
            concurrency: s.concurrency,
            ...bounds,
            onResult: (r) => {
              at.tick();
              if (restartedAt > 0 && r?.backend === victim.id) {
                victimAfter++;
                if (returnedAt === undefined && r.status === 200) returnedAt = performance.now() - t0;
              }
            },
          });
        } finally {
          at.end();
          await Promise.all([kill, restart]);
          // A count-mode phase cut short by its time bound may have killed the backend without restarting it.
          if (!victim.running) await victim.start();
        }
        const v = c.client?.stats().clusters[0]?.endpoints.find((e) => e.key === victim.address);
        return {
          contender: c.name,
          summary: summarize(`${c.name} kill/restart`, [res]),
          lost: res.failed,
          killedAtMs: killedAt,
          restartedAtMs: restartedAt,
          victimAfterRestart: victimAfter,
          msToReturn: returnedAt === undefined ? undefined : returnedAt - restartedAt,
          extraAttempts: c.client?.stats().clusters[0]?.requests.extraAttempts,
          victimAtEnd: v === undefined ? undefined : `${v.state}${v.ejected ? ', ejected' : ''}`,
        };
      }),
    );
  }
  await resetAll(fleet);
  return {
    backends: backends.length,
    concurrency: s.concurrency,
    outlierDetection,
    phaseMs,
    count: s.count,
    runs,
  };
}

// ---- 5. resolver churn ---------------------------------------------------------------------------------------

export interface ChurnResult {
  readonly backends: number;
  readonly concurrency: number;
  readonly updateEveryMs: number;
  readonly updates: number;
  readonly baseline: PhaseSummary;
  readonly churn: PhaseSummary;
  /** Heap used after a full GC, sampled once a second during the churn phase, MB. */
  readonly heapMb: readonly number[];
  readonly rssMb: readonly number[];
  /** Mean of the last third of the heap samples minus the mean of the first third, MB. */
  readonly heapGrowthMb: number;
  readonly drainingAtEnd: number | undefined;
}

/**
 * The order of the contenders in round `round`: rotated by one every second round, and reversed in every odd round.
 * Rotation alone keeps every contender behind the same neighbour (sidecarless fetch always ran right after raw fetch, and
 * paid for the collection of its 45 KB a request of garbage); reversing puts each behind the other neighbour too.
 */
export function roundOrder<T>(contenders: readonly T[], round: number): T[] {
  const n = contenders.length;
  const rotated = contenders.map((_, i) => contenders[(i + (round >> 1)) % n] as T);
  return round % 2 === 1 ? rotated.reverse() : rotated;
}

/**
 * Before a measured phase: a full GC (so no contender pays for the garbage of the one before it), then `settleMs` of
 * the contender's own load, unmeasured. The collection frees the hidden classes of per-request objects no request
 * holds at that moment (undici's among them) and V8 deoptimizes the code that checked for them; throughput then
 * starts at about a third of its steady level and recovers over about 400 ms, for every contender
 * (docs/benchmarks.md, "End to end"). Without the settle a 0.6 s phase measured mostly that recovery.
 */
export async function collectAndSettle(c: Contender, s: Settings): Promise<void> {
  fullGc();
  if (s.settleMs <= 0) return;
  await closedLoop({
    name: `settle ${c.name}`,
    send: c.send,
    concurrency: s.concurrency,
    count: 1e7,
    durationMs: s.settleMs,
  });
}

let gcFn: (() => void) | undefined;
/** A full collection (exposing `gc` on first use). */
export function fullGc(): void {
  if (gcFn === undefined) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

export async function resolverChurn(fleet: readonly Backend[], s: Settings): Promise<ChurnResult> {
  const backends = fleet.slice(0, 6);
  const addrs = backends.map((b) => b.address);
  const phaseMs = s.durationS * 1500;
  const baselineMs = s.durationS * 500;
  const everyMs = 100;
  await resetAll(fleet, { latency: { kind: 'uniform', minMs: 0, maxMs: 1 } });
  const run = async (churn: boolean, ms: number, share: number) => {
    const resolver = new StaticResolver(addrs);
    return withContender(
      () => balancedDispatcher({ target: resolver }, churn ? 'sidecarless, churn' : 'sidecarless, static'),
      async (c) => {
        await closedLoop({
          name: 'churn warm-up',
          send: c.send,
          concurrency: s.concurrency,
          count: 1e6,
          durationMs: s.warmMs,
        });
        let updates = 0;
        const heap: number[] = [];
        const rss: number[] = [];
        const churnTimer = churn
          ? setInterval(() => {
              // A random subset of 3 to 6 endpoints, in random order.
              const shuffled = [...addrs].sort(() => Math.random() - 0.5);
              resolver.update(shuffled.slice(0, 3 + Math.floor(Math.random() * 4)));
              updates++;
            }, everyMs)
          : undefined;
        const sample = () => {
          fullGc();
          const m = process.memoryUsage();
          heap.push(m.heapUsed / 2 ** 20);
          rss.push(m.rss / 2 ** 20);
        };
        // Sampled in both phases (a full GC each time), so the CPU figures stay comparable.
        sample();
        const memTimer = setInterval(sample, Math.max(200, Math.min(1000, ms / 10)));
        try {
          const res = await closedLoop({
            name: churn ? 'resolver churn' : 'resolver churn baseline',
            send: c.send,
            concurrency: s.concurrency,
            ...closedPhase(s, ms, share),
          });
          sample();
          return {
            res,
            updates,
            heap,
            rss,
            draining: c.client?.stats().clusters[0]?.draining,
          };
        } finally {
          clearInterval(churnTimer);
          clearInterval(memTimer);
        }
      },
    );
  };
  const base = await run(false, baselineMs, 1 / 3);
  const ch = await run(true, phaseMs, 1);
  const third = Math.max(1, Math.floor(ch.heap.length / 3));
  const mean = (a: readonly number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  return {
    backends: backends.length,
    concurrency: s.concurrency,
    updateEveryMs: everyMs,
    updates: ch.updates,
    baseline: summarize('static endpoints', [base.res]),
    churn: summarize('endpoints changed every 100 ms', [ch.res]),
    heapMb: ch.heap,
    rssMb: ch.rss,
    heapGrowthMb: mean(ch.heap.slice(-third)) - mean(ch.heap.slice(0, third)),
    drainingAtEnd: ch.draining,
  };
}
