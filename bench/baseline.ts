/**
 * `--baseline <path>`: another copy of the library (its `src/index.ts`, say the previous commit's from
 * `git archive`), whose `createClient` the benches run beside this copy's for a before/after in one process.
 *
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { createClient } from '../src/index.js';

/** The `createClient` of the copy at `path`, or `undefined` when no path was given. */
export async function importBaseline(path: string | undefined): Promise<typeof createClient | undefined> {
  if (path === undefined) return undefined;
  const module = (await import(pathToFileURL(resolve(path)).href)) as { createClient?: unknown };
  if (typeof module.createClient !== 'function') throw new Error(`--baseline ${path}: no createClient exported there`);
  return module.createClient as typeof createClient;
}
