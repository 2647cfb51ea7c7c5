#!/usr/bin/env node
/**
 * File-size check, run by `npm run lint`: no source file under src/ is longer than 500 lines, unless it holds a
 * single algorithm or state machine and says so in its header comment with the marker
 *
 *     @size single algorithm: <reason>
 *
 * (or `@size single state machine: <reason>`). The reason is required and names what the file holds, e.g.
 * `@size single algorithm: outlier detection (five ejection rules over one host table)`. The marker must appear in the
 * file's first comment block (before the first import or statement), where a reader sees it first. A wiring file
 * (the cluster, the client, a resolver) never takes the marker: split it instead. See docs/ARCHITECTURE.md.
 *
 * Usage: node scripts/check-file-size.mjs [--max <lines>] [--list]
 *   --max   the limit (default 500)
 *   --list  print every file over the limit with its status, marked ones included
 * Exits 1 when an unmarked file is over the limit, or a marker has no reason.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const EXTENSIONS = /\.(?:ts|mts|cts|js|mjs|cjs)$/;
const MARKER = /@size[ \t]+single[ \t]+(algorithm|state machine)[ \t]*:(.*)$/m;

const args = process.argv.slice(2);
const maxIndex = args.indexOf('--max');
const MAX_LINES = maxIndex === -1 ? 500 : Number(args[maxIndex + 1]);
const LIST = args.includes('--list');
if (!Number.isInteger(MAX_LINES) || MAX_LINES <= 0) {
  console.error('check-file-size: --max takes a positive integer');
  process.exit(2);
}

/** Every source file under `dir`, recursively, sorted. */
async function sourceFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(path)));
    else if (EXTENSIONS.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** The file's leading comments (block and line), up to its first code. */
function headerComment(text) {
  const match = /^(?:#![^\n]*\n)?(?:\s*(?:\/\*[\s\S]*?\*\/|\/\/[^\n]*))*/.exec(text);
  return match ? match[0] : '';
}

/** Lines as editors count them: a final newline does not start another line. */
function lineCount(text) {
  if (text.length === 0) return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

const failures = [];
const marked = [];
for (const file of await sourceFiles(SRC)) {
  const text = await readFile(file, 'utf8');
  const lines = lineCount(text);
  const name = relative(ROOT, file);
  const marker = MARKER.exec(headerComment(text));
  const reason = marker?.[2]?.replace(/\*\/.*$/, '').trim();
  if (marker && !reason) {
    failures.push(`${name}: the @size marker needs a reason ("@size single ${marker[1]}: <what it holds>")`);
    continue;
  }
  if (lines <= MAX_LINES) continue;
  if (marker) marked.push(`${name}: ${lines} lines, single ${marker[1]}: ${reason}`);
  else
    failures.push(`${name}: ${lines} lines (limit ${MAX_LINES}); split it, or mark a single algorithm/state machine`);
}

if (LIST) for (const line of marked) console.log(`ok (marked) ${line}`);
if (failures.length > 0) {
  console.error(`check-file-size: ${failures.length} file(s) over the limit (see scripts/check-file-size.mjs):`);
  for (const line of failures) console.error(`  ${line}`);
  process.exit(1);
}
console.log(`check-file-size: every file under src/ is within ${MAX_LINES} lines or marked (${marked.length} marked).`);
