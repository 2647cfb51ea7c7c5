/**
 * Active HTTP health checks, after Envoy's HTTP health checker
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/health_checking,
 * `config.core.v3.HealthCheck`): every interval (plus jitter) each host gets `GET path`; a host turns unhealthy
 * after `unhealthyThreshold` failed checks in a row and healthy again after `healthyThreshold` passing ones.
 *
 * @module
 */
import { Agent, type Dispatcher, request } from 'undici';
import { InvalidOptionError } from '../common/errors.js';
import { createDebug } from '../common/debug.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import {
  array,
  boolean,
  checkObject,
  describe,
  duration,
  integer,
  isHeaderSafe,
  joinPath,
  MAX_TIMER_MS,
  percent,
  string,
} from '../common/options.js';

const debug = createDebug('health');

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
  // The cluster `host` option's check: a NUL or DEL in the Host header fails every check, marking healthy endpoints
  // unhealthy.
  const host = string(o.host, joinPath(prefix, 'host'), undefined);
  if (host !== undefined && !isHeaderSafe(host)) {
    throw new InvalidOptionError(
      joinPath(prefix, 'host'),
      `expected a non-empty header value without whitespace or control characters, got ${describe(host)}`,
    );
  }
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

/** The part of an outlier detector a health checker uses to return ejected hosts. */
export interface EjectionControl<H> {
  /** True while `host` is ejected; checked after each passing health check. */
  isEjected(host: H): boolean;
  /** Returns an ejected `host` to service now; true when it was ejected. */
  uneject(host: H, reason: 'health-check'): boolean;
}

/** What a {@link HealthChecker} needs from its owner. */
export interface HealthCheckerHooks<H> {
  /** Timers (schedule and timeout). */
  readonly clock: Clock;
  /** Interval jitter. */
  readonly random: RandomSource;
  /** The origin to check, e.g. `http://127.0.0.1:8080`. Called once per check. */
  origin(host: H): string;
  /** The owner's name, first on every debug line (the cluster's). */
  readonly name?: string | undefined;
  /** How debug lines name `host` (the endpoint's key). By default `String(host)`. */
  readonly describe?: ((host: H) => string) | undefined;
  /** Default `Host` header when the options set none: the cluster's logical service name. */
  readonly serviceName?: string | undefined;
  /** `host` turned healthy (after `healthyThreshold` passes). Called from a check's completion. Must not throw. */
  readonly onHealthy?: ((host: H) => void) | undefined;
  /** `host` turned unhealthy (after `unhealthyThreshold` failures). Must not throw. */
  readonly onUnhealthy?: ((host: H) => void) | undefined;
  /** The outlier detector, to return ejected hosts on a passing check when `canReturnEjected`. */
  readonly outlierDetector?: EjectionControl<H> | undefined;
  /**
   * The dispatcher for checks (e.g. one with TLS settings). By default the checker creates its own undici `Agent`
   * (one connection per host) and destroys it on close; a dispatcher passed here is not closed.
   */
  readonly dispatcher?: Dispatcher | undefined;
  /**
   * The TLS name (SNI and certificate check) of the next check, read at each check so it may change; `undefined`
   * (or no hook) leaves it to the dispatcher's `connect` options, else the host of the origin (none for an IP).
   */
  readonly servername?: (() => string | undefined) | undefined;
}

class CheckState {
  healthy: boolean;
  passes = 0;
  failures = 0;
  checked = false;
  removed = false;
  /** The checker's latest `setHosts` that had this host in its set. */
  mark = 0;
  timer: TimerHandle | undefined;
  controller: AbortController | undefined;
  constructor(healthy: boolean) {
    this.healthy = healthy;
  }
}

/** New hosts of one change checked at once; the first checks of more are spread over the first interval. */
const FIRST_CHECK_BURST = 100;

/** The largest health-check response body read, bytes: a larger (or endless) one fails the check. */
const MAX_BODY = 1024 * 1024;

class HealthCheckTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Active health checks over a set of opaque host handles.
 *
 * Each host has at most one check in flight: the next is scheduled when the previous ends. A new host is checked
 * right away (on a zero-delay timer, never synchronously with {@link HealthChecker.setHosts}), unless more than 100
 * join at once: their first checks are spread uniformly over the first interval. Every check's
 * response body is read to its end; one that has not ended within `timeoutMs`, or is over 1 MiB, fails the check.
 *
 * @example
 * ```ts
 * const checker = new HealthChecker(resolveHealthCheckOptions({ path: '/ready' })!, {
 *   clock: systemClock,
 *   random: Math.random,
 *   origin: (sc) => sc.origin,
 *   serviceName: 'users',
 *   onHealthy: () => rebuildPicker(),
 *   onUnhealthy: () => rebuildPicker(),
 *   outlierDetector: detector,
 * });
 * checker.setHosts(subchannels);
 * // ...
 * await checker.close();
 * ```
 */
export class HealthChecker<H> {
  readonly #options: ResolvedHealthCheckOptions;
  readonly #hooks: HealthCheckerHooks<H>;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #headers: Record<string, string> | undefined;
  readonly #states = new Map<H, CheckState>();
  /** Stamped on the state of every host of a set by {@link HealthChecker.setHosts}. */
  #generation = 0;
  readonly #name: string;
  #closed = false;

  constructor(options: ResolvedHealthCheckOptions, hooks: HealthCheckerHooks<H>) {
    this.#options = options;
    this.#hooks = hooks;
    this.#name = hooks.name ?? 'health';
    this.#ownsDispatcher = hooks.dispatcher === undefined;
    this.#dispatcher = hooks.dispatcher ?? new Agent({ connections: 1, pipelining: 1 });
    const host = options.host ?? hooks.serviceName;
    this.#headers = host === undefined ? undefined : { host };
  }

  /** The settings in force. */
  get options(): ResolvedHealthCheckOptions {
    return this.#options;
  }

  /**
   * Replaces the host set. New hosts start in the `initialHealthy` state and are checked at once (more than 100 new
   * hosts: each at a random time within the first `intervalMs`); hosts that stay keep their state; removed hosts'
   * timers are cleared and their checks aborted (no callback for them).
   */
  setHosts(hosts: readonly H[]): void {
    if (this.#closed) return;
    // In place, as the outlier detector's: no map of every host per update (see `OutlierDetector.setHosts`).
    const states = this.#states;
    const mark = ++this.#generation;
    let kept = 0;
    let fresh: H[] | undefined;
    for (const host of hosts) {
      let state = states.get(host);
      if (state === undefined) {
        state = new CheckState(this.#options.initialHealthy);
        states.set(host, state);
        (fresh ??= []).push(host);
      } else if (state.mark === mark) {
        continue;
      }
      state.mark = mark;
      kept++;
    }
    if (states.size > kept) {
      // Deleting the entry just visited while iterating a Map is safe.
      for (const [host, state] of states) {
        if (state.mark !== mark) {
          states.delete(host);
          this.#stop(state);
        }
      }
    }
    if (fresh !== undefined) this.#startChecks(fresh);
  }

  /** The same as {@link HealthChecker.setHosts}, given the hosts that joined and left the set (see the detector's). */
  updateHosts(added: readonly H[], removed: readonly H[]): void {
    if (this.#closed) return;
    const states = this.#states;
    for (const host of removed) {
      const state = states.get(host);
      if (state === undefined) continue;
      states.delete(host);
      this.#stop(state);
    }
    let fresh: H[] | undefined;
    for (const host of added) {
      if (states.has(host)) continue;
      states.set(host, new CheckState(this.#options.initialHealthy));
      (fresh ??= []).push(host);
    }
    if (fresh !== undefined) this.#startChecks(fresh);
  }

  /** True unless `host`'s checks made it unhealthy. Unknown hosts count as healthy. */
  isHealthy(host: H): boolean {
    return this.#states.get(host)?.healthy ?? true;
  }

  /** Stops every check, aborts those in flight, and destroys the checker's own dispatcher. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const state of this.#states.values()) this.#stop(state);
    this.#states.clear();
    if (this.#ownsDispatcher) await this.#dispatcher.destroy().catch(() => {});
  }

  #stop(state: CheckState): void {
    state.removed = true;
    if (state.timer !== undefined) this.#hooks.clock.clearTimeout(state.timer);
    state.timer = undefined;
    state.controller?.abort();
  }

  /**
   * Schedules the first check of each of `hosts`, which just joined: at once for up to {@link FIRST_CHECK_BURST},
   * else each at a uniformly random time within the first interval. Thousands of checks started in one tick would
   * each time out waiting behind the others for the event loop and connections, failing healthy endpoints.
   */
  #startChecks(hosts: readonly H[]): void {
    const spread = hosts.length > FIRST_CHECK_BURST;
    const { intervalMs } = this.#options;
    for (const host of hosts) {
      const state = this.#states.get(host);
      if (state !== undefined) this.#schedule(host, state, spread ? this.#hooks.random() * intervalMs : 0);
    }
  }

  #schedule(host: H, state: CheckState, delayMs: number): void {
    state.timer = this.#hooks.clock.setTimeout(() => {
      state.timer = undefined;
      void this.#check(host, state);
    }, delayMs);
  }

  #nextDelay(): number {
    const o = this.#options;
    let delay = o.intervalMs;
    if (o.intervalJitterPercent > 0) delay += this.#hooks.random() * ((o.intervalMs * o.intervalJitterPercent) / 100);
    if (o.jitterMs > 0) delay += this.#hooks.random() * o.jitterMs;
    // Jitter on top of a long interval may pass the longest Node timer, which would fire after 1 ms: a check storm.
    return Math.min(delay, MAX_TIMER_MS);
  }

  async #check(host: H, state: CheckState): Promise<void> {
    if (state.removed || this.#closed) return;
    const o = this.#options;
    const controller = new AbortController();
    state.controller = controller;
    const timer = this.#hooks.clock.setTimeout(
      () => controller.abort(new HealthCheckTimeoutError(`health check timed out after ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    let passed: boolean;
    let detail: string;
    try {
      // Appended to the origin, never resolved against it, so no path can change the host checked.
      const url = new URL(`${new URL(this.#hooks.origin(host)).origin}${o.path}`);
      const servername = this.#hooks.servername?.();
      const res = await request(url, {
        dispatcher: this.#dispatcher,
        method: 'GET',
        signal: controller.signal,
        ...(this.#headers === undefined ? {} : { headers: this.#headers }),
        // A dispatch option of undici's (the Client reconnects when it changes), missing from `request`'s types.
        ...(servername === undefined ? {} : ({ servername } as object)),
      });
      detail = String(res.statusCode);
      // The whole response, as the timeout's contract says (Envoy's checks wait for the end of the stream too): the
      // body is read to its end, bounded by the timeout and by MAX_BODY (past it, undici drops the connection), and a
      // body that did not end (endless, or larger) fails the check rather than passing on its first bytes.
      await res.body.dump({ limit: MAX_BODY, signal: controller.signal });
      passed = this.#expected(res.statusCode) && !controller.signal.aborted && res.body.readableEnded;
      if (!res.body.readableEnded) detail += ', body did not end';
    } catch (error) {
      detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      passed = false;
    } finally {
      this.#hooks.clock.clearTimeout(timer);
      state.controller = undefined;
    }
    if (state.removed || this.#closed) return;
    if (debug.enabled)
      debug('%s: check %s %s: %s', this.#name, this.#describe(host), passed ? 'passed' : 'failed', detail);
    this.#result(host, state, passed);
    if (!state.removed && !this.#closed) this.#schedule(host, state, this.#nextDelay());
  }

  #describe(host: H): string {
    return this.#hooks.describe?.(host) ?? String(host);
  }

  #expected(status: number): boolean {
    for (const [from, to] of this.#options.expectedStatuses) if (status >= from && status <= to) return true;
    return false;
  }

  #result(host: H, state: CheckState, passed: boolean): void {
    const o = this.#options;
    const first = !state.checked;
    state.checked = true;
    if (passed) {
      state.failures = 0;
      state.passes++;
      if (!state.healthy && (state.passes >= o.healthyThreshold || first)) {
        state.healthy = true;
        debug('%s: healthy %s (%d passed checks in a row)', this.#name, this.#describe(host), state.passes);
        this.#hooks.onHealthy?.(host);
      }
      const detector = this.#hooks.outlierDetector;
      if (o.canReturnEjected && detector?.isEjected(host)) detector.uneject(host, 'health-check');
    } else {
      state.passes = 0;
      state.failures++;
      if (state.healthy && state.failures >= o.unhealthyThreshold) {
        state.healthy = false;
        debug('%s: unhealthy %s (%d failed checks in a row)', this.#name, this.#describe(host), state.failures);
        this.#hooks.onUnhealthy?.(host);
      }
    }
  }
}
