/**
 * Slow start: a new or returning endpoint's weight ramps up over a window instead of taking its full share at once,
 * after Envoy's slow start mode
 * (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/slow_start):
 *
 * ```
 * NewWeight  = Weight × max(MinWeightPercent / 100, TimeFactor ^ (1 / Aggression))
 * TimeFactor = max(TimeSinceStart, 1) / SlowStartWindow
 * ```
 *
 * The docs write TimeFactor in seconds; Envoy's code (`EdfLoadBalancerBase::applySlowStartFactor`) uses
 * milliseconds with a 1 ms floor, as this module does.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';
import { checkObject, duration, joinPath, number, percent, required } from '../common/options.js';

/**
 * Slow start settings. Slow start is off unless configured (as in Envoy, where it needs `slow_start_window`):
 * `slowStart: { windowMs: 30_000 }` turns it on.
 *
 * @category Options
 */
export interface SlowStartOptions {
  /** The ramp's length, ms. Required when slow start is configured. */
  readonly windowMs: number;
  /**
   * How fast the weight grows: 1 is linear, above 1 ramps faster early, below 1 slower early (the exponent is
   * 1 / aggression). Must be above 0.
   * @defaultValue 1
   */
  readonly aggression?: number | undefined;
  /** Floor of the factor, in percent of the full weight, so a fresh endpoint gets some traffic. @defaultValue 10 */
  readonly minWeightPercent?: number | undefined;
}

/** Validated slow start settings. */
export interface ResolvedSlowStartOptions {
  /** The ramp's length, ms (above 0). */
  readonly windowMs: number;
  /** Ramp shape: the time factor is raised to `1 / aggression` (1 is linear; above 0). */
  readonly aggression: number;
  /** Floor of the factor, in percent of the full weight (0 to 100). */
  readonly minWeightPercent: number;
}

/**
 * Validates slow start settings; `undefined` or `false` means off and returns `undefined`.
 *
 * @throws InvalidOptionError naming the field: a missing, zero or negative `windowMs`, an `aggression` not above
 *   0, a `minWeightPercent` outside 0–100, an unknown key.
 *
 * @example
 * ```ts
 * const slowStart = resolveSlowStartOptions({ windowMs: 60_000, aggression: 2 });
 * ```
 */
export function resolveSlowStartOptions(
  raw: SlowStartOptions | false | undefined,
  prefix = 'slowStart',
): ResolvedSlowStartOptions | undefined {
  if (raw === undefined || raw === false) return undefined;
  const o = checkObject(raw, ['windowMs', 'aggression', 'minWeightPercent'], prefix);
  const windowMs = joinPath(prefix, 'windowMs');
  return Object.freeze({
    windowMs: duration(required(o.windowMs, windowMs, 'the ramp length, to enable slow start'), windowMs, 0),
    aggression: number(o.aggression, joinPath(prefix, 'aggression'), 1, 0, true),
    minWeightPercent: percent(o.minWeightPercent, joinPath(prefix, 'minWeightPercent'), 10),
  });
}

/**
 * The weight factor in (0, 1] of an endpoint that started `elapsedMs` ago: the Envoy formula inside the window,
 * 1 from the window's end on. Pure.
 *
 * @example
 * ```ts
 * slowStartFactor(15_000, { windowMs: 60_000, aggression: 1, minWeightPercent: 10 }); // 0.25
 * slowStartFactor(1_000, { windowMs: 60_000, aggression: 1, minWeightPercent: 10 }); // 0.1 (the floor)
 * ```
 */
export function slowStartFactor(elapsedMs: number, options: ResolvedSlowStartOptions): number {
  if (!(elapsedMs < options.windowMs)) return 1;
  const timeFactor = Math.max(elapsedMs, 1) / options.windowMs;
  const ramp = options.aggression === 1 ? timeFactor : timeFactor ** (1 / options.aggression);
  return Math.max(options.minWeightPercent / 100, ramp);
}

/**
 * Tracks when each host (an opaque handle) entered slow start and gives its current factor.
 *
 * A host enters slow start when it first appears in {@link SlowStartTracker.setHosts} (except in the very first
 * set, which is the cluster's starting state: warming up every host at once would ramp nothing) and again when
 * {@link SlowStartTracker.restart} is called (the owner calls it when a host returns from ejection or becomes
 * healthy again). Picker snapshots are immutable, so the owner should rebuild while
 * {@link SlowStartTracker.rampingCount} is above zero, e.g. every `windowMs / 10`.
 */
export class SlowStartTracker<H> {
  readonly #options: ResolvedSlowStartOptions;
  readonly #clock: Clock;
  /** When each host's ramp started (`-Infinity`: never ramps), and the latest `setHosts` that had it. */
  readonly #started = new Map<H, { since: number; mark: number }>();
  #generation = 0;
  #initialized = false;

  constructor(options: ResolvedSlowStartOptions, clock: Clock) {
    this.#options = options;
    this.#clock = clock;
  }

  /** Replaces the host set: new hosts start ramping (not in the first call), removed ones are forgotten. */
  setHosts(hosts: readonly H[]): void {
    // In place, as the outlier detector's: no map of every host per update (see `OutlierDetector.setHosts`).
    const now = this.#clock.now();
    const started = this.#started;
    const mark = ++this.#generation;
    let kept = 0;
    for (const host of hosts) {
      let entry = started.get(host);
      if (entry === undefined) {
        entry = { since: this.#initialized ? now : Number.NEGATIVE_INFINITY, mark: 0 };
        started.set(host, entry);
      } else if (entry.mark === mark) {
        continue;
      }
      entry.mark = mark;
      kept++;
    }
    if (started.size > kept) {
      for (const [host, entry] of started) if (entry.mark !== mark) started.delete(host);
    }
    this.#initialized = true;
  }

  /** The same as {@link SlowStartTracker.setHosts}, given the hosts that joined and left the set. */
  updateHosts(added: readonly H[], removed: readonly H[]): void {
    const started = this.#started;
    for (const host of removed) started.delete(host);
    const since = this.#initialized ? this.#clock.now() : Number.NEGATIVE_INFINITY;
    for (const host of added) if (!started.has(host)) started.set(host, { since, mark: 0 });
    this.#initialized = true;
  }

  /** Starts `host`'s ramp again from now (a return from ejection, a health check passing again). */
  restart(host: H): void {
    const entry = this.#started.get(host);
    if (entry !== undefined) entry.since = this.#clock.now();
  }

  /** The weight factor of `host` now, in (0, 1]; 1 for unknown hosts and after the window. */
  factor(host: H): number {
    const entry = this.#started.get(host);
    if (entry === undefined) return 1;
    return slowStartFactor(this.#clock.now() - entry.since, this.#options);
  }

  /** Hosts still inside their window. */
  get rampingCount(): number {
    const now = this.#clock.now();
    let n = 0;
    for (const entry of this.#started.values()) if (now - entry.since < this.#options.windowMs) n++;
    return n;
  }
}
