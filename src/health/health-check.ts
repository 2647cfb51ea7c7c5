/**
 * Active HTTP health checks, after Envoy's HTTP health checker
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/health_checking,
 * `config.core.v3.HealthCheck`): every interval (plus jitter) each host gets `GET path`; a host turns unhealthy
 * after `unhealthyThreshold` failed checks in a row and healthy again after `healthyThreshold` passing ones.
 *
 * @module
 */
import { type Dispatcher, request } from 'undici';
import { createDebug } from '../common/debug.js';
import { MAX_TIMER_MS } from '../common/options.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import { CheckPools } from './check-pools.js';
import type { ResolvedHealthCheckOptions } from './health-check-options.js';
import { isGracefulGoawayError } from '../subchannel/http2.js';

export {
  type ExpectedStatus,
  type HealthCheckOptions,
  type ResolvedHealthCheckOptions,
  resolveHealthCheckOptions,
} from './health-check-options.js';

const debug = createDebug('health');

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

/** Rejects with the signal's reason when it aborts (never settles otherwise). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

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
    this.#dispatcher =
      hooks.dispatcher ?? new CheckPools({ connections: 1, pipelining: 1, connectTimeout: options.timeoutMs });
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
          this.#remove(host, state);
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
      this.#remove(host, state);
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

  /** `host` left the set: its checks stop, and its check connection closes (see `CheckPools`). */
  #remove(host: H, state: CheckState): void {
    this.#stop(state);
    if (this.#dispatcher instanceof CheckPools) this.#dispatcher.release(new URL(this.#hooks.origin(host)).origin);
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
    let passed = false;
    let detail = '';
    let drained = false;
    try {
      // A graceful GOAWAY (NO_ERROR) is a drain, not a failure: undici 7 cuts the streams the server processed with
      // it, a response already under way included (README, "HTTP/2"). The check is made once more, at once, on a new
      // connection; cut again after an expected status, it is counted neither way (a server that closes every
      // connection after one request, nginx's keepalive_requests 1).
      const answered = { status: 0 };
      for (let tries = 0; tries < 2; tries++) {
        answered.status = 0;
        try {
          ({ passed, detail } = await this.#probe(host, controller, answered));
          break;
        } catch (error) {
          detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          passed = false;
          if (!isGracefulGoawayError(error) || controller.signal.aborted) break;
          drained = tries === 1 && this.#expected(answered.status);
        }
      }
    } finally {
      this.#hooks.clock.clearTimeout(timer);
      state.controller = undefined;
    }
    if (state.removed || this.#closed) return;
    const outcome = passed ? 'passed' : drained ? 'not counted' : 'failed';
    if (debug.enabled) debug('%s: check %s %s: %s', this.#name, this.#describe(host), outcome, detail);
    if (!drained) this.#result(host, state, passed);
    if (!state.removed && !this.#closed) this.#schedule(host, state, this.#nextDelay());
  }

  /**
   * One check request: its response read to its end. Throws what the request (or its body) failed with, the status
   * received before in `answered`.
   */
  async #probe(
    host: H,
    controller: AbortController,
    answered: { status: number },
  ): Promise<{ passed: boolean; detail: string }> {
    // Appended to the origin, never resolved against it, so no path can change the host checked.
    const url = new URL(`${new URL(this.#hooks.origin(host)).origin}${this.#options.path}`);
    const servername = this.#hooks.servername?.();
    const sent = request(url, {
      dispatcher: this.#dispatcher,
      method: 'GET',
      signal: controller.signal,
      ...(this.#headers === undefined ? {} : { headers: this.#headers }),
      // A dispatch option of undici's (the Client reconnects when it changes), missing from `request`'s types.
      ...(servername === undefined ? {} : ({ servername } as object)),
    });
    // The timeout ends the check itself: undici acts on an abort only once the request has a connection, so a
    // check still connecting (a dropped SYN, a stalled TLS handshake) would last until the connect timeout.
    const res = await Promise.race([sent, aborted(controller.signal)]).catch((error: unknown) => {
      sent.then(
        (late) => late.body.destroy(),
        () => {},
      );
      throw error;
    });
    answered.status = res.statusCode;
    let detail = String(res.statusCode);
    // The whole response, as the timeout's contract says (Envoy's checks wait for the end of the stream too): the
    // body is read to its end, bounded by the timeout and by MAX_BODY (past it, undici drops the connection), and a
    // body that did not end (endless, or larger) fails the check rather than passing on its first bytes.
    let cut: unknown;
    res.body.once('error', (error) => (cut = error));
    await res.body.dump({ limit: MAX_BODY, signal: controller.signal });
    // dump() hides why the body ended early; a graceful GOAWAY's is the caller's to see.
    if (!res.body.readableEnded && isGracefulGoawayError(cut)) throw cut;
    const passed = this.#expected(res.statusCode) && !controller.signal.aborted && res.body.readableEnded;
    if (!res.body.readableEnded) detail += ', body did not end';
    return { passed, detail };
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
