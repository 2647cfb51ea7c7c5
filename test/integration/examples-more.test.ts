// The scenario examples (affinity, canary, services) run as a user would run them, and their printed results are
// checked for what each one claims to show.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runExample } from '../helpers/run-example.js';

/** The lines of `out` that match `re`, as match arrays. */
function lines(out: string, re: RegExp): RegExpMatchArray[] {
  return out.split('\n').flatMap((line) => {
    const m = line.match(re);
    return m === null ? [] : [m];
  });
}

/** The number in `label ... N %` on the line that starts with `prefix`. */
function share(out: string, prefix: string, label: string): number {
  const line = out.split('\n').find((l) => l.startsWith(prefix));
  assert.ok(line !== undefined, `no line starting with ${prefix}: ${out}`);
  const m = line.match(new RegExp(`${label} (\\d+(?:\\.\\d+)?) %`));
  assert.ok(m !== null, `no "${label} N %" in: ${line}`);
  return Number(m[1]);
}

describe('examples: session affinity, canary, services', () => {
  it('session-affinity keeps each session on one backend and moves only the removed backend’s sessions', async () => {
    const out = await runExample('session-affinity.ts');
    const [beforePart, rest] = out.split(/^removed /m) as [string, string | undefined];
    assert.ok(rest !== undefined, `no removal in: ${out}`);
    const removed = rest.match(/^([A-D]);/)?.[1];
    assert.ok(removed !== undefined, out);

    // Every request of a session went to exactly one backend (a single letter, marked sticky).
    const before = new Map(lines(beforePart, /^ {2}session=(\w+)\s+-> (\S+) \((.+)\)$/).map((m) => [m[1], m]));
    assert.equal(before.size, 8, out);
    for (const [session, m] of before) {
      assert.match(m[2] as string, /^[A-D]$/, `${session} was spread over ${m[2]}`);
      assert.equal(m[3], 'sticky');
    }
    assert.ok(
      [...before.values()].some((m) => m[2] === removed),
      'the removed backend held at least one session',
    );

    // After the removal: only the removed backend's sessions moved, none to the removed backend, still sticky.
    const after = lines(rest, /^ {2}session=(\w+)\s+-> (\S+) \((stayed|moved from ([A-D]))\)$/);
    assert.equal(after.length, 8, out);
    for (const m of after) {
      const [, session, backend, , from] = m;
      const was = before.get(session as string)?.[2];
      assert.match(backend as string, /^[A-D]$/, `${session} not sticky after the removal`);
      assert.notEqual(backend, removed, `${session} still sent to the removed backend`);
      if (was === removed) assert.equal(from, removed, `${session} was on ${removed} and should have moved`);
      else assert.equal(backend, was, `${session} moved from ${was} to ${backend} though ${was} stayed`);
    }
    const held = [...before.values()].filter((m) => m[2] === removed).length;
    assert.match(out, new RegExp(`moved ${held} of 8 sessions; ${held} of them were on ${removed}`));

    // Maglev on a header: sticky too.
    const maglev = lines(out, /^ {2}x-user-id=(\w+) -> (\S+) \((.+)\)$/);
    assert.equal(maglev.length, 6, out);
    for (const m of maglev) {
      assert.match(m[2] as string, /^[A-D]$/);
      assert.equal(m[3], 'sticky');
    }
  });

  it('canary-split observes the 90/10 and 50/50 shares, sticky users, and the forcing header', async () => {
    // Seeded, so the random splits are repeatable; the bounds still hold for any seed with high probability (1000
    // requests: one standard deviation of the share is about 1 point at 10 %, 1.6 points at 50 %).
    const out = await runExample('canary-split.ts', ['--seed', '7']);
    const canary90 = share(out, '90/10 split', 'canary');
    assert.ok(canary90 > 6 && canary90 < 14, `canary share ${canary90} % under a 90/10 split`);
    assert.ok(Math.abs(share(out, '90/10 split', 'stable') - 90) < 4, out);

    assert.match(out, /users who saw both sides: 0;/);
    // The sticky side is a hash of the user id, so the share over 200 users is fixed; it must be near 10 %.
    const stickyCanary = share(out, 'sticky on x-user-id', 'users on canary');
    assert.ok(stickyCanary > 5 && stickyCanary < 15, `sticky canary share ${stickyCanary} %`);

    assert.match(out, /x-canary: yes, 20 requests: canary 20\/20/);

    const canary50 = share(out, 'setRoutes() to 50/50', 'canary');
    assert.ok(Math.abs(canary50 - 50) < 6, `canary share ${canary50} % after setRoutes(50/50)`);
    const sticky50 = share(out, 'sticky users after the shift', 'canary');
    assert.ok(Math.abs(sticky50 - 50) < 10, `sticky canary share ${sticky50} % after the shift`);
    // Growing the canary keeps the users it already had.
    const kept = out.match(/canary users from before still on canary: (\d+)\/(\d+)/);
    assert.ok(kept !== null, out);
    assert.equal(kept[1], kept[2]);
    assert.ok(Number(kept[2]) > 0);
  });

  it('http-service answers with combined JSON from the inventory backends', async () => {
    const out = await runExample('http-service.ts');
    const answers = lines(out, /^GET \/basket\?skus=(\S+) -> (\d+) (\{.*\})$/);
    assert.equal(answers.length, 4, out);
    const used = new Set<string>();
    for (const [, skus, status, json] of answers) {
      assert.equal(status, '200');
      const body = JSON.parse(json as string) as {
        items: { sku: string; stock: number; available: boolean }[];
        servedBy: string[];
      };
      const asked = (skus as string).split(',');
      assert.deepEqual(
        body.items.map((i) => i.sku),
        asked,
      );
      assert.equal(body.servedBy.length, asked.length);
      for (const item of body.items) {
        assert.equal(typeof item.stock, 'number');
        assert.equal(item.available, item.stock > 0);
      }
      for (const b of body.servedBy) used.add(b);
    }
    // Apple's stock comes from the downstream table, whichever backend served it.
    assert.match(out, /"sku":"apple","stock":12,"available":true/);
    assert.deepEqual([...used].sort(), ['inventory-1', 'inventory-2', 'inventory-3']);
    assert.match(out, /inventory backends used: inventory-1, inventory-2, inventory-3/);
  });

  it('express-service balances through undici.request and fetch and maps sidecarless errors to statuses', async () => {
    const out = await runExample('express-service.ts');
    const stock = lines(out, /^GET \/stock\/(apple|plum|pear) -> 200 (\{.*\})$/).map(
      (m) => JSON.parse(m[2] as string) as { sku: string; stock: number; servedBy: string },
    );
    assert.equal(stock.length, 3, out);
    assert.deepEqual(
      stock.map((s) => [s.sku, s.stock]),
      [
        ['apple', 12],
        ['plum', 7],
        ['pear', 0],
      ],
    );
    // Round robin over three backends: three requests, three backends.
    assert.deepEqual(stock.map((s) => s.servedBy).sort(), ['inventory-1', 'inventory-2', 'inventory-3']);
    assert.match(out, /^GET \/stock\/kiwi -> 404 /m);
    assert.match(out, /^GET \/product\/apple -> 503 \{"error":"SIDECARLESS_NO_ENDPOINTS"\}$/m);
    const recovered = out.match(/^after a reviews instance appeared: GET \/product\/apple -> 200 (\{.*\})$/m);
    assert.ok(recovered !== null, out);
    assert.deepEqual(JSON.parse(recovered[1] as string), {
      sku: 'apple',
      stock: 12,
      reviews: [{ stars: 5, text: 'crisp' }],
    });
  });
});
