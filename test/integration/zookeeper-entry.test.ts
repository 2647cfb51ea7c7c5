/**
 * The `sidecarless/zookeeper` entry point: what it exports, and that node-zookeeper-client (an optional peer) is
 * loaded by it alone: importing `sidecarless` and `sidecarless/extend` must not load it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as zookeeperEntry from 'sidecarless/zookeeper';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Imports `specifiers` in a fresh process (tsx, the repository's tsconfig paths) and says whether the client loaded. */
function loadsClient(specifiers: string[]): boolean {
  const script =
    `for (const s of ${JSON.stringify(specifiers)}) await import(s);` +
    "const { createRequire } = await import('node:module');" +
    'const cache = createRequire(import.meta.url).cache;' +
    "console.log(Object.keys(cache).some((k) => k.includes('node-zookeeper-client')));";
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return out.trim().endsWith('true');
}

describe('sidecarless/zookeeper entry point', () => {
  it('exports the resolver, its factory, the registration function and the error', () => {
    assert.deepEqual(Object.keys(zookeeperEntry).sort(), [
      'ZooKeeperError',
      'ZooKeeperResolver',
      'registerZooKeeper',
      'zooKeeperResolverFactory',
    ]);
  });

  it('is the only entry that loads node-zookeeper-client', () => {
    assert.equal(loadsClient(['sidecarless', 'sidecarless/extend']), false, 'the root and extend entries load it');
    assert.equal(loadsClient(['sidecarless/zookeeper']), true, 'control: the zookeeper entry loads it');
  });
});
