import { debuglog } from 'node:util';

/**
 * A per-module debug logger, enabled with `NODE_DEBUG=sidecarless` (all modules, each line tagged `[module]`) or
 * `NODE_DEBUG=sidecarless:pool` (that module only; several may be listed, comma-separated). The modules: `cluster`,
 * `pool`, `subchannel`, `health`, `outlier`, `breaker`, `dns`, `consul`, `etcd`, `kubernetes`, `zookeeper`. Never log
 * credentials through it.
 */
export interface DebugLogger {
  (message: string, ...args: unknown[]): void;
  /**
   * True when its lines are written. A loop that would log once per endpoint checks it first: even a call that
   * writes nothing costs its arguments, and 10,000 of them a noticeable part of an update.
   */
  readonly enabled: boolean;
}

/** The logger of module `section`; see {@link DebugLogger} for how it is turned on. */
export function createDebug(section: string): DebugLogger {
  const specific = debuglog(`sidecarless:${section}`);
  const all = debuglog('sidecarless');
  const log = (message: string, ...args: unknown[]): void => {
    if (specific.enabled) specific(message, ...args);
    else if (all.enabled) all(`[${section}] ${message}`, ...args);
  };
  return Object.defineProperty(log, 'enabled', { get: () => specific.enabled || all.enabled }) as DebugLogger;
}
