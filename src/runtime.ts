/**
 * The clock and random source every time- or chance-dependent part of sidecarless takes, so tests and simulations
 * can run deterministically.
 *
 * @module
 */

/** A monotonic clock and timers. All times are milliseconds. */
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

/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/** Returns a float in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms, ref = false) {
    const t = setTimeout(fn, ms);
    if (!ref) t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** `Math.random`. */
export const systemRandom: RandomSource = Math.random;
