import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { Endpoint } from '../../../src/common/endpoint.js';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { AllEjectedError } from '../../../src/common/request-errors.js';
import { OutlierDetector, resolveOutlierDetectionOptions } from '../../../src/health/outlier-detector.js';
import type { Picker } from '../../../src/pickers/picker.js';
import { buildSnapshot, EMPTY, pickFrom, type Snapshot, type SnapshotInput } from '../../../src/balancer/snapshot.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

describe('snapshot builder: priority levels, panic and zones', () => {
  interface Host {
    readonly key: string;
    readonly endpoint: Endpoint;
    readonly inFlight: number;
    up: boolean;
    ejected: boolean;
  }
  let port = 1000;
  const host = (priority: number, zone?: string): Host => ({
    key: `10.0.0.1:${++port}`,
    endpoint: createEndpoint({ host: '10.0.0.1', port, priority, zone }),
    inFlight: 0,
    up: true,
    ejected: false,
  });
  const hosts = (n: number, priority: number, zone?: string) => Array.from({ length: n }, () => host(priority, zone));
  // A stub policy: round robin over its group, so a group's picks spread evenly over its members.
  const build = (group: readonly Host[]): Picker<Host> => {
    let next = 0;
    return { pick: () => ({ type: 'complete', target: group[next++ % group.length] as Host }) };
  };
  const snapshot = (population: readonly Host[], over: Partial<SnapshotInput<Host>> = {}) =>
    buildSnapshot<Host>({
      population,
      usable: (h) => h.up,
      eligible: (h) => !h.ejected,
      panicThreshold: 50,
      zone: undefined,
      build,
      noneEligible: () => new AllEjectedError('svc'),
      ...over,
    });
  const ctx = { method: 'GET', path: '/', authority: 'svc', headers: null };
  // Share of `n` seeded picks landing on each label (`p0`, `a`, ...).
  const shares = (snap: Snapshot<Host>, label: (h: Host) => string, n = 20_000): Record<string, number> => {
    const random = seededRandom(11);
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const r = pickFrom(snap, ctx, random);
      assert.equal(r?.type, 'complete');
      const l = label((r as { target: Host }).target);
      counts.set(l, (counts.get(l) ?? 0) + 1);
    }
    // Defined, not assigned: a label may be `__proto__`.
    const out: Record<string, number> = {};
    for (const [k, v] of counts) Object.defineProperty(out, k, { value: v / n, enumerable: true, writable: true });
    return out;
  };
  const byLevel = (h: Host) => `p${h.endpoint.priority}`;
  const byZone = (h: Host) => h.endpoint.zone ?? '-';
  // 20000 draws: one standard deviation of a share is at most 0.0036; allow 5.
  const about = (actual: number | undefined, expected: number, what: string) =>
    assert.ok(Math.abs((actual ?? 0) - expected) < 0.018, `${what}: ${actual} vs ${expected}`);
  const panicOf = (snap: Snapshot<Host>) => snap.kind === 'slots' && snap.panic;

  it('B1 regression: P0 all ejected and P1 healthy under the default threshold sends everything to P1', () => {
    const p0 = hosts(4, 0);
    for (const h of p0) h.ejected = true;
    const snap = snapshot([...p0, ...hosts(2, 1)]);
    assert.deepEqual(shares(snap, byLevel), { p1: 1 });
    assert.equal(panicOf(snap), false);
  });

  it('B2 regression: endpoints refusing connections count against their level (1 of 4 P0 up: 35/65)', () => {
    const p0 = hosts(4, 0);
    for (const h of p0.slice(1)) h.up = false;
    const s = shares(snapshot([...p0, ...hosts(2, 1)], { panicThreshold: 0 }), byLevel);
    about(s.p0, 0.35, 'P0');
    about(s.p1, 0.65, 'P1');
  });

  it('a level in panic balances over all its reachable endpoints, ejected ones included', () => {
    const level = hosts(10, 0);
    for (const h of level.slice(0, 6)) h.ejected = true;
    const snap = snapshot(level);
    assert.equal(panicOf(snap), true, '4 of 10 eligible');
    const keys = shares(snap, (h) => h.key, 1000);
    assert.equal(Object.keys(keys).length, 10);
  });

  it('with the threshold off and nothing eligible, fails with the noneEligible error', () => {
    const level = hosts(3, 0);
    for (const h of level) h.ejected = true;
    const snap = snapshot(level, { panicThreshold: 0 });
    assert.equal(snap.kind, 'fail');
  });

  const zone = { localZone: 'a', minClusterSize: 1 };

  it('zones: partial spill when 1 of 2 local endpoints is ejected (2/3 local, 1/3 remote)', () => {
    const a = hosts(2, 0, 'a');
    (a[0] as Host).ejected = true;
    const s = shares(snapshot([...a, ...hosts(2, 0, 'b')], { zone }), byZone);
    about(s.a, 2 / 3, 'local');
    about(s.b, 1 / 3, 'remote');
  });

  it('zones: traffic returns to the local zone when the ejected endpoint returns (fake clock)', () => {
    const clock = new FakeClock();
    const a = hosts(2, 0, 'a');
    const population = [...a, ...hosts(2, 0, 'b')];
    const current: { snap: Snapshot<Host> } = { snap: EMPTY };
    const detector = new OutlierDetector<Host>(
      resolveOutlierDetectionOptions({ maxEjectionPercent: 100, baseEjectionTimeMs: 30_000 }) ?? assert.fail(),
      {
        clock,
        random: seededRandom(5),
        onReturn: () => {
          current.snap = snapshot(population, { zone, eligible: (h) => !detector.isEjected(h) });
        },
      },
    );
    detector.setHosts(population);
    detector.eject(a[0] as Host);
    current.snap = snapshot(population, { zone, eligible: (h) => !detector.isEjected(h) });
    about(shares(current.snap, byZone).a, 2 / 3, 'while ejected');
    clock.advance(40_000);
    assert.equal(detector.isEjected(a[0] as Host), false, 'returned after the ejection time');
    assert.deepEqual(shares(current.snap, byZone), { a: 1 }, 'back to local');
    detector.close();
  });

  it('zones: the default minClusterSize of 6 eligible endpoints turns preference off below it', () => {
    const small = [...hosts(2, 0, 'a'), ...hosts(3, 0, 'b')];
    const off = shares(snapshot(small, { zone: { localZone: 'a' } }), byZone);
    about(off.a, 2 / 5, 'five endpoints: balanced over all');
    const big = [...hosts(3, 0, 'a'), ...hosts(3, 0, 'b')];
    assert.deepEqual(shares(snapshot(big, { zone: { localZone: 'a' } }), byZone), { a: 1 }, 'six: local');
    (big[5] as Host).ejected = true;
    about(shares(snapshot(big, { zone: { localZone: 'a' } }), byZone).a, 3 / 5, 'five eligible of six: off again');
  });

  it("the README's zone example holds: 2 + 2 with one local ejected keep 2/3 local under the minClusterSize it names, 1/3 by default", async () => {
    const readme = (await readFile(new URL('../../../README.md', import.meta.url), 'utf8')).replace(/\s+/g, ' ');
    const example = /with `minClusterSize: (\d+)` 2 \+ 2 endpoints with one local ejected keep 2\/3 local/.exec(readme);
    assert.ok(example, 'README names the minClusterSize under which its 2 + 2 example holds');
    const a = hosts(2, 0, 'a');
    (a[0] as Host).ejected = true;
    const level = [...a, ...hosts(2, 0, 'b')];
    const minClusterSize = Number(example[1]);
    about(shares(snapshot(level, { zone: { localZone: 'a', minClusterSize } }), byZone).a, 2 / 3, 'as the README says');
    about(shares(snapshot(level, { zone: { localZone: 'a' } }), byZone).a, 1 / 3, 'default: off, balanced over 3');
  });

  it('zones: no preference within a level in panic', () => {
    const a = hosts(4, 0, 'a');
    for (const h of a) h.ejected = true;
    const snap = snapshot([...a, ...hosts(2, 0, 'b')], { zone });
    assert.equal(panicOf(snap), true, '2 of 6 eligible');
    about(shares(snap, byZone).a, 4 / 6, 'all six balanced alike');
  });

  it('priority and zones together: the level load is split by zone inside the level', () => {
    // P0: a has 3 (2 ejected), b has 3 (1 ejected): 3 of 6 healthy, 70 % on P0, 30 % on P1. Within P0, zone a
    // holds 1/3 of the healthy endpoints for 1/2 of the callers: 2/3 of P0's share stays in a.
    const a = hosts(3, 0, 'a');
    const b = hosts(3, 0, 'b');
    (a[0] as Host).ejected = true;
    (a[1] as Host).ejected = true;
    (b[0] as Host).ejected = true;
    const s = shares(snapshot([...a, ...b, ...hosts(2, 1, 'a')], { zone }), (h) => `${byLevel(h)}${byZone(h)}`);
    about(s.p0a, 0.7 * (2 / 3), 'P0 local');
    about(s.p0b, 0.7 * (1 / 3), 'P0 remote');
    about(s.p1a, 0.3, 'P1');
  });

  it('zones: callers concentrated in the local zone cap what one local endpoint of 7 takes', () => {
    const population = [...hosts(1, 0, 'a'), ...hosts(6, 0, 'b')];
    assert.deepEqual(shares(snapshot(population, { zone }), byZone), { a: 1 }, 'callers spread like endpoints');
    const s = shares(snapshot(population, { zone: { ...zone, callers: { a: 1, b: 1 } } }), byZone);
    about(s.a, 2 / 7, 'half the callers in zone a');
  });

  it('zones named after Object.prototype members (from a registry) have no callers, like any zone left out', () => {
    // Callers in a (3) and d (1); one endpoint in each of a, b, c, d: d is full, a's spill goes to b and c.
    const callers = { a: 3, d: 1 };
    const plain = shares(
      snapshot([...hosts(1, 0, 'a'), ...hosts(1, 0, 'b'), ...hosts(1, 0, 'c'), ...hosts(1, 0, 'd')], {
        zone: { ...zone, callers },
      }),
      byZone,
    );
    about(plain.a, 1 / 3, 'local');
    about(plain.b, 1 / 3, 'b');
    about(plain.c, 1 / 3, 'c');
    assert.ok(!Object.hasOwn(plain, 'd'), 'd has no spare capacity');
    for (const name of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__']) {
      const s = shares(
        snapshot([...hosts(1, 0, 'a'), ...hosts(1, 0, 'b'), ...hosts(1, 0, name), ...hosts(1, 0, 'd')], {
          zone: { ...zone, callers },
        }),
        byZone,
      );
      about(s.a, 1 / 3, `local, with a zone named ${name}`);
      about(Object.hasOwn(s, name) ? s[name] : 0, 1 / 3, name);
      assert.ok(!Object.hasOwn(s, 'd'), `d still gets nothing with a zone named ${name}`);
    }
  });
});
