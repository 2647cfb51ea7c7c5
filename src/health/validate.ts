/**
 * @internal Option validation shared by the health modules. Every failure is an {@link InvalidOptionError} naming
 * the option by its dotted path (`outlierDetection.consecutive5xx`).
 *
 * @module
 */
import { InvalidOptionError } from '../errors.js';

/** Longest delay a Node timer accepts, ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Throws unless `raw` is a plain object; rejects keys not in `allowed`. */
export function checkObject(raw: unknown, allowed: readonly string[], prefix: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidOptionError(prefix, `expected an object, got ${describe(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(`${prefix}.${key}`, `unknown option (allowed: ${allowed.join(', ')})`);
    }
  }
  return record;
}

/** An integer >= `min`. */
export function integer(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(name, `expected an integer >= ${min}, got ${describe(value)}`);
  }
  return value;
}

/** A percentage in [0, 100]. */
export function percent(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) {
    throw new InvalidOptionError(name, `expected a percentage from 0 to 100, got ${describe(value)}`);
  }
  return value;
}

/** A duration in ms: > 0 (or >= 0 when `allowZero`) and at most {@link MAX_TIMER_MS}. */
export function duration(value: unknown, name: string, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (!allowZero && value === 0) ||
    value > MAX_TIMER_MS
  ) {
    throw new InvalidOptionError(
      name,
      `expected a number of ms ${allowZero ? 'from 0' : 'above 0'} up to ${MAX_TIMER_MS}, got ${describe(value)}`,
    );
  }
  return value;
}

/** A finite number >= `min` (exclusive when `exclusive`). */
export function number(value: unknown, name: string, fallback: number, min: number, exclusive = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (exclusive && value === min)) {
    throw new InvalidOptionError(name, `expected a number ${exclusive ? '>' : '>='} ${min}, got ${describe(value)}`);
  }
  return value;
}

/** A boolean. */
export function boolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, `expected a boolean, got ${describe(value)}`);
  return value;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}
