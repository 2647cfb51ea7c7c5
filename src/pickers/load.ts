/**
 * Load metrics a subchannel keeps for pickers to read: its in-flight count (in its pool's shared array) and a
 * peak-sensitive EWMA of latency (in a shared array of estimates), so that the load-aware pickers read dense arrays
 * rather than an object a candidate.
 *
 * Kept apart from selection (pickers) and membership (pool), as tower does: the subchannel feeds it, the
 * `peak-ewma` picker reads it.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';

/** Construction options of a {@link PeakEwma}. @category Pickers */
export interface PeakEwmaOptions {
  /** Clock for observation timestamps. */
  readonly clock: Clock;
  /**
   * Decay time constant, ms: an observation's weight falls to 1/e after this long.
   * @defaultValue 10000 (Finagle and Linkerd)
   */
  readonly decayMs?: number | undefined;
}

/**
 * The in-flight counts of one set of targets (a subchannel pool's), one int32 each in one typed array, replaced by a
 * larger copy when it fills up (so readers and writers fetch `array` each time). At N = 10,000 the targets are
 * scattered over megabytes of heap and reading a count from one is a cache miss a candidate; these counts take 40 KB,
 * and the load-aware pickers read them from here instead (issue 14). Record 0 is never handed out: a target that gave
 * its record back counts there, so a late attempt on it cannot touch the count of the record's next owner.
 * @internal
 */
export class InFlightCounts {
  array = new Int32Array(64);
  #next = 1;
  readonly #free: number[] = [];

  /** A record at 0. */
  take(): number {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#next++;
      if (slot >= this.array.length) {
        const larger = new Int32Array(this.array.length * 2);
        larger.set(this.array);
        this.array = larger;
      }
    }
    this.array[slot] = 0;
    return slot;
  }

  /** Gives `slot` back, for a later {@link InFlightCounts.take}; its owner must count at record 0 from now on. */
  release(slot: number): void {
    if (slot === 0) return;
    this.array[slot] = 0;
    this.#free.push(slot);
  }
}

/**
 * Keys of a target whose in-flight count lives in an {@link InFlightCounts}: `target[inFlightTable]` is the table,
 * `target[inFlightSlot]` the record. Such a target promises that its `inFlight` is always that record's value, and
 * that its `load`, once read, never changes: pickers then read both from the shared arrays, not from the target.
 * Targets without them (custom ones) are read directly.
 * @internal
 */
export const inFlightTable: unique symbol = Symbol('sidecarless.inFlightTable');
/** @internal See {@link inFlightTable}. */
export const inFlightSlot: unique symbol = Symbol('sidecarless.inFlightSlot');

/** @internal A target whose in-flight count lives in an {@link InFlightCounts}. */
export interface CountedTarget {
  readonly [inFlightTable]: InFlightCounts;
  readonly [inFlightSlot]: number;
}

/** The table of pickers whose targets have none: never written, read by no pick. */
const NO_TABLE = new InFlightCounts();

/**
 * @internal The table and each target's record in it, when every target has one in the same table (the subchannels
 * of one pool); otherwise `slots` is undefined (the picker then reads `inFlight` from the targets) and `table` an
 * empty one. A picker keeps the records it got at its build: one whose target has since closed and given its record
 * back reads the record's next owner, for a target it can no longer send to anyway.
 */
export function inFlightRecordsOf(targets: readonly object[]): {
  readonly table: InFlightCounts;
  readonly slots: Int32Array | undefined;
} {
  const table = (targets[0] as Partial<CountedTarget> | undefined)?.[inFlightTable];
  if (table === undefined) return { table: NO_TABLE, slots: undefined };
  const slots = new Int32Array(targets.length);
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i] as Partial<CountedTarget>;
    if (t[inFlightTable] !== table) return { table: NO_TABLE, slots: undefined };
    slots[i] = t[inFlightSlot] as number;
  }
  return { table, slots };
}

/**
 * Every live estimate's value and stamp, two doubles a record, in one typed array (replaced by a larger copy when it
 * fills up, so readers fetch `array` each time). The `peak-ewma` picker reads a candidate's estimate from here: one
 * cache line, rather than a chain of three dependent loads (its target, the target's `PeakEwma`, then the heap
 * number each double field of an object is boxed in). A record is reused once its `PeakEwma` has been collected, so
 * a picker still holding a target (and so its `PeakEwma`) never sees its record change hands. 16 bytes an estimate.
 * @internal
 */
export const loadRecords: { array: Float64Array } = { array: new Float64Array(2 * 64) };
let nextRecord = 0;
const freeRecords: number[] = [];
const release = new FinalizationRegistry<number>((record) => freeRecords.push(record));
let recordOfLoad: (load: PeakEwma) => number;

/** @internal The index of `load`'s record in {@link loadRecords}. */
export function recordOf(load: PeakEwma): number {
  return recordOfLoad(load);
}

/**
 * Peak-sensitive exponentially weighted moving average of latency (Finagle `PeakEwma`, as also used by Linkerd's
 * tower balancer).
 *
 * On each observation `rtt` at time `t`, with `w = exp(-(t - last) / decay)`: if `rtt` exceeds the current value,
 * the value jumps to `rtt` (so a slowdown is seen at once); otherwise it moves towards `rtt` as
 * `value * w + rtt * (1 - w)` (so recovery is gradual). Between observations the value decays towards zero as
 * `value * exp(-(now - last) / decay)`, as in Finagle and tower: an endpoint that has been idle for a while looks
 * cheap again and gets probed rather than shunned forever.
 *
 * @example
 * ```ts
 * const ewma = new PeakEwma({ clock: systemClock });
 * ewma.observe(12);
 * ewma.valueAt(systemClock.now()); // about 12 ms
 * ```
 *
 * @category Pickers
 */
export class PeakEwma {
  /**
   * Decay time constant, ms. The `peak-ewma` policy sets it to its configured `decayMs` when it builds a picker: a
   * cluster has one policy, so every picker writes the same value.
   */
  decayMs: number;
  /**
   * The latency assumed before the first observation, ms, decaying from the creation time like an estimate (the
   * `peak-ewma` policy's `defaultRttMs`, set when it builds a picker; 0 otherwise): a failure before any response
   * counts as at least this (see {@link PeakEwma.observeFailure}).
   */
  priorMs = 0;
  readonly #clock: Clock;
  /** Its record in {@link loadRecords}: `[2 * record]` the value (-1 before the first sample), `[2 * record + 1]` the stamp. */
  readonly #record: number;
  #samples = 0;

  static {
    recordOfLoad = (load) => load.#record;
  }

  constructor(options: PeakEwmaOptions) {
    this.#clock = options.clock;
    this.decayMs = options.decayMs ?? 10_000;
    const record = takeRecord(this);
    this.#record = record;
    const r = loadRecords.array;
    r[2 * record] = -1;
    // Before the first observation the stamp is the creation time: a reader's default RTT decays from there (tower's
    // `RttEstimate` starts the same way), so comparing two targets never needs the current time.
    r[2 * record + 1] = options.clock.now();
  }

  /** How many latencies were observed so far. 0 means no estimate yet (readers use their default RTT). */
  get samples(): number {
    return this.#samples;
  }

  /** The value at the last observation, ms (before any decay since); exactly 0 before the first. With
   * {@link PeakEwma.stamp}, lets readers compare two estimates without reading the clock:
   * `valueAt(now) = value * exp(-(now - stamp) / decayMs)`. */
  get value(): number {
    return this.#samples === 0 ? 0 : (loadRecords.array[2 * this.#record] as number);
  }

  /** Clock time of the last observation, or of this object's creation before the first. */
  get stamp(): number {
    return loadRecords.array[2 * this.#record + 1] as number;
  }

  /**
   * Records the latency of a response (time to headers), ms. `at` is when it was observed, on this estimate's clock
   * (default: now); a caller that has just read the clock passes its reading, which saves a read (about 45 ns on the
   * VMs measured, a tenth of the balancer's own cost per request, issue 14).
   */
  observe(latencyMs: number, at?: number): void {
    if (!(latencyMs >= 0) || latencyMs === Number.POSITIVE_INFINITY) return;
    const now = at ?? this.#clock.now();
    const r = loadRecords.array;
    const i = 2 * this.#record;
    const value = r[i] as number;
    const stamp = r[i + 1] as number;
    if (this.#samples === 0 || latencyMs > value) {
      r[i] = latencyMs;
    } else {
      const elapsed = Math.max(now - stamp, 0);
      const w = Math.exp(-elapsed / this.decayMs);
      r[i] = value * w + latencyMs * (1 - w);
    }
    // Never back once observed: responses are observed as their attempts end, not always in the order their headers
    // came (the time passed in is the time of headers).
    if (now > stamp || this.#samples === 0) r[i + 1] = now;
    this.#samples++;
  }

  /**
   * Records an attempt that failed without a response, after `latencyMs`. Finagle feeds failures into the EWMA
   * like successes; we deliberately deviate: a failure counts as at least the current (decayed) estimate, so an
   * endpoint that fails fast (connection refused in 1 ms) never looks cheaper for it and cannot become a black hole
   * that attracts traffic. Outlier detection is what ejects failing endpoints. `at` as for {@link PeakEwma.observe}.
   */
  observeFailure(latencyMs: number, at?: number): void {
    const now = at ?? this.#clock.now();
    // Before any response, what readers assume: the prior decayed from the creation time (the stamp until then).
    const current =
      this.#samples === 0 ? this.priorMs * Math.exp(-Math.max(now - this.stamp, 0) / this.decayMs) : this.valueAt(now);
    // A NaN or negative latency counts as 0, so the failure records the current estimate.
    this.observe(Number.isNaN(latencyMs) ? current : Math.max(latencyMs, current, 0), now);
  }

  /**
   * The estimate at time `now` (from the same clock), ms: the last value decayed for the time since it was set.
   * Pure read, allocation-free; 0 before the first observation (check {@link PeakEwma.samples}).
   */
  valueAt(now: number): number {
    const value = this.value;
    const elapsed = now - this.stamp;
    return elapsed > 0 ? value * Math.exp(-elapsed / this.decayMs) : value;
  }
}

function takeRecord(owner: PeakEwma): number {
  let record = freeRecords.pop();
  if (record === undefined) {
    record = nextRecord++;
    const array = loadRecords.array;
    if (2 * record >= array.length) {
      const larger = new Float64Array(array.length * 2);
      larger.set(array);
      loadRecords.array = larger;
    }
  }
  release.register(owner, record);
  return record;
}
