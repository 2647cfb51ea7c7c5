/**
 * The e2e load generator. Runs in the bench process, beside the client under test.
 *
 * - Closed loop: `concurrency` workers, each sending its next request when the previous one ends, until `count`
 *   requests were sent or `durationMs` elapsed (whichever first). Latency: send to end of body.
 * - Open loop: request i is due at start + i / rate (a fixed schedule); a timer sends every request that is due,
 *   whatever is still in flight, until `count` were sent or `durationMs` elapsed. Latency is measured from the
 *   *intended* send time, so a stalled client or a queue is charged to the requests that waited (no coordinated
 *   omission); the timer's own lag (about 1 ms) is therefore part of every figure, for every contender alike.
 * - Both are bounded twice: by count and by time; and a phase whose requests are still not all done `graceMs`
 *   after the end fails with {@link PhaseTimeoutError} (a harness error: the run exits non-zero).
 * - Latency goes to a {@link Histogram} in microseconds (errors included, they are also counted by kind); CPU is
 *   `process.cpuUsage()` of this process over the phase (the backends and sidecars are other processes).
 * - Optional timeline: completions per backend (the `x-backend` response header) and errors per time bucket.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { Histogram } from './histogram.js';

/** What one request returned: its status and the backend that answered (the `x-backend` header), if any. */
export interface SendResult {
  readonly status: number;
  readonly backend: string | undefined;
}

/** Sends one request, reads the whole response body, and resolves with its status; rejects on failure. */
export type Send = (seq: number) => Promise<SendResult>;

/** Called once per completed request, `t` in ms since the phase started. */
export type OnResult = (result: SendResult | undefined, error: unknown, t: number, latencyMs: number) => void;

interface CommonOptions {
  readonly send: Send;
  /** Requests to send at most. */
  readonly count: number;
  /** Phase length at most, ms. */
  readonly durationMs: number;
  /** How long after the end of sending the last requests may take before the phase fails. @defaultValue 15000 */
  readonly graceMs?: number;
  /** Timeline bucket, ms; no timeline when omitted. */
  readonly timelineBucketMs?: number;
  readonly onResult?: OnResult;
  /** Name for error messages. */
  readonly name: string;
}

export interface ClosedLoopOptions extends CommonOptions {
  readonly concurrency: number;
}

export interface OpenLoopOptions extends CommonOptions {
  /** Target rate, requests per second. */
  readonly rate: number;
}

export interface Timeline {
  readonly bucketMs: number;
  /** Completed requests per backend id, per bucket. */
  readonly byBackend: Record<string, number[]>;
  /** Failed requests (errors and non-2xx/3xx statuses) per bucket. */
  readonly errors: number[];
}

export interface LoadResult {
  readonly mode: 'closed' | 'open';
  readonly sent: number;
  readonly completed: number;
  readonly ok: number;
  readonly failed: number;
  /** Failures by kind: `status:503`, an error code (`ECONNREFUSED`, `SIDECARLESS_...`), or an error name. */
  readonly failures: Record<string, number>;
  readonly elapsedMs: number;
  /** Completed requests per second of the phase. */
  readonly rps: number;
  /** Latency, µs. */
  readonly latency: Histogram;
  readonly cpuUserMs: number;
  readonly cpuSystemMs: number;
  /** Client-process CPU (user + system) per 1000 completed requests, ms. */
  readonly cpuPer1kMs: number;
  /** Heap bytes the client process allocated over the phase (see {@link AllocationMeter}). */
  readonly allocatedBytes: number;
  /** {@link LoadResult.allocatedBytes} per completed request. */
  readonly bytesPerRequest: number;
  readonly timeline: Timeline | undefined;
}

/** A phase that did not finish within its time bound: a harness error. */
export class PhaseTimeoutError extends Error {
  constructor(name: string, ms: number, pending: number) {
    super(`phase "${name}" still had ${pending} request(s) in flight ${Math.round(ms)} ms after its end`);
    this.name = 'PhaseTimeoutError';
  }
}

/** The first `code` in an error's `cause` chain (`fetch failed` wraps the real one), for failure counts. */
export function errorKind(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  if (err instanceof Error) return err.name;
  return String(err);
}

class Recorder {
  readonly latency = new Histogram();
  readonly failures: Record<string, number> = {};
  readonly timeline: Timeline | undefined;
  completed = 0;
  ok = 0;
  failed = 0;
  readonly #start: number;
  readonly #onResult: OnResult | undefined;

  constructor(start: number, bucketMs: number | undefined, onResult: OnResult | undefined) {
    this.#start = start;
    this.#onResult = onResult;
    this.timeline = bucketMs === undefined ? undefined : { bucketMs, byBackend: {}, errors: [] };
  }

  record(from: number, result: SendResult | undefined, error: unknown): void {
    const end = performance.now();
    const latencyMs = end - from;
    this.latency.record(latencyMs * 1000);
    this.completed++;
    const good = result !== undefined && result.status >= 200 && result.status < 400;
    if (good) this.ok++;
    else {
      this.failed++;
      const kind = result !== undefined ? `status:${result.status}` : errorKind(error);
      this.failures[kind] = (this.failures[kind] ?? 0) + 1;
    }
    const t = end - this.#start;
    const tl = this.timeline;
    if (tl !== undefined) {
      const b = Math.floor(t / tl.bucketMs);
      if (!good) tl.errors[b] = (tl.errors[b] ?? 0) + 1;
      if (result?.backend !== undefined) {
        let row = tl.byBackend[result.backend];
        if (row === undefined) {
          row = [];
          tl.byBackend[result.backend] = row;
        }
        row[b] = (row[b] ?? 0) + 1;
      }
    }
    this.#onResult?.(result, error, t, latencyMs);
  }
}

/**
 * Heap bytes allocated by this process over a phase, as the picker bench measures bytes per pick
 * (`bench/micro/heap.ts`): the growth of V8's used heap plus whatever every collection during the phase freed
 * (`v8.GCProfiler`), so collections in the middle hide no garbage. Everything the process allocates counts (the
 * load generator's own promises included, the same for every contender): compare contenders, not absolute figures.
 */
export class AllocationMeter {
  readonly #profiler = new GCProfiler();
  readonly #before: number;

  constructor() {
    this.#profiler.start();
    this.#before = getHeapStatistics().used_heap_size;
  }

  /** Bytes allocated since construction; stops the meter. */
  stop(): number {
    const after = getHeapStatistics().used_heap_size;
    let freed = 0;
    for (const gc of this.#profiler.stop().statistics) {
      freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    }
    return Math.max(0, after - this.#before + freed);
  }
}

function finish(
  mode: 'closed' | 'open',
  rec: Recorder,
  sent: number,
  start: number,
  cpu: NodeJS.CpuUsage,
  alloc: AllocationMeter,
): LoadResult {
  const elapsedMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const allocatedBytes = alloc.stop();
  const tl = rec.timeline;
  if (tl !== undefined) {
    // Dense arrays (no holes) for JSON and charts.
    const buckets = Math.max(tl.errors.length, ...Object.values(tl.byBackend).map((r) => r.length));
    for (const row of [tl.errors, ...Object.values(tl.byBackend)]) {
      for (let i = 0; i < buckets; i++) row[i] ??= 0;
    }
  }
  return {
    mode,
    sent,
    completed: rec.completed,
    ok: rec.ok,
    failed: rec.failed,
    failures: rec.failures,
    elapsedMs,
    rps: (rec.completed / elapsedMs) * 1000,
    latency: rec.latency,
    cpuUserMs: used.user / 1000,
    cpuSystemMs: used.system / 1000,
    cpuPer1kMs: rec.completed === 0 ? 0 : ((used.user + used.system) / 1000 / rec.completed) * 1000,
    allocatedBytes,
    bytesPerRequest: rec.completed === 0 ? 0 : allocatedBytes / rec.completed,
    timeline: tl,
  };
}

async function bounded<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function check(o: CommonOptions): void {
  if (!(o.count > 0) || !(o.durationMs > 0) || !Number.isFinite(o.durationMs)) {
    throw new RangeError(`phase "${o.name}": count and durationMs must be positive and finite`);
  }
}

/** Closed loop: `concurrency` workers back to back. */
export async function closedLoop(o: ClosedLoopOptions): Promise<LoadResult> {
  check(o);
  const alloc = new AllocationMeter();
  const start = performance.now();
  const cpu = process.cpuUsage();
  const rec = new Recorder(start, o.timelineBucketMs, o.onResult);
  const stopAt = start + o.durationMs;
  let sent = 0;
  let inFlight = 0;
  const worker = async (): Promise<void> => {
    while (sent < o.count && performance.now() < stopAt) {
      const seq = sent++;
      const t0 = performance.now();
      inFlight++;
      try {
        const r = await o.send(seq);
        inFlight--;
        rec.record(t0, r, undefined);
      } catch (err) {
        inFlight--;
        rec.record(t0, undefined, err);
      }
    }
  };
  const workers = Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  const graceMs = o.graceMs ?? 15_000;
  await bounded(workers, o.durationMs + graceMs, () => new PhaseTimeoutError(o.name, graceMs, inFlight));
  return finish('closed', rec, sent, start, cpu, alloc);
}

/** Open loop: a fixed schedule at `rate` per second; latency from each request's intended send time. */
export async function openLoop(o: OpenLoopOptions): Promise<LoadResult> {
  check(o);
  if (!(o.rate > 0)) throw new RangeError(`phase "${o.name}": rate must be positive`);
  const alloc = new AllocationMeter();
  const start = performance.now();
  const cpu = process.cpuUsage();
  const rec = new Recorder(start, o.timelineBucketMs, o.onResult);
  const interval = 1000 / o.rate;
  const total = Math.min(o.count, Math.floor((o.durationMs / 1000) * o.rate));
  let sent = 0;
  let inFlight = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  let scheduling = true;
  const fire = (seq: number, intended: number): void => {
    inFlight++;
    o.send(seq).then(
      (r) => {
        inFlight--;
        rec.record(intended, r, undefined);
        if (!scheduling && inFlight === 0) resolveDone();
      },
      (err: unknown) => {
        inFlight--;
        rec.record(intended, undefined, err);
        if (!scheduling && inFlight === 0) resolveDone();
      },
    );
  };
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const now = performance.now();
    while (sent < total) {
      const intended = start + sent * interval;
      if (intended > now) break;
      fire(sent++, intended);
    }
    if (sent < total) {
      timer = setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    } else {
      scheduling = false;
      if (inFlight === 0) resolveDone();
    }
  };
  tick();
  const graceMs = o.graceMs ?? 15_000;
  try {
    await bounded(done, o.durationMs + graceMs, () => new PhaseTimeoutError(o.name, graceMs, inFlight));
  } finally {
    clearTimeout(timer);
  }
  return finish('open', rec, sent, start, cpu, alloc);
}
