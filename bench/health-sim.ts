/**
 * Outlier detection simulation (issue #5). Not a timed test: simulated time only.
 *
 * Method
 * - One {@link OutlierDetector} with the given options (Envoy defaults unless stated), a {@link FakeClock} and two
 *   seeded PRNGs, both the library's xoshiro128** (`seededRandom`): one draws the outcomes and the round-robin start,
 *   the other the detector's enforcement rolls. 10 hosts. Requests arrive at a fixed rate (100 rps cluster-wide unless stated; one
 *   every 10 ms, offset by half a step so no arrival coincides with an interval sweep).
 * - Each request goes to the next host in round-robin order (the library's default policy, random start offset)
 *   over the eligible hosts: the non-ejected ones, or all of them when fewer than 50 % are eligible (panic
 *   threshold 50 %). The eligible list is rebuilt on every eject/return event, as the cluster rebuilds its picker.
 * - Each host answers according to the scenario: healthy hosts fail 1 % of requests at random with a 503
 *   ("background errors"); a hard-down host answers every request with a 503 (or refuses the connection); a
 *   half-failing host fails 50 % of requests at random with a 503. Outcomes go to `detector.record()` at once.
 * - Figures:
 *   1. hard-down: the number of failed requests the bad host served from the onset of the fault (mid-interval, at
 *      20.005 s) up to and including the one that ejected it, and the simulated time from onset to ejection; at
 *      100 rps to the bad host itself (1000 rps cluster-wide) and at 100 rps cluster-wide (the bad host sees 10 rps);
 *      the worst and the mean over all trials (seeds). The issue's targets (<= 5 failures, within 100 ms) are stated
 *      at 100 rps to the host: 100 ms is 10 of its requests there, but only one at 10 rps, where no count-based rule
 *      can eject within 100 ms. The failure count does not depend on the rate, so its target applies to both rows.
 *   2. half-failing: the simulated time from onset to ejection, in intervals (10 s), with all defaults (whichever
 *      rule fires first) and with the success-rate rule alone (consecutive rules not enforced); worst and mean over
 *      the trials. Target: <= 2 intervals.
 *   3. false ejections: ejections of any host over 1,000,000 requests (10,000 s simulated) where every host has
 *      only the 1 % background errors, by rule. Target: 0.
 *
 * - Every figure is measured twice and printed side by side next to its target: with sidecarless's defaults, and
 *   with Envoy's exact success-rate rule (`successRateMinimumGap: 0`), the peer that justifies the one departure. At
 *   this volume (about 100 requests per host per interval) Envoy's mean − 1.9 × stdev flags healthy hosts on
 *   background noise alone; each false ejection also takes the 10 % max-ejection allowance, which then holds back
 *   the ejection of a really bad host until it returns (30 s).
 *
 * Run: `node --import tsx bench/health-sim.ts [--quick]`. `--quick` (CI smoke) runs fewer trials and 100,000
 * requests for figure 3. Writes `bench/results/health-sim.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type EjectionReason,
  type OutlierDetectionOptions,
  OutlierDetector,
  resolveOutlierDetectionOptions,
} from '../src/health/outlier-detector.js';
import { isPanic } from '../src/balancer/panic.js';
import type { AttemptOutcome } from '../src/common/outcome.js';
import { FakeClock, seededRandom } from '../test/helpers/fake-clock.js';

const quick = process.argv.includes('--quick');
const HOSTS = 10;
const BACKGROUND_ERROR_RATE = 0.01;
const ONSET_MS = 20_005;
const TRIALS = quick ? 5 : 50;
const FALSE_EJECTION_REQUESTS = quick ? 100_000 : 1_000_000;

const ok: AttemptOutcome = { statusCode: 200, errorKind: undefined, error: undefined, latencyMs: 1 };
const unavailable: AttemptOutcome = { statusCode: 503, errorKind: undefined, error: undefined, latencyMs: 1 };
const refused: AttemptOutcome = {
  statusCode: 0,
  errorKind: 'connect',
  error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
  latencyMs: 1,
};

/** Decides one request's outcome: host index, simulated time, PRNG. */
type Behaviour = (host: number, t: number, random: () => number) => AttemptOutcome;

interface Ejection {
  readonly t: number;
  readonly host: number;
  readonly reason: EjectionReason;
}

interface RunResult {
  readonly ejections: Ejection[];
  /** Failed requests served by `watch` from the onset until its first ejection, inclusive. */
  readonly failuresBeforeEjection: number;
  readonly requests: number;
  readonly panicRequests: number;
}

function simulate(options: {
  readonly seed: number;
  readonly rps: number;
  readonly requests: number;
  readonly behaviour: Behaviour;
  readonly detection?: OutlierDetectionOptions;
  /** Host whose ejection ends the run (when `stopOnEjection`) and whose failures after `ONSET_MS` are counted. */
  readonly watch?: number;
  readonly stopOnEjection?: boolean;
}): RunResult {
  const clock = new FakeClock();
  const random = seededRandom(options.seed);
  const hosts = Array.from({ length: HOSTS }, (_, i) => i);
  const ejections: Ejection[] = [];
  let dirty = true;
  const detector = new OutlierDetector<number>(resolveOutlierDetectionOptions(options.detection ?? {})!, {
    clock,
    random: seededRandom(options.seed ^ 0x5eed),
    onEject: (host, info) => {
      ejections.push({ t: clock.now(), host, reason: info.reason });
      dirty = true;
    },
    onReturn: () => {
      dirty = true;
    },
  });
  detector.setHosts(hosts);
  let eligible: number[] = hosts;
  let panic = false;
  let next = Math.floor(random() * HOSTS);
  const step = 1000 / options.rps;
  let failures = 0;
  let panicRequests = 0;
  let n = 0;
  for (; n < options.requests; n++) {
    const t = step / 2 + n * step;
    clock.advance(t - clock.now());
    if (dirty) {
      const healthy = hosts.filter((h) => !detector.isEjected(h));
      panic = isPanic(healthy.length, hosts.length, 50);
      eligible = panic ? hosts : healthy;
      dirty = false;
    }
    if (panic) panicRequests++;
    const host = eligible[next++ % eligible.length]!;
    const outcome = options.behaviour(host, t, random);
    if (host === options.watch && t >= ONSET_MS && outcome !== ok && ejections.every((e) => e.host !== host)) {
      failures++;
    }
    detector.record(host, outcome);
    if (options.stopOnEjection && ejections.some((e) => e.host === options.watch)) {
      n++;
      break;
    }
  }
  detector.close();
  return { ejections, failuresBeforeEjection: failures, requests: n, panicRequests };
}

const background: Behaviour = (_host, _t, random) => (random() < BACKGROUND_ERROR_RATE ? unavailable : ok);
const withBadHost =
  (bad: number, fault: (random: () => number) => AttemptOutcome): Behaviour =>
  (host, t, random) =>
    host === bad && t >= ONSET_MS ? fault(random) : background(host, t, random);

/** One figure in one scenario, with a value (and a verdict against the target, when it has one) per config. */
interface Row {
  readonly figure: string;
  readonly scenario: string;
  readonly target: string;
  readonly values: string[];
  /** Per config: met the target, or `undefined` for an informational figure. */
  readonly pass: (boolean | undefined)[];
}

const rows: Row[] = [];
function record(
  config: number,
  figure: string,
  scenario: string,
  target: string,
  value: string,
  pass: boolean | undefined,
): void {
  let row = rows.find((r) => r.figure === figure && r.scenario === scenario);
  if (row === undefined) {
    row = { figure, scenario, target, values: [], pass: [] };
    rows.push(row);
  }
  row.values[config] = value;
  row.pass[config] = pass;
}
const json: Record<string, unknown> = {};
const BAD = 3;
const MAX_SIM_MS = ONSET_MS + 20 * 10_000;

const CONFIGS: ReadonlyArray<readonly [string, OutlierDetectionOptions]> = [
  ['sidecarless defaults', {}],
  ['Envoy exact (successRateMinimumGap: 0)', { successRateMinimumGap: 0 }],
];
for (const [configIndex, [configName, base]] of CONFIGS.entries()) {
  // Figure 1: hard-down endpoint.
  for (const [faultName, fault] of [
    ['503', () => unavailable],
    ['connection refused', () => refused],
  ] as const) {
    for (const [rateName, rps] of [
      ['100 rps to the host (1000 rps cluster-wide)', 1000],
      ['100 rps cluster-wide (10 rps to the host)', 100],
    ] as const) {
      let worstFailures = 0;
      let sumFailures = 0;
      let worstMs = 0;
      let sumMs = 0;
      for (let trial = 0; trial < TRIALS; trial++) {
        const r = simulate({
          seed: 1000 + trial,
          rps,
          requests: Math.ceil((MAX_SIM_MS * rps) / 1000),
          behaviour: withBadHost(BAD, fault),
          detection: base,
          watch: BAD,
          stopOnEjection: true,
        });
        const ejection = r.ejections.find((e) => e.host === BAD);
        const ms = ejection === undefined ? Number.POSITIVE_INFINITY : ejection.t - ONSET_MS;
        worstFailures = Math.max(worstFailures, r.failuresBeforeEjection);
        sumFailures += r.failuresBeforeEjection;
        worstMs = Math.max(worstMs, ms);
        sumMs += ms;
      }
      const key = `hardDown.${faultName}.${rps}rps`;
      json[`${configName}.${key}`] = {
        trials: TRIALS,
        worstFailures,
        meanFailures: sumFailures / TRIALS,
        worstMs,
        meanMs: sumMs / TRIALS,
      };
      const scenario = `hard-down (${faultName}), ${rateName}`;
      record(
        configIndex,
        '1 failures before ejection',
        scenario,
        rps === 1000 ? '<= 5 (the target)' : '<= 5 (holds at any rate)',
        `${worstFailures} worst, ${(sumFailures / TRIALS).toFixed(1)} mean`,
        worstFailures <= 5,
      );
      record(
        configIndex,
        '1 time to ejection',
        scenario,
        rps === 1000 ? '<= 100 ms (the target)' : 'info: target is at 100 rps to the host',
        `${worstMs.toFixed(0)} ms worst, ${(sumMs / TRIALS).toFixed(0)} ms mean`,
        rps === 1000 ? worstMs <= 100 : undefined,
      );
    }
  }

  // Figure 2: endpoint failing 50 % of requests.
  for (const [ruleName, detection] of [
    ['all rules (first to fire)', {}],
    ['success rate alone', { enforcingConsecutive5xx: 0 }],
  ] as const) {
    let worst = 0;
    let sum = 0;
    const reasons: Record<string, number> = {};
    for (let trial = 0; trial < TRIALS; trial++) {
      const r = simulate({
        seed: 2000 + trial,
        rps: 100,
        requests: Math.ceil((MAX_SIM_MS * 100) / 1000),
        behaviour: withBadHost(BAD, (random) => (random() < 0.5 ? unavailable : ok)),
        detection: { ...base, ...detection },
        watch: BAD,
        stopOnEjection: true,
      });
      const ejection = r.ejections.find((e) => e.host === BAD);
      const intervals = ejection === undefined ? Number.POSITIVE_INFINITY : (ejection.t - ONSET_MS) / 10_000;
      if (ejection !== undefined) reasons[ejection.reason] = (reasons[ejection.reason] ?? 0) + 1;
      worst = Math.max(worst, intervals);
      sum += intervals;
    }
    json[`${configName}.halfFailing.${ruleName}`] = {
      trials: TRIALS,
      worstIntervals: worst,
      meanIntervals: sum / TRIALS,
      reasons,
    };
    record(
      configIndex,
      '2 time to eject a 50 % failing host',
      `${ruleName}, 100 rps cluster-wide`,
      '<= 2 intervals',
      `${worst.toFixed(2)} intervals worst, ${(sum / TRIALS).toFixed(2)} mean (${Object.entries(reasons)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ')})`,
      worst <= 2,
    );
  }

  // Figure 3: false ejections with 1 % background errors.
  {
    const r = simulate({
      seed: 3000,
      rps: 100,
      requests: FALSE_EJECTION_REQUESTS,
      behaviour: background,
      detection: base,
    });
    const byReason: Record<string, number> = {};
    for (const e of r.ejections) byReason[e.reason] = (byReason[e.reason] ?? 0) + 1;
    json[`${configName}.falseEjections`] = {
      requests: r.requests,
      simulatedSeconds: r.requests / 100,
      ejections: r.ejections.length,
      byReason,
      panicRequests: r.panicRequests,
    };
    record(
      configIndex,
      '3 false ejections',
      `${r.requests.toLocaleString('en')} requests, 1 % background errors, 100 rps`,
      '0',
      `${r.ejections.length}${
        r.ejections.length > 0
          ? ` (${Object.entries(byReason)
              .map(([k, v]) => `${k} ×${v}`)
              .join(', ')})`
          : ''
      }`,
      r.ejections.length === 0,
    );
  }
}

const verdict = (pass: boolean | undefined) => (pass === undefined ? '-' : pass ? 'yes' : 'NO');
const widths = [35, 75, 38, ...CONFIGS.flatMap(() => [72, 3])];
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
console.log(`health-sim${quick ? ' (quick)' : ''}: ${HOSTS} hosts, ${TRIALS} trials per figure, simulated time\n`);
console.log(line(['figure', 'scenario', 'target', ...CONFIGS.flatMap(([name]) => [name, 'ok'])]));
console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
for (const r of rows) {
  console.log(line([r.figure, r.scenario, r.target, ...CONFIGS.flatMap((_, i) => [r.values[i]!, verdict(r.pass[i])])]));
}

const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'health-sim.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'health-sim',
      quick,
      hosts: HOSTS,
      trials: TRIALS,
      configs: CONFIGS.map(([name]) => name),
      figures: json,
      rows,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${out}`);
