import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient, isSidecarlessError, type SingleServiceOptions } from '../../../src/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    const client = fn() as { close?: () => Promise<void> };
    void client?.close?.();
  } catch (err) {
    return isSidecarlessError(err) ? `${err.code}${'option' in err ? `:${String(err.option)}` : ''}` : 'untyped';
  }
  return undefined;
}

describe('client construction rejects bad options with typed errors naming the option', () => {
  const cases: Array<[string, () => unknown, string]> = [
    ['no options', () => createClient(undefined as never), 'SIDECARLESS_INVALID_OPTION:options'],
    ['no target', () => createClient({} as never), 'SIDECARLESS_INVALID_OPTION:target'],
    ['target of the wrong type', () => createClient({ target: 42 as never }), 'SIDECARLESS_INVALID_OPTION:target'],
    ['malformed target', () => createClient({ target: 'not a target' }), 'SIDECARLESS_INVALID_TARGET'],
    ['unknown scheme', () => createClient({ target: 'zk://x/y' }), 'SIDECARLESS_UNKNOWN_SCHEME'],
    ['duplicate endpoints', () => createClient({ target: ['a:1', 'a:1'] }), 'SIDECARLESS_DUPLICATE_ENDPOINT'],
    ['invalid port', () => createClient({ target: ['a:0'] }), 'SIDECARLESS_INVALID_ENDPOINT'],
    [
      'invalid weight',
      () => createClient({ target: [{ host: 'a', port: 1, weight: -2 }] }),
      'SIDECARLESS_INVALID_ENDPOINT',
    ],
    [
      'unknown picker',
      () => createClient({ target: ['a:1'], picker: 'nope' }),
      'SIDECARLESS_INVALID_OPTION:picker.name',
    ],
    [
      'negative waitForReadyTimeout',
      () => createClient({ target: ['a:1'], waitForReadyTimeout: -1 }),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimeout',
    ],
    [
      'NaN drainTimeout',
      () => createClient({ target: ['a:1'], drainTimeout: Number.NaN }),
      'SIDECARLESS_INVALID_OPTION:drainTimeout',
    ],
    ['empty host', () => createClient({ target: ['a:1'], host: '' }), 'SIDECARLESS_INVALID_OPTION:host'],
    [
      'pool factory',
      () => createClient({ target: ['a:1'], pool: { factory: () => null } as never }),
      'SIDECARLESS_INVALID_OPTION:pool.factory',
    ],
    [
      'backoff max below initial',
      () => createClient({ target: ['a:1'], connectBackoff: { initialMs: 10, maxMs: 5 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.maxMs',
    ],
    [
      'backoff jitter of 1',
      () => createClient({ target: ['a:1'], connectBackoff: { jitter: 1 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.jitter',
    ],
    [
      'backoff with an unknown key',
      () => createClient({ target: ['a:1'], connectBackoff: { initial: 5 } as never }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.initial',
    ],
    [
      'backoff as an array',
      () => createClient({ target: ['a:1'], connectBackoff: [] as never }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff',
    ],
    [
      'backoff maxMs beyond the longest timer (it would fire after 1 ms)',
      () => createClient({ target: ['a:1'], connectBackoff: { maxMs: 1e12 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.maxMs',
    ],
    [
      'backoff initialMs beyond the longest timer',
      () => createClient({ target: ['a:1'], connectBackoff: { initialMs: 1e12, maxMs: 1e12 } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.initialMs',
    ],
    [
      'backoff multiplier of NaN',
      () => createClient({ target: ['a:1'], connectBackoff: { multiplier: Number.NaN } }),
      'SIDECARLESS_INVALID_OPTION:connectBackoff.multiplier',
    ],
    [
      'outlierDetection percentage above 100',
      () => createClient({ target: ['a:1'], outlierDetection: { maxEjectionPercent: 101 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.maxEjectionPercent',
    ],
    [
      'outlierDetection zero interval',
      () => createClient({ target: ['a:1'], outlierDetection: { intervalMs: 0 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.intervalMs',
    ],
    [
      'outlierDetection max ejection time below the base',
      () =>
        createClient({ target: ['a:1'], outlierDetection: { baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 1000 } }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.maxEjectionTimeMs',
    ],
    [
      'outlierDetection unknown key',
      () => createClient({ target: ['a:1'], outlierDetection: { consecutive500: 3 } as never }),
      'SIDECARLESS_INVALID_OPTION:outlierDetection.consecutive500',
    ],
    [
      'healthCheck non-positive threshold',
      () => createClient({ target: ['a:1'], healthCheck: { unhealthyThreshold: 0 } }),
      'SIDECARLESS_INVALID_OPTION:healthCheck.unhealthyThreshold',
    ],
    [
      'healthCheck path naming another host',
      () => createClient({ target: ['a:1'], healthCheck: { path: '//evil.example/x' } }),
      'SIDECARLESS_INVALID_OPTION:healthCheck.path',
    ],
    [
      'slowStart without windowMs',
      () => createClient({ target: ['a:1'], slowStart: {} as never }),
      'SIDECARLESS_INVALID_OPTION:slowStart.windowMs',
    ],
    [
      'slowStart zero aggression',
      () => createClient({ target: ['a:1'], slowStart: { windowMs: 1000, aggression: 0 } }),
      'SIDECARLESS_INVALID_OPTION:slowStart.aggression',
    ],
    [
      'panicThreshold above 100',
      () => createClient({ target: ['a:1'], panicThreshold: 150 }),
      'SIDECARLESS_INVALID_OPTION:panicThreshold',
    ],
    [
      'negative panicThreshold',
      () => createClient({ target: ['a:1'], panicThreshold: -1 }),
      'SIDECARLESS_INVALID_OPTION:panicThreshold',
    ],
    ['empty name', () => createClient({ target: ['a:1'], name: '' }), 'SIDECARLESS_INVALID_OPTION:name'],
    [
      'unknown single-service option',
      () => createClient({ target: ['a:1'], foo: 1 } as never),
      'SIDECARLESS_INVALID_OPTION:foo',
    ],
    [
      'misspelt single-service option (waitForReadyTimout)',
      () => createClient({ target: 'static://127.0.0.1:1', waitForReadyTimout: 100 } as never),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimout',
    ],
    [
      'misspelt target is named, not reported as a missing target',
      () => createClient({ targt: ['a:1'] } as never),
      'SIDECARLESS_INVALID_OPTION:targt',
    ],
    [
      'multi-service key on a single-service client',
      () => createClient({ target: ['a:1'], routes: [] } as never),
      'SIDECARLESS_INVALID_OPTION:routes',
    ],
    [
      'unknown multi-service option',
      () => createClient({ clusters: { a: { target: ['a:1'] } }, waitForReadyTimeout: 5 } as never),
      'SIDECARLESS_INVALID_OPTION:waitForReadyTimeout',
    ],
  ];
  for (const [name, fn, expected] of cases) {
    it(name, () => assert.equal(code(fn), expected));
  }

  it('accepts a valid configuration', () => {
    assert.equal(
      code(() =>
        createClient({
          target: 'static://127.0.0.1:1,[::1]:2',
          picker: { name: 'round-robin' },
          waitForReadyTimeout: 0,
          host: 'svc',
          connectBackoff: { initialMs: 5, maxMs: 10, multiplier: 2, jitter: 0 },
        }),
      ),
      undefined,
    );
  });

  it('accepts every documented single-service option key (each left at its default)', () => {
    const keys: Array<keyof SingleServiceOptions> = [
      'name',
      'picker',
      'host',
      'endpointHeader',
      'waitForReadyTimeout',
      'drainTimeout',
      'pool',
      'tls',
      'zoneAware',
      'connectBackoff',
      'resolvers',
      'pickers',
      'clock',
      'random',
      'retry',
      'retryBudget',
      'hedge',
      'timeoutMs',
      'limits',
      'breaker',
      'outlierDetection',
      'healthCheck',
      'slowStart',
      'panicThreshold',
    ];
    const options = Object.fromEntries(keys.map((k) => [k, undefined]));
    assert.equal(
      code(() => createClient({ ...options, target: ['a:1'] })),
      undefined,
    );
  });
});
