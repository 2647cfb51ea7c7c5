/**
 * One request of a watching resolver, bounded by a deadline on the injected clock and cancelled with its run: the
 * pattern the Consul, etcd and Kubernetes resolvers share.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';

/**
 * Runs `work` with a signal that aborts when `parent` does (the run was refreshed or closed) or when `timeoutMs`
 * passes on `clock`. A failure caused by the deadline (and not by `parent`) is replaced by `onTimeout()`; any other
 * error is rethrown as it is.
 *
 * `linkUntil: 'settled'` (the default) unlinks `parent` when `work` settles. `'run'` leaves it linked, for a response
 * whose body is still read after `work` returns (a watch stream): `parent` must then belong to one run only, so that
 * listeners do not accumulate on it.
 */
export async function withDeadline<T>(
  clock: Clock,
  timeoutMs: number,
  parent: AbortSignal,
  work: (signal: AbortSignal) => Promise<T>,
  onTimeout: () => Error,
  linkUntil: 'settled' | 'run' = 'settled',
): Promise<T> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  parent.addEventListener('abort', onAbort, { once: true });
  let timedOut = false;
  const timer = clock.setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (timedOut && !parent.aborted) throw onTimeout();
    throw err;
  } finally {
    clock.clearTimeout(timer);
    if (linkUntil === 'settled') parent.removeEventListener('abort', onAbort);
  }
}
