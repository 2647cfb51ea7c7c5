/**
 * Everything that decides whether an endpoint takes traffic, for one cluster: outlier detection, active health
 * checks, the panic threshold and slow start, with the events users subscribe to. The cluster feeds it membership
 * and outcomes and asks it which subchannels are eligible; it tells the cluster when eligibility changed.
 *
 * @module
 */
import type { Pool } from 'undici';
import { CheckPools } from './check-pools.js';
import { http2PoolOptions, type ResolvedHttp2Options } from '../subchannel/http2.js';
import type { Endpoint } from '../common/endpoint.js';
import { createDebug } from '../common/debug.js';
import { thrownMessage } from '../common/thrown.js';
import { channels, type HealthEvent, type Subscription, subscription } from '../metrics/events.js';
import type { Clock, RandomSource, TimerHandle } from '../common/runtime.js';
import type { AttemptOutcome } from '../common/outcome.js';
import {
  HealthChecker,
  type HealthCheckOptions,
  type ResolvedHealthCheckOptions,
  resolveHealthCheckOptions,
} from './health-check.js';
import {
  type OutlierDetectionOptions,
  OutlierDetector,
  type ResolvedOutlierDetectionOptions,
  resolveOutlierDetectionOptions,
} from './outlier-detector.js';
import { resolvePanicThreshold } from '../balancer/panic.js';
import { joinPath } from '../common/options.js';
import {
  type ResolvedSlowStartOptions,
  resolveSlowStartOptions,
  type SlowStartOptions,
  SlowStartTracker,
} from './slow-start.js';

// The event types live with the channel that publishes them (metrics/events.ts); re-exported for the layers above.
export type { HealthEvent, Subscription } from '../metrics/events.js';

const debug = createDebug('health');

/** The health part of the cluster options. @category Options */
export interface HealthOptions {
  /**
   * Outlier detection (Envoy / gRPC A50 semantics, Envoy defaults). On by default; `false` turns it off.
   * @defaultValue true
   */
  readonly outlierDetection?: OutlierDetectionOptions | boolean | undefined;
  /** Active HTTP health checks; off unless set. */
  readonly healthCheck?: HealthCheckOptions | boolean | undefined;
  /** Slow start for new and returning endpoints; off unless `{ windowMs }` is set. */
  readonly slowStart?: SlowStartOptions | undefined;
  /**
   * When fewer than this percentage of endpoints are eligible, balance across all of them rather than overload
   * the few (Envoy's panic threshold). 0 turns it off. @defaultValue 50
   */
  readonly panicThreshold?: number | undefined;
}

/** {@link HealthOptions} after validation: `undefined` for a part that is off. */
export interface ResolvedHealthOptions {
  readonly outlierDetection: ResolvedOutlierDetectionOptions | undefined;
  readonly healthCheck: ResolvedHealthCheckOptions | undefined;
  readonly slowStart: ResolvedSlowStartOptions | undefined;
  readonly panicThreshold: number;
}

/**
 * Validates the health options (typed errors naming them under `path`: `outlierDetection.intervalMs` at the top
 * level, `clusters.users.outlierDetection.intervalMs` under `path` `clusters.users`). Called once, by the cluster's
 * option validation; {@link EndpointHealth} takes the result, so no option is read twice. @internal
 */
export function resolveHealthOptions(options: HealthOptions, path = ''): ResolvedHealthOptions {
  return {
    outlierDetection: resolveOutlierDetectionOptions(options.outlierDetection, joinPath(path, 'outlierDetection')),
    healthCheck: resolveHealthCheckOptions(options.healthCheck, joinPath(path, 'healthCheck')),
    slowStart: resolveSlowStartOptions(options.slowStart, joinPath(path, 'slowStart')),
    panicThreshold: resolvePanicThreshold(options.panicThreshold, joinPath(path, 'panicThreshold')),
  };
}

/** What the health logic needs to know of a subchannel. */
export interface HealthHost {
  readonly endpoint: Endpoint;
  readonly origin: string;
}

interface Hooks {
  readonly cluster: string;
  /** The cluster's process-unique id, carried by every event. */
  readonly clusterId: number;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** The Host header of health checks (the logical service name), when known. */
  readonly serviceName: string | undefined;
  /** TLS connect options for health checks to TLS endpoints. */
  readonly tls: Record<string, unknown> | undefined;
  /**
   * The name health checks to TLS endpoints verify certificates against and send as SNI, when fixed by the options:
   * `tls.servername`, else the checks' Host name (`healthCheck.host`, else the `host` option) without its port.
   * Otherwise the name of the cluster's latest TLS request ({@link EndpointHealth.noteTlsName}), else the cluster's.
   */
  readonly tlsName: string | undefined;
  /**
   * The endpoints' scheme, and the cluster's HTTP/2 settings: checks speak HTTP/2 as its traffic does (h2c, or `h2`
   * offered by ALPN).
   */
  readonly endpoints: { readonly protocol: 'http:' | 'https:'; readonly http2: ResolvedHttp2Options | undefined };
  /** Eligibility changed: rebuild the picker. */
  readonly onChange: () => void;
}

/**
 * The dispatcher of a cluster's health checks, one connection per endpoint: with the cluster's TLS settings, and an
 * HTTP/2 pool per endpoint when the cluster speaks HTTP/2 (an h2c endpoint refuses HTTP/1.1; an h2-only TLS one has no
 * protocol in common with it). `undefined`: the checker's own plain HTTP/1.1 agent.
 */
function checkDispatcher(hooks: Hooks, timeoutMs: number): CheckPools | undefined {
  const { tls, endpoints } = hooks;
  const { http2, protocol } = endpoints;
  // A connection not made within the check's timeout fails that check: it is not left connecting behind it.
  const base: Pool.Options = {
    connections: 1,
    connectTimeout: timeoutMs,
    ...(tls === undefined ? {} : { connect: tls }),
  };
  if (http2 === undefined) return tls === undefined ? undefined : new CheckPools(base);
  // One stream on one connection is all a check needs; an endpoint that picks HTTP/1.1 by ALPN is checked over it.
  return new CheckPools(
    http2PoolOptions(base, { connections: 1, maxConcurrentStreams: 1 }, protocol, { onFallback() {} }),
  );
}

/** @internal Owned by a cluster. */
export class EndpointHealth<H extends HealthHost> {
  readonly #hooks: Hooks;
  readonly #detector: OutlierDetector<H> | undefined;
  readonly #checker: HealthChecker<H> | undefined;
  readonly #checkAgent: CheckPools | undefined;
  readonly #slowStart: SlowStartTracker<H> | undefined;
  readonly #slowStartTickMs: number;
  readonly #panicThreshold: number;
  readonly #listeners = new Set<(event: HealthEvent) => void>();
  #tick: TimerHandle | undefined;
  /** The TLS name of the cluster's latest request (see {@link EndpointHealth.noteTlsName}). */
  #requestTlsName: string | undefined;
  #panic = false;
  #ejections = 0;
  #returns = 0;

  /**
   * Creates the enabled parts from options validated by {@link resolveHealthOptions} (never the user's options
   * themselves: they were read once, there). Starts nothing.
   */
  constructor(options: ResolvedHealthOptions, hooks: Hooks) {
    this.#hooks = hooks;
    const { outlierDetection: od, healthCheck: hc, slowStart: ss } = options;
    this.#panicThreshold = options.panicThreshold;
    this.#slowStart = ss === undefined ? undefined : new SlowStartTracker<H>(ss, hooks.clock);
    this.#slowStartTickMs = ss === undefined ? 0 : Math.max(50, ss.windowMs / 20);
    if (od !== undefined) {
      this.#detector = new OutlierDetector<H>(od, {
        clock: hooks.clock,
        random: hooks.random,
        name: hooks.cluster,
        describe: (host) => host.endpoint.key,
        onEject: (host, info) => {
          this.#ejections++;
          debug('%s: eject %s (%s, %d ms)', hooks.cluster, host.endpoint.key, info.reason, info.ejectionMs);
          hooks.onChange();
          this.#emit({
            cluster: hooks.cluster,
            clusterId: hooks.clusterId,
            endpoint: host.endpoint,
            type: 'eject',
            reason: info.reason,
            ejectionMs: info.ejectionMs,
            timesEjected: info.timesEjected,
          });
        },
        onReturn: (host, info) => {
          this.#returns++;
          debug('%s: return %s (%s)', hooks.cluster, host.endpoint.key, info.reason);
          this.#slowStart?.restart(host);
          hooks.onChange();
          this.#emit({
            cluster: hooks.cluster,
            clusterId: hooks.clusterId,
            endpoint: host.endpoint,
            type: 'return',
            reason: info.reason,
            timesEjected: info.timesEjected,
          });
          this.#armSlowStartTick();
        },
      });
    }
    if (hc !== undefined) {
      this.#checkAgent = checkDispatcher(hooks, hc.timeoutMs);
      this.#checker = new HealthChecker<H>(hc, {
        clock: hooks.clock,
        random: hooks.random,
        origin: (host) => host.origin,
        name: hooks.cluster,
        describe: (host) => host.endpoint.key,
        serviceName: hooks.serviceName,
        outlierDetector: this.#detector,
        dispatcher: this.#checkAgent,
        servername: hooks.tls === undefined ? undefined : () => hooks.tlsName ?? this.#requestTlsName ?? hooks.cluster,
        onHealthy: (host) => {
          this.#slowStart?.restart(host);
          hooks.onChange();
          this.#emit({
            cluster: hooks.cluster,
            clusterId: hooks.clusterId,
            endpoint: host.endpoint,
            type: 'healthy',
            reason: 'health-check',
          });
          this.#armSlowStartTick();
        },
        onUnhealthy: (host) => {
          hooks.onChange();
          this.#emit({
            cluster: hooks.cluster,
            clusterId: hooks.clusterId,
            endpoint: host.endpoint,
            type: 'unhealthy',
            reason: 'health-check',
          });
        },
      });
    }
  }

  /** Membership changed. Must be called before the first `record` for a host. */
  setHosts(hosts: readonly H[]): void {
    this.#detector?.setHosts(hosts);
    this.#checker?.setHosts(hosts);
    this.#slowStart?.setHosts(hosts);
    this.#armSlowStartTick();
  }

  /**
   * Membership changed by `added` and `removed` (the difference between the previous set and `hosts`, which has no
   * duplicates): the same as {@link EndpointHealth.setHosts}, in time proportional to the change (plus a copy of
   * `hosts`), which matters at 10,000 hosts. Must be called before the first `record` for a host.
   */
  updateHosts(hosts: readonly H[], added: readonly H[], removed: readonly H[]): void {
    this.#detector?.updateHosts(hosts, added, removed);
    this.#checker?.updateHosts(added, removed);
    this.#slowStart?.updateHosts(added, removed);
    this.#armSlowStartTick();
  }

  /**
   * The TLS name the cluster's latest request verified its endpoint against (called only when it changes): health
   * checks use it when the options fix none (see the `tlsName` hook), as the endpoints' certificates name it.
   */
  noteTlsName(name: string): void {
    this.#requestTlsName = name;
  }

  /** True when slow start is on: only then does {@link EndpointHealth.weightFactor} return anything but 1. */
  get slowStart(): boolean {
    return this.#slowStart !== undefined;
  }

  /** One attempt's outcome (the only input to outlier detection). */
  record(host: H, outcome: AttemptOutcome): void {
    this.#detector?.record(host, outcome);
  }

  /** True when `host` is ejected by outlier detection. */
  isEjected(host: H): boolean {
    return this.#detector?.isEjected(host) ?? false;
  }

  /** Hosts of the current set ejected by outlier detection now: the detector's count, not a walk of the hosts. */
  get ejectedCount(): number {
    return this.#detector?.ejectedCount ?? 0;
  }

  /** True unless active health checks mark `host` unhealthy. */
  isHealthy(host: H): boolean {
    return this.#checker?.isHealthy(host) ?? true;
  }

  /** The slow-start weight factor of `host`, in (0, 1]. */
  weightFactor(host: H): number {
    return this.#slowStart?.factor(host) ?? 1;
  }

  /**
   * True when every host is eligible for certain: nothing is ejected and there are no active health checks. The
   * snapshot rebuild then skips asking {@link EndpointHealth.isEligible} of each of (maybe 10,000) hosts.
   */
  get allEligible(): boolean {
    return this.#checker === undefined && this.ejectedCount === 0;
  }

  /** True when `host` may take traffic: not ejected by outlier detection and not failing active health checks. */
  isEligible(host: H): boolean {
    return !this.isEjected(host) && this.isHealthy(host);
  }

  /**
   * The panic threshold in force, %, applied per priority level by the snapshot builder (`planPriorities`). 0
   * without outlier detection and health checks: then health marks nothing ineligible, and endpoints that merely
   * refuse connections are left out rather than retried in panic.
   */
  get panicThreshold(): number {
    return this.#detector === undefined && this.#checker === undefined ? 0 : this.#panicThreshold;
  }

  /** Records whether the cluster's main snapshot has a level in panic (stats, and a debug line on each change). */
  notePanic(panic: boolean): void {
    if (panic !== this.#panic) debug('%s: panic mode %s', this.#hooks.cluster, panic ? 'on' : 'off');
    this.#panic = panic;
  }

  /** True while the cluster's main snapshot has a priority level in panic (see {@link EndpointHealth.notePanic}). */
  get panic(): boolean {
    return this.#panic;
  }

  /** Ejections since the cluster started. */
  get ejections(): number {
    return this.#ejections;
  }

  /** Returns from ejection since the cluster started. */
  get returns(): number {
    return this.#returns;
  }

  /** Subscribes to eject/return/healthy/unhealthy events. */
  subscribe(listener: (event: HealthEvent) => void): Subscription {
    // A wrapper of its own per subscription: the same function subscribed twice is two subscriptions, and disposing
    // one leaves the other (probe 21).
    const entry = (event: HealthEvent): void => listener(event);
    this.#listeners.add(entry);
    return subscription(() => this.#listeners.delete(entry));
  }

  /**
   * Tells the event to the diagnostics channel and the listeners subscribed when it happened (a listener subscribing
   * from a listener hears the next event, not this one: a listener that subscribes again each time would otherwise
   * be called for ever, probe 21), and not disposed since (by a listener before it, probe 22). Called once the
   * pickers have been rebuilt, so a request a listener sends goes by the new state.
   */
  #emit(event: HealthEvent): void {
    if (channels.eject.hasSubscribers) channels.eject.publish(event);
    const listeners = this.#listeners;
    for (const listener of [...listeners]) {
      if (!listeners.has(listener)) continue;
      try {
        listener(event);
      } catch (err) {
        debug('%s: health event listener threw: %s', this.#hooks.cluster, thrownMessage(err));
      }
    }
  }

  // Pickers are snapshots: while an endpoint ramps up, rebuild periodically so its weight follows the curve.
  #armSlowStartTick(): void {
    const slowStart = this.#slowStart;
    if (slowStart === undefined || this.#tick !== undefined || slowStart.rampingCount === 0) return;
    this.#tick = this.#hooks.clock.setTimeout(() => {
      this.#tick = undefined;
      this.#hooks.onChange();
      this.#armSlowStartTick();
    }, this.#slowStartTickMs);
  }

  /** Stops every timer and closes health-check connections. */
  async close(): Promise<void> {
    if (this.#tick !== undefined) this.#hooks.clock.clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#detector?.close();
    await this.#checker?.close();
    // Destroyed, not closed: a check still connecting would hold a graceful close until its connect timed out.
    await this.#checkAgent?.destroy();
  }
}
