/**
 * Heap bytes allocated per call, for the picker benchmark's bytes-per-pick column and the allocation unit test.
 *
 * Method: warm the loop up (so optimising it is not charged to it), force a full collection, then run it in rounds,
 * each measured as the growth of V8's used heap plus whatever every collection during the round freed (read from
 * `v8.GCProfiler`), so a scavenge in the middle cannot hide garbage. The smallest round is reported: garbage made
 * by the loop itself shows in every round, while one-off costs (a late recompilation, a lazily built inline cache)
 * land in one. The collector is exposed at run time (`--expose-gc` through `v8.setFlagsFromString`, then `gc` from
 * a fresh context), so no command-line flag is needed.
 *
 * @module
 */
import { GCProfiler, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;
// What the last measured run returned: kept reachable, so the calls under test cannot be optimised away.
const retained: unknown[] = [];

/** A full garbage collection. */
export function collectGarbage(): void {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/**
 * Bytes allocated per call by `run`, which must make `calls` calls of the code under test (its own loop, so the call
 * site stays as monomorphic as the caller makes it) and return something derived from them (kept, so the calls
 * cannot be optimised away). Runs it once to warm up and then `rounds` times.
 */
export function bytesPerCall(run: (calls: number) => unknown, calls: number, rounds = 3): number {
  retained[0] = run(calls);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    collectGarbage();
    const profiler = new GCProfiler();
    profiler.start();
    const before = getHeapStatistics().used_heap_size;
    retained[0] = run(calls);
    const after = getHeapStatistics().used_heap_size;
    let freed = 0;
    for (const gc of profiler.stop().statistics) {
      freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    }
    best = Math.min(best, (after - before + freed) / calls);
  }
  return Math.max(best, 0);
}

/**
 * A loop of `calls` calls of `subject[method](inputs[i % inputs.length])`, returning the last result. Built with
 * `new Function` so each subject gets its own call site and type feedback, as a cluster's call site sees one policy.
 */
export function callLoop(subject: object, method: string, inputs: readonly unknown[]): (calls: number) => unknown {
  return new Function(
    'subject',
    'inputs',
    `return (calls) => { let last; const n = inputs.length; for (let i = 0; i < calls; i++) last = subject.${method}(inputs[i % n]); return last; };`,
  )(subject, inputs) as (calls: number) => unknown;
}
