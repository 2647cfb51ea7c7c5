/**
 * The liveness timer of a watch stream (an etcd watch, a Kubernetes watch): when nothing arrives on the stream for
 * `idleMs`, the connection is presumed dead and `onIdle` aborts it.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../common/runtime.js';

/** A running {@link watchLiveness} timer. */
export interface Liveness {
  /** Something arrived on the stream: the idle period starts again. */
  seen(): void;
  /** Cancels the timer (the stream ended). Idempotent. */
  stop(): void;
}

/**
 * Calls `onIdle(quiet)` (with the silence, ms) once nothing has been {@link Liveness.seen | seen} for `idleMs`. One
 * timer per idle period rather than one per message: when it fires early (messages came meanwhile) it re-arms for
 * the rest.
 */
export function watchLiveness(clock: Clock, idleMs: number, onIdle: (quiet: number) => void): Liveness {
  let last = clock.now();
  let timer: TimerHandle | undefined;
  const arm = (ms: number) => {
    timer = clock.setTimeout(() => {
      const quiet = clock.now() - last;
      if (quiet < idleMs) {
        arm(idleMs - quiet);
        return;
      }
      timer = undefined;
      onIdle(quiet);
    }, ms);
  };
  arm(idleMs);
  return {
    seen: () => {
      last = clock.now();
    },
    stop: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
