import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { closedLoop, type OnResult, openLoop, PhaseTimeoutError, type Send } from '../../../bench/e2e/load.js';

/**
 * A loopback server whose answers the test controls: `decide` says per request whether to answer now, after a
 * delay, or hold it until `release()`. It counts what arrives and how many requests are open at once.
 */
class TestServer {
  readonly server: Server;
  received = 0;
  open = 0;
  maxOpen = 0;
  decide: (req: IncomingMessage) => 'now' | 'hold' | number = () => 'now';
  readonly #held: ServerResponse[] = [];

  constructor() {
    this.server = createServer((req, res) => {
      this.received++;
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      res.once('close', () => this.open--);
      req.resume();
      const d = this.decide(req);
      if (d === 'hold') this.#held.push(res);
      else if (d === 'now') res.end('ok');
      else setTimeout(() => res.end('ok'), d);
    });
  }

  get held(): number {
    return this.#held.length;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Answers every held request and stops holding. */
  release(): void {
    this.decide = () => 'now';
    for (const res of this.#held.splice(0)) res.end('ok');
  }

  reset(): void {
    this.release();
    this.received = 0;
    this.open = 0;
    this.maxOpen = 0;
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const srv = new TestServer();
let pool: Pool;

/** A request to the test server; the result's `backend` carries the sequence number, so results can be matched. */
const send: Send = async (seq) => {
  const { statusCode, body } = await pool.request({ path: `/?seq=${seq}`, method: 'GET' });
  await body.dump();
  return { status: statusCode, backend: String(seq) };
};

interface Seen {
  readonly seq: number;
  readonly t: number;
  readonly latencyMs: number;
}

function collector(): { seen: Seen[]; onResult: OnResult } {
  const seen: Seen[] = [];
  return {
    seen,
    onResult: (r, err, t, latencyMs) => {
      assert.equal(err, undefined, `request failed: ${String(err)}`);
      seen.push({ seq: Number(r?.backend), t, latencyMs });
    },
  };
}

const seqOf = (req: IncomingMessage) => Number(new URL(req.url ?? '/', 'http://x').searchParams.get('seq'));

describe('bench load generator (open and closed loop against a loopback server)', () => {
  before(async () => {
    pool = new Pool(await srv.listen());
  });
  afterEach(() => srv.reset());
  after(async () => {
    await pool.destroy();
    await srv.close();
  });

  it('open loop: keeps sending through a stalled server and charges each request from its intended send time', async () => {
    const stallMs = 300;
    const interval = 20;
    const tCall = performance.now();
    let releasedAt = 0;
    let heldAtRelease = 0;
    const heldSeqs = new Set<number>();
    // The stall ends once 15 requests are held (or after 10 s): driven by arrivals, not by a timer that a loaded
    // machine can outrun (issue 15.17). The 15th is due 280 ms into the phase, so seqs 0-9 wait 100 ms or more.
    let released = false;
    const doRelease = () => {
      if (released) return;
      released = true;
      heldAtRelease = srv.held;
      releasedAt = performance.now();
      srv.release();
    };
    srv.decide = (req) => {
      heldSeqs.add(seqOf(req));
      if (heldSeqs.size === 15) setImmediate(doRelease);
      return 'hold';
    };
    const release = setTimeout(doRelease, 10_000);
    const { seen, onResult } = collector();
    const res = await openLoop({ name: 'stall', send, rate: 1000 / interval, count: 30, durationMs: 60_000, onResult });
    clearTimeout(release);
    assert.equal(res.sent, 30);
    assert.equal(res.failed, 0);
    // The schedule did not wait for the stalled answers: most requests due during the stall had reached the server.
    assert.ok(heldAtRelease >= 10, `only ${heldAtRelease} requests reached the stalled server`);
    for (const x of seen) {
      // t - latency is the intended send time since the phase start: seq × interval, whatever the actual send time.
      assert.ok(
        Math.abs(x.t - x.latencyMs - x.seq * interval) < 0.01,
        `seq ${x.seq}: intended at ${x.t - x.latencyMs}`,
      );
    }
    const held = seen.filter((x) => heldSeqs.has(x.seq));
    assert.equal(held.length, heldAtRelease);
    for (const x of held) {
      // The phase started within a few ms of tCall; a held answer cannot end before the release.
      const floor = releasedAt - tCall - x.seq * interval - 5;
      assert.ok(x.latencyMs >= floor, `seq ${x.seq}: ${x.latencyMs} ms, expected at least ${floor}`);
    }
    const slow = seen.filter((x) => x.latencyMs >= 100).length;
    assert.ok(slow >= 8, `${slow} requests charged at least 100 ms`);

    // The same stall under a closed loop of one: the stalled worker sends nothing, so one slow sample is all it
    // records (coordinated omission), which is why the latency figures come from the open loop.
    srv.reset();
    srv.decide = () => 'hold';
    const release2 = setTimeout(() => srv.release(), stallMs);
    const closed = collector();
    await closedLoop({ name: 'stall closed', send, concurrency: 1, count: 30, durationMs: 60_000, ...closed });
    clearTimeout(release2);
    // The held request waits the whole 300 ms stall; 250 ms is far above what an answered-at-once request takes even
    // on a loaded machine.
    const closedSlow = closed.seen.filter((x) => x.latencyMs >= 250).length;
    assert.equal(closedSlow, 1, 'a closed loop of one records the stall once');
    assert.ok(slow > 4 * closedSlow);
  });

  it('open loop: a stalled client (blocked event loop) is charged from the intended send time too', async () => {
    const blockMs = 150;
    const interval = 20;
    const blocking: Send = (seq) => {
      if (seq === 0) {
        const until = performance.now() + blockMs;
        while (performance.now() < until) {
          // Busy wait: the timers of the requests due meanwhile cannot fire.
        }
      }
      return send(seq);
    };
    const { seen, onResult } = collector();
    const res = await openLoop({
      name: 'block',
      send: blocking,
      rate: 1000 / interval,
      count: 10,
      durationMs: 60_000,
      onResult,
    });
    assert.equal(res.completed, 10);
    for (const x of seen.filter((y) => y.seq >= 1 && y.seq * interval < blockMs)) {
      // Sent after the block ended, at start + blockMs or later: measured from the actual send it would be ~1 ms.
      assert.ok(x.latencyMs > blockMs - x.seq * interval, `seq ${x.seq}: ${x.latencyMs} ms`);
    }
  });

  it('closed loop: never has more than `concurrency` requests in flight', async () => {
    srv.decide = (req) => seqOf(req) % 3;
    let open = 0;
    let maxOpen = 0;
    const counting: Send = async (seq) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      try {
        return await send(seq);
      } finally {
        open--;
      }
    };
    const res = await closedLoop({ name: 'conc', send: counting, concurrency: 4, count: 120, durationMs: 60_000 });
    assert.equal(res.sent, 120);
    assert.equal(res.completed, 120);
    assert.equal(maxOpen, 4, 'the four workers were all busy at some point, never more');
    assert.ok(srv.maxOpen <= 4, `server saw ${srv.maxOpen} open at once`);
  });

  it('closed and open loop: stop at `count`', async () => {
    const closed = await closedLoop({ name: 'count', send, concurrency: 5, count: 37, durationMs: 60_000 });
    assert.equal(closed.sent, 37);
    assert.equal(closed.completed, 37);
    assert.equal(srv.received, 37);
    srv.reset();
    const open = await openLoop({ name: 'count', send, rate: 500, count: 25, durationMs: 60_000 });
    assert.equal(open.sent, 25);
    assert.equal(open.completed, 25);
    assert.equal(srv.received, 25);
  });

  it('closed and open loop: stop at `durationMs`', async () => {
    srv.decide = () => 2;
    const sentAt: number[] = [];
    const tCall = performance.now();
    const timed: Send = (seq) => {
      sentAt.push(performance.now() - tCall);
      return send(seq);
    };
    const closed = await closedLoop({ name: 'time', send: timed, concurrency: 2, count: 1e9, durationMs: 250 });
    assert.ok(closed.sent > 0 && closed.sent < 1e9);
    assert.equal(closed.completed, closed.sent);
    assert.ok(closed.elapsedMs >= 250, 'the workers send until the end of the phase');
    assert.ok(Math.max(...sentAt) < 255, `a request was sent ${Math.max(...sentAt)} ms after the start`);
    // Open loop: the schedule holds rate × duration requests (here 30), however large the count.
    const open = await openLoop({ name: 'time', send, rate: 100, count: 1e6, durationMs: 300 });
    assert.equal(open.sent, 30);
    assert.equal(open.completed, 30);
  });

  it('a phase whose requests never end fails with PhaseTimeoutError', { timeout: 10_000 }, async () => {
    srv.decide = () => 'hold';
    await assert.rejects(
      closedLoop({ name: 'wedged closed', send, concurrency: 2, count: 10, durationMs: 100, graceMs: 150 }),
      (err: unknown) =>
        err instanceof PhaseTimeoutError && /"wedged closed" still had 2 request\(s\) in flight/.test(err.message),
    );
    await assert.rejects(
      openLoop({ name: 'wedged open', send, rate: 100, count: 5, durationMs: 100, graceMs: 150 }),
      (err: unknown) =>
        err instanceof PhaseTimeoutError && /"wedged open" still had 5 request\(s\) in flight/.test(err.message),
    );
  });

  it('rejects phases without a positive, finite bound', async () => {
    await assert.rejects(closedLoop({ name: 'x', send, concurrency: 1, count: 0, durationMs: 100 }), RangeError);
    await assert.rejects(openLoop({ name: 'x', send, rate: 10, count: 5, durationMs: Infinity }), RangeError);
    await assert.rejects(openLoop({ name: 'x', send, rate: 0, count: 5, durationMs: 100 }), RangeError);
    assert.equal(srv.received, 0);
  });
});
