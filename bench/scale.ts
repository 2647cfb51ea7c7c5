/**
 * Scale benchmark: `npm run bench:scale` (or `-- --n 1000,10000 --updates 10`). What a large endpoint set costs a
 * real client: memory per idle endpoint, the event-loop stall of a resolver update, and whether picks stay right.
 *
 * Method
 * - Each N runs in a child process of its own (`--expose-gc`), so one N's garbage and code caches cannot move
 *   another's figures. The child builds a multi-service client with one cluster whose resolver is a custom one the
 *   bench drives: `push(set)` calls the cluster's listener synchronously, so the update's synchronous work is timed
 *   exactly. Default picker (round robin), outlier detection on (the defaults).
 * - The set: `--live` endpoints (default 4) that listen (HTTP servers on 127.0.0.1, metadata `live=1`), plus N idle
 *   ones on 127.0.0.2-251 at ports 10000 and up that do not listen; nothing is ever sent to them. Requests go
 *   through a route with `subset: { live: '1' }, subsetFallback: 'fail'`, so the cluster's main snapshot (and its
 *   picker) is built over all N + live endpoints on every update, and the subset's on the first request after it.
 * - The resolver keeps its endpoint objects (frozen `Endpoint`s from `createEndpoint`, as `StaticResolver` holds
 *   them) and hands the same objects for unchanged endpoints; `--fresh` makes new objects for every endpoint at every
 *   update instead, as the DNS, Consul and etcd resolvers do (each answer is parsed anew).
 * - Memory per idle endpoint: the endpoint objects are made first; then full GC, heap used + external
 *   (`process.memoryUsage()`), one update delivering the whole set, full GC again, and the growth divided by N. It
 *   includes everything the library makes for an endpoint (subchannel, health state, picker entries, and a validated
 *   copy when it makes one), not the resolver's own objects.
 * - undici's cost for one open connection, in the same process: `--pools` (default 50) undici `Pool`s to a live
 *   server, each with one keep-alive connection opened by a request whose body was read; full GC before and after;
 *   the growth divided by the number of pools. The target is idle-endpoint cost <= this + 2 KiB, and no pool at all
 *   for an endpoint never picked (the `pools created` column counts undici Pools the cluster made).
 * - Stall: `monitorEventLoopDelay` (1 ms resolution) over each phase, its max; and each turn of the event loop an
 *   update takes, timed in wall time and in the main thread's CPU time (Linux `/proc/thread-self/schedstat`): the
 *   push's synchronous part, and for an update of more than 2,000 changed entries, which the cluster prepares in
 *   slices on later turns and then switches in on one more (docs/ARCHITECTURE.md, "Updates"), every slice and the
 *   switch (the bench wraps the cluster's `updateSlicing.defer` hook to time them, and waits for the last). An
 *   update's stall is its longest turn. On a loaded machine wall time includes waiting for a core, the main
 *   thread's CPU time does not, and it leaves out V8's background compiler and collector threads, which
 *   `process.cpuUsage()` counts but which do not block the loop (the JSON has both, and each update's figure in
 *   order: the first few run code V8 has not optimized yet). `first pick ms` is the first request after the full
 *   update, which builds the route's subset snapshot.
 *   Phase 1 is one update of the whole set (empty -> N + live); phase 2 is `--updates` (default 30) updates each
 *   replacing `--churn` % (default 1) of the idle endpoints and, every other update, one live endpoint with another
 *   live server, with requests in flight across each update; phase 3 is one update replacing every idle endpoint
 *   (N removed, N new, the live ones kept), `replace all ms`; after the main CPU
 *   `settled` adds what ran before the loop's next check phase (the promise callbacks the update queued).
 * - Picks: after each update `--requests` (default 20) requests start at once, plus as many before the update that
 *   finish after it, and as many again while a sliced update is being prepared (`during`). Each must answer 200;
 *   every request started after an update is in force must be served by a server that is a live member of that set
 *   (servers answer with their port), one started during the preparation by a live member of the set then in force
 *   or of the new one (if it picked after the switch); counted as wrong otherwise.
 * - Stats: after phase 3, `client.stats()` (a snapshot of every endpoint, as a metrics scrape with per-endpoint
 *   metrics takes) and `client.stats({ endpoints: false })` (the cluster figures only, as a scrape without them
 *   takes), `--stats-calls` (default 9) of each, one turn each; their medians, wall and main-thread CPU, ms.
 * - Machine: shared 2-core; compare figures of one run with each other (ratios), not with another machine's.
 *
 * Flags: --n 1000,10000,50000  --updates 30  --churn 1  --requests 20  --live 4  --pools 50  --stats-calls 9  --fresh
 *        --out bench/results/scale.json. Profiling one N: `node --import tsx --expose-gc bench/scale.ts --child 10000
 *        --heap-profile /tmp/scale.heapprofile` (live objects of the full update, by allocating function), or
 *        `--cpu-prof` on the same command.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { Pool, request as undiciRequest } from 'undici';
import { createClient, createEndpoint, type Endpoint, type Resolver, type ResolverListener } from '../src/index.js';
import { updateSlicing } from '../src/cluster/resolution.js';
import { checkFlags } from './flags.js';

const given = checkFlags(
  'bench:scale',
  {
    valued: ['n', 'updates', 'churn', 'requests', 'live', 'pools', 'stats-calls', 'out', 'heap-profile', 'child'],
    switches: ['fresh'],
  },
  `Usage: npm run bench:scale [-- <flags>]
  --n <list>            endpoint counts, comma-separated (default 1000,10000,50000)
  --updates <n>         updates after the first, each changing --churn % of the set (default 30)
  --churn <percent>     (default 1)
  --requests <n>        requests started after each update (default 20)
  --live <n>            endpoints that listen (default 4)
  --pools <n>           undici Pools for the cost of one open connection (default 50)
  --stats-calls <n>     calls of stats() and of stats({ endpoints: false }) timed after the updates (default 9)
  --fresh               new Endpoint objects for every endpoint at every update
  --child <N> [--heap-profile <file>]   one N in this process, printing its JSON result (with --heap-profile,
                        a sampling heap profile of the full update; run with --expose-gc)
  --out <file>          the JSON report (default bench/results/scale.json)
  --help                this text`,
);

function flag(name: string): string | undefined {
  return given.get(name) as string | undefined;
}
const num = (name: string, fallback: number): number => Number(flag(name) ?? fallback);

const UPDATES = num('updates', 30);
const CHURN = num('churn', 1);
const REQUESTS = num('requests', 20);
const LIVE = num('live', 4);
const POOLS = num('pools', 50);
const STATS_CALLS = num('stats-calls', 9);

/** What one child reports. */
interface Result {
  n: number;
  undiciConnectionBytes: number;
  bytesPerIdleEndpoint: number;
  heapBytesPerIdleEndpoint: number;
  poolsCreated: number;
  /** True when `*MainMs` are the main thread's CPU time; false when only the process's could be read. */
  mainCpu: boolean;
  fullUpdate: {
    pushMs: number;
    pushMainMs: number;
    pushCpuMs: number;
    loopMaxMs: number;
    firstPickMs: number;
    /** Turns of the loop the update took after the push (slices and the switch; 0: applied in the push). */
    turns: number;
    /** Main-thread CPU ms of the push's synchronous part, of the longest slice, and of the switch. */
    syncMainMs: number;
    sliceMainMs: number;
    switchMainMs: number;
    /** Main-thread CPU ms of all of it. */
    totalMainMs: number;
  };
  churnUpdates: {
    count: number;
    maxPushMs: number;
    medianPushMs: number;
    medianPushMainMs: number;
    maxPushMainMs: number;
    medianPushCpuMs: number;
    maxPushCpuMs: number;
    loopMaxMs: number;
    /** Main-thread CPU ms of each update, in the order they ran (the first ones run code not yet optimized). */
    mainMsInOrder: number[];
  };
  /**
   * One update replacing every idle endpoint (a new set of N, the live ones kept), after the churn updates.
   * `settledMainMs`: the main thread's CPU from the push until the loop's next check phase, which adds the promise
   * callbacks the update queued (they run before the loop goes on, so they are part of the stall).
   */
  replaceUpdate: {
    pushMs: number;
    pushMainMs: number;
    settledMainMs: number;
    loopMaxMs: number;
    turns: number;
    syncMainMs: number;
    sliceMainMs: number;
    switchMainMs: number;
  };
  /**
   * `client.stats()` with every endpoint's figures (`full*`) and with `{ endpoints: false }` (`clusterOnly*`), after
   * the updates (N + live endpoints): the median of `calls` calls each, wall and main-thread CPU ms.
   */
  stats: { calls: number; fullMs: number; fullMainMs: number; clusterOnlyMs: number; clusterOnlyMainMs: number };
  /** `during`: requests started while an update was being prepared (served by the set then in force). */
  picks: { total: number; ok: number; wrong: number; failed: number; during: number };
}

const gc = (globalThis as { gc?: () => void }).gc;
function memory(): { heap: number; total: number } {
  for (let i = 0; i < 4; i++) gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, total: m.heapUsed + m.external };
}

/** A resolver the bench drives: `push` calls the listener synchronously. */
class PushResolver implements Resolver {
  listener: ResolverListener | undefined;
  start(listener: ResolverListener): void {
    this.listener = listener;
  }
  push(set: readonly Endpoint[]): void {
    this.listener?.onUpdate(set);
  }
  close(): void {
    this.listener = undefined;
  }
}

async function listen(): Promise<{ server: Server; port: number }> {
  let port = 0;
  const server = createServer((_req, res) => {
    res.end(String(port));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as AddressInfo).port;
  return { server, port };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const FRESH = given.has('fresh');
/** The i-th idle endpoint: a validated (frozen) `Endpoint`, as built-in resolvers deliver them. */
const idle = (i: number): Endpoint =>
  createEndpoint({ host: `127.0.0.${2 + (i % 250)}`, port: 10000 + Math.floor(i / 250) });
/** The set as the resolver delivers it: the same objects for unchanged endpoints, or (`--fresh`) all new ones. */
const deliver = (set: readonly Endpoint[]): Endpoint[] => (FRESH ? set.map((e) => createEndpoint(e)) : [...set]);
/** CPU time of this process (all threads: the main thread, V8's compiler and collector helpers), ms. */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/**
 * CPU time of the main thread, ms: what blocks the event loop (the process's also counts V8's background compiler
 * and collector threads, which run beside it). Linux's `/proc/thread-self/schedstat` (time on a CPU, ns); the
 * process's CPU time where it is missing (then `mainCpu` in the JSON is false).
 */
const SCHEDSTAT = '/proc/thread-self/schedstat';
const mainCpu = existsSync(SCHEDSTAT);
const threadMs = (): number => (mainCpu ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6 : cpuMs());
/** Runs `fn` and returns its wall time, the main thread's CPU time and the process's, ms. */
function timed(fn: () => void): { wall: number; main: number; cpu: number } {
  const c = cpuMs();
  const m = threadMs();
  const t = performance.now();
  fn();
  const wall = performance.now() - t;
  return { wall, main: threadMs() - m, cpu: cpuMs() - c };
}

/**
 * The turns of a large update: the cluster prepares it in slices on later turns of the loop, then switches it in
 * on one more (docs/ARCHITECTURE.md, "Updates"). Each deferred turn is timed like the push; `settle()` waits for the
 * last. An update's stall is its longest turn: the push's synchronous part, a slice, or the switch.
 */
const turns: { wall: number; main: number; cpu: number }[] = [];
let pendingTurns = 0;
const defer = updateSlicing.defer.bind(updateSlicing);
updateSlicing.defer = (fn) => {
  pendingTurns++;
  let ran = false;
  const cancel = defer(() => {
    ran = true;
    pendingTurns--;
    turns.push(timed(fn));
  });
  return () => {
    if (!ran) pendingTurns--;
    ran = true;
    cancel();
  };
};
async function settle(): Promise<void> {
  for (let i = 0; pendingTurns > 0 && i < 1_000_000; i++) await new Promise((r) => setImmediate(r));
}
interface UpdateTiming {
  /** The longest turn: wall, main-thread CPU and process CPU ms. */
  wall: number;
  main: number;
  cpu: number;
  turns: number;
  syncMain: number;
  sliceMain: number;
  switchMain: number;
  totalMain: number;
}
/** Pushes a set and waits until it is in force; `during` runs after the push while it is being prepared. */
async function update(push: () => void, during?: () => void): Promise<UpdateTiming> {
  turns.length = 0;
  const sync = timed(push);
  if (pendingTurns > 0) during?.();
  await settle();
  const all = [sync, ...turns];
  const last = turns[turns.length - 1];
  return {
    wall: Math.max(...all.map((t) => t.wall)),
    main: Math.max(...all.map((t) => t.main)),
    cpu: Math.max(...all.map((t) => t.cpu)),
    turns: turns.length,
    syncMain: sync.main,
    sliceMain: Math.max(0, ...turns.slice(0, -1).map((t) => t.main)),
    switchMain: last === undefined ? sync.main : last.main,
    totalMain: all.reduce((a, t) => a + t.main, 0),
  };
}

/**
 * `--heap-profile <file>` (with `--child N`): V8's sampling heap profile of the objects allocated by the full
 * update and still live after it (a `.heapprofile`, readable in Chrome DevTools).
 */
async function startHeapSampling(): Promise<() => Promise<unknown>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 512 });
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    return profile;
  };
}

async function undiciConnectionCost(origin: string): Promise<number> {
  const pools: Pool[] = [];
  // Warm undici's code paths so their first-use costs are not charged to the pools.
  const warm = new Pool(origin, { connections: 1 });
  await (await undiciRequest(origin, { dispatcher: warm })).body.text();
  await warm.close();
  const before = memory();
  for (let i = 0; i < POOLS; i++) {
    const pool = new Pool(origin, { connections: 1 });
    const res = await undiciRequest(origin, { dispatcher: pool });
    await res.body.text();
    pools.push(pool);
  }
  const after = memory();
  const perPool = (after.total - before.total) / POOLS;
  await Promise.all(pools.map((p) => p.close()));
  return perPool;
}

async function child(n: number): Promise<Result> {
  const servers = await Promise.all(Array.from({ length: LIVE * 2 }, () => listen()));
  const undiciConnectionBytes = await undiciConnectionCost(`http://127.0.0.1:${servers[0]!.port}`);

  // Count the undici Pools the library makes (Subchannel pools), without touching library code.
  let poolsCreated = 0;
  // A pool is counted the first time it is given a listener or a request (the subchannel listens to its pool's
  // connection events as it creates it).
  const proto = Pool.prototype as unknown as Record<'dispatch' | 'on', (...a: unknown[]) => unknown>;
  const seen = new WeakSet<object>();
  for (const method of ['dispatch', 'on'] as const) {
    const original = proto[method];
    proto[method] = function (this: object, ...args: unknown[]) {
      if (!seen.has(this)) {
        seen.add(this);
        poolsCreated++;
      }
      return original.apply(this, args);
    };
  }

  const resolver = new PushResolver();
  const client = createClient({
    clusters: { svc: { target: resolver } },
    routes: [{ match: { host: 'svc' }, cluster: 'svc', subset: { live: '1' }, subsetFallback: 'fail' }],
  });
  let livePorts = servers.slice(0, LIVE).map((s) => s.port);
  const spare = servers.slice(LIVE).map((s) => s.port);
  const liveSet = (): Endpoint[] =>
    livePorts.map((port) => createEndpoint({ host: '127.0.0.1', port, metadata: { live: '1' } }));
  const picks = { total: 0, ok: 0, wrong: 0, failed: 0, during: 0 };
  const send = async (check: (port: number) => boolean): Promise<void> => {
    picks.total++;
    try {
      const res = await client.fetch('http://svc/');
      const port = Number(await res.text());
      if (res.status !== 200) picks.failed++;
      else if (check(port)) picks.ok++;
      else picks.wrong++;
    } catch {
      picks.failed++;
    }
  };
  const burst = (): Promise<void>[] => {
    const current = new Set(livePorts);
    return Array.from({ length: REQUESTS }, () => send((port) => current.has(port)));
  };
  // Requests started while an update is prepared: the set in force then (`before`) serves them, or the new one when
  // they pick after the switch; either is right.
  let duringPreparation: Promise<void>[] = [];
  const burstDuring = (before: ReadonlySet<number>) => (): void => {
    const either = new Set([...before, ...livePorts]);
    picks.during += REQUESTS;
    duringPreparation = Array.from({ length: REQUESTS }, () => send((port) => either.has(port)));
  };

  // Warm-up: the live endpoints alone, a few requests (so the library's code is compiled and their pools open).
  resolver.push(liveSet());
  await Promise.all(burst());
  await Promise.all(burst());

  let next = 0;
  let idleSet: Endpoint[] = Array.from({ length: n }, () => idle(next++));
  const loop = monitorEventLoopDelay({ resolution: 1 });

  // Phase 1: one update of the whole set.
  const profile = flag('heap-profile') === undefined ? undefined : await startHeapSampling();
  const before = memory();
  poolsCreated = 0;
  loop.enable();
  await sleep(20); // the monitor's first interval only sets its baseline
  const fullSet = deliver([...liveSet(), ...idleSet]);
  const full = await update(() => resolver.push(fullSet), burstDuring(new Set(livePorts)));
  const t = performance.now();
  await send(() => true); // the first request after the update builds the subset snapshot
  const firstPickMs = performance.now() - t;
  await sleep(20);
  loop.disable();
  const fullLoopMaxMs = loop.max / 1e6;
  const after = memory();
  const bytesPerIdleEndpoint = (after.total - before.total) / n;
  const heapBytesPerIdleEndpoint = (after.heap - before.heap) / n;
  if (profile !== undefined) writeFileSync(flag('heap-profile') as string, JSON.stringify(await profile()));
  await Promise.all([...duringPreparation, ...burst()]);
  duringPreparation = [];

  // Phase 2: churn updates with requests in flight across each.
  loop.reset();
  loop.enable();
  await sleep(20);
  const pushes: number[] = [];
  const cpuPushes: number[] = [];
  const mainPushes: number[] = [];
  const churn = Math.max(1, Math.round((n * CHURN) / 100));
  for (let u = 0; u < UPDATES; u++) {
    const inFlight = burstAny();
    const before = new Set(livePorts);
    idleSet = idleSet.slice(churn).concat(Array.from({ length: churn }, () => idle(next++)));
    if (u % 2 === 1) {
      // Replace one live endpoint with a spare server.
      const out = livePorts[0]!;
      livePorts = [...livePorts.slice(1), spare.shift()!];
      spare.push(out);
    }
    const set = deliver([...liveSet(), ...idleSet]);
    const one = await update(() => resolver.push(set), burstDuring(before));
    pushes.push(one.wall);
    cpuPushes.push(one.cpu);
    mainPushes.push(one.main);
    await Promise.all([...inFlight, ...duringPreparation, ...burst()]);
    duringPreparation = [];
  }
  loop.disable();
  const churnLoopMaxMs = loop.max / 1e6;
  // Phase 3: every idle endpoint replaced at once (N removed, N added), requests after it.
  const replacedSet = deliver([...liveSet(), ...Array.from({ length: n }, () => idle(next++))]);
  loop.reset();
  loop.enable();
  await sleep(20);
  const settleFrom = threadMs();
  const replace = await update(() => resolver.push(replacedSet), burstDuring(new Set(livePorts)));
  await new Promise((r) => setImmediate(r)); // the callbacks the switch queued, then this
  const settledMainMs = threadMs() - settleFrom;
  await sleep(20);
  loop.disable();
  const replaceLoopMaxMs = loop.max / 1e6;
  await Promise.all([...duringPreparation, ...burst()]);
  const mainInOrder = [...mainPushes];
  const median = (list: number[]): number => list[Math.floor(list.length / 2)] ?? 0;
  // The snapshot's cost, as a scrape pays it: one call a turn, its result dropped at once (kept, it would hold N
  // histograms alive while the next call is timed, and the collection that frees them would land in that call).
  const statsTimes = async (options?: { endpoints: boolean }) => {
    const wall: number[] = [];
    const main: number[] = [];
    for (let i = 0; i < STATS_CALLS; i++) {
      await new Promise((r) => setImmediate(r));
      const one = timed(() => void client.stats(options));
      wall.push(one.wall);
      main.push(one.main);
    }
    wall.sort((a, b) => a - b);
    main.sort((a, b) => a - b);
    return { wall: median(wall), main: median(main) };
  };
  const fullStats = await statsTimes();
  const clusterStats = await statsTimes({ endpoints: false });
  for (const list of [pushes, cpuPushes, mainPushes]) list.sort((a, b) => a - b);
  const max = (list: number[]): number => list[list.length - 1] ?? 0;

  await client.close();
  await Promise.all(servers.map((s) => new Promise((r) => s.server.close(r))));
  return {
    n,
    undiciConnectionBytes,
    bytesPerIdleEndpoint,
    heapBytesPerIdleEndpoint,
    poolsCreated,
    mainCpu,
    fullUpdate: {
      pushMs: full.wall,
      pushMainMs: full.main,
      pushCpuMs: full.cpu,
      loopMaxMs: fullLoopMaxMs,
      firstPickMs,
      turns: full.turns,
      syncMainMs: full.syncMain,
      sliceMainMs: full.sliceMain,
      switchMainMs: full.switchMain,
      totalMainMs: full.totalMain,
    },
    churnUpdates: {
      count: UPDATES,
      maxPushMs: max(pushes),
      medianPushMs: median(pushes),
      medianPushMainMs: median(mainPushes),
      maxPushMainMs: max(mainPushes),
      medianPushCpuMs: median(cpuPushes),
      maxPushCpuMs: max(cpuPushes),
      loopMaxMs: churnLoopMaxMs,
      mainMsInOrder: mainInOrder,
    },
    replaceUpdate: {
      pushMs: replace.wall,
      pushMainMs: replace.main,
      settledMainMs,
      loopMaxMs: replaceLoopMaxMs,
      turns: replace.turns,
      syncMainMs: replace.syncMain,
      sliceMainMs: replace.sliceMain,
      switchMainMs: replace.switchMain,
    },
    stats: {
      calls: STATS_CALLS,
      fullMs: fullStats.wall,
      fullMainMs: fullStats.main,
      clusterOnlyMs: clusterStats.wall,
      clusterOnlyMainMs: clusterStats.main,
    },
    picks,
  };

  // Requests started before an update and finishing after it: any live server of either set is right.
  function burstAny(): Promise<void>[] {
    return Array.from({ length: REQUESTS }, () => send((port) => servers.some((s) => s.port === port)));
  }
}

function fmt(x: number, digits = 1): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function main(): Promise<void> {
  const childN = flag('child');
  if (childN !== undefined) {
    process.stdout.write(JSON.stringify(await child(Number(childN))) + '\n');
    return;
  }
  const ns = (flag('n') ?? '1000,10000,50000').split(',').map(Number);
  const self = fileURLToPath(import.meta.url);
  const passOn = ['updates', 'churn', 'requests', 'live', 'pools', 'stats-calls'].flatMap((k) => {
    const v = flag(k);
    return v === undefined ? [] : [`--${k}`, v];
  });
  if (FRESH) passOn.push('--fresh');
  const results: Result[] = [];
  for (const n of ns) {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, '--expose-gc', '--max-old-space-size=4096', self, '--child', String(n), ...passOn],
      { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    results.push(JSON.parse(out.trim().split('\n').pop()!) as Result);
  }
  const rows = results.map((r) => [
    r.n.toLocaleString('en-US'),
    fmt(r.bytesPerIdleEndpoint / 1024, 2),
    fmt(r.undiciConnectionBytes / 1024, 2),
    String(r.poolsCreated),
    `${fmt(r.fullUpdate.pushMs)} (${fmt(r.fullUpdate.pushMainMs)})`,
    `${r.fullUpdate.turns}: ${fmt(r.fullUpdate.syncMainMs)} / ${fmt(r.fullUpdate.sliceMainMs)} / ${fmt(r.fullUpdate.switchMainMs)}`,
    fmt(r.fullUpdate.loopMaxMs),
    fmt(r.fullUpdate.firstPickMs),
    `${fmt(r.churnUpdates.medianPushMs)} (${fmt(r.churnUpdates.medianPushMainMs)})`,
    `${fmt(r.churnUpdates.maxPushMs)} (${fmt(r.churnUpdates.maxPushMainMs)})`,
    fmt(r.churnUpdates.loopMaxMs),
    `${fmt(r.replaceUpdate.pushMs)} (${fmt(r.replaceUpdate.pushMainMs)}; ${fmt(r.replaceUpdate.settledMainMs)})`,
    `${r.replaceUpdate.turns}: ${fmt(r.replaceUpdate.syncMainMs)} / ${fmt(r.replaceUpdate.sliceMainMs)} / ${fmt(r.replaceUpdate.switchMainMs)}`,
    fmt(r.replaceUpdate.loopMaxMs),
    `${fmt(r.stats.fullMs, 2)} (${fmt(r.stats.fullMainMs, 2)})`,
    `${fmt(r.stats.clusterOnlyMs, 3)} (${fmt(r.stats.clusterOnlyMainMs, 3)})`,
    `${r.picks.ok}/${r.picks.total} (${r.picks.during} during)` +
      (r.picks.wrong + r.picks.failed > 0 ? ` (${r.picks.wrong} wrong, ${r.picks.failed} failed)` : ''),
  ]);
  const head = [
    'N',
    'KiB / idle endpoint',
    'undici KiB / open conn',
    'pools created',
    'full update: longest turn ms (main CPU)',
    'full: turns: push / longest slice / switch, main CPU ms',
    'full: loop max ms',
    'first pick ms',
    '1% update: longest turn ms (main CPU), median',
    '1%: longest turn ms (main CPU), max',
    '1%: loop max ms',
    'replace all: longest turn ms (main CPU; settled)',
    'replace: turns: push / slice / switch',
    'replace: loop max ms',
    'stats() ms, median (main CPU)',
    'stats({ endpoints: false }) ms, median (main CPU)',
    'picks ok',
  ];
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map((_, i) => (i === 0 || i === head.length - 1 ? '---|' : '--:|')).join('')}`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  const file = resolve(flag('out') ?? 'bench/results/scale.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpus: cpus().length,
        settings: {
          updates: UPDATES,
          churnPercent: CHURN,
          requests: REQUESTS,
          live: LIVE,
          pools: POOLS,
          statsCalls: STATS_CALLS,
          fresh: FRESH,
        },
        results,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nwrote ${file}`);
}

await main();
