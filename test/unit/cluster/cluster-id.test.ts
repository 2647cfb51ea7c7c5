import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextClusterId } from '../../../src/cluster/cluster-id.js';

const KEY = Symbol.for('sidecarless.nextClusterId');

describe('nextClusterId', () => {
  it('counts on globalThis, shared by every copy of the library', () => {
    const slot = globalThis as { [KEY]?: unknown };
    const first = nextClusterId();
    assert.equal(slot[KEY], first + 1);
    assert.equal(nextClusterId(), first + 1);
  });

  // Probe 19: a hardened sandbox (a frozen globalThis) made createClient throw a TypeError with no code.
  it('still gives distinct ids when globalThis cannot hold the count', () => {
    const slot = globalThis as { [KEY]?: unknown };
    const saved = slot[KEY];
    Object.defineProperty(globalThis, KEY, { value: saved, writable: false, configurable: true });
    try {
      const ids = [nextClusterId(), nextClusterId(), nextClusterId()];
      assert.equal(new Set(ids).size, 3);
      for (const id of ids) assert.ok(Number.isSafeInteger(id) && id > 0, String(id));
    } finally {
      Object.defineProperty(globalThis, KEY, { value: saved, writable: true, configurable: true, enumerable: false });
    }
    assert.equal(nextClusterId(), saved);
  });
});
