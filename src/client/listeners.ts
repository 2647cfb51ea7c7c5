/**
 * The client's listeners: endpoint health events of every cluster (`onHealthEvent`) and the end of the client
 * (`onClose`), each called in a guard (a listener's failure is its own; the others still hear the event).
 *
 * @module
 */
import type { HealthEvent, Subscription } from '../health/endpoint-health.js';
import { subscription } from '../metrics/events.js';
import { func, required } from '../common/options.js';

/** @internal */
export class ClientListeners {
  readonly #health = new Set<(event: HealthEvent) => void>();
  readonly #close = new Set<() => void>();
  #closed = false;

  onHealthEvent(listener: (event: HealthEvent) => void): Subscription {
    // Checked at the call: a listener that is no function would never be called, and the mistake never reported.
    func(required(listener, 'listener'), 'listener');
    // One entry per subscription (the same function twice is two), see EndpointHealth.subscribe.
    const entry = (event: HealthEvent): void => listener(event);
    this.#health.add(entry);
    return subscription(() => this.#health.delete(entry));
  }

  /** Tells the listeners subscribed when the event happened (see EndpointHealth's `#emit`). */
  emit(event: HealthEvent): void {
    const listeners = this.#health;
    for (const listener of [...listeners]) if (listeners.has(listener)) call(() => listener(event));
  }

  /** Calls `listener` once when {@link ClientListeners.closed} runs; on a microtask when it already ran. */
  onClose(listener: () => void): Subscription {
    func(required(listener, 'listener'), 'listener');
    if (this.#closed) {
      let live = true;
      queueMicrotask(() => live && call(listener));
      return subscription(() => (live = false));
    }
    const once = () => call(listener);
    this.#close.add(once);
    return subscription(() => this.#close.delete(once));
  }

  /** `work` (the client's closing), then the close listeners (once), before the returned promise settles. */
  closing(work: Promise<void>): Promise<void> {
    return work.finally(() => {
      if (this.#closed) return;
      this.#closed = true;
      const listeners = [...this.#close];
      this.#close.clear();
      for (const listener of listeners) listener();
    });
  }
}

function call(listener: () => void): void {
  try {
    listener();
  } catch {
    // A listener's failure is its own.
  }
}
