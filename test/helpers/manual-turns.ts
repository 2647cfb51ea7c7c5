/**
 * The picker builds' turns of the event loop, run by hand: in the tests of the file that calls {@link manualTurns},
 * `pickerSlicing.defer` queues each step instead of scheduling it (4096 units a step, past the warm-up), and the
 * test runs them with `turn()`. The settings are restored after each test.
 */
import { afterEach, beforeEach } from 'node:test';
import { pickerSlicing } from '../../src/balancer/staged.js';

export interface ManualTurns {
  /** Runs one deferred turn; false when none is waiting. */
  turn(): boolean;
  /** Turns waiting. */
  readonly pending: number;
}

export function manualTurns(): ManualTurns {
  let turns: (() => void)[] = [];
  const saved = { ...pickerSlicing };
  beforeEach(() => {
    turns = [];
    pickerSlicing.budget = 4096;
    pickerSlicing.stepsRun = 64; // past the warm-up (tested on its own)
    pickerSlicing.defer = (fn) => {
      turns.push(fn);
      return () => {
        turns = turns.filter((f) => f !== fn);
      };
    };
  });
  afterEach(() => Object.assign(pickerSlicing, saved));
  return {
    turn() {
      const fn = turns.shift();
      fn?.();
      return fn !== undefined;
    },
    get pending() {
      return turns.length;
    },
  };
}
