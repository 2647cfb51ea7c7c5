/**
 * Stopping the real servers the integration suites start (etcd, ZooKeeper).
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
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
