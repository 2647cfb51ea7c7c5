import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createPickerRegistry } from '../../../src/pickers/registry.js';
import { drawProbabilities, leastRequestPolicy } from '../../../src/pickers/least-request.js';
import { type MaglevPicker, maglevPolicy } from '../../../src/pickers/maglev.js';
import { peakEwmaPolicy } from '../../../src/pickers/peak-ewma.js';
import type { Pickable, Picker } from '../../../src/pickers/picker.js';
import {
  buildRing,
  type RingHashPicker,
  ringHashPolicy,
  ringVnodeCounts,
  VnodeCache,
} from '../../../src/pickers/ring-hash.js';
import { aliasTable, indexOf } from '../../../src/pickers/util.js';
import { weightedRandomPolicy } from '../../../src/pickers/weighted-random.js';
import { weightedRoundRobinPolicy } from '../../../src/pickers/weighted-round-robin.js';
import { PeakEwma } from '../../../src/pickers/load.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';
import { counts, ctxWith, env, makeSlottedTargets, makeTargets, pickKey } from './helpers.js';

const weightsArb = fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 2, maxLength: 6 });
const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = indexOf(random(), i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('properties: weights', () => {
  it('weighted-round-robin serves each target within N + 1 picks of its exact share', () => {
    fc.assert(
      // Integer weights run the precomputed cycle, fractional ones (divided by 3) the heap: both must hold.
      fc.property(weightsArb, seedArb, fc.boolean(), (integers, seed, fractional) => {
        const weights = fractional ? integers.map((w) => w / 3) : integers;
        const total = weights.reduce((a, b) => a + b, 0);
        const picks = integers.reduce((a, b) => a + b, 0) * 50;
        const c = counts(weightedRoundRobinPolicy.build(makeTargets(weights.length, weights), {}, env(seed)), picks);
        weights.forEach((w, i) => {
          const got = c.get(makeTargets(weights.length)[i]!.key) ?? 0;
          assert.ok(Math.abs(got - (picks * w) / total) <= weights.length + 1, `${got} vs ${(picks * w) / total}`);
        });
      }),
      { numRuns: 100 },
    );
  });

  it('weighted-random and unloaded least-request honour weights within 6 standard deviations', () => {
    fc.assert(
      fc.property(weightsArb, seedArb, fc.boolean(), (weights, seed, leastRequest) => {
        const total = weights.reduce((a, b) => a + b, 0);
        const picks = 20_000;
        const targets = makeTargets(weights.length, weights);
        const picker = leastRequest
          ? leastRequestPolicy.build(targets, leastRequestPolicy.parseConfig({}), env(seed))
          : weightedRandomPolicy.build(targets, {}, env(seed));
        const c = counts(picker, picks);
        weights.forEach((w, i) => {
          const p = w / total;
          const sigma = Math.sqrt(picks * p * (1 - p));
          const got = c.get(targets[i]!.key) ?? 0;
          assert.ok(Math.abs(got - picks * p) <= 6 * sigma + 1, `${got} vs ${picks * p}`);
        });
      }),
      { numRuns: 40 },
    );
  });

  it('maglev gives each endpoint its weighted share of slots, within 1 + N slots', () => {
    fc.assert(
      fc.property(weightsArb, (weights) => {
        const m = 4099;
        const total = weights.reduce((a, b) => a + b, 0);
        const picker = maglevPolicy.build(
          makeTargets(weights.length, weights),
          maglevPolicy.parseConfig({ hashKey: { path: true }, tableSize: m }),
          env(),
        ) as MaglevPicker<Pickable>;
        const c = new Array<number>(weights.length).fill(0);
        for (const i of picker.table) c[i]!++;
        picker.targets.forEach((t, i) => {
          const expected = (m * t.endpoint.weight) / total;
          assert.ok(Math.abs(c[i]! - expected) <= 1 + weights.length, `${c[i]} vs ${expected}`);
        });
      }),
      { numRuns: 40 },
    );
  });
});

/**
 * The smoothness bound: after every prefix of `k` picks, each target `i` has been served within `1 + N w_i / W` of
 * its exact share `k w_i / W`. Returns the first violation, or undefined when the sequence of target indices keeps
 * to it.
 */
function smoothnessViolation(sequence: readonly number[], weights: readonly number[]): string | undefined {
  const total = weights.reduce((a, b) => a + b, 0);
  const seen = new Array<number>(weights.length).fill(0);
  for (let k = 1; k <= sequence.length; k++) {
    seen[sequence[k - 1]!]!++;
    for (let i = 0; i < weights.length; i++) {
      const share = weights[i]! / total;
      const bound = 1 + weights.length * share + 1e-9;
      if (Math.abs(seen[i]! - k * share) > bound)
        return `prefix ${k}: target ${i} served ${seen[i]}, share ${k * share}`;
    }
  }
  return undefined;
}

describe('properties: smooth weighted round robin', () => {
  const weightsArb20 = fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 2, maxLength: 6 });

  it('keeps every prefix of picks within 1 + N w / W of the exact share (no bursts)', () => {
    fc.assert(
      fc.property(weightsArb20, seedArb, (weights, seed) => {
        const targets = makeTargets(weights.length, weights);
        const index = new Map(targets.map((t, i) => [t.key, i]));
        const total = weights.reduce((a, b) => a + b, 0);
        const picker = weightedRoundRobinPolicy.build(targets, {}, env(seed));
        const sequence = Array.from({ length: total * 3 }, () => index.get(pickKey(picker))!);
        const violation = smoothnessViolation(sequence, weights);
        assert.equal(violation, undefined, violation);
      }),
      { numRuns: 60 },
    );
  });

  it('the same check rejects a burst schedule (each target w times in a row)', () => {
    // Guards the property above: it is strong enough to tell smooth from bursty. Weights 6:6 served as
    // a a a a a a b b b b b b break it at the fifth pick (a has 5 where its share is 2.5, beyond 1 + 2 / 2). In
    // general a burst schedule that opens with the heaviest target's run of w picks ends that run w (1 - w / W) ahead
    // of its share, a violation whenever that exceeds 1 + N w / W.
    assert.match(smoothnessViolation([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [6, 6]) ?? '', /^prefix 5: target 0/);
    fc.assert(
      fc.property(weightsArb20, seedArb, (weights, seed) => {
        const total = weights.reduce((a, b) => a + b, 0);
        const heaviest = weights.indexOf(Math.max(...weights));
        const w = weights[heaviest]!;
        fc.pre(w * (1 - w / total) > 1 + (weights.length * w) / total);
        const rest = shuffled(
          weights.map((_, i) => i).filter((i) => i !== heaviest),
          seededRandom(seed),
        );
        const order = [heaviest, ...rest];
        const burst = [...order, ...order].flatMap((i) => new Array<number>(weights[i]!).fill(i));
        assert.notEqual(smoothnessViolation(burst, weights), undefined, `burst ${burst.join(' ')} passed`);
      }),
      { numRuns: 60 },
    );
  });
});

/** A random source that remembers its draws, to replay what a picker compared. */
function recordingRandom(seed: number): { random: () => number; draws: number[] } {
  const base = seededRandom(seed);
  const draws: number[] = [];
  return {
    draws,
    random: () => {
      const r = base();
      draws.push(r);
      return r;
    },
  };
}

/** The two distinct indices the P2C pickers derive from one draw (integer part, then fraction). */
function twoChoices(r: number, n: number): [number, number] {
  const x = r * n;
  const a = Math.min(Math.floor(x), n - 1);
  let b = Math.floor((x - a) * (n - 1));
  if (b >= a) b++;
  return [a, b];
}

/**
 * 30 picks, each checked to be the cheaper of the two targets its one random draw named (within `tolerance`); the
 * picked target then gets one more request in flight and the clock moves `stepMs`.
 */
function assertCheaperOfTwo<T extends { key: string; inFlight: number }>(o: {
  picker: Parameters<typeof pickKey>[0];
  targets: readonly T[];
  draws: number[];
  cost: (t: T) => number;
  clock: FakeClock;
  stepMs: number;
  tolerance: number;
}): void {
  for (let p = 0; p < 30; p++) {
    o.draws.length = 0;
    const chosen = pickKey(o.picker);
    const [a, b] = twoChoices(o.draws[0]!, o.targets.length);
    const pair = [o.targets[a]!, o.targets[b]!];
    const picked = pair.find((t) => t.key === chosen);
    assert.ok(picked !== undefined, 'picked one of its two choices');
    const other = pair.find((t) => t !== picked)!;
    assert.ok(o.cost(picked) <= o.cost(other) * (1 + o.tolerance), `${o.cost(picked)} > ${o.cost(other)}`);
    picked.inFlight++;
    o.clock.advance(o.stepMs);
  }
}

describe('properties: power of two choices', () => {
  const loadsArb = fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 2, maxLength: 12 });

  it('least-request never picks the more loaded of its two choices (plain targets and subchannel-shaped)', () => {
    fc.assert(
      fc.property(loadsArb, seedArb, fc.boolean(), (loads, seed, slotted) => {
        const targets = (slotted ? makeSlottedTargets : makeTargets)(loads.length);
        loads.forEach((l, i) => {
          targets[i]!.inFlight = l;
        });
        const rec = recordingRandom(seed);
        const picker = leastRequestPolicy.build(targets, leastRequestPolicy.parseConfig({}), {
          random: rec.random,
          clock: new FakeClock(),
        });
        for (let p = 0; p < 50; p++) {
          rec.draws.length = 0;
          const chosen = pickKey(picker);
          const [a, b] = twoChoices(rec.draws[0]!, loads.length);
          assert.equal(rec.draws.length, 1, 'one random draw per pick');
          assert.notEqual(a, b, 'two distinct choices');
          const pair = [targets[a]!, targets[b]!];
          const picked = pair.find((t) => t.key === chosen);
          assert.ok(picked !== undefined, 'picked one of its two choices');
          const other = pair.find((t) => t !== picked)!;
          assert.ok(picked.inFlight <= other.inFlight, `picked ${picked.inFlight} over ${other.inFlight} in flight`);
          // Moves the load around so later picks see different counts.
          picked.inFlight++;
        }
      }),
      { numRuns: 80 },
    );
  });

  it('peak-ewma never picks the costlier of its two choices (plain targets and subchannel-shaped)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            load: fc.integer({ min: 0, max: 10 }),
            rtt: fc.integer({ min: 1, max: 500 }),
            weight: fc.integer({ min: 1, max: 5 }),
          }),
          { minLength: 2, maxLength: 10 },
        ),
        seedArb,
        fc.boolean(),
        fc.boolean(),
        (specs, seed, weighted, slotted) => {
          const clock = new FakeClock();
          // Equal weights take the picker's path that skips them; unequal ones divide the costs.
          const targets = (slotted ? makeSlottedTargets : makeTargets)(
            specs.length,
            specs.map((s) => (weighted ? s.weight : 1)),
          );
          specs.forEach((s, i) => {
            const e = new PeakEwma({ clock });
            e.observe(s.rtt);
            targets[i]!.load = e;
            targets[i]!.inFlight = s.load;
          });
          const rec = recordingRandom(seed);
          const picker = peakEwmaPolicy.build(targets, peakEwmaPolicy.parseConfig({}), { random: rec.random, clock });
          const cost = (t: (typeof targets)[number]) =>
            (t.load!.valueAt(clock.now()) * (t.inFlight + 1)) / t.endpoint.weight;
          // The picker compares costs exactly (equal stamps cancel); recomputing them here through exp() can split
          // an exact tie by an ulp, so allow that much.
          assertCheaperOfTwo({ picker, targets, draws: rec.draws, cost, clock, stepMs: 7, tolerance: 1e-12 });
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('properties: peak-ewma without the clock', () => {
  it('picks what a comparison at the current time would, with targets created, observed and idle at different times', () => {
    // The picker never reads the clock: it compares stamps. This recomputes each cost at the clock's current time
    // (a default RTT decaying from the load record's creation, or from the build for a target without one) and checks
    // that the pick is never the costlier of the two choices, however long the clock has run since any stamp.
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            load: fc.integer({ min: 0, max: 10 }),
            rtt: fc.option(fc.integer({ min: 1, max: 500 })),
            bornAt: fc.integer({ min: 0, max: 30_000 }),
            record: fc.boolean(),
          }),
          { minLength: 2, maxLength: 10 },
        ),
        fc.integer({ min: 0, max: 60_000 }),
        seedArb,
        fc.boolean(),
        (specs, idle, seed, slotted) => {
          const decayMs = 5000;
          const defaultRtt = 30;
          const clock = new FakeClock();
          const targets = (slotted ? makeSlottedTargets : makeTargets)(specs.length);
          const order = specs.map((_, i) => i).sort((a, b) => specs[a]!.bornAt - specs[b]!.bornAt);
          for (const i of order) {
            const s = specs[i]!;
            clock.advance(s.bornAt - clock.now());
            targets[i]!.inFlight = s.load;
            if (!s.record && s.rtt === null) continue; // no load record at all
            const e = new PeakEwma({ clock, decayMs });
            if (s.rtt !== null) e.observe(s.rtt);
            targets[i]!.load = e;
          }
          const rec = recordingRandom(seed);
          const picker = peakEwmaPolicy.build(
            targets,
            peakEwmaPolicy.parseConfig({ decayMs, defaultRttMs: defaultRtt }),
            {
              random: rec.random,
              clock,
            },
          );
          const builtAt = clock.now();
          clock.advance(idle);
          const cost = (t: (typeof targets)[number]) => {
            const l = t.load;
            const value = l !== undefined && l.samples !== 0 ? l.value : defaultRtt;
            const stamp = l === undefined ? builtAt : l.stamp;
            return value * Math.exp(-(clock.now() - stamp) / decayMs) * (t.inFlight + 1);
          };
          assertCheaperOfTwo({ picker, targets, draws: rec.draws, cost, clock, stepMs: 37, tolerance: 1e-9 });
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe('properties: hash policies are stable', () => {
  const hashKey = { header: 'x-key' };
  const policies = [
    ['ring-hash', () => ringHashPolicy.parseConfig({ hashKey, vnodesPerEndpoint: 64 })],
    ['maglev', () => maglevPolicy.parseConfig({ hashKey, tableSize: 4099 })],
  ] as const;
  const policyOf = (name: string) => (name === 'ring-hash' ? ringHashPolicy : maglevPolicy);

  for (const [name, config] of policies) {
    it(`${name}: two instances built from the same endpoints in any order, with any random source, route every key alike`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 30 }),
          fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 30 }),
          seedArb,
          fc.array(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 50 }),
          (n, weights, seed, keys) => {
            const targets = makeTargets(n, weights);
            const policy = policyOf(name) as typeof ringHashPolicy;
            const cfg = config() as never;
            const a = policy.build(targets, cfg, env(seed));
            const b = policy.build(shuffled(targets, seededRandom(seed + 1)), cfg, env(seed + 2));
            for (const key of keys) {
              const c = ctxWith({ 'x-key': key });
              assert.equal(pickKey(a, c), pickKey(b, c));
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  }

  it('ring-hash: removing one endpoint moves only the keys it owned', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 20 }), fc.nat(), seedArb, (n, drop, seed) => {
        const cfg = ringHashPolicy.parseConfig({ hashKey, vnodesPerEndpoint: 64, minRingSize: 1 });
        const targets = makeTargets(n);
        const removed = targets[drop % n]!;
        const before = ringHashPolicy.build(targets, cfg, env(seed));
        const after = ringHashPolicy.build(
          targets.filter((t) => t !== removed),
          cfg,
          env(seed),
        );
        for (let k = 0; k < 300; k++) {
          const c = ctxWith({ 'x-key': `key-${seed}-${k}` });
          const was = pickKey(before, c);
          if (was !== removed.key) assert.equal(pickKey(after, c), was);
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('ring-hash rebuilds from its virtual-node cache', () => {
  // Each step: a subset of a universe of endpoints, some with a changed weight. A ring rebuilt through one config's
  // cache (ejections filter, returns and new endpoints merge) must equal one built from scratch.
  it('a ring rebuilt through the cache equals a ring built from scratch, step after step', () => {
    const universe = 14;
    const stepArb = fc.record({
      members: fc.subarray(
        Array.from({ length: universe }, (_, i) => i),
        { minLength: 1 },
      ),
      heavier: fc.subarray(
        Array.from({ length: universe }, (_, i) => i),
        { maxLength: 3 },
      ),
    });
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 40 }), (steps, v) => {
        const cfg = ringHashPolicy.parseConfig({ hashKey: { header: 'x-key' }, vnodesPerEndpoint: v, minRingSize: 1 });
        for (const { members, heavier } of steps) {
          const weights = Array.from({ length: universe }, (_, i) => (heavier.includes(i) ? 3 : 1));
          const all = makeTargets(universe, weights);
          const targets = members.map((i) => all[i]!);
          const warm = ringHashPolicy.build(targets, cfg, env(1)) as RingHashPicker<Pickable>;
          const sorted = [...targets].sort((a, b) => (a.key < b.key ? -1 : 1));
          const counts = ringVnodeCounts(new Float64Array(sorted.map((t) => t.endpoint.weight)), cfg);
          const cold = buildRing(
            sorted.map((t) => t.key),
            counts,
          );
          assert.deepEqual(warm.hashes, cold.hashes);
          assert.deepEqual(
            Array.from(warm.owners, (o) => warm.targets[o]!.key),
            Array.from(cold.owners, (o) => sorted[o]!.key),
          );
        }
      }),
      { numRuns: 60 },
    );
  });

  it('breaks equal positions by key order whichever endpoint arrived first', () => {
    // 200000 virtual nodes each: these two endpoints collide at 11 positions (about 200000^2 / 2^32), enough to
    // check that the merge orders a collision by key, as a build from scratch does, not by arrival.
    const counts = Uint32Array.of(200_000, 200_000);
    const reference = buildRing(['10.0.0.1:8080', '10.0.0.2:8080'], counts);
    let collisions = 0;
    for (let i = 1; i < reference.hashes.length; i++) {
      if (reference.hashes[i] === reference.hashes[i - 1] && reference.owners[i] !== reference.owners[i - 1])
        collisions++;
    }
    assert.ok(collisions > 0, 'the fixture has collisions to order');
    const cache = new VnodeCache();
    cache.ring(['10.0.0.2:8080'], Uint32Array.of(200_000));
    const merged = cache.ring(['10.0.0.1:8080', '10.0.0.2:8080'], counts);
    assert.deepEqual(
      merged,
      Uint32Array.from({ length: merged.length }, (_, j) =>
        j % 2 === 0 ? reference.hashes[j >> 1]! : reference.owners[j >> 1]!,
      ),
    );
  });

  it('stays within twice the ring it serves (plus 65536 entries) however many endpoints pass through', () => {
    const cache = new VnodeCache();
    const counts = new Uint32Array(100).fill(1024);
    for (let round = 0; round < 5; round++) {
      const keys = Array.from({ length: 100 }, (_, i) => `10.${round}.0.${i}:80`).sort();
      assert.equal(cache.ring(keys, counts).length, 2 * 102_400);
      assert.ok(cache.size <= 2 * 102_400 + 65_536, `cache holds ${cache.size}`);
    }
  });
});

describe('properties: only eligible targets are picked', () => {
  it('no policy ever picks a target outside the set it was built over (ejected or non-ready endpoints)', () => {
    const registry = createPickerRegistry();
    const all = makeTargets(12, [1, 2, 3, 1, 5, 1, 1, 2, 1, 4, 1, 1]);
    fc.assert(
      fc.property(
        fc.constantFrom(...registry.names()),
        fc.subarray(all, { minLength: 1 }),
        fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 12, maxLength: 12 }),
        seedArb,
        (name, eligible, loads, seed) => {
          all.forEach((t, i) => {
            t.inFlight = loads[i]!;
          });
          const extra = name === 'ring-hash' || name === 'maglev' ? { hashKey: { header: 'x-key' } } : {};
          const { policy, config } = registry.configure({ name, ...extra });
          const picker = policy.build(eligible, config, env(seed)) as Picker;
          const allowed = new Set(eligible.map((t) => t.key));
          for (let i = 0; i < 100; i++) {
            const c = ctxWith(i % 3 === 0 ? null : { 'x-key': `k${i}` });
            const key = pickKey(picker, c);
            assert.ok(allowed.has(key), `${name} picked ${key}, outside the set`);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('properties: weighted least-request against a reference', () => {
  /**
   * The documented algorithm, spelled out: `choices` draws from the alias table over the tilted probabilities (one
   * random number each: integer part the column, fraction the coin), and the lowest `(inFlight + 1)^bias / weight`
   * wins, the first drawn on a tie. The picker's unrolled two-choice path and its loop must both be exactly this.
   */
  function reference(
    targets: readonly { inFlight: number }[],
    weights: readonly number[],
    choices: number,
    bias: number,
    draws: readonly number[],
  ): number {
    const n = weights.length;
    const max = Math.max(...weights);
    const inverse = Float64Array.from(weights, (w) => max / w);
    const { threshold, table } = aliasTable(drawProbabilities(inverse, choices));
    let best = -1;
    let bestScore = Number.POSITIVE_INFINITY;
    for (const r of draws) {
      const x = r * n;
      const col = Math.min(Math.floor(x), n - 1);
      // The picker keeps thresholds as float32 (one cache line a column).
      const i = x - col < Math.fround(threshold[col]!) ? col : table[2 * col + 1]!;
      const score = (targets[i]!.inFlight + 1) ** bias * inverse[i]!;
      if (score < bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }

  it('picks exactly what the reference picks from the same random numbers (two choices unrolled, three looped; plain targets and subchannel-shaped)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 2, maxLength: 40 }).filter((w) => new Set(w).size > 1),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 40, maxLength: 40 }),
        fc.constantFrom(2, 3),
        fc.constantFrom(0.5, 1, 2),
        seedArb,
        fc.boolean(),
        (weights, loads, choiceCount, bias, seed, slotted) => {
          const targets = (slotted ? makeSlottedTargets : makeTargets)(weights.length, weights);
          targets.forEach((t, i) => {
            t.inFlight = loads[i]!;
          });
          const rec = recordingRandom(seed);
          const picker = leastRequestPolicy.build(
            targets,
            { choiceCount, activeRequestBias: bias },
            { random: rec.random, clock: new FakeClock() },
          );
          for (let p = 0; p < 100; p++) {
            rec.draws.length = 0;
            const chosen = pickKey(picker);
            assert.equal(rec.draws.length, choiceCount, 'one random number per draw');
            const expected = reference(targets, weights, choiceCount, bias, rec.draws);
            assert.equal(chosen, targets[expected]!.key, `pick ${p}`);
            targets[expected]!.inFlight++; // loads move, so ties and reversals both occur
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
