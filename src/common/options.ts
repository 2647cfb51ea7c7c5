/**
 * The options toolkit: every option sidecarless accepts is validated here, so that every family reports a bad value
 * the same way. A failure is an {@link InvalidOptionError} naming the option by its full dotted path, as the user
 * wrote it (`clusters.users.retry.perTryTimeoutMs`), with one wording per kind of mistake.
 *
 * Conventions (docs/ARCHITECTURE.md, "Options"):
 * - Paths are built with {@link joinPath} by whoever descends into a nested object; a validator never re-prefixes
 *   another's error message.
 * - Every duration is a number of milliseconds and its name ends in `Ms`; validated by {@link duration}.
 * - Every backoff has one shape, `{ initialMs, maxMs, multiplier, jitter }` (common/backoff.ts).
 * - Unknown keys are refused by {@link checkObject} / {@link rejectUnknownKeys}, with a "did you mean" suggestion and,
 *   for an option renamed in 0.2.0, its new name.
 *
 * @category Options
 * @module
 */
import { InvalidOptionError, isSidecarlessError } from './errors.js';
import { isFieldValue } from './http-syntax.js';
import { thrownMessage } from './thrown.js';
import type { Clock } from './runtime.js';

/** Longest delay a Node timer accepts, ms; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The largest relative weight of a share option (a route split's `weight`, a `zoneAware.callers` count): large
 * enough for any real ratio or count, small enough that a sum of them stays finite and exact in a double
 * (`1e308 + 1e308` is `Infinity`, and every share computed from it 0 or NaN).
 */
export const MAX_SHARE_WEIGHT = 1e9;

/**
 * Options renamed in 0.2.0 (durations carry their unit; one backoff shape), by their old key. An unknown key found
 * here is reported with its new name, so an upgrade fails with a message that says what to write instead.
 */
const RENAMED: Readonly<Record<string, string>> = {
  timeout: 'timeoutMs',
  perTryTimeout: 'perTryTimeoutMs',
  drainTimeout: 'drainTimeoutMs',
  waitForReadyTimeout: 'waitForReadyTimeoutMs',
  idleTimeout: 'idleTimeoutMs',
  delay: 'delayMs',
  maxRetryAfter: 'maxRetryAfterMs',
  backoffInitial: 'backoff.initialMs',
  backoffMax: 'backoff.maxMs',
  resetTimeout: 'resetTimeoutMs',
  rollingCountTimeout: 'rollingCountTimeoutMs',
  refreshInterval: 'refreshIntervalMs',
  minRequestInterval: 'minRequestIntervalMs',
  minRelistInterval: 'minRelistIntervalMs',
  requestTimeout: 'requestTimeoutMs',
  watchIdleTimeout: 'watchIdleTimeoutMs',
  wait: 'waitMs',
  timeoutMargin: 'timeoutMarginMs',
  minTtl: 'minTtlMs',
  maxTtl: 'maxTtlMs',
  decay: 'decayMs',
  defaultRtt: 'defaultRttMs',
};

/** `base.key` (or `key` at the top level). */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base === '' ? key : `${base}.${key}`;
}

/** A short description of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return isRecord(value) ? 'an object' : `an object (${kindOf(value)})`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

// What a non-plain object is (`Map`, `Date`), so "expected an object, got an object" is never the message.
function kindOf(value: object): string {
  try {
    const name: unknown = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor
      ?.name;
    return typeof name === 'string' && name !== '' ? name : 'not a plain object';
  } catch {
    return 'not a plain object';
  }
}

/**
 * True for a plain object (`{}`, an object literal, `JSON.parse` output, `Object.create(null)`, one made in another
 * realm: a `vm` context's): its prototype is null or a realm's `Object.prototype` (an object whose own prototype is
 * null). A `Map`, `Date`, `RegExp` or class instance is not one: read as an options object it would have no keys,
 * and be silently taken as "all defaults" (`retry: new Map([['maxAttempts', 1]])`).
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  try {
    const proto: unknown = Object.getPrototypeOf(value);
    return proto === Object.prototype || proto === null || Object.getPrototypeOf(proto) === null;
  } catch {
    return false; // a Proxy whose getPrototypeOf trap throws
  }
}

/** True for any non-null object (a class instance too): for arguments that are objects of the caller's own kind. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Options that `false` turns off: a `null` given for one is refused with that hint. */
const OFF_WITH_FALSE = new Set([
  'retry',
  'retryBudget',
  'breaker',
  'outlierDetection',
  'healthCheck',
  'tls',
  'http2',
  'slowStart',
  'host',
  'passthrough',
]);

/**
 * The error for an option set to `null`. One rule for every option: `null` is neither "absent" (that is
 * `undefined`, or leaving the key out) nor "off" (that is `false`), because a config file writing `retry: null` may
 * mean either, and taking it as the default gave 3 attempts to a config that meant none.
 */
export function nullOption(name: string, expected?: string): InvalidOptionError {
  const key = name.slice(name.lastIndexOf('.') + 1);
  const off = OFF_WITH_FALSE.has(key) ? ', or `false` to turn it off' : '';
  const got = expected === undefined ? 'got null' : `expected ${expected}, got null`;
  return new InvalidOptionError(
    name,
    `${got}, which is not accepted: omit the option (or set it to undefined) for its default${off}`,
  );
}

/**
 * Throws {@link nullOption} for the first own key of `record` holding `null` (but those in `nullable`, where an
 * undici option documents a meaning for it). Reads data properties only: a getter is not run here (it is read once,
 * where its value is validated, and a helper refuses its `null` there).
 */
export function refuseNulls(record: object, path: string, nullable: readonly string[] = []): void {
  for (const key of Object.keys(record)) {
    if (nullable.includes(key)) continue;
    const field = Object.getOwnPropertyDescriptor(record, key);
    if (field !== undefined && 'value' in field && field.value === null) throw nullOption(joinPath(path, key));
  }
}

// Levenshtein distance, for suggestions; option names are short.
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** The closest of `allowed` to `key`, when close enough to be a likely typo (case-insensitive). */
export function suggest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Throws for the first key of `record` not in `allowed`, in the one wording every option family uses:
 * `unknown option; did you mean "x"? (allowed: a, b, c)`, or `renamed to "timeoutMs" in 0.2.0` for an old name.
 */
export function rejectUnknownKeys(
  record: object,
  path: string,
  allowed: readonly string[],
  nullable: readonly string[] = [],
): void {
  for (const key of Object.keys(record)) {
    if (allowed.includes(key)) continue;
    // Own keys only: a key such as `constructor` or `toString` must not find Object.prototype's members.
    const renamed = Object.hasOwn(RENAMED, key) ? RENAMED[key] : undefined;
    if (renamed !== undefined && (allowed.includes(renamed) || allowed.includes(renamed.split('.')[0]!))) {
      throw new InvalidOptionError(
        joinPath(path, key),
        `renamed to "${renamed}" in 0.2.0 (every duration is named with its unit; see the CHANGELOG's migration table)`,
      );
    }
    const hint = suggest(key, allowed);
    const list = allowed.length === 0 ? 'none are allowed here' : `allowed: ${allowed.join(', ')}`;
    throw new InvalidOptionError(
      joinPath(path, key),
      `unknown option${hint === undefined ? '' : `; did you mean "${hint}"?`} (${list})`,
    );
  }
  refuseNulls(record, path, nullable);
}

/**
 * Reads `record[key]` once, turning anything a getter or a `Proxy` trap throws into {@link InvalidOptionError}
 * naming `path.key` (the field, not the whole options object).
 */
function readField(record: object, key: string | number, path: string): unknown {
  try {
    return (record as Record<string | number, unknown>)[key];
  } catch (err) {
    if (isSidecarlessError(err)) throw err;
    const text = thrownMessage(err);
    throw new InvalidOptionError(joinPath(path, key), `could not be read: ${text}`, { cause: err });
  }
}

/**
 * Throws unless `raw` is a plain object; rejects keys not in `allowed` (see {@link rejectUnknownKeys}). Returns a
 * snapshot: a new object holding each allowed key's value (when not `undefined`), read once here. Validate and use
 * the snapshot, never `raw` again: a getter is not read twice (a second read could differ from what was checked),
 * and one that throws is reported under its own path (`retry.backoff.initialMs`).
 */
export function checkObject(
  raw: unknown,
  allowed: readonly string[],
  path: string,
  nullable: readonly string[] = [],
): Record<string, unknown> {
  if (raw === null) throw nullOption(path, 'an object');
  if (!isRecord(raw)) throw new InvalidOptionError(path, `expected an object, got ${describe(raw)}`);
  rejectUnknownKeys(raw, path, allowed, nullable);
  const snapshot: Record<string, unknown> = {};
  for (const key of allowed) {
    const value = readField(raw, key, path);
    if (value === null && !nullable.includes(key)) throw nullOption(joinPath(path, key));
    if (value !== undefined) snapshot[key] = value;
  }
  return snapshot;
}

/**
 * An array option: throws `expected <what>` unless `value` is an array of at least `minLength` entries, and refuses a
 * hole (`[, 200]`: `.map` and `.every` skip holes, so a hole would pass every check and reach the request path as
 * `undefined`), naming it `name[i]`. Returns a dense copy, each entry read once (a throwing getter or `Proxy` trap is
 * reported under the entry's path). The entries are the caller's to validate.
 */
export function array(value: unknown, name: string, what = 'an array', minLength = 0): unknown[] {
  if (!Array.isArray(value) || value.length < minLength) {
    throw new InvalidOptionError(name, `expected ${what}, got ${describe(value)}`);
  }
  const out: unknown[] = [];
  for (let i = 0; i < value.length; i++) {
    if (!(i in value)) throw new InvalidOptionError(joinPath(name, i), `missing: ${what} must not have holes`);
    out.push(readField(value, i, name));
  }
  return out;
}

/**
 * `value`, unless it is `undefined`: then throws `required` (followed by `hint`, when given, saying what to set).
 * For options without a default; chain it into a validator: `number(required(raw.weight, path), path, 0, 0)`.
 */
export function required<T>(value: T | undefined, name: string, hint?: string): T {
  if (value === undefined) throw new InvalidOptionError(name, hint === undefined ? 'required' : `required: ${hint}`);
  return value;
}

/** An integer >= `min` (and <= `max`, when given). */
export function integer(value: unknown, name: string, fallback: number, min: number, max?: number): number {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || (max !== undefined && value > max)) {
    throw new InvalidOptionError(
      name,
      `expected an integer ${max === undefined ? `>= ${min}` : `from ${min} to ${max}`}, got ${describe(value)}`,
    );
  }
  return value;
}

/** A percentage in [0, 100]. */
export function percent(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) {
    throw new InvalidOptionError(name, `expected a percentage from 0 to 100, got ${describe(value)}`);
  }
  return value;
}

/**
 * A duration in ms: > 0 (or >= 0 when `allowZero`), at most `max` (default {@link MAX_TIMER_MS}, the longest Node
 * timer). `whole` requires an integer: for a value handed to undici (`headersTimeout`, a resolver's request
 * timeout), which refuses a fraction only when it builds its client, after construction.
 */
export function duration(
  value: unknown,
  name: string,
  fallback: number,
  allowZero = false,
  max = MAX_TIMER_MS,
  whole = false,
): number {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (!allowZero && value === 0) ||
    value > max ||
    (whole && !Number.isInteger(value))
  ) {
    throw new InvalidOptionError(
      name,
      `expected a ${whole ? 'whole ' : ''}number of ms ${allowZero ? 'from 0' : 'above 0'} up to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Throws {@link InvalidOptionError} naming `name` unless `sum` (durations added up, e.g. a timeout plus its margin)
 * is at most {@link MAX_TIMER_MS}: a timer armed with a longer delay fires after 1 ms. `what` says what the sum is.
 */
export function durationSum(sum: number, name: string, what: string): void {
  if (sum > MAX_TIMER_MS) {
    throw new InvalidOptionError(name, `${what} must be at most ${MAX_TIMER_MS} ms (the longest timer), got ${sum}`);
  }
}

/**
 * A {@link Clock}: an object with `now`, `setTimeout` and `clearTimeout` functions (each checked here, so a partial
 * clock fails at construction rather than when its first timer is armed), or `fallback` when `undefined`.
 */
export function clock(value: unknown, name: string, fallback: Clock): Clock {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  const c = value as Partial<Record<keyof Clock, unknown>> | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.now !== 'function' ||
    typeof c.setTimeout !== 'function' ||
    typeof c.clearTimeout !== 'function'
  ) {
    throw new InvalidOptionError(
      name,
      `expected { now, setTimeout, clearTimeout } (functions), got ${describe(value)}`,
    );
  }
  return value as Clock;
}

/**
 * True when `value` is visible ASCII (spaces and tabs too when `allowSpaces`): what a header value sidecarless sends
 * as given (a Host, a token) must be. A NUL, CR, LF or a character above U+00FF makes undici refuse every request
 * carrying it, long after construction, and one from U+0080 to U+00FF goes out as a different Latin-1 byte.
 */
export function isHeaderSafe(value: string, allowSpaces = false): boolean {
  return isFieldValue(value) && (allowSpaces || !/[ \t]/.test(value));
}

/** A finite number >= `min` (exclusive when `exclusive`), and <= `max` when given. */
export function number(
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  exclusive = false,
  max?: number,
): number {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < min ||
    (exclusive && value === min) ||
    (max !== undefined && value > max)
  ) {
    const range = `${exclusive ? '>' : '>='} ${min}${max === undefined ? '' : ` and <= ${max}`}`;
    throw new InvalidOptionError(name, `expected a number ${range}, got ${describe(value)}`);
  }
  return value;
}

/** A boolean. */
export function boolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, `expected a boolean, got ${describe(value)}`);
  return value;
}

/** A non-empty string (matching `pattern`, when given, whose description is `what`). */
export function string(value: unknown, name: string, fallback: string, pattern?: RegExp, what?: string): string;
export function string(
  value: unknown,
  name: string,
  fallback: undefined,
  pattern?: RegExp,
  what?: string,
): string | undefined;
export function string(
  value: unknown,
  name: string,
  fallback: string | undefined,
  pattern?: RegExp,
  what = 'a non-empty string',
): string | undefined {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'string' || value.length === 0 || (pattern !== undefined && !pattern.test(value))) {
    throw new InvalidOptionError(name, `expected ${what}, got ${describe(value)}`);
  }
  return value;
}

/** One of `values`. */
export function oneOf<T extends string>(value: unknown, name: string, fallback: T, values: readonly T[]): T {
  if (value === undefined) return fallback;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    throw new InvalidOptionError(
      name,
      `expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(value)}`,
    );
  }
  return value as T;
}

/**
 * An option that is off, on with its defaults, or on with settings: `undefined` or `false` gives `undefined`, `true`
 * gives `{}`, an object is checked for unknown keys (see {@link checkObject}) and returned. Anything else throws
 * `expected true, false or an object`. The settings' own values are the caller's to validate.
 */
export function toggle(value: unknown, name: string, allowed: readonly string[]): Record<string, unknown> | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === null) throw nullOption(name);
  if (value === true) return {};
  if (!isRecord(value)) throw new InvalidOptionError(name, `expected true, false or an object, got ${describe(value)}`);
  return checkObject(value, allowed, name);
}

/**
 * A function (or `undefined`).
 *
 * @typeParam T - the function type the caller expects; only `typeof value === 'function'` is checked.
 */
export function func<T extends (...args: never[]) => unknown>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined;
  if (value === null) throw nullOption(name);
  if (typeof value !== 'function') throw new InvalidOptionError(name, `expected a function, got ${describe(value)}`);
  return value as T;
}

/**
 * Runs `read` (a validator) and turns anything but a sidecarless error it throws (a getter or a `Proxy` trap in the
 * user's options throwing while they are read) into {@link InvalidOptionError} naming `path`, with the original as
 * `cause`: bad options always fail at construction with `SIDECARLESS_INVALID_OPTION`.
 */
export function readOptions<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (isSidecarlessError(err)) throw err;
    const text = thrownMessage(err);
    throw new InvalidOptionError(path, `could not be read: ${text}`, { cause: err });
  }
}
