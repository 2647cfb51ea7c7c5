/**
 * Exponential backoff with jitter, after gRPC's connection-backoff.md:
 * delay(n) = min(initial × multiplier^n, max) ± jitter × delay, uniformly.
 *
 * @module
 */
import { InvalidOptionError } from './errors.js';
// The options toolkit, so that every option family reports a bad value the same way.
import {
  checkObject,
  describe,
  duration,
  func,
  joinPath,
  MAX_TIMER_MS,
  number,
  readOptions,
  required,
} from './options.js';
import type { RandomSource } from './runtime.js';

/** Backoff settings. Defaults are gRPC's connection backoff. @category Options */
export interface BackoffOptions {
  /** First delay, ms: above 0, at most 2147483647 (the longest timer Node accepts). @defaultValue 1000 */
  readonly initialMs?: number;
  /** Growth factor per failure, at least 1. @defaultValue 1.6 */
  readonly multiplier?: number;
  /** Relative jitter in [0, 1): the delay is spread uniformly by ± jitter × delay. @defaultValue 0.2 */
  readonly jitter?: number;
  /**
   * Cap on the delay before jitter, ms; at least `initialMs`, at most 2147483647. A jittered delay is also capped
   * there. @defaultValue 120000
   */
  readonly maxMs?: number;
}

/** Validated backoff settings. @category Backoff */
export type ResolvedBackoffOptions = Required<BackoffOptions>;

/**
 * The defaults of one backoff family. `maxMs` may be a function of the (validated) `initialMs`, for a cap that
 * follows a user's larger first delay (the retry backoff's `max(250, initialMs)`).
 */
export interface BackoffDefaults {
  /** Default first delay, ms. */
  readonly initialMs: number;
  /** Default growth factor per step. */
  readonly multiplier: number;
  /** Default relative jitter. */
  readonly jitter: number;
  /** Default cap, ms, or a function of the validated `initialMs` giving it. */
  readonly maxMs: number | ((initialMs: number) => number);
}

/** gRPC's connection backoff: 1 s, ×1.6, ±20 %, at most 120 s. The default of {@link resolveBackoffOptions}. */
export const CONNECTION_BACKOFF: BackoffDefaults = { initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 120_000 };

/**
 * Validates backoff settings, naming the bad one as `${path}.<field>`; omitted fields take `defaults` (gRPC's
 * connection backoff unless given).
 *
 * @throws InvalidOptionError for a value that is not a plain object (or `undefined`), an unknown key, an `initialMs`
 *   or `maxMs` that is not above 0 or exceeds the longest Node timer (2147483647 ms; a longer one would fire after
 *   1 ms), a `multiplier` below 1, a `jitter` outside [0, 1), or a `maxMs` below `initialMs`.
 *
 * @example
 * ```ts
 * const options = resolveBackoffOptions({ initialMs: 500, maxMs: 30_000 }, 'connectBackoff');
 * const backoff = new Backoff(options, Math.random);
 * ```
 *
 * @category Backoff
 */
export function resolveBackoffOptions(
  options: BackoffOptions | undefined,
  path: string,
  defaults: BackoffDefaults = CONNECTION_BACKOFF,
): ResolvedBackoffOptions {
  // A getter or Proxy trap that throws is reported as an invalid option, never escapes raw (a public helper).
  return readOptions(path || 'options', () => resolveUnguarded(options, path, defaults));
}

function resolveUnguarded(
  options: BackoffOptions | undefined,
  path: string,
  defaults: BackoffDefaults,
): ResolvedBackoffOptions {
  const o = options === undefined ? {} : checkObject(options, ['initialMs', 'multiplier', 'jitter', 'maxMs'], path);
  const initialMs = duration(o.initialMs, joinPath(path, 'initialMs'), defaults.initialMs);
  const multiplier = number(o.multiplier, joinPath(path, 'multiplier'), defaults.multiplier, 1);
  const jitter = o.jitter === undefined ? defaults.jitter : o.jitter;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) {
    throw new InvalidOptionError(joinPath(path, 'jitter'), `expected a number in [0, 1), got ${describe(jitter)}`);
  }
  const maxDefault = typeof defaults.maxMs === 'function' ? defaults.maxMs(initialMs) : defaults.maxMs;
  const maxMs = duration(o.maxMs, joinPath(path, 'maxMs'), maxDefault);
  if (maxMs < initialMs) throw new InvalidOptionError(joinPath(path, 'maxMs'), 'must not be below initialMs');
  return { initialMs, multiplier, jitter, maxMs };
}

/**
 * Stateful backoff: each {@link Backoff.next} returns the next delay; {@link Backoff.reset} starts over.
 *
 * @category Backoff
 */
export class Backoff {
  readonly #options: ResolvedBackoffOptions;
  readonly #random: RandomSource;
  #current: number;

  constructor(options: ResolvedBackoffOptions, random: RandomSource) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError(
        'options',
        `expected resolved backoff options (resolveBackoffOptions), got ${describe(options)}`,
      );
    }
    func(required(random, 'random'), 'random');
    this.#options = options;
    this.#random = random;
    this.#current = options.initialMs;
  }

  /** The delay before the next try, ms; grows the base for the one after. */
  next(): number {
    const base = this.#current;
    this.#current = Math.min(base * this.#options.multiplier, this.#options.maxMs);
    const spread = base * this.#options.jitter;
    // Jitter may push a delay near the cap past the longest timer, which Node would fire after 1 ms.
    return Math.min(MAX_TIMER_MS, Math.max(0, base + (this.#random() * 2 - 1) * spread));
  }

  /** Back to the initial delay (after a success). */
  reset(): void {
    this.#current = this.#options.initialMs;
  }
}
