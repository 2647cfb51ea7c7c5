/**
 * Exponential backoff with jitter, after gRPC's connection-backoff.md:
 * delay(n) = min(initial × multiplier^n, max) ± jitter × delay, uniformly.
 *
 * @module
 */
import { InvalidOptionError } from '../errors.js';
import type { RandomSource } from '../runtime.js';

/** Backoff settings. Defaults are gRPC's connection backoff. */
export interface BackoffOptions {
  /** First delay, ms. @defaultValue 1000 */
  readonly initialMs?: number;
  /** Growth factor per failure, at least 1. @defaultValue 1.6 */
  readonly multiplier?: number;
  /** Relative jitter in [0, 1): the delay is spread uniformly by ± jitter × delay. @defaultValue 0.2 */
  readonly jitter?: number;
  /** Cap on the delay before jitter, ms; at least `initialMs`. @defaultValue 120000 */
  readonly maxMs?: number;
}

/** Validated backoff settings. */
export type ResolvedBackoffOptions = Required<BackoffOptions>;

/** Validates backoff settings, naming the bad one as `${prefix}.<field>`. */
export function resolveBackoffOptions(options: BackoffOptions | undefined, prefix: string): ResolvedBackoffOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidOptionError(prefix, 'expected an object');
  }
  const initialMs = options?.initialMs ?? 1000;
  const multiplier = options?.multiplier ?? 1.6;
  const jitter = options?.jitter ?? 0.2;
  const maxMs = options?.maxMs ?? 120_000;
  const positive = (v: number) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  if (!positive(initialMs)) throw new InvalidOptionError(`${prefix}.initialMs`, 'expected a positive number of ms');
  if (!positive(multiplier) || multiplier < 1) {
    throw new InvalidOptionError(`${prefix}.multiplier`, 'expected a number >= 1');
  }
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) {
    throw new InvalidOptionError(`${prefix}.jitter`, 'expected a number in [0, 1)');
  }
  if (!positive(maxMs)) throw new InvalidOptionError(`${prefix}.maxMs`, 'expected a positive number of ms');
  if (maxMs < initialMs) throw new InvalidOptionError(`${prefix}.maxMs`, 'must not be below initialMs');
  return { initialMs, multiplier, jitter, maxMs };
}

/** Stateful backoff: each {@link Backoff.next} returns the next delay; {@link Backoff.reset} starts over. */
export class Backoff {
  readonly #options: ResolvedBackoffOptions;
  readonly #random: RandomSource;
  #current: number;

  constructor(options: ResolvedBackoffOptions, random: RandomSource) {
    this.#options = options;
    this.#random = random;
    this.#current = options.initialMs;
  }

  /** The delay before the next try, ms; grows the base for the one after. */
  next(): number {
    const base = this.#current;
    this.#current = Math.min(base * this.#options.multiplier, this.#options.maxMs);
    const spread = base * this.#options.jitter;
    return Math.max(0, base + (this.#random() * 2 - 1) * spread);
  }

  /** Back to the initial delay (after a success). */
  reset(): void {
    this.#current = this.#options.initialMs;
  }
}
