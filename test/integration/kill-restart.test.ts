// One of N backends killed and restarted under steady load: idempotent requests never fail (PUTs with a body
// included: fetch streams every body, and retry.bufferBody records it for the retry), POSTs fail only when they may
// have been sent, and no POST is ever processed twice.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createClient, seededRandom } from '../../src/index.js';
import { type Backend, type Handler, startBackend, stopAll } from '../helpers/backends.js';

const processed = new Map<string, number>();
const VICTIM = 'k1';
/** PUTs the victim has read in full and not answered yet: cut off by the kill, they must be replayed. */
let victimPutsInService = 0;
/**
 * Once armed, the victim holds the next PUT it reads (never answers it) and calls `onHeld`: the kill then comes
 * with a PUT in service for sure, however the load is scheduled (issue 15.17: this no longer depends on timing).
 */
let holdNextPut: { onHeld: () => void } | undefined;
const handler: Handler = (req, res, b) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    if (req.method === 'POST') processed.set(body, (processed.get(body) ?? 0) + 1);
    // A replayed PUT must arrive whole, or it would be a silent corruption.
    if (req.method === 'PUT' && body !== `put-${req.url?.slice(1)}`) {
      res.writeHead(400);
      res.end('truncated body');
      return;
    }
    if (b.id === VICTIM && req.method === 'PUT') {
      victimPutsInService++;
      res.on('close', () => victimPutsInService--);
      if (holdNextPut !== undefined) {
        const { onHeld } = holdNextPut;
        holdNextPut = undefined;
        onHeld();
        return; // held: the kill cuts it off
      }
    }
    // A little service time so requests are in flight when the backend dies; longer on the victim, so that the kill
    // cuts off requests it has read but not answered.
    setTimeout(
      () => {
        res.setHeader('x-backend', b.id);
        res.end('ok');
      },
      b.id === VICTIM ? 20 : 2,
    );
  });
};

describe('backend killed and restarted under load', () => {
  const backends: Backend[] = [];
  after(async () => {
    await stopAll(backends);
  });

  it('loses no idempotent request (PUTs with bodies included) and never replays a POST', async () => {
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
    const pickKind = seededRandom(3);
    let getFailures = 0;
    let putFailures = 0;
    const postFailures: string[] = [];
    let sent = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        // Drawn at random: a fixed pattern (i % 3) lines up with round robin and keeps PUTs off the victim.
        const kind = Math.floor(pickKind() * 3);
        const isPost = kind === 0;
        const isPut = kind === 1;
        const init: RequestInit = isPost
          ? { method: 'POST', body: `id-${i}` }
          : isPut
            ? { method: 'PUT', body: `put-${i}` }
            : {};
        try {
          const res = await client.fetch(`http://svc/${i}`, init);
          await res.arrayBuffer();
          assert.equal(res.status, 200);
          sent++;
        } catch (err) {
          if (isPost) postFailures.push(String((err as { cause?: { code?: string } }).cause?.code));
          else if (isPut) putFailures++;
          else getFailures++;
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // Kill the victim a third of the way in, with a PUT in service there; restart it on the same port a little later.
    // Every wait is bounded in count and time, never in speed.
    const waitFor = async (predicate: () => boolean) => {
      for (let i = 0; i < 20_000 && !predicate(); i++) await new Promise((r) => setTimeout(r, 1));
    };
    await waitFor(() => next >= TOTAL / 3);
    let held = false;
    holdNextPut = { onHeld: () => (held = true) };
    await waitFor(() => held || next >= TOTAL);
    const putsCutOff = victimPutsInService;
    await victim.stop();
    await waitFor(() => next >= Math.min(TOTAL, TOTAL / 3 + 150));
    await victim.restart();
    await load;
    const stats = client.stats().clusters[0];
    await client.close();

    // The kill was felt: attempts were refused or reset and retried elsewhere, and the victim came back.
    assert.ok((stats?.requests.extraAttempts ?? 0) > 0, 'some attempts were retried');
    assert.ok(victim.hits > 0);
    assert.ok(putsCutOff > 0, 'the kill cut off PUTs the victim had read');
    assert.equal(getFailures, 0, 'no GET failed');
    assert.equal(putFailures, 0, 'no PUT failed');
    for (const code of postFailures) {
      assert.notEqual(code, 'ECONNREFUSED', 'a POST refused at connect is retried, never failed');
    }
    const replayed = [...processed.values()].filter((n) => n > 1).length;
    assert.equal(replayed, 0, 'no POST processed twice');
    assert.equal(sent + getFailures + putFailures + postFailures.length, TOTAL, 'every request accounted for');
  });
});
