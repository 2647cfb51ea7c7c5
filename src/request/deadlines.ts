/**
 * The running requests of one cluster (from dispatch until they commit or end) and their deadlines (`timeoutMs`), on
 * one timer of the cluster's clock (issue 14). With `timeoutMs` 0 it is the list alone, with no timer: what
 * `close()` and `destroy()` go through.
 *
 * Every request of a cluster has the same `timeoutMs`, so deadlines fall in the order requests start: the requests
 * form a list in that order (linked through the requests themselves, so joining and leaving it allocates nothing),
 * and one timer is armed for the earliest. A request that ends leaves the list; the timer stays armed for whatever
 * it was armed for and, when it fires early (its request left), re-arms for the new earliest deadline. The timer
 * holds the process open (a ref'd timer, like the per-request timer it replaces) only while a request is waiting
 * for its deadline: when the list empties it is cleared or, when the clock's handle can be unref'd (a Node timer:
 * `unref()` and `ref()`), kept unref'd and ref'd again by the next request, so that a cluster whose requests
 * come and go one at a time does not make a new timer for each (issue 14: about 30 bytes a request).
 *
 * When the timer fires, the request it was armed for expires, as its own timer would have, and with it every
 * request whose deadline is not later than that one's or has passed by the clock.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../common/runtime.js';

/** A request on a deadline list: its start time (the list's clock), its links, and what to do when it expires. */
export interface Deadlined {
  /** When the request started (the list's clock, ms); its deadline is this plus the list's `timeoutMs`. */
  readonly startedAt: number;
  /** The list's links; `undefined` when not on a list (or at its end). */
  deadlinePrev: Deadlined | undefined;
  /** See `deadlinePrev`. */
  deadlineNext: Deadlined | undefined;
  /** The deadline passed (the request has left the list). */
  deadlinePassed(): void;
}

/** A timer handle that can stop and start holding the process open (Node's `Timeout`). */
interface Refable {
  ref(): unknown;
  unref(): unknown;
}

function isRefable(handle: TimerHandle): handle is Refable {
  return (
    typeof handle === 'object' &&
    handle !== null &&
    typeof (handle as Refable).ref === 'function' &&
    typeof (handle as Refable).unref === 'function'
  );
}

export class DeadlineList {
  readonly timeoutMs: number;
  readonly #clock: Clock;
  #head: Deadlined | undefined;
  #tail: Deadlined | undefined;
  #size = 0;
  #timer: TimerHandle | undefined;
  /**
   * The deadline the timer was armed for: passed when the timer fires, even if the clock reads a hair earlier. A
   * number rather than the request, so a request that ended is not kept alive until then.
   */
  #armedAt = 0;
  #firing = false;
  /** The timer is kept, unref'd, over an empty list (see the module's notes). */
  #idle = false;
  /** The cluster is closing: no timer is kept over an empty list any more (see {@link DeadlineList.close}). */
  #closed = false;
  readonly #onTimer = (): void => this.#fire();

  constructor(clock: Clock, timeoutMs: number) {
    this.#clock = clock;
    this.timeoutMs = timeoutMs;
  }

  /** Requests on the list. */
  get size(): number {
    return this.#size;
  }

  /** Puts `entry` on the list (in deadline order: at the end, unless it started before the last). */
  add(entry: Deadlined): void {
    const tail = this.#tail;
    // The common case in a few lines, so that V8 inlines it into the dispatch path (and has budget left to inline the
    // rest of it, issue 14): after the last entry, whose deadline the timer is already armed for or before (a list
    // with entries has a timer, unless it has no deadlines or is firing).
    if (tail !== undefined && tail.startedAt <= entry.startedAt) {
      entry.deadlinePrev = tail;
      entry.deadlineNext = undefined;
      tail.deadlineNext = entry;
      this.#tail = entry;
      this.#size++;
      if (this.#timer === undefined && !this.#firing && this.timeoutMs > 0) this.#arm();
      return;
    }
    this.#insert(entry);
  }

  /** `add` into an empty list, or before the last entry (a clock that went back). */
  #insert(entry: Deadlined): void {
    let after = this.#tail;
    while (after !== undefined && after.startedAt > entry.startedAt) after = after.deadlinePrev;
    entry.deadlinePrev = after;
    if (after === undefined) {
      entry.deadlineNext = this.#head;
      this.#head = entry;
    } else {
      entry.deadlineNext = after.deadlineNext;
      after.deadlineNext = entry;
    }
    if (entry.deadlineNext === undefined) this.#tail = entry;
    else entry.deadlineNext.deadlinePrev = entry;
    this.#size++;
    if (this.#firing || this.timeoutMs <= 0) return;
    if (this.#timer === undefined) this.#arm();
    else if (this.#idle) {
      this.#idle = false;
      // The kept timer fires at or before this deadline (it was armed for an earlier request's): it re-arms then.
      if (this.#armedAt <= entry.startedAt + this.timeoutMs) (this.#timer as Refable).ref();
      else {
        this.#clock.clearTimeout(this.#timer);
        this.#arm();
      }
    } else if (this.#head === entry) {
      // Earlier than the deadline the timer waits for (a clock that went back): wait for this one instead.
      this.#clock.clearTimeout(this.#timer);
      this.#arm();
    }
  }

  /** Takes `entry` off the list; a no-op when it is not on it. */
  remove(entry: Deadlined): void {
    const prev = entry.deadlinePrev;
    const next = entry.deadlineNext;
    if (prev === undefined && this.#head !== entry) return;
    if (prev === undefined) this.#head = next;
    else prev.deadlineNext = next;
    if (next === undefined) this.#tail = prev;
    else next.deadlinePrev = prev;
    entry.deadlinePrev = undefined;
    entry.deadlineNext = undefined;
    this.#size--;
    if (this.#head === undefined) this.#emptied();
  }

  /**
   * The cluster is closing: its requests keep their deadlines until they end, but the timer is no longer kept over an
   * empty list for a next request: it goes when the list empties, or now if it is empty (a closed cluster leaves no
   * timer behind, not even an unref'd one waiting for up to `timeoutMs`). Idempotent.
   */
  close(): void {
    this.#closed = true;
    if (this.#head === undefined) this.#emptied();
  }

  /** The list emptied: the timer stops holding the process open (kept unref'd when it can be, see the module). */
  #emptied(): void {
    if (this.#timer === undefined) return;
    if (this.#closed) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#idle = false;
      return;
    }
    if (this.#idle) return;
    if (isRefable(this.#timer)) {
      this.#timer.unref();
      this.#idle = true;
    } else {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The entries now, in deadline order (a copy: the caller may make them leave the list). */
  entries(): Deadlined[] {
    const out: Deadlined[] = [];
    for (let e = this.#head; e !== undefined; e = e.deadlineNext) out.push(e);
    return out;
  }

  #arm(): void {
    const head = this.#head;
    if (head === undefined || this.timeoutMs <= 0) return;
    this.#armedAt = head.startedAt + this.timeoutMs;
    const wait = this.#armedAt - this.#clock.now();
    this.#timer = this.#clock.setTimeout(this.#onTimer, wait > 0 ? wait : 0, true);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#idle = false;
    this.#firing = true;
    try {
      // Due: every deadline not after the one the timer waited for (its timer fired, whatever the clock reads)
      // and every one the clock says has passed.
      const now = this.#clock.now();
      const limit = this.#armedAt > now ? this.#armedAt : now;
      let entry = this.#head;
      while (entry !== undefined && entry.startedAt + this.timeoutMs <= limit) {
        this.remove(entry);
        entry.deadlinePassed();
        entry = this.#head;
      }
    } finally {
      this.#firing = false;
      if (this.#timer === undefined) this.#arm();
    }
  }
}
