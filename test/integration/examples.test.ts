// Every example runs as a user would run it, so none can rot.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runExample as run } from '../helpers/run-example.js';

describe('examples', () => {
  it('demo sends every request through the balancer and prints a per-endpoint summary', async () => {
    const out = await run('demo.ts', ['--requests', '90', '--concurrency', '3']);
    assert.match(out, /90 requests/);
    // The requests column is the cell right after the endpoint's: a latency such as '30.12' must not count.
    for (const id of ['backend-1', 'backend-2', 'backend-3']) {
      assert.match(out, new RegExp(`${id} \\(127\\.0\\.0\\.1:\\d+\\)'?\\s*│\\s*30\\s*│`));
    }
    assert.match(out, /errors: 0/);
  });
  it('static-list balances through fetch and undici.request', async () => {
    const out = await run('static-list.ts');
    assert.match(out, /backend 1 saw Host: catalog/);
    assert.match(out, /backend 2/);
    assert.match(out, /via undici.request: backend \d saw Host: catalog/);
  });
  it('custom-resolver reads endpoints from its own scheme', async () => {
    const out = await run('custom-resolver.ts');
    assert.match(out, /answers: (a b a b|b a b a)/);
  });
});
