// The caller's async context (AsyncLocalStorage, hence OpenTelemetry's context) through the balancer's deferred paths.
// Regression (probe 5): a request waiting for endpoints was sent in the context of whatever delivered them (a
// resolver's response, another caller's `update()`), so undici's `undici:request:create` (where
// @opentelemetry/instrumentation-undici starts its span and takes the parent) saw the updater's trace, not the caller's.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, StaticResolver } from 'sidecarless';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

const als = new AsyncLocalStorage<string>();

describe('async context of a request', () => {
  let backend: Backend;
  /** The store undici saw when it created each request, by path. */
  const seen = new Map<string, string | undefined>();
  const onCreate = (message: unknown): void => {
    const { request: req } = message as { request: { path: string } };
    seen.set(req.path, als.getStore());
  };

  before(async () => {
    backend = await startBackend('ok');
    diagnostics.subscribe('undici:request:create', onCreate);
  });
  after(async () => {
    diagnostics.unsubscribe('undici:request:create', onCreate);
    await stopAll([backend]);
  });

  it("a request that waited for endpoints is sent, and answered, in its caller's context", async () => {
    const resolver = new StaticResolver([]);
    const client = createClient({ target: resolver, name: 'ctx', waitForReadyTimeoutMs: 10_000 });
    try {
      const send = (caller: string): Promise<[string | undefined, number]> =>
        als.run(caller, async () => {
          const res = await request(`http://ctx/${caller}`, { dispatcher: client.dispatcher });
          await res.body.text();
          return [als.getStore(), res.statusCode] as [string | undefined, number];
        });
      const a = send('caller-a');
      const b = send('caller-b');
      // Both wait: the set is empty. The endpoints arrive from a third context.
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(seen.size, 0, 'nothing sent before the endpoints arrived');
      als.run('config-reload', () => resolver.update([backend.address]));
      assert.deepEqual(await a, ['caller-a', 200]);
      assert.deepEqual(await b, ['caller-b', 200]);
      assert.equal(seen.get('/caller-a'), 'caller-a');
      assert.equal(seen.get('/caller-b'), 'caller-b');
    } finally {
      await client.close();
    }
  });

  it("a request that gives up waiting fails in its caller's context, whatever context the clock's timers run in", async () => {
    // An injected clock (a test's fake timers, a scheduler) may run its callbacks in a context of its own.
    const clock = {
      now: () => performance.now(),
      setTimeout: (fn: () => void, ms: number) => setTimeout(() => als.run('clock', fn), ms),
      clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
    };
    const client = createClient({ target: new StaticResolver([]), name: 'ctx2', waitForReadyTimeoutMs: 30, clock });
    try {
      const failed = await new Promise<[string | undefined, string | undefined]>((resolve) => {
        als.run('caller-c', () => {
          client.dispatcher.dispatch(
            { origin: 'http://ctx2', path: '/c', method: 'GET' },
            {
              onConnect: () => {},
              onHeaders: () => true,
              onData: () => true,
              onComplete: () => resolve(['completed', als.getStore()]),
              onError: (err: Error & { code?: string }) => resolve([err.code, als.getStore()]),
            },
          );
        });
      });
      assert.deepEqual(failed, ['SIDECARLESS_NO_ENDPOINTS', 'caller-c']);
    } finally {
      await client.close();
    }
  });
});
