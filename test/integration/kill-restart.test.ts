// One of N backends killed and restarted under steady load: idempotent requests never fail, POSTs fail only when
// they may have been sent, and no POST is ever processed twice.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createClient } from '../../src/index.js';
import { type Backend, type Handler, startBackend, stopAll } from '../helpers/backends.js';

const processed = new Map<string, number>();
const handler: Handler = (req, res, b) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'POST') {
      const id = Buffer.concat(chunks).toString();
      processed.set(id, (processed.get(id) ?? 0) + 1);
    }
    // A little service time so requests are in flight when the backend dies.
    setTimeout(() => {
      res.setHeader('x-backend', b.id);
      res.end('ok');
    }, 2);
  });
};

describe('backend killed and restarted under load', () => {
  const backends: Backend[] = [];
  after(async () => {
    await stopAll(backends);
  });

  it('loses no idempotent request and never replays a POST', async () => {
    for (let i = 0; i < 3; i++) backends.push(await startBackend(`k${i}`, handler));
    const victim = backends[1] as Backend;
    const client = createClient({
      target: backends.map((b) => b.address),
      connectBackoff: { initialMs: 50, maxMs: 200 },
      // Under the kill, most of a short window's traffic can need a retry; keep the budget out of this test.
      retryBudget: false,
    });
    const TOTAL = 900;
    let next = 0;
    let getFailures = 0;
    const postFailures: string[] = [];
    let sent = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const isPost = i % 3 === 0;
        try {
          const res = await client.fetch('http://svc/', isPost ? { method: 'POST', body: `id-${i}` } : {});
          await res.arrayBuffer();
          assert.equal(res.status, 200);
          sent++;
        } catch (err) {
          if (isPost) postFailures.push(String((err as { cause?: { code?: string } }).cause?.code));
          else getFailures++;
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // Kill the victim a third of the way in, restart it on the same port a little later.
    while (next < TOTAL / 3) await new Promise((r) => setTimeout(r, 2));
    await victim.stop();
    while (next < TOTAL / 2) await new Promise((r) => setTimeout(r, 2));
    await victim.restart();
    await load;
    const stats = client.stats().clusters[0];
    await client.close();

    // The kill was felt: attempts were refused or reset and retried elsewhere, and the victim came back.
    assert.ok((stats?.requests.extraAttempts ?? 0) > 0, 'some attempts were retried');
    assert.ok(victim.hits > 0);
    assert.equal(getFailures, 0, 'no idempotent request failed');
    for (const code of postFailures) {
      assert.notEqual(code, 'ECONNREFUSED', 'a POST refused at connect is retried, never failed');
    }
    const replayed = [...processed.values()].filter((n) => n > 1).length;
    assert.equal(replayed, 0, 'no POST processed twice');
    assert.equal(sent + getFailures + postFailures.length, TOTAL, 'every request accounted for');
  });
});
