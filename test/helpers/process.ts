/**
 * Child processes of the tests: stopping the real servers the integration suites start (etcd, ZooKeeper), and running
 * a fixture in a process of its own.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

/** Sends SIGTERM, then SIGKILL if `child` has not exited after `graceMs`, and resolves once it has exited. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(killer);
}

/**
 * Runs a test fixture (`test/fixtures/*.ts`) in a Node process of its own, with `nodeFlags` before tsx, `input` (if
 * any) as JSON on its stdin, and resolves with the JSON it printed; rejects when it exits non-zero.
 */
export function runJsonFixture<R>(fixture: string, nodeFlags: readonly string[] = [], input?: unknown): Promise<R> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', fixture], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`fixture exited with ${code}`));
      else resolve(JSON.parse(out) as R);
    });
    child.stdin.end(input === undefined ? '' : JSON.stringify(input));
  });
}
