// The README's quick start runs, and is the same code as examples/quick-start.ts.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { runExample } from '../helpers/run-example.js';

const root = new URL('../../', import.meta.url);

describe('quick start', () => {
  it('examples/quick-start.ts balances four requests across its two instances, with Host: users', async () => {
    const out = await runExample('quick-start.ts');
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 4, out);
    const seen = lines.map((line) => {
      const match = /^200 \{ instance: '(users-[ab])', host: 'users', path: '\/profile\/42' \}$/.exec(line);
      assert.ok(match, line);
      return match[1];
    });
    assert.deepEqual(
      seen.sort(),
      ['users-a', 'users-a', 'users-b', 'users-b'],
      'round robin alternates between the two instances',
    );
  });

  it('the README "Quick start" code block is examples/quick-start.ts without its header comment', async () => {
    const example = await readFile(new URL('examples/quick-start.ts', root), 'utf8');
    const readme = await readFile(new URL('README.md', root), 'utf8');
    // The one allowed difference: the example imports the source, the README the published package.
    const importLine = "import { createClient } from '../src/index.js';\n";
    assert.ok(example.includes(importLine), 'the example imports createClient from ../src/index.js');
    const expected = example
      .replace(/^\/\*\*[\s\S]*?\*\/\n/, '')
      .replace(importLine, "import { createClient } from 'sidecarless';\n");
    const section = readme.slice(readme.indexOf('\n## Quick start\n'));
    const block = /```ts\n([\s\S]*?)```\n/.exec(section)?.[1];
    assert.ok(block !== undefined, 'README has a ts code block under "## Quick start"');
    assert.equal(block, expected);
  });
});
