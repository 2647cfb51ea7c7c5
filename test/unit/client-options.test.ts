import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient, isSidecarlessError } from '../../src/index.js';

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
    ['empty name', () => createClient({ target: ['a:1'], name: '' }), 'SIDECARLESS_INVALID_OPTION:name'],
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
});
