/**
 * Picker microbenchmarks: `npm run bench` (full) or `npm run bench -- --quick` (CI smoke run, under ~20 s).
 *
 * Method
 * - ns per pick: mitata `measure()` of one `pick()` per call, median (p50) of its samples, on a warmed-up picker.
 *   Each call takes the next of 65536 pre-built request contexts (round robin over the array), so the figure
 *   includes one array load and the closure call; the `overhead` row is that loop alone, dereferencing
 *   `ctx.headers['x-key']` as the keyed picks do, so what the hash rows add beyond it is hashing and lookup, not
 *   pointer chasing. Each case gets its own loop function (built with `new Function`) so call sites stay
 *   monomorphic, as in production. Every pick row is measured in three passes over all the policies, each with a
 *   freshly built picker and loop after a full collection, and the lowest median kept. Why: on the shared 2-core
 *   machine one pass of the same row varied by up to 2x between passes of one run (random at N = 10: 6.0, 8.5, 6.6,
 *   11 ns), as other processes came and went on the core; a single pass had put random at 17.9 ns at N = 10 beside
 *   6.0 ns at N = 1000. The lowest of three is the figure least disturbed. Targets: N endpoints
 *   `10.0.x.y:8080`, each shaped as a subchannel presents itself to pickers (its in-flight count in a table
 *   shared by the set, `slotted.ts`; until 2026-12-05 plain objects with an `inFlight` field, the custom-target
 *   shape, which `pickers-compare.ts --plain` still measures); least-request sees fixed random in-flight counts
 *   0..9; peak-ewma sees a latency EWMA per target. Peak-EWMA compares the two candidates' stamps and never reads the clock; its second row leaves every
 *   other target without an estimate (the default RTT, stamped at the load record's creation), the case that read
 *   the real clock (`performance.now()`, 16 bytes a read on Node 20) in about a quarter of its picks until
 *   2026-12-03.
 *   Weighted policies use weights 1..5 cycling; the others, equal weights.
 * - Bytes per pick: heap growth over the picks of the same loop, collections included, the smallest of three rounds
 *   of 500k picks (100k with `--quick`; see `heap.ts`) in each of the three passes, the smallest pass kept. The
 *   contract is 0; the peers are measured the same way.
 * - Hash policies, twice: "key" hashes a 32-byte key (XXH32) read from an `x-key` header in an object header map
 *   (the full production path), "hashed" calls `pickHash()` with the key already hashed. 65536 distinct keys, so
 *   peers' caches (hashring keeps an LRU of 5000) cannot serve them.
 * - Build time: wall time of `policy.build()` (ring hash: 1024 vnodes for the lightest endpoint, ring capped at
 *   8M; maglev at each `--m`), median of repeated builds (at least 3, until 0.2 s / 0.05 s with `--quick`).
 *   Ring hash twice: cold (a fresh config, so an empty virtual-node cache) and the warm rebuild a cluster does when
 *   one endpoint is ejected or returns (the same config, alternating between the two sets).
 * - Balance: max / mean share, computed exactly from the ring (arc lengths over the 2^32 hash space) and the maglev
 *   table (slot counts), equal weights. Peers: hashring exactly from its sorted continuum (its keys hash uniformly
 *   to 32 bits); consistent-hash sampled with `--keys` keys (its hash range is not 32-bit uniform).
 * - Disruption: fraction of keys whose endpoint changes when the middle endpoint is removed, or an (N+1)th added,
 *   reported as that fraction times N (1.0 = the ideal 1/N). Exact for ring hash (merge of the two rings' arcs)
 *   and maglev (slot by slot); sampled over `--keys` keys for the peers.
 * - Agreement: two instances built independently (ours: input order shuffled and a different random source) route
 *   `--keys` keys; the fraction routed identically.
 *
 * Flags: --n 10,100,1000,10000  --m 65537,655373  --keys 100000  --quick  --out bench/results/pickers.json
 *
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import ConsistentHash from 'consistent-hash';
import HashRing from 'hashring';
import { do_not_optimize, measure } from 'mitata';
import { bytesPerCall, collectGarbage } from './heap.js';
import { createEndpoint } from '../../src/common/endpoint.js';
import { hashString } from '../../src/pickers/hash.js';
import { createPickerRegistry } from '../../src/pickers/registry.js';
import { type MaglevPicker, maglevPolicy } from '../../src/pickers/maglev.js';
import type { Pickable, PickContext, PickerPolicy } from '../../src/pickers/picker.js';
import { type RingHashPicker, ringHashPolicy } from '../../src/pickers/ring-hash.js';
import { systemClock, systemRandom } from '../../src/common/runtime.js';
import * as loadModule from '../../src/pickers/load.js';
import { PeakEwma } from '../../src/pickers/load.js';
import { targetMaker } from './slotted.js';
import { checkFlags } from '../flags.js';

// ---- flags ----------------------------------------------------------------------------------------------------

const given = checkFlags(
  'bench',
  { valued: ['n', 'm', 'keys', 'out'], switches: ['quick'] },
  `Usage: npm run bench [-- <flags>]   (npm run bench:quick is --quick)
  --quick        the CI smoke run: fewer N, M and picks
  --n <list>     endpoint counts, comma-separated (default 10,100,1000,10000; quick 10,1000)
  --m <list>     maglev table sizes, primes (default 65537,655373; quick 65537)
  --keys <n>     keys for the hash pickers' balance and disruption (default 100000; quick 20000)
  --out <file>   the JSON report (default bench/results/pickers.json)
  --help         this text`,
);

function flag(name: string): string | undefined {
  return given.get(name) as string | undefined;
}
const quick = given.has('quick');
const list = (s: string | undefined, d: number[]) => (s === undefined ? d : s.split(',').map(Number));
const NS = list(flag('n'), quick ? [10, 1000] : [10, 100, 1000, 10000]);
const MS = list(flag('m'), quick ? [65537] : [65537, 655373]);
const KEYS = Number(flag('keys') ?? (quick ? 20_000 : 100_000));
const OUT = resolve(flag('out') ?? 'bench/results/pickers.json');
const MIN_CPU_NS = (quick ? 40 : 250) * 1e6;
const BUILD_BUDGET_MS = quick ? 50 : 200;
const ALLOC_PICKS = quick ? 200_000 : 1_000_000;

// ---- fixtures -------------------------------------------------------------------------------------------------

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

interface Target extends Pickable {
  inFlight: number;
  load?: PeakEwma;
}

/** N targets; with `cold`, every other one has no latency estimate yet (its `PeakEwma` has no sample). */
function targets(n: number, weighted: boolean, offset = 0, cold = false): Target[] {
  const rnd = seeded(n);
  const make = targetMaker(loadModule);
  return Array.from({ length: n }, (_, j) => {
    const i = j + offset;
    const endpoint = createEndpoint({
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      weight: weighted ? 1 + (i % 5) : 1,
    });
    const load = new PeakEwma({ clock: systemClock });
    const rtt = 5 + rnd() * 50;
    if (!cold || i % 2 === 0) load.observe(rtt);
    return make({ key: endpoint.key, endpoint, load }, Math.floor(rnd() * 10));
  });
}

const rndKeys = seeded(42);
const HEX = '0123456789abcdef';
// Keys are flat strings, as undici delivers header values (a string built by `+=` is a rope whose charCodeAt is
// several times slower, which would measure V8's string representation rather than the hash).
const keys = Array.from({ length: 65536 }, () => {
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) bytes[i] = HEX.charCodeAt(Math.floor(rndKeys() * 16));
  return bytes.toString('latin1');
});
const keyHashes = new Uint32Array(keys.map((k) => hashString(k)));
const contexts: PickContext[] = keys.map((k) => ({
  method: 'GET',
  path: '/',
  authority: 'svc',
  headers: { 'x-key': k },
}));
const MASK = keys.length - 1;
// The library's default random source, as a client without `random` uses (xoshiro128**; Math.random costs ~3x).
const env = { random: systemRandom, clock: systemClock };
const hashKey = { header: 'x-key' };

// ---- measurement helpers --------------------------------------------------------------------------------------

async function nsPer(fn: () => unknown): Promise<number> {
  const stats = await measure(fn, { min_cpu_time: MIN_CPU_NS });
  return stats.p50;
}

function buildMs(fn: () => unknown): number {
  fn(); // warm up
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 3 || (performance.now() - start < BUILD_BUDGET_MS && times.length < 50)) {
    const t0 = performance.now();
    do_not_optimize(fn());
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1] as number;
}

/** Exact shares of each target key on a ring: arc (previous position, position] belongs to the position's owner. */
function ringShares(p: RingHashPicker<Pickable>): Map<string, number> {
  const shares = new Map<string, number>();
  const h = p.hashes;
  const owners = p.owners;
  for (let i = 0; i < h.length; i++) {
    const prev = i === 0 ? (h[h.length - 1] as number) - 2 ** 32 : (h[i - 1] as number);
    const key = (p.targets[owners[i] as number] as Pickable).key;
    shares.set(key, (shares.get(key) ?? 0) + ((h[i] as number) - prev) / 2 ** 32);
  }
  return shares;
}

function maxOverMean(shares: Iterable<number>, n: number): number {
  let max = 0;
  let total = 0;
  for (const s of shares) {
    max = Math.max(max, s);
    total += s;
  }
  return max / (total / n);
}

/** Exact fraction of the 2^32 key space whose owner differs between two rings. */
function ringMoved(a: RingHashPicker<Pickable>, b: RingHashPicker<Pickable>): number {
  const ha = a.hashes;
  const hb = b.hashes;
  const bounds = new Float64Array(ha.length + hb.length);
  bounds.set(ha);
  bounds.set(hb, ha.length);
  bounds.sort();
  const owner = (p: RingHashPicker<Pickable>, h: number) => (p.targets[p.ownerAt(p.indexOfHash(h))] as Pickable).key;
  let moved = 0;
  let prev = (bounds[bounds.length - 1] as number) - 2 ** 32;
  for (const x of bounds) {
    if (x !== prev && owner(a, x) !== owner(b, x)) moved += x - prev;
    prev = x;
  }
  return moved / 2 ** 32;
}

function maglevMoved(a: MaglevPicker<Pickable>, b: MaglevPicker<Pickable>): number {
  let moved = 0;
  for (let i = 0; i < a.table.length; i++) {
    if ((a.targets[a.table[i] as number] as Pickable).key !== (b.targets[b.table[i] as number] as Pickable).key)
      moved++;
  }
  return moved / a.table.length;
}

function sampledMoved(before: (k: string) => unknown, after: (k: string) => unknown): number {
  let moved = 0;
  for (let i = 0; i < KEYS; i++) {
    const k = keys[i & MASK] as string;
    const key = i < keys.length ? k : `${k}${i}`;
    if (before(key) !== after(key)) moved++;
  }
  return moved / KEYS;
}

function sampledShares(route: (k: string) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < KEYS; i++) {
    const k = i < keys.length ? (keys[i] as string) : `${keys[i & MASK]}${i}`;
    const r = route(k);
    m.set(r, (m.get(r) ?? 0) + 1 / KEYS);
  }
  return m;
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// ---- runs -----------------------------------------------------------------------------------------------------

interface PickRow {
  policy: string;
  n: number;
  nsPerPick: number;
  bytesPerPick: number;
}
interface BuildRow {
  policy: string;
  n: number;
  ms: number;
}
interface QualityRow {
  policy: string;
  n: number;
  maxOverMean: number;
  balanceMethod: 'exact' | 'sampled';
  movedOnRemoveTimesN: number;
  movedOnAddTimesN: number;
  disruptionMethod: 'exact' | 'sampled';
  agreement: number;
}

const registry = createPickerRegistry();
const pickRows: PickRow[] = [];
const buildRows: BuildRow[] = [];
const qualityRows: QualityRow[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

function configured(name: string, extra: Record<string, unknown> = {}) {
  return registry.configure({ name, ...extra });
}

/**
 * A fresh loop closure per case. One shared closure would see every picker class at its `pick` call site, turn
 * megamorphic and stop inlining, charging each policy for the others; in production a cluster's call site sees one
 * policy. `new Function` gives each case its own feedback, as separate source functions would.
 */
function loop(call: string, subject: unknown, inputs: unknown): () => unknown {
  return new Function('subject', 'inputs', 'mask', `let i = 0; return () => subject.${call}(inputs[i++ & mask]);`)(
    subject,
    inputs,
    MASK,
  ) as () => unknown;
}

/** One measured case: a label, its N, and how to build its loop (fresh per pass, so passes share no feedback). */
interface PickCase {
  label: string;
  n: number;
  make: () => () => unknown;
}

/** Bytes per call of `fn`, through a wrapper loop (its call site is megamorphic; `fn` returns an existing object). */
function bytesPer(fn: () => unknown): number {
  return bytesPerCall((calls) => {
    let last: unknown;
    for (let k = 0; k < calls; k++) last = fn();
    return last;
  }, ALLOC_PICKS / 2);
}

/**
 * Measures `cases` in three passes and keeps each case's lowest median (see the header) and its fewest bytes per pick
 * (the first case of a run once showed 1-2 bytes per pick in its first pass only: a one-off of the run, not of the
 * pick). A full collection before each measurement, so no case pays for another's garbage.
 */
async function runPickCases(cases: readonly PickCase[]): Promise<void> {
  const best = new Map<PickCase, PickRow>();
  for (let pass = 0; pass < 3; pass++) {
    for (const c of cases) {
      const fn = c.make();
      collectGarbage();
      const ns = await nsPer(fn);
      const bytes = bytesPer(fn);
      const row = best.get(c);
      if (row === undefined) {
        best.set(c, { policy: c.label, n: c.n, nsPerPick: ns, bytesPerPick: bytes });
      } else {
        row.nsPerPick = Math.min(row.nsPerPick, ns);
        row.bytesPerPick = Math.min(row.bytesPerPick, bytes);
      }
    }
  }
  for (const row of best.values()) {
    pickRows.push(row);
    log(
      `  ${row.policy.padEnd(34)} N=${String(row.n).padEnd(6)} ${row.nsPerPick.toFixed(1)} ns/pick  ${row.bytesPerPick.toFixed(2)} B/pick`,
    );
  }
}

async function main(): Promise<void> {
  log(`picker benchmarks: N=${NS.join(',')} M=${MS.join(',')} keys=${KEYS}${quick ? ' (quick)' : ''}`);
  collectGarbage();
  await runPickCases([
    {
      label: "overhead (loop + ctx.headers['x-key'], no pick)",
      n: 0,
      make: () =>
        new Function('inputs', 'mask', "let i = 0; return () => inputs[i++ & mask].headers['x-key'];")(
          contexts,
          MASK,
        ) as () => unknown,
    },
  ]);
  const simple: [string, string, boolean, Record<string, unknown>][] = [
    ['round-robin', 'round-robin', false, {}],
    ['random', 'random', false, {}],
    ['weighted-round-robin', 'weighted-round-robin', true, {}],
    ['weighted-random', 'weighted-random', true, {}],
    ['least-request', 'least-request', false, {}],
    ['least-request (weighted)', 'least-request', true, {}],
    ['peak-ewma', 'peak-ewma', false, {}],
  ];
  for (const n of NS) {
    log(`N=${n}`);
    const plain = targets(n, false);
    const weighted = targets(n, true);
    const cold = targets(n, false, 0, true);
    const cases: PickCase[] = [];
    for (const [label, name, w, extra] of simple) {
      const { policy, config } = configured(name, extra);
      const ts = w ? weighted : plain;
      cases.push({ label, n, make: () => loop('pick', policy.build(ts, config, env), contexts) });
      buildRows.push({ policy: label, n, ms: buildMs(() => policy.build(ts, config, env)) });
    }
    {
      const { policy, config } = configured('peak-ewma');
      cases.push({
        label: 'peak-ewma (half without estimate)',
        n,
        make: () => loop('pick', policy.build(cold, config, env), contexts),
      });
    }
    // Hash policies.
    const ringConfig = ringHashPolicy.parseConfig({ hashKey });
    const ring = ringHashPolicy.build(plain, ringConfig, env) as RingHashPicker<Target>;
    cases.push({ label: 'ring-hash (key)', n, make: () => loop('pick', ring, contexts) });
    cases.push({ label: 'ring-hash (hashed)', n, make: () => loop('pickHash', ring, keyHashes) });
    // Cold: a fresh parsed config (an empty virtual-node cache) per build, as when a cluster starts.
    buildRows.push({ policy: 'ring-hash', n, ms: buildMs(() => ringHashPolicy.build(plain, { ...ringConfig }, env)) });
    log(`  ring-hash build ${buildRows[buildRows.length - 1]?.ms.toFixed(1)} ms`);
    {
      // Warm: the cluster's own config, alternating between the full set and one endpoint ejected, as outlier
      // detection ejects and returns endpoints (the cache filters; nothing is hashed).
      const ejected = plain.filter((_, i) => i !== n >> 1);
      let flip = false;
      buildRows.push({
        policy: 'ring-hash rebuild (eject/return)',
        n,
        ms: buildMs(() => {
          flip = !flip;
          return ringHashPolicy.build(flip ? ejected : plain, ringConfig, env);
        }),
      });
      log(`  ring-hash rebuild ${buildRows[buildRows.length - 1]?.ms.toFixed(1)} ms`);
    }
    qualityRows.push(ringQuality(n, plain, ringConfig, ring));
    for (const m of MS) {
      const cfg = maglevPolicy.parseConfig({ hashKey, tableSize: m });
      const mg = maglevPolicy.build(plain, cfg, env) as MaglevPicker<Target>;
      if (m === MS[0]) {
        cases.push({ label: `maglev M=${m} (key)`, n, make: () => loop('pick', mg, contexts) });
        cases.push({ label: `maglev M=${m} (hashed)`, n, make: () => loop('pickHash', mg, keyHashes) });
      }
      buildRows.push({ policy: `maglev M=${m}`, n, ms: buildMs(() => maglevPolicy.build(plain, cfg, env)) });
      qualityRows.push(maglevQuality(n, m, plain, mg));
    }
    await runPickCases(cases);
    await peers(n);
  }
}

function ringQuality(
  n: number,
  plain: Target[],
  cfg: ReturnType<typeof ringHashPolicy.parseConfig>,
  ring: RingHashPicker<Target>,
): QualityRow {
  // A fresh config per instance: independent instances share no virtual-node cache.
  const build = (ts: Target[], seed: number) =>
    ringHashPolicy.build(ts, { ...cfg }, { random: seeded(seed), clock: systemClock }) as RingHashPicker<Pickable>;
  const removed = build(
    plain.filter((_, i) => i !== n >> 1),
    1,
  );
  const added = build([...plain, ...targets(1, false, n)], 2);
  const other = build(shuffled(plain, seeded(7)), 3);
  let agree = 0;
  for (let i = 0; i < KEYS; i++) {
    const h = i < keys.length ? (keyHashes[i] as number) : hashString(`${keys[i & MASK]}${i}`);
    const mine = ring.targets[ring.ownerAt(ring.indexOfHash(h))]?.key;
    if (mine === other.targets[other.ownerAt(other.indexOfHash(h))]?.key) agree++;
  }
  const row: QualityRow = {
    policy: 'ring-hash',
    n,
    maxOverMean: maxOverMean(ringShares(ring).values(), n),
    balanceMethod: 'exact',
    movedOnRemoveTimesN: ringMoved(ring, removed) * n,
    movedOnAddTimesN: ringMoved(ring, added) * n,
    disruptionMethod: 'exact',
    agreement: agree / KEYS,
  };
  log(`  ring-hash quality ${JSON.stringify(row)}`);
  return row;
}

function maglevQuality(n: number, m: number, plain: Target[], mg: MaglevPicker<Target>): QualityRow {
  const cfg = maglevPolicy.parseConfig({ hashKey, tableSize: m });
  const build = (ts: Target[], seed: number) =>
    maglevPolicy.build(ts, cfg, { random: seeded(seed), clock: systemClock }) as MaglevPicker<Pickable>;
  const removed = build(
    plain.filter((_, i) => i !== n >> 1),
    1,
  );
  const added = build([...plain, ...targets(1, false, n)], 2);
  const other = build(shuffled(plain, seeded(7)), 3);
  const slots = new Map<string, number>();
  for (const i of mg.table) {
    const k = (mg.targets[i] as Target).key;
    slots.set(k, (slots.get(k) ?? 0) + 1);
  }
  const row: QualityRow = {
    policy: `maglev M=${m}`,
    n,
    maxOverMean: maxOverMean(slots.values(), n),
    balanceMethod: 'exact',
    movedOnRemoveTimesN: maglevMoved(mg, removed) * n,
    movedOnAddTimesN: maglevMoved(mg, added) * n,
    disruptionMethod: 'exact',
    agreement: 1 - maglevMoved(mg, other),
  };
  log(`  maglev quality ${JSON.stringify(row)}`);
  return row;
}

async function peers(n: number): Promise<void> {
  const names = targets(n, false).map((t) => t.key);
  // hashring: ketama (md5, 40 vnodes x 4 replicas = 160 points per server).
  {
    const ring = new HashRing(names);
    await runPickCases([{ label: 'peer: hashring (key)', n, make: () => loop('get', ring, keys) }]);
    const ns = pickRows[pickRows.length - 1]?.nsPerPick ?? Number.NaN;
    buildRows.push({ policy: 'peer: hashring', n, ms: buildMs(() => new HashRing(names)) });
    const continuum = (ring as unknown as { ring: { value: number; server: string }[] }).ring;
    const shares = new Map<string, number>();
    for (let j = 0; j < continuum.length; j++) {
      const prev = j === 0 ? (continuum[continuum.length - 1]?.value ?? 0) - 2 ** 32 : (continuum[j - 1]?.value ?? 0);
      const node = continuum[j] as { value: number; server: string };
      shares.set(node.server, (shares.get(node.server) ?? 0) + (node.value - prev) / 2 ** 32);
    }
    const removed = new HashRing(names.filter((_, j) => j !== n >> 1));
    const added = new HashRing([...names, targets(1, false, n)[0]?.key as string]);
    const other = new HashRing(shuffled(names, seeded(7)));
    const row: QualityRow = {
      policy: 'peer: hashring',
      n,
      maxOverMean: maxOverMean(shares.values(), n),
      balanceMethod: 'exact',
      movedOnRemoveTimesN:
        sampledMoved(
          (k) => ring.get(k),
          (k) => removed.get(k),
        ) * n,
      movedOnAddTimesN:
        sampledMoved(
          (k) => ring.get(k),
          (k) => added.get(k),
        ) * n,
      disruptionMethod: 'sampled',
      agreement:
        1 -
        sampledMoved(
          (k) => ring.get(k),
          (k) => other.get(k),
        ),
    };
    qualityRows.push(row);
    log(
      `  ${'peer: hashring (key)'.padEnd(28)} N=${String(n).padEnd(6)} ${ns.toFixed(1)} ns/pick ${JSON.stringify(row)}`,
    );
  }
  // consistent-hash: 40 random control points per node; a wider range past 2500 nodes, as its README advises.
  {
    const options = n > 2000 ? { range: 1_000_003 } : {};
    const make = (list: string[]) => {
      const ch = new ConsistentHash(options);
      for (const name of list) ch.add(name);
      return ch;
    };
    const ch = make(names);
    await runPickCases([{ label: 'peer: consistent-hash (key)', n, make: () => loop('get', ch, keys) }]);
    const ns = pickRows[pickRows.length - 1]?.nsPerPick ?? Number.NaN;
    buildRows.push({ policy: 'peer: consistent-hash', n, ms: buildMs(() => make(names).get('x')) });
    const removed = make(names);
    removed.get('warm');
    removed.remove(names[n >> 1] as string);
    const added = make(names);
    added.add(targets(1, false, n)[0]?.key as string);
    const other = make(shuffled(names, seeded(7)));
    const row: QualityRow = {
      policy: 'peer: consistent-hash',
      n,
      maxOverMean: maxOverMean(sampledShares((k) => ch.get(k) as string).values(), n),
      balanceMethod: 'sampled',
      movedOnRemoveTimesN:
        sampledMoved(
          (k) => ch.get(k),
          (k) => removed.get(k),
        ) * n,
      movedOnAddTimesN:
        sampledMoved(
          (k) => ch.get(k),
          (k) => added.get(k),
        ) * n,
      disruptionMethod: 'sampled',
      agreement:
        1 -
        sampledMoved(
          (k) => ch.get(k),
          (k) => other.get(k),
        ),
    };
    qualityRows.push(row);
    log(
      `  ${'peer: consistent-hash (key)'.padEnd(28)} N=${String(n).padEnd(6)} ${ns.toFixed(1)} ns/pick ${JSON.stringify(row)}`,
    );
  }
}

// ---- targets and report ---------------------------------------------------------------------------------------

interface TargetCheck {
  target: string;
  limit: number;
  measured: number | undefined;
  ok: boolean | undefined;
}

function pickAt(policy: string, n: number): number | undefined {
  return pickRows.find((r) => r.policy === policy && r.n === n)?.nsPerPick;
}
function worstPick(policy: string): number | undefined {
  const rows = pickRows.filter((r) => r.policy === policy);
  return rows.length === 0 ? undefined : Math.max(...rows.map((r) => r.nsPerPick));
}

function checks(): TargetCheck[] {
  const m0 = MS[0];
  const q = (policy: string, n: number) => qualityRows.find((r) => r.policy === policy && r.n === n);
  const c = (target: string, limit: number, measured: number | undefined): TargetCheck => ({
    target,
    limit,
    measured,
    ok: measured === undefined ? undefined : measured <= limit,
  });
  const out = [
    c('round-robin ns/pick (worst N)', 10, worstPick('round-robin')),
    c('weighted-round-robin ns/pick N=1000', 30, pickAt('weighted-round-robin', 1000)),
    c('random ns/pick (worst N)', 15, worstPick('random')),
    c('weighted-random ns/pick (worst N)', 25, worstPick('weighted-random')),
    // The load-aware policies at every N: their costs grow with N (cache misses on the targets' load records).
    ...NS.map((n) => c(`least-request ns/pick N=${n}`, 40, pickAt('least-request', n))),
    ...NS.map((n) => c(`least-request (weighted) ns/pick N=${n}`, 40, pickAt('least-request (weighted)', n))),
    ...NS.map((n) => c(`peak-ewma ns/pick N=${n}`, 60, pickAt('peak-ewma', n))),
    ...NS.map((n) =>
      c(`peak-ewma, half without estimate, ns/pick N=${n}`, 60, pickAt('peak-ewma (half without estimate)', n)),
    ),
    c('ring-hash ns/pick N=1000 incl. hashing', 220, pickAt('ring-hash (key)', 1000)),
    c(`maglev ns/pick incl. hashing (worst N, M=${m0})`, 110, worstPick(`maglev M=${m0} (key)`)),
    c('maglev build ms N=1000 M=65537', 5, buildRows.find((r) => r.policy === 'maglev M=65537' && r.n === 1000)?.ms),
    c('ring max/mean N=100', 1.1, q('ring-hash', 100)?.maxOverMean),
  ];
  for (const r of qualityRows.filter((r) => r.policy.startsWith('maglev'))) {
    const m = Number(r.policy.slice('maglev M='.length));
    out.push(c(`maglev M=${m} max/mean N=${r.n} (<= 1 + N/M)`, 1 + r.n / m, r.maxOverMean));
    out.push(c(`maglev M=${m} moved on remove x N, N=${r.n}`, 2, r.movedOnRemoveTimesN));
  }
  for (const r of qualityRows.filter((r) => r.policy === 'ring-hash')) {
    out.push(c(`ring moved on remove x N, N=${r.n}`, 1.1, r.movedOnRemoveTimesN));
  }
  const worstBytes = (rows: PickRow[]) =>
    rows.length === 0 ? undefined : Math.max(...rows.map((r) => r.bytesPerPick));
  const ours = pickRows.filter((r) => r.n !== 0 && !r.policy.startsWith('peer:'));
  out.push(c('bytes/pick, every policy and N (worst)', 0.5, worstBytes(ours)));
  return out;
}

function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((v) => (typeof v === 'number' ? fmt(v) : v)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map((r) => line(r.map(String)))].join('\n');
}
function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(v === Math.round(v) ? 0 : 3);
}

function pivot(rows: { policy: string; n: number }[], value: (r: never) => number): (string | number)[][] {
  const policies = [...new Set(rows.map((r) => r.policy))];
  return policies.map((p) => [
    p,
    ...NS.map((n) => {
      const r = rows.find((x) => x.policy === p && x.n === n);
      return r === undefined ? '-' : value(r as never);
    }),
  ]);
}

await main();
const targetChecks = checks();
const nHeaders = NS.map((n) => `N=${n}`);
const report = [
  '',
  'ns per pick (median)',
  table(
    ['policy', ...nHeaders],
    [
      ...pickRows.filter((r) => r.n === 0).map((r) => [r.policy, fmt(r.nsPerPick)]),
      ...pivot(
        pickRows.filter((r) => r.n !== 0),
        (r: PickRow) => r.nsPerPick,
      ),
    ],
  ),
  '',
  'bytes per pick (heap growth over the picks, collections included; 0 is the contract)',
  table(
    ['policy', ...nHeaders],
    pivot(
      pickRows.filter((r) => r.n !== 0),
      (r: PickRow) => r.bytesPerPick,
    ),
  ),
  '',
  'build time, ms (median)',
  table(
    ['policy', ...nHeaders],
    pivot(buildRows, (r: BuildRow) => r.ms),
  ),
  '',
  'hash quality (balance = max/mean share; moved = fraction of keys moved x N; agreement = two instances)',
  table(
    ['policy', 'N', 'max/mean', 'balance', 'moved -1', 'moved +1', 'disruption', 'agreement'],
    qualityRows.map((r) => [
      r.policy,
      String(r.n),
      r.maxOverMean,
      r.balanceMethod,
      r.movedOnRemoveTimesN,
      r.movedOnAddTimesN,
      r.disruptionMethod,
      r.agreement,
    ]),
  ),
  '',
  'targets',
  table(
    ['target', 'limit', 'measured', 'ok'],
    targetChecks.map((t) => [
      t.target,
      t.limit,
      t.measured ?? '-',
      t.ok === undefined ? 'n/a' : t.ok ? 'yes' : 'MISSED',
    ]),
  ),
  '',
].join('\n');
process.stdout.write(report);
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(
  OUT,
  `${JSON.stringify(
    {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        flags: { n: NS, m: MS, keys: KEYS, quick },
      },
      pick: pickRows,
      build: buildRows,
      quality: qualityRows,
      targets: targetChecks,
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`JSON written to ${OUT}\n`);

// Keeps the PickerPolicy type import meaningful for readers: every policy above is a PickerPolicy.
export type { PickerPolicy };
