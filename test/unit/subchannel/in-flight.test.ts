/**
 * A subchannel keeps its in-flight count in its pool's table (`InFlightCounts`; issue 14: the load-aware pickers read
 * the counts from one dense array instead of a scattered object a candidate). The count a subchannel shows, the one
 * in the table, and the one the pickers compare are the same, through dispatch, completion and the table's growth;
 * a closed subchannel gives its record back, and a late attempt on it touches no other subchannel's count.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { describe, it } from 'node:test';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { systemClock } from '../../../src/common/runtime.js';
import { inFlightRecordsOf, inFlightSlot, inFlightTable } from '../../../src/pickers/load.js';
import { leastRequestPolicy } from '../../../src/pickers/least-request.js';
import { peakEwmaPolicy } from '../../../src/pickers/peak-ewma.js';
import type { Picker } from '../../../src/pickers/picker.js';
import type { Subchannel } from '../../../src/subchannel/subchannel.js';
import { backendsForFile } from '../../helpers/backends.js';
import { seededRandom } from '../../helpers/fake-clock.js';
import { dispatchGet, testSubchannelPool } from '../../helpers/subchannel-pool.js';

const startBackend = backendsForFile();

const ctx = { method: 'GET', path: '/', authority: 'svc', headers: null };

function keysPicked(picker: Picker<Subchannel>, picks: number): Set<string> {
  const seen = new Set<string>();
  for (let i = 0; i < picks; i++) {
    const r = picker.pick(ctx);
    assert.equal(r.type, 'complete');
    if (r.type === 'complete') seen.add(r.target.key);
  }
  return seen;
}

describe('in-flight counts of subchannels', () => {
  it('live in the shared array: the pickers see a busy subchannel as busy, through the array growing, until it is idle', async () => {
    const held: http.ServerResponse[] = [];
    const backend = await startBackend('held', (req, res) => {
      req.resume();
      held.push(res);
    });
    const pool = testSubchannelPool();
    const busyEndpoint = createEndpoint({ host: '127.0.0.1', port: backend.port });
    const idleEndpoint = createEndpoint({ host: '127.0.0.2', port: 9 }); // never dispatched to
    pool.update([busyEndpoint, idleEndpoint]);
    const [busy, idle] = pool.subchannels as [Subchannel, Subchannel];
    const { table, slots } = inFlightRecordsOf([busy, idle]);
    assert.ok(slots !== undefined, 'every subchannel has a record, in one table');
    assert.equal(table, busy[inFlightTable]);
    assert.notEqual(slots[0], slots[1]);
    assert.equal(busy[inFlightSlot], slots[0]);

    const env = { random: seededRandom(3), clock: systemClock };
    const leastRequest = leastRequestPolicy.build([busy, idle], leastRequestPolicy.parseConfig({}), env);
    const peakEwma = peakEwmaPolicy.build([busy, idle], peakEwmaPolicy.parseConfig({}), env);
    assert.deepEqual(keysPicked(leastRequest, 200), new Set([busy.key, idle.key]), 'both idle: both picked');

    const done = [dispatchGet(busy), dispatchGet(busy), dispatchGet(busy)];
    assert.equal(busy.inFlight, 3);
    assert.equal(table.array[busy[inFlightSlot]], 3);
    assert.equal(idle.inFlight, 0);
    assert.deepEqual(keysPicked(leastRequest, 200), new Set([idle.key]), 'least-request avoids the busy one');
    assert.deepEqual(keysPicked(peakEwma, 200), new Set([idle.key]), 'peak-ewma too (same default RTT, 4x the load)');

    // 3000 more subchannels: the shared array is replaced by larger copies; the counts move with it and the pickers
    // built before read the new one.
    const before = table.array;
    pool.update([
      busyEndpoint,
      idleEndpoint,
      ...Array.from({ length: 3000 }, (_, i) => createEndpoint({ host: `127.1.${i >> 8}.${i & 255}`, port: 9 })),
    ]);
    assert.notEqual(table.array, before, 'the array grew');
    assert.equal(busy.inFlight, 3);
    assert.deepEqual(keysPicked(leastRequest, 200), new Set([idle.key]));

    await waitFor(() => held.length === 3);
    for (const res of held) res.end('ok');
    await Promise.all(done);
    assert.equal(busy.inFlight, 0);
    assert.equal(table.array[busy[inFlightSlot]], 0);
    assert.deepEqual(keysPicked(leastRequest, 200), new Set([busy.key, idle.key]), 'idle again: both picked');
    await pool.close();
  });

  it('a closed subchannel gives its record back; the next owner starts at 0, and a late attempt on the closed one leaves it alone', () => {
    const pool = testSubchannelPool();
    const at = (i: number) => createEndpoint({ host: `127.2.${i >> 8}.${i & 255}`, port: 9 });
    pool.update(Array.from({ length: 100 }, (_, i) => at(i)));
    const first = pool.subchannels;
    const table = first[0]![inFlightTable];
    assert.equal(new Set(first.map((s) => s[inFlightSlot])).size, 100, 'one record each');
    assert.ok(
      first.every((s) => s.inFlight === 0 && s[inFlightTable] === table),
      'at 0, in one table',
    );

    // The first 50 leave (never dispatched to: closed at once, after the update has made the subchannels of those
    // that came); the next 50 to come take the records they gave back.
    const gone = first.slice(0, 50);
    const given = new Set(gone.map((s) => s[inFlightSlot]));
    pool.update(Array.from({ length: 100 }, (_, i) => at(i + 50)));
    assert.ok(
      gone.every((s) => s.state === 'closed' && s[inFlightSlot] === 0),
      'closed, counting at the sink',
    );
    pool.update(Array.from({ length: 150 }, (_, i) => at(i + 50)));
    const newcomers = pool.subchannels.slice(100);
    assert.deepEqual(new Set(newcomers.map((s) => s[inFlightSlot])), given, 'the records given back, reused');
    assert.ok(newcomers.every((s) => s.inFlight === 0));

    // A late dispatch on a closed one fails at once (as undici's closed pool does) and touches no one's count.
    table.array[newcomers[0]![inFlightSlot]] = 7; // as if 7 were in flight on its new owner
    const errors: Error[] = [];
    assert.equal(
      gone[0]!.dispatch({ origin: gone[0]!.origin, path: '/', method: 'GET' }, { onError: (e) => errors.push(e) }),
      false,
    );
    assert.equal(errors.length, 1);
    assert.equal(newcomers[0]!.inFlight, 7);
    assert.equal(gone[0]!.inFlight, 0);
    table.array[newcomers[0]![inFlightSlot]] = 0;
    return pool.close();
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(condition(), 'condition met within 20 s');
}
