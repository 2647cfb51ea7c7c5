import { debuglog } from 'node:util';

/**
 * A per-module debug logger, enabled with `NODE_DEBUG=sidecarless` (all modules, each line tagged `[module]`) or
 * `NODE_DEBUG=sidecarless:pool` (that module only; several may be listed, comma-separated). The modules: `cluster`,
 * `pool`, `subchannel`, `health`, `outlier`, `breaker`, `dns`, `consul`, `etcd`, `kubernetes`, `zookeeper`. Never log
 * credentials through it.
 */
export type DebugLogger = (message: string, ...args: unknown[]) => void;

/** The logger of module `section`; see {@link DebugLogger} for how it is turned on. */
export function createDebug(section: string): DebugLogger {
  const specific = debuglog(`sidecarless:${section}`);
  const all = debuglog('sidecarless');
  return (message, ...args) => {
    if (specific.enabled) specific(message, ...args);
    else if (all.enabled) all(`[${section}] ${message}`, ...args);
  };
}
