import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { positiveFlag } from '../../../bench/flags.js';

/** Runs a benchmark's entry with `args` (it must stop at its command line: nothing here starts a measurement). */
function run(entry: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('benchmark command lines', () => {
  for (const [entry, script, valued] of [
    ['bench/e2e/run.ts', 'bench:e2e', '--out'],
    ['bench/micro/pickers.ts', 'bench', '--out'],
    ['bench/scale.ts', 'bench:scale', '--out'],
    ['bench/e2e/interleaved.ts', 'bench:interleaved', '--json'],
  ] as const) {
    it(`${script}: --help prints the usage; an unknown flag or a flag without its value stops the run (exit 2)`, () => {
      const help = run(entry, ['--help']);
      assert.equal(help.status, 0);
      assert.match(help.stdout, new RegExp(`^Usage: npm run ${script} `));
      const typo = run(entry, ['--smok']);
      assert.equal(typo.status, 2);
      assert.match(typo.stderr, /unknown argument "--smok"\nUsage: /);
      const stray = run(entry, ['1000']);
      assert.equal(stray.status, 2);
      assert.match(stray.stderr, /unknown argument "1000"/);
      const missing = run(entry, [valued]);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, new RegExp(`${valued} needs a value`));
    });
  }
});

describe('positiveFlag', () => {
  it('reads a positive number, falls back when absent, and refuses anything else by name', () => {
    const given = new Map<string, string | true>([
      ['rounds', '20'],
      ['slice', '0.5'],
      ['zero', '0'],
      ['word', 'many'],
      ['switch', true],
    ]);
    assert.equal(positiveFlag(given, 'rounds', 5), 20);
    assert.equal(positiveFlag(given, 'slice', 100), 0.5);
    assert.equal(positiveFlag(given, 'absent', 7), 7);
    for (const name of ['zero', 'word', 'switch']) {
      assert.throws(() => positiveFlag(given, name, 1), new RegExp(`^Error: --${name}: expected a positive number`));
    }
  });

  it('dispatch-perf checks its command line before it starts perf', () => {
    const entry = 'bench/micro/dispatch-perf.ts';
    const help = run(entry, ['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: node --import tsx bench\/micro\/dispatch-perf\.ts/);
    assert.equal(run(entry, ['--slicez', '3']).status, 2);
    const zero = run(entry, ['--slices', '0']);
    assert.notEqual(zero.status, 0);
    assert.match(zero.stderr, /--slices: expected a positive number, got 0/);
  });
});
