/**
 * The options of active health checks ({@link HealthCheckOptions}), checked and resolved once
 * ({@link resolveHealthCheckOptions}) for the checker (`health-check.ts`).
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import {
  array,
  boolean,
  checkObject,
  describe,
  duration,
  integer,
  joinPath,
  percent,
  string,
} from '../common/options.js';
import { hostHeader } from '../common/wire-options.js';

/** An expected status: one code, or an inclusive range `[from, to]`. @category Options */
export type ExpectedStatus = number | readonly [number, number];

/**
 * Active health check settings. Health checking is off unless configured (`healthCheck: {}` gives the defaults).
 *
 * @category Options
 */
export interface HealthCheckOptions {
  /**
   * Request path on the endpoint, starting with a single `/` (`//x` and `/\x` are refused: they name another host).
   * @defaultValue '/health'
   */
  readonly path?: string | undefined;
  /** Time between the end of one check and the start of the next, before jitter, ms. @defaultValue 5000 */
  readonly intervalMs?: number | undefined;
  /** Random extra wait per interval, up to this percent of `intervalMs` (spreads the checks of many clients). @defaultValue 10 */
  readonly intervalJitterPercent?: number | undefined;
  /** Random extra wait per interval, up to this many ms (added to the percent jitter). @defaultValue 0 */
  readonly jitterMs?: number | undefined;
  /**
   * A check that has not received its whole response in this time fails, ms (a response body over 1 MiB fails
   * too). @defaultValue 1000
   */
  readonly timeoutMs?: number | undefined;
  /**
   * Statuses that pass: codes and inclusive `[from, to]` ranges. (Envoy's `expected_statuses` are half-open and
   * default to 200 only; any 2xx is the more common expectation of an HTTP health endpoint.)
   * @defaultValue [[200, 299]]
   */
  readonly expectedStatuses?: readonly ExpectedStatus[] | undefined;
  /** Passing checks in a row that make an unhealthy host healthy. @defaultValue 2 */
  readonly healthyThreshold?: number | undefined;
  /** Failed checks in a row that make a healthy host unhealthy. @defaultValue 3 */
  readonly unhealthyThreshold?: number | undefined;
  /** `Host` header of the checks. @defaultValue the logical service name given to the checker, else the endpoint's `host:port` */
  readonly host?: string | undefined;
  /**
   * A passing check returns a host ejected by outlier detection at once (Envoy
   * `successful_active_health_check_uneject_host`, default true there too).
   * @defaultValue true
   */
  readonly canReturnEjected?: boolean | undefined;
  /**
   * Whether a new host counts as healthy before its first check. Envoy starts hosts unhealthy until a check
   * passes; in-process that would hold back the first requests for a check round trip, so hosts are healthy until
   * proven otherwise. With `false`, the first passing check makes a new host healthy at once (as in Envoy,
   * whatever `healthyThreshold`). Requests are not held back meanwhile: until a check passes they go to the
   * unchecked hosts through the panic threshold (`panicThreshold`, on by default), or fail at once with
   * `SIDECARLESS_ALL_EJECTED` when it is 0; `client.ready()` does not wait for checks. A new host is checked at once,
   * unless more than 100 join at once: their first checks are spread over the first `intervalMs`.
   * @defaultValue true
   */
  readonly initialHealthy?: boolean | undefined;
}

/** Validated settings. */
export interface ResolvedHealthCheckOptions {
  /** Request path of the checks, starting with `/`. */
  readonly path: string;
  /** Time between the end of one check and the start of the next, before jitter, ms. */
  readonly intervalMs: number;
  /** Random extra wait per interval, up to this percent of `intervalMs` (0 to 100). */
  readonly intervalJitterPercent: number;
  /** Random extra wait per interval, up to this many ms (0 for none). */
  readonly jitterMs: number;
  /** A check without its whole response after this long fails, ms. */
  readonly timeoutMs: number;
  /** Inclusive ranges. */
  readonly expectedStatuses: readonly (readonly [number, number])[];
  /** Passing checks in a row that make an unhealthy host healthy (at least 1). */
  readonly healthyThreshold: number;
  /** Failed checks in a row that make a healthy host unhealthy (at least 1). */
  readonly unhealthyThreshold: number;
  /**
   * `Host` header of the checks; `undefined` means the checker's `serviceName`, else the endpoint's `host:port`.
   */
  readonly host: string | undefined;
  /** Whether a passing check returns a host ejected by outlier detection at once. */
  readonly canReturnEjected: boolean;
  /** Whether a new host counts as healthy before its first check. */
  readonly initialHealthy: boolean;
}

/** An origin-relative path: one `/`, then no `/` or `\` right after it, and no whitespace anywhere. */
const ORIGIN_RELATIVE_PATH = /^\/(?![/\\])\S*$/;
const ORIGIN_RELATIVE_PATH_TEXT = 'an origin-relative path starting with a single "/", without whitespace';

const KEYS = [
  'path',
  'intervalMs',
  'intervalJitterPercent',
  'jitterMs',
  'timeoutMs',
  'expectedStatuses',
  'healthyThreshold',
  'unhealthyThreshold',
  'host',
  'canReturnEjected',
  'initialHealthy',
];

/**
 * Validates health check settings. `undefined` or `false` means off and returns `undefined`; `true` or `{}` give
 * the defaults.
 *
 * @throws InvalidOptionError naming the field: zero or negative interval or timeout, thresholds that are not
 *   positive integers, a jitter percentage outside 0–100, a path that does not start with a single `/` (or holds
 *   whitespace), a status outside 100–599 or a range whose start is above its end, an empty `expectedStatuses`, an
 *   unknown key.
 *
 * @example
 * ```ts
 * const options = resolveHealthCheckOptions({ path: '/ready', intervalMs: 2000, expectedStatuses: [200, [300, 399]] });
 * ```
 */
export function resolveHealthCheckOptions(
  raw: HealthCheckOptions | boolean | undefined,
  prefix = 'healthCheck',
): ResolvedHealthCheckOptions | undefined {
  if (raw === undefined || raw === false) return undefined;
  const o = raw === true ? {} : checkObject(raw, KEYS, prefix);
  // `//host/x` and `/\host/x` are scheme-relative URLs (WHATWG URL treats `\` as `/` for http): resolved against
  // the endpoint's origin they would send the checks to another host.
  const path = string(o.path, joinPath(prefix, 'path'), '/health', ORIGIN_RELATIVE_PATH, ORIGIN_RELATIVE_PATH_TEXT);
  // undici refuses a path character above U+00FF on every check, and sends U+0080-U+00FF as a Latin-1 byte.
  if (!/^[\x21-\x7e]*$/.test(path)) {
    throw new InvalidOptionError(
      joinPath(prefix, 'path'),
      `expected ASCII: percent-encode other characters ("/caf%C3%A9"), got ${describe(path)}`,
    );
  }
  // The cluster `host` option's check: a Host undici refuses fails every check, marking healthy endpoints unhealthy.
  const host = hostHeader(o.host, joinPath(prefix, 'host'));
  return Object.freeze({
    path,
    intervalMs: duration(o.intervalMs, joinPath(prefix, 'intervalMs'), 5000),
    intervalJitterPercent: percent(o.intervalJitterPercent, joinPath(prefix, 'intervalJitterPercent'), 10),
    jitterMs: duration(o.jitterMs, joinPath(prefix, 'jitterMs'), 0, true),
    timeoutMs: duration(o.timeoutMs, joinPath(prefix, 'timeoutMs'), 1000),
    expectedStatuses: statuses(o.expectedStatuses, joinPath(prefix, 'expectedStatuses')),
    healthyThreshold: integer(o.healthyThreshold, joinPath(prefix, 'healthyThreshold'), 2, 1),
    unhealthyThreshold: integer(o.unhealthyThreshold, joinPath(prefix, 'unhealthyThreshold'), 3, 1),
    host,
    canReturnEjected: boolean(o.canReturnEjected, joinPath(prefix, 'canReturnEjected'), true),
    initialHealthy: boolean(o.initialHealthy, joinPath(prefix, 'initialHealthy'), true),
  });
}

function statuses(raw: unknown, name: string): readonly (readonly [number, number])[] {
  if (raw === undefined) return [[200, 299]];
  const entries = array(raw, name, 'a non-empty array of status codes and [from, to] ranges', 1);
  const code = (v: unknown, at: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) {
      throw new InvalidOptionError(at, `expected a status code from 100 to 599, got ${describe(v)}`);
    }
    return v;
  };
  return entries.map((entry: unknown, i): readonly [number, number] => {
    const at = joinPath(name, i);
    if (typeof entry === 'number') return [code(entry, at), entry];
    if (Array.isArray(entry) && entry.length === 2) {
      const [first, last] = array(entry, at, 'a [from, to] range', 2);
      const from = code(first, joinPath(at, 0));
      const to = code(last, joinPath(at, 1));
      if (from > to) throw new InvalidOptionError(at, `range start ${from} is above its end ${to}`);
      return [from, to];
    }
    throw new InvalidOptionError(at, `expected a status code or a [from, to] range, got ${describe(entry)}`);
  });
}
