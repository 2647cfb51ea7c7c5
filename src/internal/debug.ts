import { debuglog } from 'node:util';

/**
 * A per-module debug logger, enabled with `NODE_DEBUG=sidecarless` (all modules) or
 * `NODE_DEBUG=sidecarless:picker` (one). Never log credentials through it.
 */
export type DebugLogger = (message: string, ...args: unknown[]) => void;

export function createDebug(section: string): DebugLogger {
  const specific = debuglog(`sidecarless:${section}`);
  const all = debuglog('sidecarless');
  return (message, ...args) => {
    if (specific.enabled) specific(message, ...args);
    else if (all.enabled) all(`[${section}] ${message}`, ...args);
  };
}
