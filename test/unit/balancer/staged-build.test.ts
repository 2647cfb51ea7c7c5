/**
 * Picker builds in steps (issue 14, "Scale": a large ring-hash or maglev build must not stall the event loop): the
 * ring-hash build's work per step is bounded, its result is the synchronous build's, and the balancer serves live eligible
 * endpoints while one runs, drops a superseded one, stops on clear() (close) and serves at once on a first build.
 * Turns are run by hand (the balancer's `defer` hook), never timed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BalancedHost, Balancer } from '../../../src/balancer/balancer.js';
import { pickerSlicing, stepBudget } from '../../../src/balancer/staged.js';
import { createEndpoint } from '../../../src/common/endpoint.js';
import type { Pickable, PickContext, PickerPolicy } from '../../../src/pickers/picker.js';
import { createPickerRegistry } from '../../../src/pickers/registry.js';
import { PickerError } from '../../../src/pickers/errors.js';
import { xxh32 } from '../../../src/pickers/hash.js';
import { buildMaglevTable, MaglevTableBuild, maglevPolicy } from '../../../src/pickers/maglev.js';
import { buildRing, RingBuild, type RingHashPicker, ringHashPolicy } from '../../../src/pickers/ring-hash.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';
import { manualTurns } from '../../helpers/manual-turns.js';

interface Host extends BalancedHost {
  usable: boolean;
}

function hosts(n: number, from = 0, metadata: Record<string, string> = {}): Host[] {
  return Array.from({ length: n }, (_, i) => {
    const endpoint = createEndpoint({ host: `10.1.${(from + i) >> 8}.${(from + i) & 255}`, port: 80, metadata });
    return { key: endpoint.key, endpoint, inFlight: 0, usable: true, weightFactor: 1 };
  });
}

const env = { random: seededRandom(1), clock: new FakeClock() };
const keyed = (i: number): PickContext => ({
  method: 'GET',
  path: '/',
  authority: 'svc',
  headers: { 'x-user': `u${i}` },
});
const none: ReadonlySet<Host> = new Set();

const turns = manualTurns();

const turn = (): boolean => turns.turn();

function ringBalancer(eligible: (h: Host) => boolean = () => true) {
  return balancerOf({ name: 'ring-hash', hashKey: { header: 'x-user' } }, eligible);
}

function balancerOf(picker: { name: string } & Record<string, unknown>, eligible: (h: Host) => boolean = () => true) {
  const policy = createPickerRegistry().configure(picker);
  return new Balancer<Host>({
    cluster: 'svc',
    policy,
    environment: env,
    random: seededRandom(2),
    zone: undefined,
    panicThreshold: 0,
    eligible,
    onPanic: () => {},
  });
}

/** The synchronous ring-hash picker over `targets`, from a cache of its own. */
function syncPicker(targets: readonly Host[]): RingHashPicker<Host> {
  const config = ringHashPolicy.parseConfig({ hashKey: { header: 'x-user' } });
  return ringHashPolicy.build(targets, config, env) as RingHashPicker<Host>;
}

function keyOf(picked: Host | Error | undefined): string {
  assert.ok(picked !== undefined && !(picked instanceof Error), 'a pick');
  return picked.key;
}

describe('ring-hash build in steps', () => {
  it('places virtual node n of a key at xxh32(key_n), whatever the key length (prefix lanes) and digit count', () => {
    const keys = [
      'a:1',
      '10.0.0.1:8080',
      'abcdefghijklmn:1',
      'users-7.users.prod.svc.cluster.local:8080',
      'ü-é.local:80',
    ];
    for (const key of keys) {
      const { hashes } = buildRing([key], Uint32Array.of(1234));
      const expected = Array.from({ length: 1234 }, (_, n) => xxh32(new TextEncoder().encode(`${key}_${n}`)));
      assert.deepEqual(
        Array.from(hashes),
        expected.sort((a, b) => a - b),
        key,
      );
    }
  });

  it('touches at most about one budget of ring entries per step, and ends with the synchronous ring', () => {
    const targets = hosts(300); // 1024 virtual nodes each: 307,200 entries
    const config = ringHashPolicy.parseConfig({ hashKey: { header: 'x-user' } });
    const build = ringHashPolicy.startBuild?.(targets, config, env) as RingBuild<Host>;
    assert.ok(build instanceof RingBuild);
    let picker: RingHashPicker<Host> | undefined;
    let steps = 0;
    for (; picker === undefined && steps < 10_000; steps++) {
      const before = build.work;
      picker = build.step(4096);
      // One budget, plus at most one fixed-size piece (a 65,536-entry prefix sum or one large allocation) and the
      // per-endpoint setup (300 keys).
      assert.ok(build.work - before <= 4096 + 65_536 + 300, `step ${steps}: ${build.work - before} entries`);
    }
    assert.ok(picker !== undefined);
    assert.ok(steps > 300_000 / 4096, `${steps} steps`);
    const sorted = [...targets].sort((a, b) => (a.key < b.key ? -1 : 1));
    const reference = buildRing(
      sorted.map((t) => t.key),
      new Uint32Array(300).fill(1024),
    );
    assert.deepEqual(picker.hashes, reference.hashes);
    assert.deepEqual(picker.owners, Int32Array.from(reference.owners));
    // Lookups agree with the synchronous build's (its own bucket index, not the one counted in steps).
    const sync = syncPicker(targets);
    const stepped: RingHashPicker<Host> = picker;
    for (let i = 0; i < 2000; i++) {
      const a = stepped.pick(keyed(i));
      const b = sync.pick(keyed(i));
      assert.equal(a.type === 'complete' && a.target.key, b.type === 'complete' && b.target.key);
    }
  });
});

describe('Balancer with a policy that builds in steps', () => {
  it('serves at once on a first build (at random, then a coarse ring), then swaps the full ring in', () => {
    const b = ringBalancer();
    const all = hosts(200);
    b.rebuild(all);
    assert.equal(b.building, true);
    const members = new Set(all);
    for (let i = 0; i < 200; i++) assert.ok(members.has(b.pick(keyed(i), undefined, none) as Host));
    // At random at first, then (after the coarse ring's few steps) by the coarse ring: the same key, the same
    // endpoint, well before the full ring lands.
    const steady = (): boolean => {
      const one = b.pick(keyed(7), undefined, none);
      for (let i = 0; i < 20; i++) if (b.pick(keyed(7), undefined, none) !== one) return false;
      return true;
    };
    let n = 0;
    let coarseAt = -1;
    while (turn()) {
      n++;
      if (coarseAt < 0 && steady()) coarseAt = n;
      if (coarseAt >= 0) assert.ok(steady(), `turn ${n}: the coarse ring serves from turn ${coarseAt} on`);
    }
    assert.ok(coarseAt > 0 && coarseAt < n / 2, `coarse ring from turn ${coarseAt} of ${n}`);
    assert.equal(b.building, false);
    const sync = syncPicker(all);
    for (let i = 0; i < 500; i++) {
      const r = sync.pick(keyed(i));
      assert.equal(keyOf(b.pick(keyed(i), undefined, none)), r.type === 'complete' && r.target.key);
    }
  });

  it('while a rebuild runs, the previous ring serves what still is eligible and nothing else', () => {
    const ejected = new Set<Host>();
    const b = ringBalancer((h) => !ejected.has(h));
    const all = hosts(200);
    b.rebuild(all);
    while (turn());
    const before = syncPicker(all);
    for (const h of all.slice(0, 20)) ejected.add(h);
    b.rebuild(all);
    assert.equal(b.building, true);
    let during = 0;
    while (turns.pending > 0) {
      for (let i = 0; i < 50; i++) {
        const key = keyOf(b.pick(keyed(i), undefined, none));
        const picked = all.find((h) => h.key === key) as Host;
        assert.ok(!ejected.has(picked), `picked ${key}, ejected`);
        const prev = before.pick(keyed(i));
        // A key whose endpoint is still eligible keeps it through the rebuild.
        if (prev.type === 'complete' && !ejected.has(prev.target)) assert.equal(key, prev.target.key);
        during++;
      }
      turn();
    }
    assert.ok(during > 500);
    const after = syncPicker(all.filter((h) => !ejected.has(h)));
    for (let i = 0; i < 500; i++) {
      const r = after.pick(keyed(i));
      assert.equal(keyOf(b.pick(keyed(i), undefined, none)), r.type === 'complete' && r.target.key);
    }
  });

  it('never picks an endpoint removed from the set while the rebuild runs', () => {
    const b = ringBalancer();
    const all = hosts(200);
    b.rebuild(all);
    while (turn());
    const kept = all.slice(50);
    b.rebuild(kept);
    const live = new Set(kept);
    for (let t = 0; turns.pending > 0 && t < 10_000; t++) {
      for (let i = 0; i < 20; i++) assert.ok(live.has(b.pick(keyed(t * 20 + i), undefined, none) as Host));
      turn();
    }
    assert.equal(b.building, false);
  });

  it('drops a build superseded by a newer rebuild: the newer set lands, never the older', () => {
    const b = ringBalancer();
    const first = hosts(200);
    b.rebuild(first);
    for (let i = 0; i < 5; i++) turn();
    assert.equal(b.building, true);
    const second = hosts(150, 1000);
    b.rebuild(second);
    assert.equal(turns.pending, 1, 'one turn scheduled, for the newer build only');
    const live = new Set(second);
    let n = 0;
    while (turn()) {
      assert.ok(live.has(b.pick(keyed(n), undefined, none) as Host));
      n++;
    }
    assert.equal(b.building, false);
    const sync = syncPicker(second);
    for (let i = 0; i < 300; i++) {
      const r = sync.pick(keyed(i));
      assert.equal(keyOf(b.pick(keyed(i), undefined, none)), r.type === 'complete' && r.target.key);
    }
  });

  it("builds a route subset's ring in steps too, its snapshot from before the rebuild serving meanwhile", () => {
    const route = { subset: { tier: 'a' }, subsetFallback: 'fail' as const };
    const tierA = hosts(150, 0, { tier: 'a' });
    const all = [...tierA, ...hosts(50, 500)];
    const b = ringBalancer();
    b.rebuild(all);
    while (turn());
    // First use: built in steps, served at once by its coarse ring.
    assert.ok(tierA.includes(b.pick(keyed(1), route, none) as Host));
    assert.equal(b.building, true);
    while (turn());
    const full = syncPicker(tierA);
    for (let i = 0; i < 200; i++) {
      const r = full.pick(keyed(i));
      assert.equal(keyOf(b.pick(keyed(i), route, none)), r.type === 'complete' && r.target.key);
    }
    // Ten of the subset leave: its previous ring serves the others' keys while the new one is built.
    const left = tierA.slice(10);
    b.rebuild([...left, ...all.slice(150)]);
    while (turn());
    assert.ok(left.includes(b.pick(keyed(0), route, none) as Host));
    assert.equal(b.building, true);
    let during = 0;
    while (turns.pending > 0) {
      for (let i = 0; i < 30; i++) {
        const key = keyOf(b.pick(keyed(i), route, none));
        assert.ok(
          left.some((h) => h.key === key),
          `${key} is not in the subset any more`,
        );
        const was = full.pick(keyed(i));
        if (was.type === 'complete' && left.includes(was.target)) assert.equal(key, was.target.key);
        during++;
      }
      turn();
    }
    assert.ok(during > 300);
  });

  it('reuses the ring of a rebuild over the same ring: at once when built, where it stands when under way', () => {
    const b = ringBalancer();
    const all = hosts(200);
    b.rebuild(all);
    let fresh = 0;
    while (turn()) fresh++;
    // The same endpoints again (a slow-start step, a change elsewhere): the ring built is taken on the next turn.
    b.rebuild(all);
    assert.equal(turns.pending, 1);
    turn();
    assert.equal(b.building, false);
    // A new ring, superseded after 5 turns by a rebuild of the same ring: the second build goes on from there.
    const fewer = all.slice(1);
    b.rebuild(fewer);
    let first = 0;
    for (; first < 5 && turn(); first++);
    b.rebuild(fewer);
    let rest = 0;
    while (turn()) rest++;
    b.rebuild(all.slice(2));
    let alone = 0;
    while (turn()) alone++;
    assert.ok(first + rest <= alone + 1, `${first} + ${rest} turns, against ${alone} for a build alone`);
    assert.ok(fresh > alone, 'a fresh ring hashes; a ring of cached endpoints only filters');
  });

  it("gives a process's first steps a smaller budget, while V8 has not optimized the build's code", () => {
    pickerSlicing.budget = 32_768;
    pickerSlicing.stepsRun = 0;
    const budgets = Array.from({ length: 48 }, () => stepBudget());
    assert.deepEqual(
      [0, 8, 16, 24, 32, 40].map((i) => budgets[i]),
      [2048, 4096, 8192, 16_384, 32_768, 32_768],
    );
  });

  it('stops on clear() (the cluster closing): no turn left, nothing swapped in', () => {
    const b = ringBalancer();
    b.rebuild(hosts(200));
    turn();
    assert.equal(b.building, true);
    b.clear();
    assert.equal(b.building, false);
    assert.equal(turns.pending, 0);
    assert.equal(b.pick(keyed(1), undefined, none), undefined);
  });

  it('builds a small ring at once, as before', () => {
    const b = ringBalancer();
    b.rebuild(hosts(3)); // 3,072 entries: within one step
    assert.equal(b.building, false);
    assert.equal(turns.pending, 0);
  });

  it('leaves a policy without startBuild exactly as it was: one synchronous build, no turn', () => {
    let builds = 0;
    const mine: PickerPolicy<undefined> = {
      name: 'mine',
      parseConfig: () => undefined,
      build: <T extends Pickable>(targets: readonly T[]) => {
        builds++;
        return { pick: () => ({ type: 'complete' as const, target: targets[0] as T }) };
      },
    };
    const b = new Balancer<Host>({
      cluster: 'svc',
      policy: createPickerRegistry().register(mine).configure('mine'),
      environment: env,
      random: seededRandom(2),
      zone: undefined,
      panicThreshold: 0,
      eligible: () => true,
      onPanic: () => {},
    });
    const all = hosts(5000);
    b.rebuild(all);
    assert.equal(builds, 1);
    assert.equal(b.building, false);
    assert.equal(turns.pending, 0);
    assert.equal(b.pick(keyed(1), undefined, none), all[0]);
  });
});

describe('maglev build in steps', () => {
  const weights = (n: number, equal: boolean) => new Float64Array(n).map((_, i) => (equal ? 1 : 1 + (i % 5)));

  for (const equal of [true, false]) {
    it(`fills the same table as the synchronous build, about one budget of steps at a time (${equal ? 'equal' : 'unequal'} weights)`, () => {
      const keys = hosts(300)
        .map((h) => h.key)
        .sort();
      const m = 65_537;
      const build = new MaglevTableBuild(keys, weights(300, equal), m);
      let runs = 1;
      while (!build.run(4096)) runs++;
      // A table of m slots takes more than m steps (a claim visits one slot at least; walks are about m ln m in all).
      assert.ok(runs > m / 4096, `${runs} runs`);
      assert.deepEqual(build.table, buildMaglevTable(keys, weights(300, equal), m));
      assert.equal(build.run(4096), true, 'a full table stays full');
    });
  }

  it('in a balancer: a large table lands after some turns, the new set served at random meanwhile', () => {
    const b = balancerOf({ name: 'maglev', hashKey: { header: 'x-user' }, tableSize: 655_373 });
    const all = hosts(200);
    b.rebuild(all);
    assert.equal(b.building, true, 'a table of 655,373 slots is more than one step of 4096 x 16 walk steps');
    const members = new Set(all);
    let n = 0;
    do {
      for (let i = 0; i < 20; i++) assert.ok(members.has(b.pick(keyed(i), undefined, none) as Host));
      n++;
    } while (turn());
    assert.ok(n > 3, `${n} turns`);
    assert.equal(b.building, false);
    const config = maglevPolicy.parseConfig({ hashKey: { header: 'x-user' }, tableSize: 655_373 });
    const sync = maglevPolicy.build(all, config, env);
    for (let i = 0; i < 500; i++) {
      const r = sync.pick(keyed(i));
      assert.equal(keyOf(b.pick(keyed(i), undefined, none)), r.type === 'complete' && r.target.key);
    }
  });

  it('builds the default table (65,537 slots) at once, in the first step', () => {
    const b = balancerOf({ name: 'maglev', hashKey: { header: 'x-user' } });
    pickerSlicing.budget = 32_768;
    b.rebuild(hosts(1000));
    assert.equal(b.building, false);
    assert.equal(turns.pending, 0);
  });
});

describe("a custom staged build's malformed answers", { timeout: 10_000 }, () => {
  /** A balancer over a custom policy with `startBuild`; its `step()` answers `steps[n]` on the n-th call. */
  function staged(steps: readonly unknown[], interim?: () => unknown) {
    const policy: PickerPolicy<undefined> = {
      name: 'staged',
      parseConfig: () => undefined,
      build: <T extends Pickable>(t: readonly T[]) => ({
        pick: () => ({ type: 'complete' as const, target: t[0] as T }),
      }),
      startBuild: <T extends Pickable>(targets: readonly T[]) => {
        let n = 0;
        // Past `steps`, the build ends (a picker of the first target), so that no test loops for ever.
        const step = <T extends Pickable>(t: readonly T[]) =>
          n < steps.length ? steps[n++] : { pick: () => ({ type: 'complete' as const, target: t[0] as T }) };
        return { step: () => step(targets) as never, ...(interim && { interim: interim as never }) };
      },
    };
    return new Balancer<Host>({
      cluster: 'svc',
      policy: { policy: policy as PickerPolicy<unknown>, config: undefined },
      environment: env,
      random: seededRandom(2),
      zone: undefined,
      panicThreshold: 0,
      eligible: () => true,
      onPanic: () => {},
    });
  }

  it('an interim() that throws fails the picks with its error until the build lands; the rebuild does not throw', () => {
    const all = hosts(2);
    const boom = new Error('interim failed');
    const done = { pick: () => ({ type: 'complete' as const, target: all[1] as Host }) };
    const b = staged([undefined, undefined, done], () => {
      throw boom;
    });
    assert.doesNotThrow(() => b.rebuild(all));
    assert.equal(b.pick(keyed(0), undefined, none), boom);
    while (turn());
    assert.equal(b.building, false);
    assert.equal(b.pick(keyed(0), undefined, none), all[1], 'the finished picker is swapped in');
  });

  it('an interim() that returns no picker fails the picks with SIDECARLESS_PICKER_FAILED', () => {
    const b = staged([undefined, undefined], () => 42);
    b.rebuild(hosts(2));
    const picked = b.pick(keyed(0), undefined, none);
    assert.ok(picked instanceof PickerError, String(picked));
  });

  it('a first or a later step() returning a non-picker fails the picks with SIDECARLESS_PICKER_FAILED', () => {
    const first = staged([true]);
    assert.doesNotThrow(() => first.rebuild(hosts(2)));
    assert.ok(first.pick(keyed(0), undefined, none) instanceof PickerError);
    const later = staged([undefined, 42]);
    later.rebuild(hosts(2));
    assert.doesNotThrow(() => turn(), 'the deferred step does not throw');
    assert.equal(later.building, false);
    assert.ok(later.pick(keyed(0), undefined, none) instanceof PickerError);
  });

  it('a startBuild() that returns no build fails the picks with SIDECARLESS_PICKER_FAILED', () => {
    const policy: PickerPolicy<undefined> = {
      name: 'broken',
      parseConfig: () => undefined,
      build: () => ({ pick: () => ({ type: 'queue' as const }) }),
      startBuild: () => 5 as never,
    };
    const b = new Balancer<Host>({
      cluster: 'svc',
      policy: { policy: policy as PickerPolicy<unknown>, config: undefined },
      environment: env,
      random: seededRandom(2),
      zone: undefined,
      panicThreshold: 0,
      eligible: () => true,
      onPanic: () => {},
    });
    b.rebuild(hosts(1));
    assert.ok(b.pick(keyed(0), undefined, none) instanceof PickerError);
  });
});
