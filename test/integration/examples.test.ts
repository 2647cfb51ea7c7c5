// Every example runs as a user would run it, so none can rot.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

async function run(file: string, args: string[] = []): Promise<string> {
  const script = fileURLToPath(new URL(`../../examples/${file}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `${file} did not exit by itself: ${out}`);
  assert.equal(code, 0, `${file} failed: ${out}`);
  return out;
}

describe('examples', () => {
  it('demo sends every request through the balancer and prints a per-endpoint summary', async () => {
    const out = await run('demo.ts', ['--requests', '90', '--concurrency', '3']);
    assert.match(out, /90 requests/);
    for (const id of ['backend-1', 'backend-2', 'backend-3']) assert.match(out, new RegExp(`${id} .*\\b30\\b`));
    assert.match(out, /errors: 0/);
  });
  it('static-list balances through fetch and undici.request', async () => {
    const out = await run('static-list.ts');
    assert.match(out, /backend 1 saw Host: catalog/);
    assert.match(out, /backend 2/);
    assert.match(out, /via undici.request: backend \d saw Host: catalog/);
  });
  it('custom-resolver reads endpoints from its own scheme', async () => {
    const out = await run('custom-resolver.ts');
    assert.match(out, /answers: (a b a b|b a b a)/);
  });
});
