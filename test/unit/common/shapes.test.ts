import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('../../fixtures/shapes-child.ts', import.meta.url));

// V8's `%HaveSameMap` needs --allow-natives-syntax, and the collection --expose-gc: a process of its own.
function runChild(): Promise<Record<string, boolean>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--import', 'tsx', fixture], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`fixture exited with ${code}`));
      else resolve(JSON.parse(out) as Record<string, boolean>);
    });
  });
}

describe('hidden classes kept across full collections (common/shapes.ts)', () => {
  it('a real request, a retried one, one made after a full GC with none alive, and the undici 8 adapter share the kept map', async () => {
    assert.deepEqual(await runChild(), { request: true, retried: true, afterGc: true, controller: true });
  });
});
