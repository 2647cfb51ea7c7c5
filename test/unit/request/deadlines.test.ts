import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadlineList, type Deadlined } from '../../../src/request/deadlines.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function entry(startedAt: number, expired: string[], name: string, onExpire?: () => void): Deadlined {
  return {
    startedAt,
    deadlinePrev: undefined,
    deadlineNext: undefined,
    deadlinePassed() {
      expired.push(name);
      onExpire?.();
    },
  };
}

describe('DeadlineList (one timer per cluster for the requests deadlines)', () => {
  it('expires each request at its own deadline, on one timer', () => {
    const clock = new FakeClock();
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    list.add(entry(clock.now(), expired, 'a'));
    clock.advance(30);
    list.add(entry(clock.now(), expired, 'b'));
    clock.advance(30);
    list.add(entry(clock.now(), expired, 'c'));
    assert.equal(clock.pending, 1);
    clock.advance(39);
    assert.deepEqual(expired, []);
    clock.advance(1);
    assert.deepEqual(expired, ['a']);
    clock.advance(29);
    assert.deepEqual(expired, ['a']);
    clock.advance(1);
    assert.deepEqual(expired, ['a', 'b']);
    clock.advance(30);
    assert.deepEqual(expired, ['a', 'b', 'c']);
    assert.equal(list.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('a request that leaves the list never expires; the timer re-arms for the next and is cleared when none is left', () => {
    const clock = new FakeClock();
    const list = new DeadlineList(clock, 100);
    const expired: string[] = [];
    const a = entry(clock.now(), expired, 'a');
    list.add(a);
    clock.advance(50);
    const b = entry(clock.now(), expired, 'b');
    list.add(b);
    list.remove(a);
    list.remove(a); // twice: a no-op
    clock.advance(50); // a's deadline: the timer fires early for b and waits again
    assert.deepEqual(expired, []);
    assert.equal(clock.pending, 1);
    clock.advance(50);
    assert.deepEqual(expired, ['b']);
    const c = entry(clock.now(), expired, 'c');
    list.add(c);
    assert.equal(clock.pending, 1);
    list.remove(c);
    assert.equal(clock.pending, 0, 'an empty list holds no timer');
    assert.equal(list.size, 0);
  });

  it('requests that started at the same time expire together; one added or removed while expiring is handled', () => {
    const clock = new FakeClock();
    const list = new DeadlineList(clock, 10);
    const expired: string[] = [];
    const late = entry(5, expired, 'late');
    list.add(entry(0, expired, 'x', () => list.remove(late)));
    list.add(entry(0, expired, 'y', () => list.add(entry(clock.now(), expired, 'z'))));
    list.add(late);
    clock.advance(10);
    assert.deepEqual(expired, ['x', 'y']);
    clock.advance(10);
    assert.deepEqual(expired, ['x', 'y', 'z']);
    assert.equal(clock.pending, 0);
  });

  it('keeps deadline order when a request started before the last one joined', () => {
    const clock = new FakeClock();
    clock.advance(100);
    const list = new DeadlineList(clock, 10);
    const expired: string[] = [];
    list.add(entry(100, expired, 'b'));
    list.add(entry(95, expired, 'a'));
    clock.advance(5);
    assert.deepEqual(expired, ['a']);
    clock.advance(5);
    assert.deepEqual(expired, ['a', 'b']);
  });
});
