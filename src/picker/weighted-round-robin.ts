/**
 * Smooth weighted round robin by earliest-deadline-first scheduling, as Envoy's weighted round robin
 * (`EdfScheduler`): target `i` is due every `1 / weight_i`; each pick serves the target with the earliest deadline
 * and moves its deadline on by `1 / weight_i`. Over any stretch of picks each target's share stays within a couple
 * of picks of its weight, so weights interleave (5:1:1 gives `a a b a a c a ...`, not `a a a a a b c`). O(log n)
 * per pick, no scan.
 *
 * Each target starts at a random phase in its first period (Envoy does the same), so clients built together do not
 * move in lockstep. Equal weights reduce to round robin from a random start.
 *
 * @module
 */
import { EdfHeap } from './edf.js';
import type { Pickable, PickContext, Picker, PickerPolicy, PickResult } from './picker.js';
import { rejectUnknownKeys } from './picker.js';
import { allEqual, completeResults, indexOf, weightsOf } from './util.js';

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

class EqualWeightPicker<T extends Pickable> implements Picker<T> {
  readonly #results: PickResult<T>[];
  #next: number;

  constructor(results: PickResult<T>[], start: number) {
    this.#results = results;
    this.#next = start;
  }

  pick(_context: PickContext): PickResult<T> {
    const i = this.#next;
    this.#next = i + 1 === this.#results.length ? 0 : i + 1;
    return this.#results[i] as PickResult<T>;
  }
}

/**
 * The `weighted-round-robin` policy. Takes no settings. Any valid endpoint weights work: periods are doubles, so a
 * 1e6 : 1 ratio is represented exactly enough (the light target is served once per ~1e6 picks).
 */
export const weightedRoundRobinPolicy: PickerPolicy<Record<string, never>> = {
  name: 'weighted-round-robin',
  parseConfig(raw) {
    rejectUnknownKeys(raw, []);
    return {};
  },
  build(targets, _config, env) {
    const results = completeResults(targets);
    const weights = weightsOf(targets);
    if (allEqual(weights)) return new EqualWeightPicker(results, indexOf(env.random(), results.length));
    return new WeightedRoundRobinPicker(results, weights, env.random);
  },
};
