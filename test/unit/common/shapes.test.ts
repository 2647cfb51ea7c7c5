import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runJsonFixture } from '../../helpers/process.js';

const fixture = fileURLToPath(new URL('../../fixtures/shapes-child.ts', import.meta.url));

describe('hidden classes kept across full collections (common/shapes.ts)', () => {
  it('a real request, a retried one, one made after a full GC with none alive, and the undici 8 adapter share the kept map', async () => {
    // V8's `%HaveSameMap` needs --allow-natives-syntax, and the collection --expose-gc: a process of its own.
    const seen = await runJsonFixture(fixture, ['--allow-natives-syntax', '--expose-gc']);
    assert.deepEqual(seen, { request: true, retried: true, afterGc: true, controller: true });
  });
});
