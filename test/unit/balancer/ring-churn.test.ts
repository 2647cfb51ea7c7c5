/**
 * Ring-hash builds under a stream of updates and across clusters (probe 5, "Scale"): a build under way is not
 * dropped for a newer set but lands, so rings keep landing and keys keep their endpoints while updates come faster
 * than a build; each cluster (balancer) has a cache of virtual nodes of its own, even when clusters share one parsed
 * configuration (discovery's clusters from a template), and closing one releases it. Turns are run by hand (the
 * balancer's `defer` hook); what is counted is rings landed, keys moved and virtual nodes hashed, never time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BalancedHost, Balancer } from '../../../src/balancer/balancer.js';
import { createEndpoint } from '../../../src/common/endpoint.js';
import type { ConfiguredPolicy, PickContext, PickerPolicy } from '../../../src/pickers/picker.js';
import { createPickerRegistry } from '../../../src/pickers/registry.js';
import { ringHashPolicy } from '../../../src/pickers/ring-hash.js';
import { VnodeHasher } from '../../../src/pickers/ring-vnodes.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';
import { manualTurns } from '../../helpers/manual-turns.js';

interface Host extends BalancedHost {
  usable: boolean;
}

const made = new Map<number, Host>();
/** Endpoint `i` (the same object each time, as a cluster's subchannel). */
function host(i: number): Host {
  let h = made.get(i);
  if (h === undefined) {
    const endpoint = createEndpoint({ host: `10.2.${i >> 8}.${i & 255}`, port: 80 });
    h = { key: endpoint.key, endpoint, inFlight: 0, usable: true, weightFactor: 1 };
    made.set(i, h);
  }
  return h;
}
const range = (from: number, n: number): Host[] => Array.from({ length: n }, (_, i) => host(from + i));

const keyed = (i: number): PickContext => ({
  method: 'GET',
  path: '/',
  authority: 'svc',
  headers: { 'x-user': `u${i}` },
});
const none: ReadonlySet<Host> = new Set();

const turns = manualTurns();

const turn = (): boolean => turns.turn();

/** Ring hash wrapped to count the builds that finish (a step returning the picker), as the probe observed them. */
function counted(): { policy: ConfiguredPolicy; landed: () => number } {
  let landed = 0;
  const wrapped: PickerPolicy<unknown> = {
    ...(ringHashPolicy as PickerPolicy<unknown>),
    name: 'ring-hash-counted',
    startBuild(targets, config, env) {
      const build = (ringHashPolicy as PickerPolicy<unknown>).startBuild?.(targets, config, env);
      assert.ok(build !== undefined);
      return {
        step: (budget) => {
          const picker = build.step(budget);
          if (picker !== undefined) landed++;
          return picker;
        },
        interim: () => build.interim?.() ?? { pick: () => ({ type: 'queue' }) },
      };
    },
  };
  const policy = createPickerRegistry()
    .register(wrapped)
    .configure({ name: wrapped.name, hashKey: { header: 'x-user' } });
  return { policy, landed: () => landed };
}

function balancer(policy: ConfiguredPolicy, seed = 2): Balancer<Host> {
  return new Balancer<Host>({
    cluster: 'svc',
    policy,
    environment: { random: seededRandom(seed), clock: new FakeClock() },
    random: seededRandom(seed + 1),
    zone: undefined,
    panicThreshold: 0,
    eligible: () => true,
    onPanic: () => {},
  });
}

function keyOf(picked: Host | Error | undefined): Host {
  assert.ok(picked !== undefined && !(picked instanceof Error), 'a pick');
  return picked;
}

/** Virtual nodes hashed while `fn` runs (every ring entry of every build is hashed through `VnodeHasher`). */
function hashed(fn: () => void): number {
  const original = VnodeHasher.prototype.hash;
  let entries = 0;
  VnodeHasher.prototype.hash = function (count, ...rest) {
    entries += count;
    return original.call(this, count, ...rest);
  };
  try {
    fn();
  } finally {
    VnodeHasher.prototype.hash = original;
  }
  return entries;
}

describe('ring hash under a stream of updates faster than a build', () => {
  it('lands rings while 1 % of the set changes every few turns, and keys stay on endpoints still in the set', () => {
    const { policy, landed } = counted();
    const b = balancer(policy);
    const random = seededRandom(7);
    const ids = range(0, 200).map((_, i) => i); // 200 x 1024 virtual nodes: a ring built in many steps
    let next = 200;
    b.rebuild(ids.map(host));
    while (turn());
    const before = landed();
    let turnsPerBuild = 0;
    // One build of a 1 % change alone, for scale: the stream below sends updates several times faster.
    for (let j = 0; j < 2; j++) ids[Math.floor(random() * ids.length)] = next++;
    b.rebuild(ids.map(host));
    while (turn()) turnsPerBuild++;
    assert.ok(turnsPerBuild > 40, `${turnsPerBuild} turns a build`);
    const landedBefore = landed();
    assert.equal(landedBefore, before + 1);

    const KEYS = 100;
    let previous = Array.from({ length: KEYS }, (_, k) => keyOf(b.pick(keyed(k), undefined, none)));
    let picks = 0;
    let movedStaying = 0;
    const updates = 60;
    for (let u = 0; u < updates; u++) {
      for (let j = 0; j < 2; j++) ids[Math.floor(random() * ids.length)] = next++;
      const set = ids.map(host);
      b.rebuild(set);
      const live = new Set(set);
      // Updates every turnsPerBuild / 8 turns: eight updates arrive while one build runs.
      for (let t = 0; t < turnsPerBuild / 8; t++) {
        turn();
        const round = Array.from({ length: KEYS }, (_, k) => keyOf(b.pick(keyed(k), undefined, none)));
        for (let k = 0; k < KEYS; k++) {
          const picked = round[k] as Host;
          assert.ok(live.has(picked), `key ${k} went to ${picked.key}, not in the set`);
          picks++;
          if (picked !== previous[k] && live.has(previous[k] as Host)) movedStaying++;
        }
        previous = round;
      }
    }
    const during = landed() - landedBefore;
    // Each build that starts finishes: about one ring per turnsPerBuild turns (the stream lasts 60 / 8 of those).
    assert.ok(during >= 4, `${during} rings landed during the stream`);
    // A key moves while its endpoint stays only to an endpoint that joined (about 1 % of the keys per update).
    assert.ok(movedStaying <= picks * 0.01, `${movedStaying} of ${picks} picks moved off an endpoint still in the set`);
    while (turn());
    assert.equal(b.building, false);
  });

  it('serves a key whose endpoint left from the next entry of the previous ring, as the new ring will', () => {
    const { policy } = counted();
    const b = balancer(policy);
    const all = range(1000, 200);
    b.rebuild(all);
    while (turn());
    const kept = all.slice(20);
    b.rebuild(kept);
    assert.equal(b.building, true);
    const during = Array.from({ length: 300 }, (_, k) => keyOf(b.pick(keyed(k), undefined, none)));
    while (turn());
    assert.equal(b.building, false);
    const after = Array.from({ length: 300 }, (_, k) => keyOf(b.pick(keyed(k), undefined, none)));
    // Nothing joined: the ring without the 20 endpoints sends every key where the previous ring's walk did.
    assert.deepEqual(
      during.map((h) => h.key),
      after.map((h) => h.key),
    );
  });
});

describe('ring-hash caches of virtual nodes', () => {
  it('are one per cluster, even when clusters share one parsed configuration (discovery)', () => {
    const { policy } = counted(); // one ConfiguredPolicy, as a discovery template's clusters have
    const clusters = [0, 1, 2].map((c) => balancer(policy, 10 + c));
    const sets = [0, 1, 2].map((c) => range(2000 + 1000 * c, 200));
    for (let c = 0; c < 3; c++) {
      clusters[c]?.rebuild(sets[c] as Host[]);
      while (turn());
    }
    // One endpoint of the first cluster replaced: its own 1,024 virtual nodes are hashed, nothing else.
    const a = clusters[0] as Balancer<Host>;
    const entries = hashed(() => {
      a.rebuild([...(sets[0] as Host[]).slice(1), host(5000)]);
      while (turn());
    });
    assert.equal(entries, 1024);
  });

  it('are released when the cluster closes (clear)', () => {
    const { policy } = counted();
    const b = balancer(policy);
    const all = range(7000, 200);
    b.rebuild(all);
    while (turn());
    b.clear();
    // What is rebuilt after clear() starts from nothing cached: the balancer holds the old cache no more.
    const entries = hashed(() => {
      b.rebuild(all);
      while (turn());
    });
    assert.ok(entries >= 200 * 1024, `${entries} virtual nodes hashed`);
  });
});
