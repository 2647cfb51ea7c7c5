/** A ResolverListener that records what it gets and lets tests wait (bounded) for a condition. */
import type { Endpoint } from '../../src/common/endpoint.js';
import type { SidecarlessError } from '../../src/common/errors.js';
import type { ResolverListener } from '../../src/resolvers/resolver.js';

export class RecordingListener implements ResolverListener {
  readonly updates: Array<readonly Endpoint[]> = [];
  readonly errors: SidecarlessError[] = [];
  readonly #waiters = new Set<() => void>();

  onUpdate(endpoints: readonly Endpoint[]): void {
    this.updates.push(endpoints);
    for (const w of [...this.#waiters]) w();
  }
  onError(error: SidecarlessError): void {
    this.errors.push(error);
    for (const w of [...this.#waiters]) w();
  }
  /** The last set delivered. */
  get last(): readonly Endpoint[] | undefined {
    return this.updates.at(-1);
  }
  /** Sorted keys of the last set. */
  get lastKeys(): string[] {
    return (this.last ?? []).map((e) => e.key).sort();
  }
  /** Resolves once `predicate()` holds (checked now and after every call), rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; updates=${JSON.stringify(
              this.updates.map((u) => u.map((e) => e.key)),
            )} errors=${JSON.stringify(this.errors.map((e) => e.code))}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }
}

/** Sorted endpoint keys. */
export function keys(endpoints: readonly Endpoint[] | undefined): string[] {
  return (endpoints ?? []).map((e) => e.key).sort();
}
