/** The loop shared by the resolvers that watch a remote source, driven by a fake clock. */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { Backoff, resolveBackoffOptions } from '../../../src/common/backoff.js';
import { createEndpoint, type Endpoint } from '../../../src/common/endpoint.js';
import { ResolverError, ServiceNotFoundError, type SidecarlessError } from '../../../src/common/errors.js';
import { withDeadline } from '../../../src/resolvers/deadline.js';
import { type WatchLoopOptions, WatchLoop, type WatchTask } from '../../../src/resolvers/watch-loop.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

function setup(task: WatchTask, overrides: Partial<WatchLoopOptions> = {}) {
  const clock = new FakeClock();
  const updates: Array<readonly Endpoint[]> = [];
  const errors: SidecarlessError[] = [];
  const loop = new WatchLoop(
    {
      label: 'test',
      clock,
      backoff: new Backoff(resolveBackoffOptions({ initialMs: 1000, multiplier: 2, jitter: 0 }, 'backoff'), () => 0.5),
      minIntervalMs: 100,
      refresh: { mode: 'watch', intervalMs: 5000 },
      debug: () => {},
      ...overrides,
    },
    task,
  );
  const listener = {
    onUpdate: (e: readonly Endpoint[]) => updates.push(e),
    onError: (e: SidecarlessError) => errors.push(e),
  };
  return { clock, loop, listener, updates, errors };
}

const a = createEndpoint({ host: '10.0.0.1', port: 80 });
const b = createEndpoint({ host: '10.0.0.2', port: 80 });

describe('WatchLoop', () => {
  it('runs first on a microtask, then no sooner than minIntervalMs, and does not re-deliver an equal set', async () => {
    let runs = 0;
    const t = setup(async (run) => {
      run.started();
      runs++;
      return { endpoints: [a] };
    });
    t.loop.start(t.listener);
    assert.equal(runs, 0, 'never synchronously');
    await tick();
    assert.equal(runs, 1);
    assert.equal(t.updates.length, 1);
    t.clock.advance(99);
    await tick();
    assert.equal(runs, 1, 'the hot-loop guard');
    t.clock.advance(1);
    await tick();
    assert.equal(runs, 2);
    assert.equal(t.updates.length, 1, 'an equal set is not delivered again');
    t.loop.close();
  });

  it('issue 15.7: after a failure, an equal set is delivered again, with the "no such service" reason of an empty one', async () => {
    let fail = false;
    const notFound = new ServiceNotFoundError('users', 'no such service: users');
    const t = setup(async (run) => {
      run.started();
      if (fail) throw new Error('boom');
      return { endpoints: [], notFound };
    });
    const reasons: unknown[] = [];
    t.loop.start({ ...t.listener, onUpdate: (e, why) => (t.updates.push(e), reasons.push(why)) });
    await tick();
    assert.deepEqual([t.updates.length, reasons[0]], [1, notFound]);
    fail = true;
    t.clock.advance(100);
    await tick();
    assert.equal(t.errors.length, 1);
    fail = false;
    t.clock.advance(1000);
    await tick();
    assert.equal(t.updates.length, 2, 'the listener hears that the source answers again');
    assert.equal(reasons[1], notFound);
    t.loop.close();
  });

  it('keeps the last set on failure, reports it, backs off, ignores refresh() meanwhile, and resets on success', async () => {
    let fail = false;
    let runs = 0;
    const t = setup(async (run) => {
      run.started();
      runs++;
      if (fail) throw new Error('boom');
      return { endpoints: [a, b], nextMs: 60_000 };
    });
    t.loop.start(t.listener);
    await tick();
    fail = true;
    t.clock.advance(60_000);
    await tick();
    assert.equal(runs, 2);
    assert.equal(t.errors.length, 1);
    assert.ok(t.errors[0] instanceof ResolverError, 'a plain error is wrapped');
    assert.equal(t.updates.length, 1, 'no update on failure: the last set stays');
    t.loop.refresh();
    t.clock.advance(999);
    await tick();
    assert.equal(runs, 2, 'the hint did not cut the backoff short');
    t.clock.advance(1);
    await tick();
    assert.equal(runs, 3);
    t.clock.advance(2000); // the backoff grew
    await tick();
    assert.equal(runs, 4);
    fail = false;
    t.clock.advance(4000);
    await tick();
    assert.equal(runs, 5);
    assert.equal(t.errors.length, 3);
    t.loop.close();
  });

  it('watch mode: refresh() restarts the run in flight, at most once per refresh interval', async () => {
    let runs = 0;
    const t = setup((run) => {
      run.started();
      runs++;
      return new Promise((_, reject) => run.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    });
    t.loop.start(t.listener);
    await tick();
    assert.equal(runs, 1);
    for (let i = 0; i < 10; i++) t.loop.refresh();
    await tick();
    t.clock.advance(100);
    await tick();
    assert.equal(runs, 2, 'one restart, within the guard');
    assert.equal(t.errors.length, 0, 'a restart is not a failure');
    t.loop.refresh();
    t.clock.advance(1000);
    await tick();
    assert.equal(runs, 2, 'a second hint inside the refresh interval is dropped');
    t.loop.close();
    await tick();
    assert.equal(t.errors.length, 0, 'close is not a failure');
  });

  it('poll mode: refresh() brings the next run forward to intervalMs after the last start', async () => {
    let runs = 0;
    const t = setup(
      async (run) => {
        run.started();
        runs++;
        return { endpoints: [a], nextMs: 30_000 };
      },
      { minIntervalMs: 0, refresh: { mode: 'poll', intervalMs: 1000 }, ordered: false },
    );
    t.loop.start(t.listener);
    await tick();
    t.clock.advance(200);
    t.loop.refresh();
    t.clock.advance(799);
    await tick();
    assert.equal(runs, 1);
    t.clock.advance(1);
    await tick();
    assert.equal(runs, 2, 'at last start + intervalMs');
    t.loop.close();
    t.clock.advance(60_000);
    await tick();
    assert.equal(runs, 2, 'nothing after close');
  });
});

describe('WatchLoop.wake', () => {
  it('ends a backoff early (within minIntervalMs), and does nothing when not backing off', async () => {
    let runs = 0;
    let fail = true;
    const t = setup(async (run) => {
      run.started();
      runs++;
      if (fail) throw new ResolverError('down');
      return { endpoints: [a], nextMs: 60_000 };
    });
    t.loop.start(t.listener);
    await tick();
    assert.equal(runs, 1);
    assert.equal(t.errors.length, 1, 'the first run failed: backing off 1000 ms');
    fail = false;
    t.loop.wake();
    t.clock.advance(99);
    await tick();
    assert.equal(runs, 1, 'still within minIntervalMs of the failed run');
    t.clock.advance(1);
    await tick();
    assert.equal(runs, 2, 'woken 900 ms before the backoff was over');
    assert.equal(t.updates.length, 1);
    t.loop.wake(); // healthy now: no effect, the next run stays 60 s away
    t.clock.advance(59_999);
    await tick();
    assert.equal(runs, 2);
    t.loop.close();
  });
});

describe('WatchLoop: probe 12 regressions', () => {
  it('regression (probe 12): a changed "not found" reason is delivered although the set is empty both times', async () => {
    const reasons = [
      new ServiceNotFoundError('/svc', 'ZooKeeper node /svc has no usable instance'),
      new ServiceNotFoundError('/svc', 'ZooKeeper node /svc has no usable instance'),
      new ServiceNotFoundError('/svc', 'ZooKeeper node /svc does not exist'),
      undefined,
      new ServiceNotFoundError('/svc', 'gone', { cause: new Error('first') }),
      new ServiceNotFoundError('/svc', 'gone', { cause: new Error('second') }),
    ];
    let i = 0;
    const t = setup(async (run) => {
      run.started();
      return { endpoints: [], notFound: reasons[Math.min(i++, reasons.length - 1)] };
    });
    const seen: unknown[] = [];
    t.loop.start({ ...t.listener, onUpdate: (e, why) => (t.updates.push(e), seen.push(why)) });
    for (let run = 0; run < reasons.length; run++) {
      await tick();
      t.clock.advance(100);
    }
    await tick();
    assert.deepEqual(seen, [reasons[0], reasons[2], undefined, reasons[4], reasons[5]], 'each change, no repeat');
    t.loop.close();
  });

  it('regression (probe 12): many concurrent requests on the run signal print no MaxListenersExceededWarning, and leave no listener', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    let signal: AbortSignal | undefined;
    const t = setup(async (run) => {
      run.started();
      signal = run.signal;
      const reads = Array.from({ length: 25 }, () =>
        withDeadline(
          t.clock,
          1000,
          run.signal,
          () => new Promise((resolve) => setImmediate(resolve)),
          () => new Error('timeout'),
        ),
      );
      assert.equal(getEventListeners(run.signal, 'abort').length, 25);
      await Promise.all(reads);
      return { endpoints: [a] };
    });
    t.loop.start(t.listener);
    for (let i = 0; i < 5; i++) await tick();
    process.off('warning', onWarning);
    assert.equal(t.updates.length, 1);
    assert.equal(getEventListeners(signal as AbortSignal, 'abort').length, 0, 'every link removed once settled');
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    );
    t.loop.close();
  });
});

describe('WatchLoop: a task handing over what is not a list of created endpoints', () => {
  it('compares plain { host, port } objects and host:port strings by the endpoint they name', async () => {
    let fleet: unknown[] = [{ host: '10.0.0.1', port: 80 }];
    const t = setup(async (run) => {
      run.started();
      return { endpoints: fleet as Endpoint[] };
    });
    t.loop.start(t.listener);
    await tick();
    fleet = [{ host: '10.0.0.2', port: 80 }];
    t.clock.advance(100);
    await tick();
    assert.equal(t.updates.length, 2, 'the moved service is delivered');
    assert.deepEqual(t.updates[1], fleet);
    fleet = ['10.0.0.2:80'];
    t.clock.advance(100);
    await tick();
    assert.equal(t.updates.length, 2, 'the same endpoint written as a string is the same set');
    fleet = [{ host: '10.0.0.2', port: 80, weight: 3 }];
    t.clock.advance(100);
    await tick();
    assert.equal(t.updates.length, 3, 'a changed weight is news');
    t.loop.close();
  });

  it('delivers a set with an entry it cannot read (BigInt or circular metadata, a throwing getter) for the cluster to skip', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const bad = [
      { host: '10.0.0.1', port: 80, metadata: { epoch: 9007199254740993n } },
      { host: '10.0.0.1', port: 80, metadata: circular },
      {
        host: '10.0.0.1',
        port: 80,
        get metadata(): never {
          throw new Error('getter');
        },
      },
    ];
    for (const entry of bad) {
      let runs = 0;
      const t = setup(async (run) => {
        run.started();
        runs++;
        return { endpoints: [a, entry] as Endpoint[], nextMs: 50 };
      });
      t.loop.start(t.listener);
      await tick();
      assert.equal(t.updates.length, 1);
      t.clock.advance(100);
      await tick();
      assert.equal(runs, 2, 'the loop goes on');
      t.loop.close();
    }
  });

  it('fails the run (onError, then backoff) for endpoints that are not an array, and runs again', async () => {
    let runs = 0;
    const t = setup(async (run) => {
      run.started();
      runs++;
      return { endpoints: 'x' as unknown as Endpoint[], nextMs: 50 };
    });
    t.loop.start(t.listener);
    await tick();
    assert.equal(t.errors.length, 1);
    assert.equal(t.errors[0]?.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.equal(t.updates.length, 0);
    t.clock.advance(1000);
    await tick();
    assert.equal(runs, 2, 'the next run comes after the backoff');
    t.loop.close();
  });
});
