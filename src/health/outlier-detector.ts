/**
 * Outlier detection: passive health checking from the outcomes of real requests, after Envoy's outlier detector
 * and gRPC's A50 proposal.
 *
 * Sources:
 * - Envoy, "Outlier detection" architecture overview and `config.cluster.v3.OutlierDetection`
 *   (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier,
 *   https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/outlier_detection.proto);
 *   `source/common/upstream/outlier_detection_impl.cc` for the details the docs leave out.
 * - gRPC A50, "xDS outlier detection support" (https://github.com/grpc/proposal/blob/master/A50-xds-outlier-detection.md).
 *
 * Five detection rules, each with its own enforcement percentage:
 * - consecutive 5xx, consecutive gateway failures (502/503/504), consecutive local-origin failures: evaluated
 *   inline, so a host is ejected synchronously inside {@link OutlierDetector.record} as the failure arrives;
 * - success rate (mean − factor × stdev across hosts) and failure percentage: evaluated once per interval over the
 *   requests of the interval just ended.
 *
 * One deliberate divergence from Envoy: a success-rate outlier must also be `successRateMinimumGap` (10) points
 * below the mean, because at modest volume Envoy's rule ejects healthy hosts on noise (see `bench/health-sim.ts`).
 * `successRateMinimumGap: 0` restores Envoy's rule exactly.
 *
 * @size single algorithm: outlier detection, five ejection rules over one per-host state table and its interval
 * sweep (scripts/check-file-size.mjs)
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import { createDebug } from '../common/debug.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import type { AttemptOutcome } from '../common/outcome.js';
import { boolean, checkObject, duration, integer, joinPath, number, percent } from '../common/options.js';
import type { EjectionReason, ReturnReason } from '../metrics/events.js';

// The reasons are part of the health events (metrics/events.ts); re-exported for the layers above.
export type { EjectionReason, ReturnReason } from '../metrics/events.js';

const debug = createDebug('outlier');

/**
 * Outlier detection settings. Every field is optional; the defaults are Envoy's. Percentages are 0–100.
 *
 * Rules are switched off through their enforcement percentage, as in Envoy: a rule whose `enforcing*` value is 0
 * still detects (and logs through `NODE_DEBUG=sidecarless:outlier`) but never ejects.
 *
 * @category Options
 */
export interface OutlierDetectionOptions {
  /** Time between analysis sweeps (success rate, failure percentage, returns, multiplier decay), ms. @defaultValue 10000 */
  readonly intervalMs?: number | undefined;
  /** Base ejection time, ms; the real time is base × the host's ejection multiplier. @defaultValue 30000 */
  readonly baseEjectionTimeMs?: number | undefined;
  /** Cap on base × multiplier, ms; must not be below `baseEjectionTimeMs`. @defaultValue 300000 */
  readonly maxEjectionTimeMs?: number | undefined;
  /**
   * A random delay in [0, jitterMs) added to every ejection (Envoy `max_ejection_time_jitter`), ms.
   * @defaultValue 0
   */
  readonly jitterMs?: number | undefined;
  /**
   * Most hosts that may be ejected at once, as a percentage of the hosts. One host may always be ejected,
   * whatever the percentage (Envoy and gRPC A50: "at least one").
   * @defaultValue 10
   */
  readonly maxEjectionPercent?: number | undefined;
  /** Consecutive 5xx responses (and, unless split, local-origin failures) that eject a host. @defaultValue 5 */
  readonly consecutive5xx?: number | undefined;
  /** Chance that a consecutive-5xx detection ejects, %. @defaultValue 100 */
  readonly enforcingConsecutive5xx?: number | undefined;
  /** Consecutive 502/503/504 responses (and, unless split, local-origin failures) that eject. @defaultValue 5 */
  readonly consecutiveGatewayFailure?: number | undefined;
  /** Chance that a consecutive-gateway-failure detection ejects, %. Off by default, as in Envoy. @defaultValue 0 */
  readonly enforcingConsecutiveGatewayFailure?: number | undefined;
  /**
   * Keep local-origin failures (connect refused or timed out, reset, response timeout) apart from the server's
   * answers (Envoy `split_external_local_origin_errors`). When false, a local-origin failure counts as a 5xx (a
   * response timeout as a 504, the others as a 503) toward the consecutive-5xx, gateway-failure and success-rate
   * rules. When true, local-origin failures feed only the consecutive-local-origin rule and the local-origin
   * success-rate and failure-percentage rules, and the 5xx rules see only real responses.
   * @defaultValue false
   */
  readonly splitExternalLocalOriginErrors?: boolean | undefined;
  /** Consecutive local-origin failures that eject; only with `splitExternalLocalOriginErrors`. @defaultValue 5 */
  readonly consecutiveLocalOriginFailure?: number | undefined;
  /** Chance that a consecutive local-origin detection ejects, %. @defaultValue 100 */
  readonly enforcingConsecutiveLocalOriginFailure?: number | undefined;
  /** Hosts with enough volume needed before success rate is evaluated. @defaultValue 5 */
  readonly successRateMinimumHosts?: number | undefined;
  /** Requests a host needs in an interval to take part in success rate. @defaultValue 100 */
  readonly successRateRequestVolume?: number | undefined;
  /**
   * A host is an outlier when its success rate is below mean − factor × stdev (Envoy's `success_rate_stdev_factor`
   * is this × 1000). @defaultValue 1.9
   */
  readonly successRateStdevFactor?: number | undefined;
  /**
   * A success-rate outlier must also be at least this many percentage points below the mean. **Not in Envoy**: with
   * the default request volume (100 per interval) and a little background noise (1 % errors), mean − 1.9 × stdev
   * flags a perfectly healthy host in about one interval out of four (see `bench/health-sim.ts`), and each such
   * false ejection also uses up the max-ejection allowance a really bad host needs. A healthy host's sampling noise
   * stays well within 10 points at that volume; a host failing badly is far beyond it. 0 gives Envoy's exact rule.
   * @defaultValue 10
   */
  readonly successRateMinimumGap?: number | undefined;
  /** Chance that a success-rate detection ejects, %. @defaultValue 100 */
  readonly enforcingSuccessRate?: number | undefined;
  /** Same, for the local-origin success rate (only with `splitExternalLocalOriginErrors`). @defaultValue 100 */
  readonly enforcingLocalOriginSuccessRate?: number | undefined;
  /** A host whose failure percentage in an interval is at least this is an outlier, %. @defaultValue 85 */
  readonly failurePercentageThreshold?: number | undefined;
  /** Hosts with enough volume needed before failure percentage is evaluated. @defaultValue 5 */
  readonly failurePercentageMinimumHosts?: number | undefined;
  /** Requests a host needs in an interval to take part in failure percentage. @defaultValue 50 */
  readonly failurePercentageRequestVolume?: number | undefined;
  /** Chance that a failure-percentage detection ejects, %. Off by default, as in Envoy. @defaultValue 0 */
  readonly enforcingFailurePercentage?: number | undefined;
  /** Same, for local-origin failures (only with `splitExternalLocalOriginErrors`). @defaultValue 0 */
  readonly enforcingFailurePercentageLocalOrigin?: number | undefined;
}

/** Validated settings, every field filled. */
export type ResolvedOutlierDetectionOptions = {
  readonly [K in keyof OutlierDetectionOptions]-?: Exclude<OutlierDetectionOptions[K], undefined>;
};

const DEFAULTS: ResolvedOutlierDetectionOptions = {
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  jitterMs: 0,
  maxEjectionPercent: 10,
  consecutive5xx: 5,
  enforcingConsecutive5xx: 100,
  consecutiveGatewayFailure: 5,
  enforcingConsecutiveGatewayFailure: 0,
  splitExternalLocalOriginErrors: false,
  consecutiveLocalOriginFailure: 5,
  enforcingConsecutiveLocalOriginFailure: 100,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1.9,
  successRateMinimumGap: 10,
  enforcingSuccessRate: 100,
  enforcingLocalOriginSuccessRate: 100,
  failurePercentageThreshold: 85,
  failurePercentageMinimumHosts: 5,
  failurePercentageRequestVolume: 50,
  enforcingFailurePercentage: 0,
  enforcingFailurePercentageLocalOrigin: 0,
};

/** The Envoy defaults every unset field takes. */
export const OUTLIER_DETECTION_DEFAULTS: ResolvedOutlierDetectionOptions = Object.freeze({ ...DEFAULTS });

const KEYS = Object.keys(DEFAULTS);

/**
 * Validates outlier detection settings.
 *
 * Outlier detection is **on by default** with Envoy's defaults (consecutive 5xx and success rate enforced;
 * gateway failures and failure percentage detected but not enforced): `undefined` and `true` give the defaults,
 * an object overrides some of them, `false` switches detection off and returns `undefined`.
 *
 * @param raw - The user's value.
 * @param prefix - The option's name, used in error messages (`outlierDetection.consecutive5xx`).
 * @throws InvalidOptionError naming the field: a non-integer or non-positive threshold or count, a percentage
 *   outside 0–100, a zero or negative interval or ejection time, `maxEjectionTimeMs` below `baseEjectionTimeMs`, an
 *   unknown key.
 *
 * @example
 * ```ts
 * const options = resolveOutlierDetectionOptions({ consecutive5xx: 3, enforcingFailurePercentage: 100 });
 * ```
 */
export function resolveOutlierDetectionOptions(
  raw: OutlierDetectionOptions | boolean | undefined,
  prefix = 'outlierDetection',
): ResolvedOutlierDetectionOptions | undefined {
  if (raw === false) return undefined;
  if (raw === undefined || raw === true) return OUTLIER_DETECTION_DEFAULTS;
  const o = checkObject(raw, KEYS, prefix);
  const d = DEFAULTS;
  const n = (key: keyof OutlierDetectionOptions) => joinPath(prefix, key);
  const resolved: ResolvedOutlierDetectionOptions = {
    intervalMs: duration(o.intervalMs, n('intervalMs'), d.intervalMs),
    baseEjectionTimeMs: duration(o.baseEjectionTimeMs, n('baseEjectionTimeMs'), d.baseEjectionTimeMs),
    maxEjectionTimeMs: duration(o.maxEjectionTimeMs, n('maxEjectionTimeMs'), d.maxEjectionTimeMs),
    jitterMs: duration(o.jitterMs, n('jitterMs'), d.jitterMs, true),
    maxEjectionPercent: percent(o.maxEjectionPercent, n('maxEjectionPercent'), d.maxEjectionPercent),
    consecutive5xx: integer(o.consecutive5xx, n('consecutive5xx'), d.consecutive5xx, 1),
    enforcingConsecutive5xx: percent(
      o.enforcingConsecutive5xx,
      n('enforcingConsecutive5xx'),
      d.enforcingConsecutive5xx,
    ),
    consecutiveGatewayFailure: integer(
      o.consecutiveGatewayFailure,
      n('consecutiveGatewayFailure'),
      d.consecutiveGatewayFailure,
      1,
    ),
    enforcingConsecutiveGatewayFailure: percent(
      o.enforcingConsecutiveGatewayFailure,
      n('enforcingConsecutiveGatewayFailure'),
      d.enforcingConsecutiveGatewayFailure,
    ),
    splitExternalLocalOriginErrors: boolean(
      o.splitExternalLocalOriginErrors,
      n('splitExternalLocalOriginErrors'),
      d.splitExternalLocalOriginErrors,
    ),
    consecutiveLocalOriginFailure: integer(
      o.consecutiveLocalOriginFailure,
      n('consecutiveLocalOriginFailure'),
      d.consecutiveLocalOriginFailure,
      1,
    ),
    enforcingConsecutiveLocalOriginFailure: percent(
      o.enforcingConsecutiveLocalOriginFailure,
      n('enforcingConsecutiveLocalOriginFailure'),
      d.enforcingConsecutiveLocalOriginFailure,
    ),
    successRateMinimumHosts: integer(
      o.successRateMinimumHosts,
      n('successRateMinimumHosts'),
      d.successRateMinimumHosts,
      1,
    ),
    successRateRequestVolume: integer(
      o.successRateRequestVolume,
      n('successRateRequestVolume'),
      d.successRateRequestVolume,
      1,
    ),
    successRateStdevFactor: number(o.successRateStdevFactor, n('successRateStdevFactor'), d.successRateStdevFactor, 0),
    successRateMinimumGap: percent(o.successRateMinimumGap, n('successRateMinimumGap'), d.successRateMinimumGap),
    enforcingSuccessRate: percent(o.enforcingSuccessRate, n('enforcingSuccessRate'), d.enforcingSuccessRate),
    enforcingLocalOriginSuccessRate: percent(
      o.enforcingLocalOriginSuccessRate,
      n('enforcingLocalOriginSuccessRate'),
      d.enforcingLocalOriginSuccessRate,
    ),
    failurePercentageThreshold: percent(
      o.failurePercentageThreshold,
      n('failurePercentageThreshold'),
      d.failurePercentageThreshold,
    ),
    failurePercentageMinimumHosts: integer(
      o.failurePercentageMinimumHosts,
      n('failurePercentageMinimumHosts'),
      d.failurePercentageMinimumHosts,
      1,
    ),
    failurePercentageRequestVolume: integer(
      o.failurePercentageRequestVolume,
      n('failurePercentageRequestVolume'),
      d.failurePercentageRequestVolume,
      1,
    ),
    enforcingFailurePercentage: percent(
      o.enforcingFailurePercentage,
      n('enforcingFailurePercentage'),
      d.enforcingFailurePercentage,
    ),
    enforcingFailurePercentageLocalOrigin: percent(
      o.enforcingFailurePercentageLocalOrigin,
      n('enforcingFailurePercentageLocalOrigin'),
      d.enforcingFailurePercentageLocalOrigin,
    ),
  };
  if (resolved.maxEjectionTimeMs < resolved.baseEjectionTimeMs) {
    throw new InvalidOptionError(
      n('maxEjectionTimeMs'),
      `must not be below baseEjectionTimeMs (${resolved.baseEjectionTimeMs} ms), got ${resolved.maxEjectionTimeMs}`,
    );
  }
  return Object.freeze(resolved);
}

/** Passed to {@link OutlierDetectorHooks.onEject}. */
export interface EjectionInfo {
  /** The rule that ejected the host. */
  readonly reason: EjectionReason;
  /**
   * How long the host stays out, ms: min(base × multiplier, max(base, max)) plus jitter. The host returns at the
   * first interval sweep after this has elapsed.
   */
  readonly ejectionMs: number;
  /** Ejections of this host since it joined the detector's host set, this one included. */
  readonly timesEjected: number;
  /** The ejection-time multiplier after this ejection (grows by one per ejection, decays while healthy). */
  readonly multiplier: number;
}

/** Passed to {@link OutlierDetectorHooks.onReturn}. */
export interface ReturnInfo {
  /** Why it came back. */
  readonly reason: ReturnReason;
  /** Why it had been ejected. */
  readonly ejectionReason: EjectionReason;
  /** How long it was out, ms. */
  readonly ejectedForMs: number;
  /** Ejections of this host so far. */
  readonly timesEjected: number;
}

/** What an {@link OutlierDetector} needs from its owner. */
export interface OutlierDetectorHooks<H> {
  /** Timers (the interval sweep) and time; the sweep timer is unref'd by the system clock. */
  readonly clock: Clock;
  /** Enforcement rolls and ejection jitter. */
  readonly random: RandomSource;
  /**
   * A host was ejected. Called synchronously from {@link OutlierDetector.record} (inline rules),
   * {@link OutlierDetector.eject} or the interval sweep; the detector's state is already updated, so
   * {@link OutlierDetector.isEjected} returns true. May call back into the detector. Must not throw.
   */
  readonly onEject?: ((host: H, info: EjectionInfo) => void) | undefined;
  /** An ejected host returned. Same calling rules as `onEject`. */
  readonly onReturn?: ((host: H, info: ReturnInfo) => void) | undefined;
  /** The owner's name, first on every debug line (the cluster's). */
  readonly name?: string | undefined;
  /** How debug lines name `host` (the endpoint's key). By default `String(host)`. */
  readonly describe?: ((host: H) => string) | undefined;
}

/** Per-host state. Counters are for the interval in progress; they reset at every sweep. */
class HostState {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  /** External-origin requests and failures (all requests unless split). */
  externalTotal = 0;
  externalFailures = 0;
  /** Local-origin requests and failures (split mode only). */
  localTotal = 0;
  localFailures = 0;
  ejected = false;
  ejectedAt = 0;
  ejectionMs = 0;
  reason: EjectionReason = 'consecutive-5xx';
  multiplier = 0;
  timesEjected = 0;
  /** The detector's latest `setHosts` that had this host in its set. */
  mark = 0;
}

/**
 * The state of every host that has had no outcome and no ejection since it joined: all zero, shared, never written.
 * A host gets a state of its own on its first outcome (or ejection), so a set of 10,000 endpoints of which few take
 * traffic costs a map entry each, not a map entry and a 15-field object.
 */
const CLEAN = new HostState();

/** A read-only view of one host's detector state, for stats and tests. */
export interface OutlierHostSnapshot {
  /** Whether the host is ejected now. */
  readonly ejected: boolean;
  /** Ejection-time multiplier: grows by one per ejection (while below the cap), decays by one per sweep in service. */
  readonly multiplier: number;
  /** Ejections of this host since it joined the set. */
  readonly timesEjected: number;
  /**
   * External failures in a row: 5xx responses and errors without a response (local-origin failures too, unless
   * split). Reset by a success, an ejection, a return, or on reaching the threshold.
   */
  readonly consecutive5xx: number;
  /** 502/503/504 responses (and unsplit local-origin failures) in a row; reset like `consecutive5xx`. */
  readonly consecutiveGatewayFailure: number;
  /** Connect, reset and timeout errors in a row; counted only with `splitExternalLocalOriginErrors`. */
  readonly consecutiveLocalOriginFailure: number;
  /** Requests in the interval in progress (external origin). */
  readonly requests: number;
  /** Failures in the interval in progress (external origin). */
  readonly failures: number;
}

interface Scored<H> {
  readonly host: H;
  readonly state: HostState;
  readonly successRate: number;
}

/**
 * Passive outlier detection over a set of opaque host handles (the cluster passes its subchannels).
 *
 * Lifecycle: construct (starts the interval timer), {@link OutlierDetector.setHosts} with every membership change,
 * {@link OutlierDetector.record} once per attempt outcome, {@link OutlierDetector.close} when done. Not re-entrant
 * from other threads (there are none); callbacks run synchronously.
 *
 * Ejection is a flag, {@link OutlierDetector.isEjected}: the owner rebuilds its picker without ejected hosts (or
 * with all of them, in panic) in `onEject`/`onReturn`.
 *
 * @typeParam H - The host handle, compared by identity (a `Map` key).
 *
 * @example
 * ```ts
 * const detector = new OutlierDetector(resolveOutlierDetectionOptions(undefined)!, {
 *   clock: systemClock,
 *   random: Math.random,
 *   onEject: (sc, info) => rebuildPicker(),
 *   onReturn: (sc, info) => rebuildPicker(),
 * });
 * detector.setHosts(subchannels);
 * // for every attempt:
 * detector.record(subchannel, outcome);
 * ```
 */
export class OutlierDetector<H> {
  readonly #options: ResolvedOutlierDetectionOptions;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #onEject: ((host: H, info: EjectionInfo) => void) | undefined;
  readonly #onReturn: ((host: H, info: ReturnInfo) => void) | undefined;
  readonly #name: string;
  readonly #describe: ((host: H) => string) | undefined;
  readonly #states = new Map<H, HostState>();
  /** The hosts of the latest set, in its order, without duplicates: the order of the interval sweep. */
  #order: readonly H[] = [];
  /** Stamped on the state of every host of a set by {@link OutlierDetector.setHosts}. */
  #generation = 0;
  #ejectedCount = 0;
  #timer: TimerHandle | undefined;
  #closed = false;

  constructor(options: ResolvedOutlierDetectionOptions, hooks: OutlierDetectorHooks<H>) {
    this.#options = options;
    this.#clock = hooks.clock;
    this.#random = hooks.random;
    this.#onEject = hooks.onEject;
    this.#onReturn = hooks.onReturn;
    this.#name = hooks.name ?? 'outlier';
    this.#describe = hooks.describe;
    this.#arm();
  }

  /** The settings in force. */
  get options(): ResolvedOutlierDetectionOptions {
    return this.#options;
  }

  /** Hosts currently ejected. */
  get ejectedCount(): number {
    return this.#ejectedCount;
  }

  /** Hosts tracked. */
  get size(): number {
    return this.#states.size;
  }

  /**
   * Replaces the host set. Hosts that stay keep their counters, ejection and multiplier; new hosts start clean;
   * removed hosts are forgotten (no `onReturn` for them). Call with every membership change, before the first
   * {@link OutlierDetector.record} for a new host. Duplicates are ignored.
   *
   * The host map is updated in place: a lookup per host, a state per new host, and a walk of the previous set when
   * some left; no map of every host per update (at 10,000 hosts, a new map was the largest part of an update after
   * validation). The interval sweep visits hosts in the order of the latest set (kept as a copy of it), as it did
   * when the map was rebuilt in that order: the order decides which detections the `maxEjectionPercent` cap turns
   * down, so it must not depend on when a host joined.
   */
  setHosts(hosts: readonly H[]): void {
    const states = this.#states;
    const mark = ++this.#generation;
    let order: H[] | undefined;
    let ejected = 0;
    for (let i = 0; i < hosts.length; i++) {
      const host = hosts[i] as H;
      let state = states.get(host);
      if (state === undefined || state === CLEAN) {
        state = new HostState();
        states.set(host, state);
      } else if (state.mark === mark) {
        // A duplicate: the order keeps its first place only.
        order ??= hosts.slice(0, i);
        continue;
      }
      state.mark = mark;
      if (state.ejected) ejected++;
      order?.push(host);
    }
    const size = order?.length ?? hosts.length;
    if (states.size > size) {
      for (let i = 0; i < this.#order.length; i++) {
        const host = this.#order[i] as H;
        if (states.get(host)?.mark !== mark) states.delete(host);
      }
    }
    this.#order = order ?? hosts.slice();
    this.#ejectedCount = ejected;
  }

  /**
   * The same as {@link OutlierDetector.setHosts}, given the difference from the previous set: O(change), plus a copy
   * of `hosts` for the sweep's order. `hosts` is the whole new set, without duplicates; `added` are its hosts that
   * were not in the previous set and `removed` the previous set's hosts that are not in it (as a subchannel pool
   * reports a reconciliation).
   */
  updateHosts(hosts: readonly H[], added: readonly H[], removed: readonly H[]): void {
    const states = this.#states;
    for (const host of removed) {
      const state = states.get(host);
      if (state === undefined) continue;
      if (state.ejected) this.#ejectedCount--;
      states.delete(host);
    }
    for (const host of added) if (!states.has(host)) states.set(host, CLEAN);
    this.#order = hosts.slice();
  }

  /** True while `host` is ejected. Unknown hosts are not ejected. */
  isEjected(host: H): boolean {
    return this.#states.get(host)?.ejected === true;
  }

  /**
   * Feeds one attempt's outcome. Synchronous, O(1), allocation-free; may eject `host` (calling `onEject`) before it
   * returns. Outcomes for hosts not in the set are ignored, as are `goaway` ones (an HTTP/2 host draining a
   * connection) and `aborted` ones without a final response (the caller gave up: it says nothing about the host).
   * An `aborted` attempt with a final response counts as that response: its status arrived before the caller let go.
   *
   * Classification: `connect`, `reset` and `timeout` errors are local-origin failures; a response with status
   * ≥ 500, or an `other` error without a response, is an external failure (502/503/504 are also gateway failures);
   * any other response is a success, even if its body later failed with an `other` error.
   */
  record(host: H, outcome: AttemptOutcome): void {
    let s = this.#states.get(host);
    if (s === undefined) return;
    const kind = outcome.errorKind;
    // An HTTP/2 endpoint draining a connection (GOAWAY) or turning a stream away is not failing. A caller that gave
    // up says nothing about the host, unless the host had answered by then: as in Envoy, the response's status is
    // recorded when it arrives, whatever becomes of its body (a caller discarding a 500's body is the common case).
    if (kind === 'goaway' || (kind === 'aborted' && outcome.statusCode < 200)) return;
    if (s === CLEAN) s = this.#own(host);
    const o = this.#options;
    if (kind === 'connect' || kind === 'reset' || kind === 'timeout') {
      if (o.splitExternalLocalOriginErrors) {
        s.localTotal++;
        s.localFailures++;
        if (++s.consecutiveLocal >= o.consecutiveLocalOriginFailure && !s.ejected) {
          s.consecutiveLocal = 0;
          this.#detected(host, s, 'consecutive-local-origin-failure', o.enforcingConsecutiveLocalOriginFailure);
        }
        return;
      }
      // Envoy maps local-origin failures to 5xx codes when not split: timeouts to 504, the rest to 503; both are
      // gateway failures.
      s.externalTotal++;
      s.externalFailures++;
      this.#external5xx(host, s, true);
      return;
    }
    // The host answered (or failed in some other way): a local-origin success.
    if (o.splitExternalLocalOriginErrors) {
      s.localTotal++;
      s.consecutiveLocal = 0;
    }
    s.externalTotal++;
    const status = outcome.statusCode;
    if (status >= 500 || (status === 0 && kind !== undefined)) {
      s.externalFailures++;
      this.#external5xx(host, s, status === 502 || status === 503 || status === 504);
    } else {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
    }
  }

  /**
   * Ejects `host` now with `reason` (default `health-check`), subject to the max-ejection cap but not to any
   * enforcement percentage. Returns true when the host is ejected by this call. Meant for an active health checker
   * or an application that knows better; a plain failing health check is better expressed as ineligibility by the
   * health checker itself (`HealthChecker.isHealthy`).
   */
  eject(host: H, reason: EjectionReason = 'health-check'): boolean {
    const s = this.#states.get(host);
    if (s === undefined || s.ejected || this.#closed) return false;
    if (!this.#capAllows()) {
      this.#notEjected(host, reason, 'max ejection percent reached');
      return false;
    }
    this.#eject(host, s === CLEAN ? this.#own(host) : s, reason);
    return true;
  }

  /**
   * Returns an ejected host now (an active health check passed, or the application says so). Its multiplier is
   * kept, so a host that fails again is ejected for longer. Returns true when the host was ejected.
   */
  uneject(host: H, reason: ReturnReason = 'manual'): boolean {
    const s = this.#states.get(host);
    if (s === undefined || !s.ejected) return false;
    this.#return(host, s, reason);
    return true;
  }

  /** A snapshot of `host`'s state, or undefined for an unknown host. */
  snapshot(host: H): OutlierHostSnapshot | undefined {
    const s = this.#states.get(host);
    if (s === undefined) return undefined;
    return {
      ejected: s.ejected,
      multiplier: s.multiplier,
      timesEjected: s.timesEjected,
      consecutive5xx: s.consecutive5xx,
      consecutiveGatewayFailure: s.consecutiveGateway,
      consecutiveLocalOriginFailure: s.consecutiveLocal,
      requests: s.externalTotal,
      failures: s.externalFailures,
    };
  }

  /** Stops the interval timer. Ejected hosts stay ejected; nothing is called afterwards. Idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      // Re-arm first so that a throwing callback cannot stop detection.
      this.#arm();
      this.#sweep();
    }, this.#options.intervalMs);
  }

  #external5xx(host: H, s: HostState, gateway: boolean): void {
    s.consecutive5xx++;
    if (gateway) s.consecutiveGateway++;
    else s.consecutiveGateway = 0;
    if (s.ejected) return;
    const o = this.#options;
    // As in Envoy, a detection resets its counter whether or not it ejected, so a detection that was not enforced
    // (or hit the cap) gets another chance after as many failures again.
    if (s.consecutive5xx >= o.consecutive5xx) {
      s.consecutive5xx = 0;
      if (this.#detected(host, s, 'consecutive-5xx', o.enforcingConsecutive5xx)) return;
    }
    if (gateway && s.consecutiveGateway >= o.consecutiveGatewayFailure) {
      s.consecutiveGateway = 0;
      this.#detected(host, s, 'consecutive-gateway-failure', o.enforcingConsecutiveGatewayFailure);
    }
  }

  /** A state of `host`'s own in place of the shared clean one (on its first outcome or ejection). */
  #own(host: H): HostState {
    const state = new HostState();
    this.#states.set(host, state);
    return state;
  }

  /**
   * A rule found `host` to be an outlier: check the cap, roll for enforcement, eject. Envoy's order; a rule that is
   * off (enforcing 0 %) is said so first, whatever the cap, since it would not eject under any cap (and rolls no
   * dice either way).
   */
  #detected(host: H, s: HostState, reason: EjectionReason, enforcing: number): boolean {
    if (s.ejected || this.#closed) return false;
    if (enforcing <= 0) {
      this.#notEjected(host, reason, 'the rule is off (enforcing 0%)');
      return false;
    }
    if (!this.#capAllows()) {
      this.#notEjected(host, reason, 'max ejection percent reached');
      return false;
    }
    if (!(enforcing >= 100 || this.#random() * 100 < enforcing)) {
      this.#notEjected(host, reason, `not enforced this time (enforcing ${enforcing}%)`);
      return false;
    }
    this.#eject(host, s, reason);
    return true;
  }

  /**
   * One more ejection keeps the ejected share within `maxEjectionPercent`, or none is ejected yet. This is current
   * Envoy's check ((ejected + 1) / hosts ≤ max) with its `always_eject_one_host`, which the issue asks for; it never
   * overshoots the percentage as the older `ejected / hosts < max` check (still gRPC A50's) can.
   */
  #capAllows(): boolean {
    return (
      this.#ejectedCount === 0 || (this.#ejectedCount + 1) * 100 <= this.#options.maxEjectionPercent * this.#states.size
    );
  }

  #eject(host: H, s: HostState, reason: EjectionReason): void {
    const o = this.#options;
    // Envoy grows the multiplier only while base × multiplier is below the cap, so decay starts from the cap.
    if (o.baseEjectionTimeMs * s.multiplier < o.maxEjectionTimeMs) s.multiplier++;
    const base = Math.min(o.baseEjectionTimeMs * s.multiplier, o.maxEjectionTimeMs);
    s.ejectionMs = o.jitterMs > 0 ? base + this.#random() * o.jitterMs : base;
    s.ejected = true;
    s.ejectedAt = this.#clock.now();
    s.reason = reason;
    s.timesEjected++;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    this.#ejectedCount++;
    if (debug.enabled) {
      const ms = Math.round(s.ejectionMs);
      debug('%s: %s ejected (%s) for %d ms, multiplier %d', this.#name, this.#host(host), reason, ms, s.multiplier);
    }
    this.#onEject?.(host, {
      reason,
      ejectionMs: s.ejectionMs,
      timesEjected: s.timesEjected,
      multiplier: s.multiplier,
    });
  }

  /** Logs a detection that did not eject `host`, and `why`. */
  #notEjected(host: H, reason: EjectionReason, why: string): void {
    if (debug.enabled) debug('%s: %s %s detected but not ejected: %s', this.#name, this.#host(host), reason, why);
  }

  /** `host` as debug lines name it. */
  #host(host: H): string {
    return this.#describe?.(host) ?? String(host);
  }

  #return(host: H, s: HostState, reason: ReturnReason): void {
    s.ejected = false;
    // Envoy resets the consecutive counters on return, so a few errors do not re-eject at once.
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    this.#ejectedCount--;
    const ejectedForMs = this.#clock.now() - s.ejectedAt;
    if (debug.enabled) {
      debug('%s: %s returned (%s) after %d ms', this.#name, this.#host(host), reason, Math.round(ejectedForMs));
    }
    this.#onReturn?.(host, { reason, ejectionReason: s.reason, ejectedForMs, timesEjected: s.timesEjected });
  }

  /**
   * The interval sweep, in Envoy's order (`DetectorImpl::onIntervalTimer`): return hosts whose time has passed and
   * decay the multiplier of hosts that stayed in (gRPC A50 "un-ejection" step), then run success rate and failure
   * percentage over the interval just ended, then start a new interval.
   */
  #sweep(): void {
    const now = this.#clock.now();
    const states = this.#states;
    for (const host of this.#order) {
      const s = states.get(host);
      // Left the set during an `onReturn` of this sweep.
      if (s === undefined) continue;
      if (!s.ejected) {
        if (s.multiplier > 0) s.multiplier--;
      } else if (now - s.ejectedAt >= s.ejectionMs) {
        this.#return(host, s, 'elapsed');
      }
    }
    const o = this.#options;
    this.#intervalRules(false, o.enforcingSuccessRate, o.enforcingFailurePercentage);
    if (o.splitExternalLocalOriginErrors) {
      this.#intervalRules(true, o.enforcingLocalOriginSuccessRate, o.enforcingFailurePercentageLocalOrigin);
    }
    for (const s of this.#states.values()) {
      if (s === CLEAN) continue;
      s.externalTotal = 0;
      s.externalFailures = 0;
      s.localTotal = 0;
      s.localFailures = 0;
    }
  }

  /**
   * Success rate and failure percentage over one origin's counters (Envoy `processSuccessRateEjections`, gRPC A50
   * steps "success rate" and "failure percentage"). Ejected hosts take no part.
   */
  #intervalRules(local: boolean, enforcingSuccessRate: number, enforcingFailurePercentage: number): void {
    const o = this.#options;
    const srEnabled = enforcingSuccessRate > 0;
    const fpEnabled = enforcingFailurePercentage > 0;
    if (!srEnabled && !fpEnabled) return;
    const minVolume = Math.min(o.successRateRequestVolume, o.failurePercentageRequestVolume);
    const scored: Scored<H>[] = [];
    const states = this.#states;
    for (const host of this.#order) {
      const state = states.get(host);
      if (state === undefined || state.ejected) continue;
      const total = local ? state.localTotal : state.externalTotal;
      if (total < minVolume || total === 0) continue;
      const failures = local ? state.localFailures : state.externalFailures;
      scored.push({ host, state, successRate: ((total - failures) * 100) / total });
    }
    if (srEnabled) {
      const eligible = scored.filter((x) => volume(x.state, local) >= o.successRateRequestVolume);
      if (eligible.length > 0 && eligible.length >= o.successRateMinimumHosts) {
        const { mean, stdev } = meanAndStdev(eligible.map((x) => x.successRate));
        const threshold = mean - o.successRateStdevFactor * stdev;
        if (debug.enabled) {
          const n = eligible.length;
          debug('%s: success rate of %d hosts: mean %d, stdev %d, threshold %d', this.#name, n, mean, stdev, threshold);
        }
        const reason = local ? 'local-origin-success-rate' : 'success-rate';
        for (const x of eligible) {
          if (x.successRate < threshold && mean - x.successRate >= o.successRateMinimumGap) {
            this.#detected(x.host, x.state, reason, enforcingSuccessRate);
          }
        }
      }
    }
    if (fpEnabled) {
      const eligible = scored.filter((x) => volume(x.state, local) >= o.failurePercentageRequestVolume);
      if (eligible.length > 0 && eligible.length >= o.failurePercentageMinimumHosts) {
        const reason = local ? 'local-origin-failure-percentage' : 'failure-percentage';
        for (const x of eligible) {
          // Envoy ejects at or above the threshold.
          if (100 - x.successRate >= o.failurePercentageThreshold) {
            this.#detected(x.host, x.state, reason, enforcingFailurePercentage);
          }
        }
      }
    }
  }
}

function volume(s: HostState, local: boolean): number {
  return local ? s.localTotal : s.externalTotal;
}

/**
 * Mean and population standard deviation, as Envoy computes them (`successRateEjectionThreshold`): for
 * {50, 100, 100, 100, 100}, mean 90 and stdev 20, so the threshold at factor 1.9 is 52.
 */
export function meanAndStdev(values: readonly number[]): {
  /** Arithmetic mean; `NaN` for an empty list. */
  mean: number;
  /** Population standard deviation (divides by n, not n - 1); `NaN` for an empty list. */
  stdev: number;
} {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let variance = 0;
  for (const v of values) variance += (v - mean) ** 2;
  variance /= values.length;
  return { mean, stdev: Math.sqrt(variance) };
}
