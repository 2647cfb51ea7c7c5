// Runs an example as a user would: `node --import tsx examples/<file>`, in a child process that must exit 0 by itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/**
 * Runs `examples/<file>` with `args` and returns its stdout and stderr, interleaved. Fails the calling test when the
 * example exits with a non-zero code or does not exit within `timeoutMs` (it is then killed).
 */
export async function runExample(file: string, args: string[] = [], timeoutMs = 60_000): Promise<string> {
  const script = fileURLToPath(new URL(`../../examples/${file}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `${file} did not exit by itself: ${out}`);
  assert.equal(code, 0, `${file} failed: ${out}`);
  return out;
}
