import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { InvalidOptionError } from '../../../src/common/errors.js';
import { hashString } from '../../../src/pickers/hash.js';
import { createPickerRegistry } from '../../../src/pickers/registry.js';
import { leastRequestPolicy } from '../../../src/pickers/least-request.js';
import { buildMaglevTable, type MaglevPicker, maglevPolicy } from '../../../src/pickers/maglev.js';
import { peakEwmaPolicy } from '../../../src/pickers/peak-ewma.js';
import { randomPolicy } from '../../../src/pickers/random.js';
import { type RingHashPicker, ringHashPolicy, ringVnodeCounts } from '../../../src/pickers/ring-hash.js';
import { weightedRandomPolicy } from '../../../src/pickers/weighted-random.js';
import {
  edfSchedule,
  MAX_SCHEDULE_LENGTH,
  WeightedRoundRobinPicker,
  weightedRoundRobinPolicy,
} from '../../../src/pickers/weighted-round-robin.js';
import { PeakEwma } from '../../../src/pickers/load.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';
import { counts, ctx, ctxWith, env, makeSlottedTargets, makeTargets, pickKey, type TestTarget } from './helpers.js';

const registry = createPickerRegistry();

describe('picker registry', () => {
  it('registers every built-in policy by name', () => {
    assert.deepEqual(registry.names(), [
      'least-request',
      'maglev',
      'peak-ewma',
      'random',
      'ring-hash',
      'round-robin',
      'weighted-random',
      'weighted-round-robin',
    ]);
  });

  it('rejects unknown settings on every policy', () => {
    for (const name of registry.names()) {
      const extra = name === 'ring-hash' || name === 'maglev' ? { hashKey: { path: true } } : {};
      assert.throws(() => registry.configure({ name, ...extra, bogus: 1 }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'picker.bogus',
        message: /picker\.bogus.*unknown option/,
      });
    }
  });

  it('suggests the closest setting for a typo, and names the settings under the path the caller passes', () => {
    assert.throws(() => registry.configure({ name: 'least-request', choiceCont: 3 }), {
      option: 'picker.choiceCont',
      message: /unknown option; did you mean "choiceCount"\? \(allowed: choiceCount, activeRequestBias\)/,
    });
    assert.throws(() => registry.configure({ name: 'round-robin', bogus: 1 }, 'clusters.users.picker'), {
      option: 'clusters.users.picker.bogus',
      message: /unknown option \(none are allowed here\)/,
    });
    assert.throws(() => registry.configure({ name: 'least-request', choiceCount: 1 }, 'clusters.users.picker'), {
      option: 'clusters.users.picker.choiceCount',
    });
    assert.throws(() => registry.configure({ name: 'maglev', hashKey: { heder: 'x' } }, 'routes.picker'), {
      option: 'routes.picker.hashKey.heder',
      message: /unknown option; did you mean "header"\?/,
    });
  });

  it('refuses a policy whose startBuild is given but is not a function, naming policy.startBuild', () => {
    const build = () => ({ pick: () => ({ type: 'queue' as const }) });
    for (const startBuild of [5, 'steps', {}, null]) {
      assert.throws(
        () => createPickerRegistry().register({ name: 'p', parseConfig: () => ({}), build, startBuild } as never),
        { code: 'SIDECARLESS_INVALID_OPTION', option: 'policy.startBuild' },
      );
    }
    assert.doesNotThrow(() => createPickerRegistry().register({ name: 'p', parseConfig: () => ({}), build }));
  });
});

describe('random', () => {
  it('picks uniformly from the targets', () => {
    const picker = randomPolicy.build(makeTargets(4), {}, env(7));
    const c = counts(picker, 40_000);
    for (const n of c.values()) assert.ok(Math.abs(n - 10_000) < 500, `${n}`);
  });

  it('never indexes out of range when the random source returns 1', () => {
    const picker = randomPolicy.build(makeTargets(3), {}, { random: () => 1, clock: new FakeClock() });
    assert.equal(pickKey(picker), '10.0.0.2:8080');
  });
});

describe('weighted-random', () => {
  it('handles weights spanning six orders of magnitude', () => {
    const picker = weightedRandomPolicy.build(makeTargets(2, [1e6, 1]), {}, env(3));
    const c = counts(picker, 100_000);
    assert.ok((c.get('10.0.0.1:8080') ?? 0) < 10);
  });
});

describe('weighted-round-robin', () => {
  it('interleaves 5:1:1 rather than bursting', () => {
    const picker = weightedRoundRobinPolicy.build(makeTargets(3, [5, 1, 1]), {}, env(11));
    const seq = Array.from({ length: 70 }, () => pickKey(picker));
    // In any 7 consecutive picks the light targets each appear once, give or take one.
    for (let i = 0; i + 7 <= seq.length; i++) {
      const window = seq.slice(i, i + 7);
      const a = window.filter((k) => k === '10.0.0.0:8080').length;
      assert.ok(a >= 3 && a <= 6, `window ${i}: ${window.join(' ')}`);
    }
  });

  it('precomputes one EDF period for integer weights: each target exactly weight / gcd times, then it repeats', () => {
    const picker = weightedRoundRobinPolicy.build(makeTargets(3, [500, 100, 100]), {}, env(7));
    assert.ok(!(picker instanceof WeightedRoundRobinPicker), 'the O(1) cycle, not the heap');
    const seq = Array.from({ length: 21 }, () => pickKey(picker));
    const period = seq.slice(0, 7);
    assert.deepEqual([...counts(period)].sort(), [
      ['10.0.0.0:8080', 5],
      ['10.0.0.1:8080', 1],
      ['10.0.0.2:8080', 1],
    ]);
    assert.deepEqual(seq.slice(7, 14), period);
    assert.deepEqual(seq.slice(14, 21), period);
    function counts(keys: string[]): Map<string, number> {
      const m = new Map<string, number>();
      for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
      return m;
    }
  });

  it('matches the heap schedule it replaces: the same order for the same phases', () => {
    const weights = new Float64Array([3, 1, 2, 5, 1]);
    // Phases from a fixed source; the heap picker is given periods max / w and phases u * period, the same
    // deadlines scaled by max, so both must serve targets in the same order.
    const phases = [0.1234, 0.6789, 0.3456, 0.5678, 0.9012]; // no two service times tie
    let n = 0;
    const schedule = edfSchedule(weights, () => phases[n++ % phases.length]! / 0.999)!;
    assert.equal(schedule.length, 12);
    const heap = new WeightedRoundRobinPicker(
      makeTargets(5, [...weights]).map((target) => ({ type: 'complete' as const, target })),
      weights,
      () => phases[n++ % phases.length]!,
    );
    const fromHeap = Array.from({ length: 24 }, () => pickKey(heap));
    const fromCycle = Array.from({ length: 24 }, (_, k) => makeTargets(5)[schedule[k % 12]!]!.key);
    assert.deepEqual(fromCycle, fromHeap);
  });

  it('falls back to the heap for fractional weights (slow start) and periods too long to store', () => {
    const fractional = weightedRoundRobinPolicy.build(makeTargets(3, [2.5, 1, 0.25]), {}, env(3));
    assert.ok(fractional instanceof WeightedRoundRobinPicker);
    const c = [...counts(fractional, 3750).values()].sort((a, b) => b - a);
    assert.deepEqual(c, [2500, 1000, 250]);
    const long = weightedRoundRobinPolicy.build(makeTargets(2, [MAX_SCHEDULE_LENGTH, 1]), {}, env(3));
    assert.ok(long instanceof WeightedRoundRobinPicker);
    const fits = weightedRoundRobinPolicy.build(makeTargets(2, [MAX_SCHEDULE_LENGTH - 1, 1]), {}, env(3));
    assert.ok(!(fits instanceof WeightedRoundRobinPicker));
  });

  it('is plain round robin from a random start with equal weights', () => {
    const picker = weightedRoundRobinPolicy.build(makeTargets(3), {}, { random: () => 0.5, clock: new FakeClock() });
    assert.deepEqual(
      Array.from({ length: 4 }, () => pickKey(picker)),
      ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.0:8080', '10.0.0.1:8080'],
    );
  });
});

describe('least-request', () => {
  it('defaults to two choices and a bias of 1', () => {
    assert.deepEqual(leastRequestPolicy.parseConfig({}), { choiceCount: 2, activeRequestBias: 1 });
  });

  it('sends to the idle target when the others are busy and choices cover all (plain and subchannel-shaped)', () => {
    for (const make of [makeTargets, makeSlottedTargets]) {
      const targets = make(3);
      targets[0]!.inFlight = 5;
      targets[1]!.inFlight = 0;
      targets[2]!.inFlight = 9;
      const picker = leastRequestPolicy.build(targets, { choiceCount: 50, activeRequestBias: 1 }, env(5));
      for (let i = 0; i < 50; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
      targets[1]!.inFlight = 20; // read live: now the busiest
      for (let i = 0; i < 50; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
    }
  });

  /** Asserts `got` of `picks` is within 6 standard deviations of the share `p` (a seeded run: reproducible). */
  function assertShare(got: number, picks: number, p: number, what: string): void {
    const sigma = Math.sqrt(picks * p * (1 - p));
    assert.ok(
      Math.abs(got - picks * p) <= 6 * sigma,
      `${what}: ${got} of ${picks}, expected ${(picks * p).toFixed(0)}`,
    );
  }

  it("with unequal weights and equal loads, gives each target its weight's share (weighted random choices)", () => {
    // 3:1 with two choices: the heavier wins every tie, so it is drawn less often than 3/4 (1/2), and the best of two
    // draws is then the heavier with probability 1 - (1/2)^2 = 3/4.
    for (const [weights, choiceCount, load] of [
      [[3, 1], 2, 0],
      [[3, 1], 2, 4],
      [[1, 2, 3, 4], 2, 0],
      [[1, 2, 3, 4, 4], 3, 1],
    ] as const) {
      const targets = makeTargets(weights.length, weights);
      for (const t of targets) t.inFlight = load;
      const picker = leastRequestPolicy.build(targets, { choiceCount, activeRequestBias: 1 }, env(2));
      const picks = 20_000;
      const c = counts(picker, picks);
      const total = weights.reduce((a, b) => a + b, 0);
      targets.forEach((t, i) =>
        assertShare(c.get(t.key) ?? 0, picks, weights[i]! / total, `weights ${weights}, ${choiceCount}, ${t.key}`),
      );
    }
  });

  it('with 2000 unequal weights and a 32-bit seeded source, gives each weight class its share (two and three choices)', () => {
    // One 32-bit random number per draw: its integer part (11 bits here) the column, the other 21 bits the coin.
    const n = 2000;
    const weights = Array.from({ length: n }, (_, i) => 1 + (i % 5));
    const total = weights.reduce((a, b) => a + b, 0);
    for (const choiceCount of [2, 3]) {
      const targets = makeTargets(n, weights);
      const picker = leastRequestPolicy.build(targets, { choiceCount, activeRequestBias: 1 }, env(11));
      const picks = 200_000;
      const c = counts(picker, picks);
      for (let w = 1; w <= 5; w++) {
        let got = 0;
        targets.forEach((t, i) => {
          if (weights[i] === w) got += c.get(t.key) ?? 0;
        });
        assertShare(got, picks, (w * (n / 5)) / total, `weight ${w}, ${choiceCount} choices`);
      }
    }
  });

  it('the share check can fail: draws in plain proportion to weight would give the heavier 15/16, not 3/4', () => {
    assert.throws(() => assertShare(18_750, 20_000, 0.75, 'plain'), /expected 15000/);
  });

  it('with unequal weights, prefers the less loaded of equal-weight targets', () => {
    const targets = makeTargets(3, [2, 2, 1]);
    targets[0]!.inFlight = 5;
    const picker = leastRequestPolicy.build(targets, leastRequestPolicy.parseConfig({}), env(2));
    const c = counts(picker, 10_000);
    const busy = c.get('10.0.0.0:8080') ?? 0;
    const idle = c.get('10.0.0.1:8080') ?? 0;
    assert.ok(busy < idle / 2, `busy ${busy}, idle ${idle}`);
  });

  it('with weights 3:1 and the heavier loaded, shifts traffic to the lighter', () => {
    const targets = makeTargets(2, [3, 1]);
    targets[0]!.inFlight = 7; // 8 / 3 against 1 / 1: the lighter wins whenever drawn (each draw 1/2)
    const picker = leastRequestPolicy.build(targets, leastRequestPolicy.parseConfig({}), env(2));
    const picks = 20_000;
    assertShare(counts(picker, picks).get('10.0.0.1:8080') ?? 0, picks, 3 / 4, 'lighter, heavier loaded');
    targets[0]!.inFlight = 1; // 2 / 3 against 1: the heavier still wins; back to 3:1
    assertShare(counts(picker, picks).get('10.0.0.0:8080') ?? 0, picks, 3 / 4, 'heavier, lightly loaded');
  });

  it('with a bias of 0, is plain weighted random: one draw per pick, load ignored', () => {
    const targets = makeTargets(2, [3, 1]);
    targets[0]!.inFlight = 50;
    let draws = 0;
    const base = seededRandom(4);
    const random = () => (draws++, base());
    const picker = leastRequestPolicy.build(targets, { choiceCount: 2, activeRequestBias: 0 }, { ...env(), random });
    const picks = 20_000;
    draws = 0;
    assertShare(counts(picker, picks).get('10.0.0.0:8080') ?? 0, picks, 3 / 4, 'heavier, bias 0');
    assert.equal(draws, picks);
  });

  it('with unequal weights, a higher bias shifts more traffic away from a loaded target', () => {
    const share = (activeRequestBias: number) => {
      const targets = makeTargets(3, [2, 1, 1]);
      targets[0]!.inFlight = 1; // (1 + 1)^bias / 2: 1 at bias 1 (a tie with the idle ones), 2 at bias 2
      const picker = leastRequestPolicy.build(targets, { choiceCount: 2, activeRequestBias }, env(6));
      return (counts(picker, 20_000).get('10.0.0.0:8080') ?? 0) / 20_000;
    };
    const [b05, b1, b2] = [share(0.5), share(1), share(2)];
    assert.ok(b05 > b1 + 0.05 && b1 > b2 + 0.05, `${b05} ${b1} ${b2}`);
  });

  it('under concurrent load, weighted shares lean toward the weights but compress, as the README says (probe 14)', async () => {
    // A closed loop: `callers` requests always in flight, each taking 1 +- 10 % of a time unit (equal latencies), so
    // Little's law gives each target in-flight requests in proportion to its share.
    const shares = (callers: number, activeRequestBias = 1) => {
      const targets = makeTargets(4, [1, 2, 3, 4]);
      const random = seededRandom(7);
      const picker = leastRequestPolicy.build(targets, { choiceCount: 2, activeRequestBias }, { ...env(), random });
      const counted = [0, 0, 0, 0];
      const running: Array<{ at: number; target: number }> = [];
      const start = (now: number) => {
        const r = picker.pick(ctx);
        assert.equal(r.type, 'complete');
        const target = targets.findIndex((t) => t.key === (r as { target: TestTarget }).target.key);
        targets[target]!.inFlight++;
        counted[target]!++;
        running.push({ at: now + 0.9 + 0.2 * random(), target });
      };
      for (let c = 0; c < callers; c++) start(0);
      for (let done = 0; done < 40_000; done++) {
        let first = 0;
        for (let i = 1; i < running.length; i++) if (running[i]!.at < running[first]!.at) first = i;
        const [ended] = running.splice(first, 1);
        targets[ended!.target]!.inFlight--;
        start(ended!.at);
      }
      const total = counted.reduce((a, b) => a + b, 0);
      return counted.map((n) => n / total);
    };
    const near = (got: number[], want: number[], within: number, what: string) =>
      got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < within, `${what}: ${got.map((x) => x.toFixed(3))}`));
    near(shares(1), [0.1, 0.2, 0.3, 0.4], 0.015, 'one at a time: the weights');
    // About 16/23/29/33 % with 8 callers (the README's figures): ordered by weight, but the weight-1 target gets
    // about 1.6x its share and the weight-4 one about 0.8x.
    const loaded = shares(8);
    near(loaded, [0.16, 0.23, 0.29, 0.33], 0.025, '8 callers');
    assert.ok(loaded[0]! < loaded[1]! && loaded[1]! < loaded[2]! && loaded[2]! < loaded[3]!, 'still ordered by weight');
    // A lower bias compresses less; 0 is weighted random, the weights whatever the load.
    assert.ok(shares(8, 0.5)[3]! > loaded[3]! + 0.02, 'bias 0.5 keeps more on the heaviest');
    near(shares(8, 0), [0.1, 0.2, 0.3, 0.4], 0.015, 'bias 0');
    const readme = (await readFile(new URL('../../../README.md', import.meta.url), 'utf8')).replace(/\s+/g, ' ');
    assert.ok(readme.includes('under concurrent load they compress toward equal'), 'the README says they compress');
    assert.ok(
      !/For shares that follow the weights, use [^(.]*`least-request`/.test(readme),
      'the README does not list least-request among the policies whose shares follow the weights',
    );
  });

  it('rejects bad settings with typed errors', () => {
    for (const [raw, option] of [
      [{ choiceCount: 1 }, 'picker.choiceCount'],
      [{ choiceCount: 2.5 }, 'picker.choiceCount'],
      [{ choiceCount: 1e9 }, 'picker.choiceCount'],
      [{ activeRequestBias: -1 }, 'picker.activeRequestBias'],
      [{ activeRequestBias: Number.NaN }, 'picker.activeRequestBias'],
      [{ activeRequestBias: Number.POSITIVE_INFINITY }, 'picker.activeRequestBias'],
    ] as const) {
      assert.throws(() => leastRequestPolicy.parseConfig(raw), { code: 'SIDECARLESS_INVALID_OPTION', option });
    }
  });
});

describe('peak-ewma', () => {
  it('defaults to a 10 s decay and a 30 ms default RTT', () => {
    assert.deepEqual(peakEwmaPolicy.parseConfig({}), { decayMs: 10_000, defaultRttMs: 30 });
  });

  it('avoids a target whose latency spiked, then returns to it as the peak decays', () => {
    const clock = new FakeClock();
    const targets = makeTargets(2);
    const slow = new PeakEwma({ clock });
    const fast = new PeakEwma({ clock });
    targets[0]!.load = slow;
    targets[1]!.load = fast;
    fast.observe(20);
    slow.observe(20);
    slow.observe(500); // peak: jumps at once
    const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({ decayMs: 1000 }), env(9, clock));
    for (let i = 0; i < 20; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    clock.advance(1000);
    fast.observe(20);
    clock.advance(5000); // slow: 500 * e^-6 ~ 1.2 ms, fast: 20 * e^-5 ~ 0.13 ms
    slow.observe(1);
    fast.observe(20);
    assert.ok(slow.valueAt(clock.now()) < fast.valueAt(clock.now()));
    assert.equal(pickKey(picker), '10.0.0.0:8080');
  });

  it('weighs latency by requests in flight, and uses the default RTT before any response', () => {
    const clock = new FakeClock();
    const targets = makeTargets(2);
    const measured = new PeakEwma({ clock });
    measured.observe(10);
    targets[0]!.load = measured; // 10 ms x (3 + 1) = 40
    targets[0]!.inFlight = 3;
    targets[1]!.inFlight = 0; // default RTT 30 x 1 = 30
    const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({}), env(1, clock));
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    targets[0]!.inFlight = 1; // 20 < 30
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
  });

  it("never reads the clock to pick: a default RTT decays from when the target's load record was created", () => {
    // On Node 20 every clock read allocates a 16-byte number; comparing stamps needs no current time.
    const clock = new FakeClock();
    let reads = 0;
    const counting = {
      now: () => {
        reads++;
        return clock.now();
      },
      setTimeout: clock.setTimeout.bind(clock),
      clearTimeout: clock.clearTimeout.bind(clock),
    };
    const targets = makeTargets(2);
    const measured = new PeakEwma({ clock });
    measured.observe(10);
    targets[0]!.load = measured; // 10 ms, beside the other's default RTT of 30 ms
    clock.advance(1000);
    targets[1]!.load = new PeakEwma({ clock }); // created 1 s later: its default RTT decays from then
    const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({ decayMs: 1000 }), {
      random: seededRandom(3),
      clock: counting,
    });
    reads = 0;
    for (let i = 0; i < 20; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
    measured.observe(90); // a peak at t = 1 s: 90 ms, above the default RTT stamped at the same time
    for (let i = 0; i < 20; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    clock.advance(60_000); // both decay alike: time alone does not reorder them
    for (let i = 0; i < 20; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    measured.observe(5); // a fresh 5 ms at t = 61 s; the idle target's 30 ms, stamped at 1 s, has decayed far below
    assert.equal(pickKey(picker), '10.0.0.1:8080');
    assert.equal(reads, 0, 'no clock read in any pick');
  });

  it('decides as if it read the clock: a stale peak loses to a fresh default RTT once decay brings it under', () => {
    const clock = new FakeClock();
    const targets = makeTargets(2);
    const old = new PeakEwma({ clock });
    old.observe(90); // t = 0: 90 ms
    targets[0]!.load = old;
    const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({ decayMs: 1000 }), env(3, clock));
    clock.advance(1000);
    targets[1]!.load = new PeakEwma({ clock }); // a new endpoint at t = 1 s: 30 ms then; the peak is 90 e^-1 = 33
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    const late = makeTargets(2);
    late[0]!.load = old;
    clock.advance(200);
    late[1]!.load = new PeakEwma({ clock }); // at t = 1.2 s: 90 e^-1.2 = 27 < 30
    const picker2 = peakEwmaPolicy.build(late, peakEwmaPolicy.parseConfig({ decayMs: 1000 }), env(3, clock));
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker2), '10.0.0.0:8080');
  });

  it("reads each target's load record live: one replaced after the build is the one compared", () => {
    // `load` is read at each pick, not kept from the build: a target whose `load` is another object now is compared
    // by the new one.
    const { clock, targets, picker } = slowAndFast();
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    const faster = new PeakEwma({ clock });
    faster.observe(1);
    targets[0]!.load = faster; // 1 ms now, against 10
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
    targets[0]!.load = undefined; // no record: the default RTT (30 ms) from the build, against 10
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
  });

  it('regression guard: an estimate without a sample has the value 0 (the pick adds the default RTT to it)', () => {
    const clock = new FakeClock();
    const e = new PeakEwma({ clock });
    assert.equal(e.samples, 0);
    assert.equal(e.value, 0);
    e.observeFailure(Number.NaN); // records the current estimate (0): now one sample, value 0
    assert.equal(e.samples, 1);
    assert.equal(e.value, 0);
  });

  it('applies its decay setting to the targets it builds over', () => {
    const targets = makeTargets(2);
    const load = new PeakEwma({ clock: new FakeClock() });
    targets[0]!.load = load;
    peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({ decayMs: 2500 }), env());
    assert.equal(load.decayMs, 2500);
  });

  it('rejects bad settings with typed errors', () => {
    for (const [raw, option] of [
      [{ decayMs: 0 }, 'picker.decayMs'],
      [{ decayMs: 0.5 }, 'picker.decayMs'],
      [{ decayMs: Number.POSITIVE_INFINITY }, 'picker.decayMs'],
      [{ decayMs: '10s' }, 'picker.decayMs'],
      [{ defaultRttMs: 0 }, 'picker.defaultRttMs'],
      [{ defaultRttMs: -5 }, 'picker.defaultRttMs'],
      [{ defaultRttMs: 1e12 }, 'picker.defaultRttMs'],
    ] as const) {
      assert.throws(() => peakEwmaPolicy.parseConfig(raw), { code: 'SIDECARLESS_INVALID_OPTION', option });
    }
  });

  it('reports the settings renamed in 0.2.0 with their new names', () => {
    assert.throws(() => peakEwmaPolicy.parseConfig({ decay: 1000 }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'picker.decay',
      message: /renamed to "decayMs" in 0\.2\.0/,
    });
    assert.throws(() => peakEwmaPolicy.parseConfig({ defaultRtt: 30 }), {
      option: 'picker.defaultRtt',
      message: /renamed to "defaultRttMs" in 0\.2\.0/,
    });
  });
});

/** Two targets, the first with a 100 ms estimate and the second 10 ms, and a `peak-ewma` picker built over them. */
function slowAndFast() {
  const clock = new FakeClock();
  const targets = makeTargets(2);
  const slow = new PeakEwma({ clock });
  slow.observe(100);
  const fast = new PeakEwma({ clock });
  fast.observe(10);
  targets[0]!.load = slow;
  targets[1]!.load = fast;
  const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({}), env(4, clock));
  return { clock, targets, slow, fast, picker };
}

describe('PeakEwma', () => {
  it('keeps every estimate while the shared table of estimates grows, and a picker built before keeps comparing them', () => {
    // Estimates live in one shared typed array that is replaced by a larger copy when it fills up.
    const { clock, slow, fast, picker } = slowAndFast();
    const more = Array.from({ length: 3000 }, (_, i) => new PeakEwma({ clock, decayMs: 1000 + i }));
    more.forEach((e, i) => e.observe(i));
    assert.deepEqual([slow.value, slow.stamp, slow.samples, fast.value], [100, 0, 1, 10]);
    more.forEach((e, i) => assert.equal(e.value, i));
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.1:8080');
    slow.observe(1); // lower, with no time passed: stays 100
    fast.observe(500); // a peak: 500 at once
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
  });

  it('jumps to a peak, moves gradually towards lower observations, and decays while idle', () => {
    const clock = new FakeClock();
    const e = new PeakEwma({ clock, decayMs: 1000 });
    assert.equal(e.samples, 0);
    e.observe(100);
    assert.equal(e.valueAt(clock.now()), 100);
    e.observe(300);
    assert.equal(e.valueAt(clock.now()), 300);
    clock.advance(1000);
    e.observe(100); // w = e^-1: 300 w + 100 (1 - w)
    const expected = 300 * Math.exp(-1) + 100 * (1 - Math.exp(-1));
    assert.ok(Math.abs(e.valueAt(clock.now()) - expected) < 1e-9);
    clock.advance(2000);
    assert.ok(Math.abs(e.valueAt(clock.now()) - expected * Math.exp(-2)) < 1e-9);
  });

  it('never lets a fast failure lower the estimate', () => {
    const clock = new FakeClock();
    const e = new PeakEwma({ clock });
    e.observe(200);
    e.observeFailure(1);
    assert.equal(e.valueAt(clock.now()), 200);
    e.observeFailure(Number.NaN);
    assert.equal(e.valueAt(clock.now()), 200);
  });

  it('a failure before the first response counts as at least the prior the picker assumes (regression: a new endpoint failing fast became the cheapest)', () => {
    const clock = new FakeClock();
    const e = new PeakEwma({ clock, decayMs: 1000 });
    e.priorMs = 30;
    e.observeFailure(1);
    assert.equal(e.value, 30);
    const later = new PeakEwma({ clock, decayMs: 1000 });
    later.priorMs = 30;
    clock.advance(1000);
    later.observeFailure(1); // the prior has decayed for 1 s: 30 / e
    assert.ok(Math.abs(later.value - 30 * Math.exp(-1)) < 1e-9);
    // Through the picker: the build sets the prior; a new endpoint whose connections are refused in 1 ms is not
    // preferred over one answering in 20 ms.
    const targets = makeTargets(2);
    const answering = new PeakEwma({ clock });
    answering.observe(20);
    const refusing = new PeakEwma({ clock });
    targets[0]!.load = answering;
    targets[1]!.load = refusing;
    const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({}), env(3, clock));
    refusing.observeFailure(1);
    for (let i = 0; i < 10; i++) assert.equal(pickKey(picker), '10.0.0.0:8080');
  });

  it('takes the time of an observation from its caller (no clock read), and never moves its stamp back', () => {
    const clock = new FakeClock();
    const e = new PeakEwma({ clock, decayMs: 1000 });
    clock.advance(5000);
    e.observe(100, 2000); // headers at t = 2 s, observed at 5 s: stamped 2 s
    assert.deepEqual([e.value, e.stamp], [100, 2000]);
    e.observe(50, 3000); // w = e^-1
    const expected = 100 * Math.exp(-1) + 50 * (1 - Math.exp(-1));
    assert.ok(Math.abs(e.value - expected) < 1e-9);
    assert.equal(e.stamp, 3000);
    // An attempt whose headers came earlier but that ends later: no time has passed for it (weight 0 below the
    // estimate), and the stamp stays.
    e.observe(10, 2500);
    assert.deepEqual([e.value, e.stamp, e.samples], [expected, 3000, 3]);
    // A failure after 1 ms at t = 4 s counts as the estimate decayed to then (d), observed at 4 s.
    e.observeFailure(1, 4000);
    const w = Math.exp(-1);
    const d = expected * w;
    assert.ok(Math.abs(e.value - (expected * w + d * (1 - w))) < 1e-9);
    assert.equal(e.stamp, 4000);
  });
});

describe('ring-hash', () => {
  const config = ringHashPolicy.parseConfig({ hashKey: { header: 'x-key' } });

  it('defaults to a 1024..8M ring with 1024 entries for the lightest endpoint', () => {
    assert.equal(config.minRingSize, 1024);
    assert.equal(config.maxRingSize, 8 * 1024 * 1024);
    assert.equal(config.vnodesPerEndpoint, 1024);
  });

  it('routes the same key to the same endpoint, and different keys across endpoints', () => {
    const picker = ringHashPolicy.build(makeTargets(5), config, env());
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const c = ctxWith({ 'x-key': `user-${i}` });
      const k = pickKey(picker, c);
      assert.equal(pickKey(picker, c), k);
      seen.add(k);
    }
    assert.equal(seen.size, 5);
  });

  it('spreads keyless requests at random instead of piling them onto one endpoint (gRPC A76)', () => {
    const picker = ringHashPolicy.build(makeTargets(4), config, env(4));
    const c = counts(picker, 4000, ctx);
    assert.equal(c.size, 4);
    for (const n of c.values()) assert.ok(n > 800, `${n}`);
  });

  it('uses weights as virtual-node counts', () => {
    const counts = ringVnodeCounts(new Float64Array([1, 2, 0.5]), config);
    assert.deepEqual([...counts], [2048, 4096, 1024]);
  });

  it('caps the ring for extreme weight ratios, keeping every endpoint on it', () => {
    const small = ringHashPolicy.parseConfig({ hashKey: { path: true }, maxRingSize: 10_000 });
    const counts = ringVnodeCounts(new Float64Array([1e6, 1e-6, 1]), small);
    assert.ok(counts.every((c) => c >= 1));
    assert.ok(counts.reduce((a, b) => a + b, 0) <= 10_000 + 3);
    const picker = ringHashPolicy.build(makeTargets(3, [1e6, 1e-6, 1]), small, env()) as RingHashPicker<never>;
    assert.ok(picker.hashes.length <= 10_003);
  });

  it('keeps the ring sorted', () => {
    const picker = ringHashPolicy.build(makeTargets(20, [1, 2, 3]), config, env()) as RingHashPicker<never>;
    const hashes = picker.hashes;
    for (let i = 1; i < hashes.length; i++) assert.ok(hashes[i - 1]! <= hashes[i]!);
  });

  it('rejects bad ring bounds and missing or bad hash keys with typed errors', () => {
    const hashKey = { path: true };
    for (const [raw, option] of [
      [{}, 'picker.hashKey'],
      [{ hashKey: { header: '' } }, 'picker.hashKey.header'],
      [{ hashKey, minRingSize: 0 }, 'picker.minRingSize'],
      [{ hashKey, minRingSize: 1.5 }, 'picker.minRingSize'],
      [{ hashKey, maxRingSize: 8 * 1024 * 1024 + 1 }, 'picker.maxRingSize'],
      [{ hashKey, maxRingSize: Number.POSITIVE_INFINITY }, 'picker.maxRingSize'],
      [{ hashKey, minRingSize: 4096, maxRingSize: 2048 }, 'picker.minRingSize'],
      [{ hashKey, vnodesPerEndpoint: 0 }, 'picker.vnodesPerEndpoint'],
      [{ hashKey, maxRingSize: 2048, vnodesPerEndpoint: 4096 }, 'picker.vnodesPerEndpoint'],
    ] as const) {
      assert.throws(
        () => ringHashPolicy.parseConfig(raw),
        (err: unknown) => err instanceof InvalidOptionError && err.option === option,
        JSON.stringify(raw),
      );
    }
  });
});

describe('maglev', () => {
  const config = maglevPolicy.parseConfig({ hashKey: { header: 'x-key' } });

  it('defaults to a 65537-slot table', () => {
    assert.equal(config.tableSize, 65537);
  });

  it('fills every slot, sharing them within one slot of equal when weights are equal', () => {
    const picker = maglevPolicy.build(makeTargets(7), config, env()) as MaglevPicker<never>;
    const c = new Array<number>(7).fill(0);
    for (const i of picker.table) c[i]!++;
    assert.equal(
      c.reduce((a, b) => a + b, 0),
      65537,
    );
    assert.ok(Math.max(...c) - Math.min(...c) <= 1);
  });

  it("fills the table exactly as the paper's Pseudocode 1 with equal weights (offset and skip from two hashes)", () => {
    // Eisenbud et al., NSDI 2016, section 3.4, written out with explicit permutations: offset = h1 mod M,
    // skip = h2 mod (M - 1) + 1, permutation[j] = (offset + j * skip) mod M; endpoints take turns claiming their next
    // free preferred slot. h1, h2: XXH32 with the seeds 'MAGL' and 'EV\0\0'. A deviation here inflates disruption.
    for (const [n, m] of [
      [7, 4099],
      [40, 4099],
      [100, 65537],
    ] as const) {
      const keys = makeTargets(n)
        .map((t) => t.key)
        .sort();
      const permutation = keys.map((k) => {
        const offset = hashString(k, 0x4d41474c) % m;
        const skip = (hashString(k, 0x45560000) % (m - 1)) + 1;
        return (j: number) => (offset + j * skip) % m;
      });
      const next = new Array<number>(n).fill(0);
      const entry = new Int32Array(m).fill(-1);
      for (let filled = 0; filled < m;) {
        for (let i = 0; i < n && filled < m; i++) {
          let c = permutation[i]!(next[i]!);
          while (entry[c]! >= 0) c = permutation[i]!(++next[i]!);
          entry[c] = i;
          next[i]!++;
          filled++;
        }
      }
      assert.deepEqual(buildMaglevTable(keys, new Float64Array(n).fill(1), m), entry, `N = ${n}, M = ${m}`);
    }
  });

  it('gives slots in proportion to weights', () => {
    const picker = maglevPolicy.build(makeTargets(3, [1, 2, 5]), config, env()) as MaglevPicker<never>;
    const c = new Array<number>(3).fill(0);
    for (const i of picker.table) c[i]!++;
    const total = 65537;
    for (const [i, w] of [1, 2, 5].entries()) assert.ok(Math.abs(c[i]! / total - w / 8) < 0.001, `${c}`);
  });

  it('spreads keyless requests at random (gRPC A76)', () => {
    const picker = maglevPolicy.build(makeTargets(4), config, env(4));
    const c = counts(picker, 4000, ctx);
    assert.equal(c.size, 4);
  });

  it('rejects a non-prime, out-of-range or non-integer table size', () => {
    for (const tableSize of [65536, 1, 0, -7, 5_000_012, 10_000_019, 65537.5, '65537', Number.NaN]) {
      assert.throws(() => maglevPolicy.parseConfig({ hashKey: { path: true }, tableSize }), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option: 'picker.tableSize',
      });
    }
    assert.equal(maglevPolicy.parseConfig({ hashKey: { path: true }, tableSize: 655373 }).tableSize, 655373);
  });
});

describe('bad weights', () => {
  it('rejects zero, negative, non-finite and enormous endpoint weights with a typed error at construction', () => {
    for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e6 + 1, 1e300]) {
      assert.throws(() => createEndpoint({ host: '10.0.0.1', port: 80, weight }), {
        code: 'SIDECARLESS_INVALID_ENDPOINT',
      });
    }
  });

  it('builds every policy over the most extreme valid weights without throwing', () => {
    const targets = makeTargets(3, [1e6, 1e-300, 1]);
    for (const name of registry.names()) {
      const extra = name === 'ring-hash' || name === 'maglev' ? { hashKey: { header: 'x-key' } } : {};
      const { policy, config } = registry.configure({ name, ...extra });
      const picker = policy.build(targets, config, env());
      for (let i = 0; i < 100; i++) pickKey(picker, ctxWith({ 'x-key': `k${i}` }));
    }
  });
});
