/**
 * The deadline list keeps its timer over an empty list when the clock's handle can be unref'd (a Node timer), and
 * refs it again for the next request, instead of clearing it and making a new one (issue 14).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Clock } from '../../../src/common/runtime.js';
import { DeadlineList, type Deadlined } from '../../../src/request/deadlines.js';

/** A manual clock whose timer handles have `ref()`/`unref()`, like Node's; records what the list does with them. */
class RefableClock implements Clock {
  time = 0;
  made = 0;
  cleared = 0;
  timers: { fn: () => void; at: number; refed: boolean; ref(): void; unref(): void; done: boolean }[] = [];
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.made++;
    const t = {
      fn,
      at: this.time + ms,
      refed: true,
      done: false,
      ref() {
        t.refed = true;
      },
      unref() {
        t.refed = false;
      },
    };
    this.timers.push(t);
    return t;
  }
  clearTimeout(handle: unknown): void {
    this.cleared++;
    (handle as { done: boolean }).done = true;
  }
  advance(ms: number): void {
    this.time += ms;
    for (const t of this.timers) {
      if (!t.done && t.at <= this.time) {
        t.done = true;
        t.fn();
      }
    }
  }
  get live(): number {
    return this.timers.filter((t) => !t.done).length;
  }
}

function entry(startedAt: number, expired: string[], name: string): Deadlined {
  return {
    startedAt,
    deadlinePrev: undefined,
    deadlineNext: undefined,
    deadlinePassed() {
      expired.push(name);
    },
  };
}

describe("DeadlineList with a timer that can be unref'd", () => {
  it("keeps the timer unref'd over an empty list and refs it for the next request: one timer for both", () => {
    const clock = new RefableClock();
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    const a = entry(clock.now(), expired, 'a');
    list.add(a);
    assert.equal(clock.made, 1);
    list.remove(a);
    assert.equal(clock.cleared, 0, 'not cleared');
    assert.equal(clock.timers[0]?.refed, false, "unref'd: it does not hold the process over an empty list");
    clock.advance(10);
    list.add(entry(clock.now(), expired, 'b'));
    assert.equal(clock.made, 1, 'no new timer');
    assert.equal(clock.timers[0]?.refed, true, "ref'd again: a request waits for its deadline");
    // Fires at a's deadline (early for b), then re-arms for b's.
    clock.advance(90);
    assert.deepEqual(expired, []);
    assert.equal(clock.made, 2);
    clock.advance(10);
    assert.deepEqual(expired, ['b']);
    assert.equal(list.size, 0);
  });

  it('the kept timer firing over an empty list arms nothing', () => {
    const clock = new RefableClock();
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    const a = entry(clock.now(), expired, 'a');
    list.add(a);
    list.remove(a);
    clock.advance(100);
    assert.equal(clock.live, 0);
    assert.equal(clock.made, 1);
    // The next request arms a new timer for its own deadline.
    list.add(entry(clock.now(), expired, 'c'));
    assert.equal(clock.made, 2);
    clock.advance(100);
    assert.deepEqual(expired, ['c']);
  });

  it("a request whose deadline is before the kept timer's (a clock that went back) gets a timer of its own", () => {
    const clock = new RefableClock();
    clock.time = 50;
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    const a = entry(clock.now(), expired, 'a');
    list.add(a);
    list.remove(a);
    clock.time = 0;
    list.add(entry(clock.now(), expired, 'early'));
    assert.equal(clock.cleared, 1);
    assert.equal(clock.made, 2);
    clock.advance(100);
    assert.deepEqual(expired, ['early']);
  });

  it("close() clears the kept timer of an empty list: a closed cluster leaves no timer, not even an unref'd one", () => {
    const clock = new RefableClock();
    const list = new DeadlineList(clock, 3_600_000);
    const a = entry(clock.now(), [], 'a');
    list.add(a);
    list.remove(a);
    assert.equal(clock.live, 1, "kept, unref'd");
    list.close();
    assert.equal(clock.live, 0);
    list.close();
    assert.equal(clock.cleared, 1, 'idempotent');
  });

  it('after close(), requests still on the list keep their deadlines; the timer goes when the last one leaves', () => {
    const clock = new RefableClock();
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    const a = entry(clock.now(), expired, 'a');
    const b = entry(clock.now(), expired, 'b');
    list.add(a);
    list.add(b);
    list.close();
    assert.equal(clock.live, 1, 'still armed for the requests running');
    list.remove(a);
    clock.advance(100);
    assert.deepEqual(expired, ['b'], "b's deadline passed as it would have");
    assert.equal(clock.live, 0, 'nothing kept over the emptied list');
    const c = entry(clock.now(), expired, 'c');
    list.add(c);
    list.remove(c);
    assert.equal(clock.live, 0, 'a request added and removed after close() leaves nothing either');
  });
});
