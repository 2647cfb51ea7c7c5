/**
 * The subchannel pool: reconciles each endpoint set from the resolver against the live subchannels, by key.
 *
 * @module
 */
import type { Pool } from 'undici';
import type { Endpoint } from '../common/endpoint.js';
import { createDebug } from '../common/debug.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import { Backoff, type ResolvedBackoffOptions } from '../common/backoff.js';
import { Subchannel, type SubchannelObserver } from './subchannel.js';

const debug = createDebug('pool');

/** Settings shared by every subchannel of one pool. */
export interface SubchannelPoolInit {
  readonly protocol: 'http:' | 'https:';
  readonly poolOptions: Pool.Options;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly connectBackoff: ResolvedBackoffOptions;
  /** How long a removed endpoint may take to finish its in-flight requests before it is destroyed, ms. */
  readonly drainTimeoutMs: number;
  readonly observer: SubchannelObserver;
  /** Called after every reconciliation that changed membership or endpoint attributes. */
  readonly onMembershipChange: () => void;
}

/**
 * Holds one {@link Subchannel} per endpoint key. On each update, unchanged endpoints keep their subchannel
 * (connections, load, counters), changed attributes are applied in place, new endpoints get a subchannel, and
 * removed ones drain: they leave the active set at once, finish what is in flight, then close.
 */
export class SubchannelPool {
  readonly #init: SubchannelPoolInit;
  #active = new Map<string, Subchannel>();
  readonly #draining = new Set<Subchannel>();
  #ordered: readonly Subchannel[] = [];
  #closed = false;

  constructor(init: SubchannelPoolInit) {
    this.#init = init;
  }

  /** Active subchannels (not draining), in the order of the last endpoint set. */
  get subchannels(): readonly Subchannel[] {
    return this.#ordered;
  }

  /** Subchannels removed from the set and still finishing in-flight requests. */
  get draining(): ReadonlySet<Subchannel> {
    return this.#draining;
  }

  /**
   * Reconciles with a full endpoint set (keys unique, as the resolver contract requires). Synchronous: when it
   * returns, removed subchannels no longer take requests and `onMembershipChange` has run if anything changed.
   */
  update(endpoints: readonly Endpoint[]): void {
    if (this.#closed) return;
    const next = new Map<string, Subchannel>();
    let changed = endpoints.length !== this.#active.size;
    for (const endpoint of endpoints) {
      let subchannel = this.#active.get(endpoint.key);
      if (subchannel === undefined) {
        subchannel = new Subchannel({
          endpoint,
          protocol: this.#init.protocol,
          poolOptions: this.#init.poolOptions,
          clock: this.#init.clock,
          backoff: new Backoff(this.#init.connectBackoff, this.#init.random),
          observer: this.#init.observer,
        });
        debug('add %s', endpoint.key);
        changed = true;
      } else if (subchannel.endpoint !== endpoint && !sameAttributes(subchannel.endpoint, endpoint)) {
        subchannel.updateEndpoint(endpoint);
        changed = true;
      }
      next.set(endpoint.key, subchannel);
    }
    for (const [key, subchannel] of this.#active) {
      if (!next.has(key)) {
        debug('remove %s (in flight: %d)', key, subchannel.inFlight);
        this.#startDrain(subchannel);
        changed = true;
      }
    }
    if (!changed) {
      // Same members; keep the order of the new set in case it moved.
      const order = [...next.values()];
      if (order.every((s, i) => s === this.#ordered[i])) return;
    }
    this.#active = next;
    this.#ordered = [...next.values()];
    this.#init.onMembershipChange();
  }

  #startDrain(subchannel: Subchannel): void {
    this.#draining.add(subchannel);
    void subchannel.drain(this.#init.drainTimeoutMs).then(() => this.#draining.delete(subchannel));
  }

  /**
   * Drains every subchannel (bounded by the drain timeout) and resolves when all are closed. Idempotent; no update
   * is accepted afterwards.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const subchannel of this.#active.values()) this.#startDrain(subchannel);
      this.#active = new Map();
      this.#ordered = [];
    }
    await Promise.all([...this.#draining].map((s) => s.drain(this.#init.drainTimeoutMs)));
  }

  /** Destroys every subchannel now, failing in-flight requests. */
  async destroy(reason?: Error): Promise<void> {
    this.#closed = true;
    const all = [...this.#active.values(), ...this.#draining];
    this.#active = new Map();
    this.#ordered = [];
    await Promise.all(all.map((s) => s.destroy(reason)));
    this.#draining.clear();
  }
}

function sameAttributes(a: Endpoint, b: Endpoint): boolean {
  if (a.weight !== b.weight || a.priority !== b.priority || a.zone !== b.zone) return false;
  const ka = Object.keys(a.metadata);
  const kb = Object.keys(b.metadata);
  return ka.length === kb.length && ka.every((k) => a.metadata[k] === b.metadata[k]);
}
