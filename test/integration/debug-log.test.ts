// NODE_DEBUG turns on every module's logger, or only the ones named; checked in a child process, since debuglog
// reads NODE_DEBUG once, at startup.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../fixtures/debug-child.ts', import.meta.url));

async function debugLines(nodeDebug: string): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, NODE_DEBUG: nodeDebug },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  return stderr.split('\n').filter((line) => /^SIDECARLESS/.test(line));
}

describe('NODE_DEBUG', () => {
  it('sidecarless:pool turns on the pool logger only', async () => {
    const lines = await debugLines('sidecarless:pool');
    assert.ok(
      lines.some((line) => /^SIDECARLESS:POOL \d+: add 127\.0\.0\.1:\d+$/.test(line)),
      lines.join('\n'),
    );
    assert.deepEqual(
      lines.filter((line) => !line.startsWith('SIDECARLESS:POOL ')),
      [],
    );
  });

  it('sidecarless turns on every module, each line tagged with its module', async () => {
    const lines = await debugLines('sidecarless');
    assert.ok(lines.length > 0);
    assert.ok(
      lines.every((line) => /^SIDECARLESS \d+: \[[a-z]+\] /.test(line)),
      lines.join('\n'),
    );
    const modules = new Set(lines.map((line) => /\[([a-z]+)\]/.exec(line)?.[1]));
    for (const name of ['cluster', 'pool', 'subchannel'])
      assert.ok(modules.has(name), `[${name}] in ${lines.join('\n')}`);
  });

  it('a list names several modules, each logging under its own section', async () => {
    const lines = await debugLines('sidecarless:pool,sidecarless:cluster');
    const sections = new Set(lines.map((line) => line.split(' ')[0]));
    assert.deepEqual([...sections].sort(), ['SIDECARLESS:CLUSTER', 'SIDECARLESS:POOL']);
  });
});
