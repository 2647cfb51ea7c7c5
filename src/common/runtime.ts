/**
 * The clock and random source every time- or chance-dependent part of sidecarless takes, so tests and simulations
 * can run deterministically.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { InvalidOptionError } from './errors.js';

/** A monotonic clock and timers. All times are milliseconds. @category Time and randomness */
export interface Clock {
  /** Monotonic milliseconds (like `performance.now()`); only differences are meaningful. */
  now(): number;
  /**
   * Schedules `fn` after `ms`. By default the timer must not keep the process alive (real timers are unref'd):
   * background work (polling, backoff, draining) never holds a process open. `ref: true` is for timers that belong
   * to a request the caller is waiting for (deadline, wait-for-ready, retry delay): like the request's socket, they
   * keep the process alive until the request ends.
   */
  setTimeout(fn: () => void, ms: number, ref?: boolean): TimerHandle;
  /** Cancels a timer; cancelling a fired or cancelled timer is a no-op. */
  clearTimeout(handle: TimerHandle): void;
}

/** An opaque timer handle returned by {@link Clock.setTimeout}. @category Time and randomness */
export type TimerHandle = unknown;

/** Returns a float in [0, 1), like `Math.random`. @category Time and randomness */
export type RandomSource = () => number;

// The longest delay a Node timer accepts (common/options.ts's MAX_TIMER_MS; not imported, as options.ts imports
// this module's types).
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * The real clock: `performance.now()` and unref'd Node timers. A delay above the longest Node timer (2147483647 ms)
 * waits that long rather than firing after 1 ms, as Node would. @category Time and randomness
 */
export const systemClock: Clock = {
  // `node:perf_hooks`' `performance`, not the global: the global is an accessor, which optimized code reads through
  // an IC call at every clock read (three a request; issue 14).
  now: () => performance.now(),
  setTimeout(fn, ms, ref = false) {
    // A safety net for computed delays (an interval plus its jitter, a timeout plus its margin): each is capped or
    // validated where it is computed, but one missed would turn a long wait into a busy loop.
    const t = setTimeout(fn, ms > LONGEST_TIMER_MS ? LONGEST_TIMER_MS : ms);
    if (!ref) t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/**
 * A xoshiro128** generator (Blackman and Vigna, "Scrambled Linear Pseudorandom Number Generators", 2018) over the
 * 128-bit state `s`, returning floats in [0, 1) with 32 random bits each.
 *
 * Why not `Math.random`: it costs ~20 ns a call on the 2-core benchmark machine against ~6 ns for this generator
 * in plain JavaScript (`Math.imul` and shifts, no allocation), and a random or weighted-random pick is little more
 * than one call. 32 bits are plenty for choosing among at most a few million endpoints or table slots. Not for
 * secrets: load balancing needs spread, not unpredictability.
 *
 * @internal Exported for the reference-vector test.
 */
export function xoshiro128ss(s: Uint32Array): RandomSource {
  let a = s[0] as number;
  let b = s[1] as number;
  let c = s[2] as number;
  let d = s[3] as number;
  if ((a | b | c | d) === 0) a = 0x9e3779b9; // the all-zero state is the one fixed point
  const fill: RandomFill = (out) => {
    const x = Math.imul(b, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9);
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    out[0] = (result >>> 0) / 4294967296;
  };
  const one = new Float64Array(1);
  const source: RandomSource = () => {
    fill(one);
    return one[0] as number;
  };
  fills.set(source, fill);
  return source;
}

/**
 * @internal Writes one draw of a random source into `out[0]`.
 *
 * How pickers draw without allocating: a float returned from a call V8 does not inline is boxed as a 16-byte heap
 * number, and whether a picker's call to its random source is inlined depends on the engine version and on how
 * many sources a call site has seen (Node 24 often does not inline it). A float written into a `Float64Array` is
 * never boxed. The built-in generators fill directly; any other source is wrapped.
 */
export type RandomFill = (out: Float64Array) => void;

const fills = new WeakMap<RandomSource, RandomFill>();

/** @internal The {@link RandomFill} that draws from `random`: the same numbers, in the same order. */
export function randomFill(random: RandomSource): RandomFill {
  return fills.get(random) ?? ((out) => (out[0] = random()));
}

/**
 * A seeded random source: the same `seed` gives the same sequence in every process and on every platform. For
 * tests, simulations and benchmarks that must replay exactly; pass it as a client's or cluster's `random`.
 * The 32-bit seed is expanded to the generator's 128-bit state with SplitMix32.
 *
 * @param seed - Any number; its low 32 bits are used.
 * @example
 * ```ts
 * const client = createClient({ target: ['127.0.0.1:8081', '127.0.0.1:8082'], random: seededRandom(42) });
 * ```
 *
 * @category Time and randomness
 */
export function seededRandom(seed: number): RandomSource {
  if (typeof seed !== 'number') throw new InvalidOptionError('seed', `expected a number, got ${typeof seed}`);
  let z = seed >>> 0;
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    z = (z + 0x9e3779b9) | 0;
    let m = z;
    m = Math.imul(m ^ (m >>> 16), 0x85ebca6b);
    m = Math.imul(m ^ (m >>> 13), 0xc2b2ae35);
    state[i] = m ^ (m >>> 16);
  }
  return xoshiro128ss(state);
}

/**
 * The default random source: xoshiro128** seeded from the operating system's generator
 * (`crypto.getRandomValues`) when the module loads, so every process starts at a different point. Same contract
 * as `Math.random` (floats in [0, 1)), a third of its cost; see {@link seededRandom} for a repeatable one.
 *
 * @category Time and randomness
 */
export const systemRandom: RandomSource = xoshiro128ss(globalThis.crypto.getRandomValues(new Uint32Array(4)));

/**
 * Runs `fn` on a later turn of the event loop, after I/O (`setImmediate`); returns what cancels it. The one way work
 * split over turns (sliced updates, staged picker builds) is deferred, so tests can replace it in one place each.
 */
export function deferToNextTurn(fn: () => void): () => void {
  const handle = setImmediate(fn);
  return () => clearImmediate(handle);
}
