/**
 * Smooth weighted round robin by earliest-deadline-first scheduling, as Envoy's weighted round robin
 * (`EdfScheduler`): target `i` is due every `1 / weight_i`; each pick serves the target with the earliest deadline
 * and moves its deadline on by `1 / weight_i`. Over any stretch of picks each target's share stays within a couple
 * of picks of its weight, so weights interleave (5:1:1 gives `a a b a a c a ...`, not `a a a a a b c`).
 *
 * Each target starts at a random phase in its first period (Envoy does the same), so clients built together do not
 * move in lockstep. Equal weights reduce to round robin from a random start.
 *
 * Two ways to run the same schedule, chosen at build time:
 * - Integer weights whose sum (after dividing by their common divisor) is at most {@link MAX_SCHEDULE_LENGTH}, which
 *   covers configured and SRV weights in practice: the EDF order is periodic with period `sum(weights)` (in one
 *   period every target is served exactly `weight` times and the deadlines return to where they were, shifted), so
 *   the build computes one period and a pick is a step along that array, O(1) whatever N. This is what keeps a pick
 *   near round-robin cost at N = 1000, where walking a heap costs ~10 levels of cache misses per pick.
 * - Anything else (fractional weights, as during a slow-start ramp, or a period too long to store): the heap itself,
 *   O(log N) per pick ({@link WeightedRoundRobinPicker}).
 *
 * @module
 */
import { EdfHeap } from './edf.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { allEqual, completeResults, indexOf, weightsOf } from './util.js';
import { rejectUnknownKeys } from '../common/options.js';

/** The picker built by {@link weightedRoundRobinPolicy}. */
export class WeightedRoundRobinPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  readonly #period: Float64Array;
  readonly #heap: EdfHeap;

  /** @internal Built by the policy. */
  constructor(results: PickResult<T>[], weights: Float64Array, random: () => number) {
    this.#results = results;
    const n = results.length;
    // Normalise so the largest weight has period 1: keeps deadlines in a comfortable range whatever the units.
    let max = 0;
    for (let i = 0; i < n; i++) max = Math.max(max, weights[i] as number);
    this.#period = new Float64Array(n);
    const deadlines = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const period = max / (weights[i] as number);
      this.#period[i] = period;
      deadlines[i] = random() * period;
    }
    this.#heap = new EdfHeap(deadlines);
  }

  /**
   * The target with the earliest deadline, rescheduled one period (1 / weight) later. Always `complete`; the context
   * is not read.
   */
  pick(_context: PickContext): PickResult<T> {
    const heap = this.#heap;
    const i = heap.top();
    heap.replaceTop(heap.topDeadline() + (this.#period[i] as number));
    return this.#results[i] as PickResult<T>;
  }
}

/**
 * The longest precomputed schedule: 65536 result references (512 KiB). Longer periods use the heap, whose memory is
 * O(N) rather than O(sum of weights).
 */
export const MAX_SCHEDULE_LENGTH = 65_536;

/** Steps through a precomputed cycle of results: equal weights (the results once each) or one EDF period. */
class CyclePicker<T extends Pickable> implements Picker<T> {
  readonly #cycle: PickResult<T>[];
  #next: number;

  constructor(cycle: PickResult<T>[], start: number) {
    this.#cycle = cycle;
    this.#next = start;
  }

  pick(_context: PickContext): PickResult<T> {
    const i = this.#next;
    this.#next = i + 1 === this.#cycle.length ? 0 : i + 1;
    return this.#cycle[i] as PickResult<T>;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * One period of the EDF schedule for integer `weights`, as target indices, or `undefined` when the weights are not
 * all integers or the period would exceed {@link MAX_SCHEDULE_LENGTH}.
 *
 * Target `i`'s `k`-th service is at time `(k + u_i) / w_i` with a random phase `u_i` in [0, 1): in every unit of
 * time each target is served exactly `w_i` times, so the services in [0, 1), ordered by time (ties by index), are
 * one full period, and the schedule repeats it. Times are computed from the counter, not accumulated, so rounding
 * cannot drift a target across the period boundary; `u_i` stays below 0.999 so `k + u_i < w_i` holds exactly.
 */
export function edfSchedule(weights: Float64Array, random: () => number): Int32Array | undefined {
  let g = 0;
  for (const w of weights) {
    if (!Number.isInteger(w) || w > MAX_SCHEDULE_LENGTH) return undefined;
    g = gcd(w, g);
  }
  let length = 0;
  for (const w of weights) length += w / g;
  if (length > MAX_SCHEDULE_LENGTH) return undefined;
  const n = weights.length;
  const rate = new Float64Array(n);
  const phase = new Float64Array(n);
  const served = new Float64Array(n);
  const first = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    rate[i] = (weights[i] as number) / g;
    phase[i] = random() * 0.999;
    first[i] = (phase[i] as number) / (rate[i] as number);
  }
  const heap = new EdfHeap(first);
  const schedule = new Int32Array(length);
  for (let k = 0; k < length; k++) {
    const i = heap.top();
    schedule[k] = i;
    const done = (served[i] as number) + 1;
    served[i] = done;
    heap.replaceTop((done + (phase[i] as number)) / (rate[i] as number));
  }
  return schedule;
}

/**
 * The `weighted-round-robin` policy. Takes no settings. Any valid endpoint weights work: periods are doubles, so a
 * 1e6 : 1 ratio is represented exactly enough (the light target is served once per ~1e6 picks).
 *
 * @category Built-in policies
 */
export const weightedRoundRobinPolicy: PickerPolicy<Record<string, never>> = {
  name: 'weighted-round-robin',
  parseConfig(raw, path = 'picker') {
    rejectUnknownKeys(raw, path, []);
    return {};
  },
  build(targets, _config, env) {
    const results = completeResults(targets);
    const weights = weightsOf(targets);
    if (allEqual(weights)) return new CyclePicker(results, indexOf(env.random(), results.length));
    const schedule = edfSchedule(weights, env.random);
    if (schedule === undefined) return new WeightedRoundRobinPicker(results, weights, env.random);
    return new CyclePicker(
      Array.from(schedule, (i) => results[i] as (typeof results)[number]),
      0,
    );
  },
};
