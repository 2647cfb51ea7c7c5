/**
 * Two copies of the library in one process (an application's and a dependency's install): they share the
 * process-wide diagnostics channels, so cluster ids must not repeat across copies, or an exporter registered on one
 * copy's client counts the other copy's requests as its own.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { createClient } from 'sidecarless';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import { backendsForFile } from '../helpers/backends.js';

const backend = backendsForFile();
const root = resolve(import.meta.dirname, '../..');

/** A second copy of src/ (its own module instances), resolving its dependencies from this checkout. */
async function secondCopy(): Promise<typeof import('sidecarless')> {
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-copy-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(root, 'src'), join(dir, 'src'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return (await import(pathToFileURL(join(dir, 'src/index.ts')).href)) as typeof import('sidecarless');
}

describe('two copies of the library in one process', () => {
  it('number their clusters apart, and an exporter counts only its own client', async () => {
    const other = await secondCopy();
    assert.notEqual(other.createClient, createClient, 'a copy of its own');
    const b = await backend('two-copies');
    const mine = createClient({ name: 'users', target: [b.address] });
    const theirs = other.createClient({ name: 'orders', target: [b.address] });
    const registry = new Registry();
    try {
      const ids = [mine, theirs].map((c) => c.stats().clusters[0]?.id);
      assert.notEqual(ids[0], ids[1]);
      registerPrometheusMetrics(mine, { registry });
      await (await mine.fetch('http://users/')).text();
      for (let i = 0; i < 5; i++) await (await theirs.fetch('http://orders/')).text();
      const lines = (await registry.metrics()).split('\n');
      const count = (name: string): string | undefined =>
        lines.find((l) => l.startsWith(`${name}{`) && l.includes('upstream_cluster="users"'))?.split(' ')[1];
      assert.equal(count('sidecarless_requests_total'), '1');
      assert.equal(count('sidecarless_request_duration_seconds_count'), '1');
    } finally {
      await Promise.all([mine.close(), theirs.close()]);
    }
  });
});
