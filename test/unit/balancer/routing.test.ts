import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, type ClusterOptions } from '../../../src/cluster/cluster.js';
import type { Endpoint } from '../../../src/common/endpoint.js';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { AllEjectedError } from '../../../src/common/errors.js';
import { OutlierDetector, resolveOutlierDetectionOptions } from '../../../src/health/outlier-detector.js';
import type { Picker } from '../../../src/pickers/picker.js';
import { compileMatch } from '../../../src/routing/match.js';
import { planPriorities, priorityLoads } from '../../../src/balancer/priority.js';
import { compileRoutes } from '../../../src/routing/router.js';
import { buildSnapshot, EMPTY, pickFrom, type Snapshot, type SnapshotInput } from '../../../src/balancer/snapshot.js';
import { resolveZoneAwareOptions, zoneShares } from '../../../src/balancer/zone.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const req = (over: Partial<{ host: string; path: string; method: string; headers: unknown }> = {}) => {
  const host = over.host ?? 'users';
  return {
    host,
    authority: host,
    path: over.path ?? '/',
    method: over.method ?? 'GET',
    headers: over.headers ?? null,
  };
};

describe('route matching', () => {
  const cases: Array<[string, unknown, ReturnType<typeof req>, boolean]> = [
    ['empty match matches everything', {}, req(), true],
    ['exact host, case-insensitive', { host: 'Users' }, req(), true],
    ['other host', { host: 'billing' }, req(), false],
    ['wildcard host', { host: '*.svc.local' }, req({ host: 'a.svc.local' }), true],
    ['wildcard does not match the bare suffix', { host: '*.svc.local' }, req({ host: 'svc.local' }), false],
    ['exact path ignores the query', { path: { exact: '/a' } }, req({ path: '/a?x=1' }), true],
    ['exact path', { path: { exact: '/a' } }, req({ path: '/ab' }), false],
    ['prefix path', { path: { prefix: '/api/' } }, req({ path: '/api/v1' }), true],
    ['prefix path miss', { path: { prefix: '/api/' } }, req({ path: '/apix' }), false],
    ['regex path is anchored', { path: { regex: '/users/\\d+' } }, req({ path: '/users/42' }), true],
    ['regex path anchored miss', { path: { regex: '/users/\\d+' } }, req({ path: '/users/42/x' }), false],
    ['method', { method: ['GET', 'head'] }, req({ method: 'HEAD' }), true],
    ['method miss', { method: 'POST' }, req(), false],
    [
      'header exact (object form)',
      { headers: [{ name: 'X-Canary', exact: '1' }] },
      req({ headers: { 'x-canary': '1' } }),
      true,
    ],
    [
      'header exact (flat array form)',
      { headers: [{ name: 'x-canary', exact: '1' }] },
      req({ headers: ['X-Canary', '1'] }),
      true,
    ],
    ['header regex', { headers: [{ name: 'x-v', regex: 'v[23]' }] }, req({ headers: { 'x-v': 'v3' } }), true],
    ['header present', { headers: [{ name: 'x-a', present: true }] }, req({ headers: { 'x-a': '' } }), true],
    ['header absent', { headers: [{ name: 'x-a', present: false }] }, req({ headers: {} }), true],
    ['header absent miss', { headers: [{ name: 'x-a', present: false }] }, req({ headers: { 'x-a': '1' } }), false],
    ['query exact', { query: [{ name: 'beta', exact: 'on' }] }, req({ path: '/?beta=on' }), true],
    ['query present miss', { query: [{ name: 'beta', present: true }] }, req({ path: '/?alpha=1' }), false],
    [
      'all conditions together',
      { host: 'users', path: { prefix: '/v2' }, method: 'GET', headers: [{ name: 'x', exact: 'y' }] },
      req({ path: '/v2/me', headers: { x: 'y' } }),
      true,
    ],
  ];
  for (const [name, match, request, expected] of cases) {
    it(name, () => assert.equal(compileMatch(match, 'routes[0].match')(request), expected));
  }
});

describe('route table validation names the bad rule', () => {
  const clusters = new Set(['a', 'b']);
  const bad: Array<[string, unknown, string]> = [
    ['unknown cluster', [{ cluster: 'a' }, { cluster: 'c' }], 'routes[1].cluster'],
    ['both cluster and split', [{ cluster: 'a', split: [] }], 'routes[0]'],
    ['neither', [{ match: {} }], 'routes[0]'],
    ['bad regex', [{ match: { path: { regex: '(' } }, cluster: 'a' }], 'routes[0].match.path.regex'],
    [
      'negative weight',
      [
        {
          split: [
            { cluster: 'a', weight: 1 },
            { cluster: 'b', weight: -1 },
          ],
        },
      ],
      'routes[0].split[1].weight',
    ],
    ['all-zero weights', [{ split: [{ cluster: 'a', weight: 0 }] }], 'routes[0].split'],
    ['sticky without split', [{ cluster: 'a', sticky: { header: 'x' } }], 'routes[0].sticky'],
    [
      'bad sticky key',
      [{ split: [{ cluster: 'a', weight: 1 }], sticky: { header: 'bad header' } }],
      'routes[0].sticky',
    ],
    ['unknown condition', [{ match: { hostname: 'x' }, cluster: 'a' }], 'routes[0].match.hostname'],
    [
      'header rule with two kinds',
      [{ match: { headers: [{ name: 'x', exact: '1', present: true }] }, cluster: 'a' }],
      'routes[0].match.headers[0]',
    ],
    ['empty subset', [{ cluster: 'a', subset: {} }], 'routes[0].subset'],
    ['mirror to unknown cluster', [{ cluster: 'a', mirror: { cluster: 'z' } }], 'routes[0].mirror.cluster'],
    [
      'mirror percent above 100',
      [{ cluster: 'a', mirror: { cluster: 'b', percent: 101 } }],
      'routes[0].mirror.percent',
    ],
    ['not an array', { cluster: 'a' }, 'routes'],
    ['B4 regression: mirror null is a typed error', [{ cluster: 'a', mirror: null }], 'routes[0].mirror'],
    ['mirror not an object', [{ cluster: 'a', mirror: 'b' }], 'routes[0].mirror'],
    [
      'B5 regression: unknown mirror key (percentage)',
      [{ cluster: 'a', mirror: { cluster: 'b', percentage: 1 } }],
      'routes[0].mirror.percentage',
    ],
    [
      'B5 regression: unknown split entry key',
      [{ split: [{ cluster: 'a', weight: 1, wieght: 2 }] }],
      'routes[0].split[0].wieght',
    ],
    ['split entry null', [{ split: [null] }], 'routes[0].split[0]'],
    ['route null', [null], 'routes[0]'],
    ['unknown route key', [{ cluster: 'a', mirrors: {} }], 'routes[0].mirrors'],
    ['name not a string', [{ cluster: 'a', name: 5 }], 'routes[0].name'],
  ];
  for (const [name, routes, option] of bad) {
    it(name, () => {
      assert.throws(
        () => compileRoutes(routes, clusters),
        (err: unknown) => {
          const e = err as { code?: string; option?: string };
          return (
            e.code === 'SIDECARLESS_INVALID_OPTION' && (e.option === option || e.option?.startsWith(option) === true)
          );
        },
      );
    });
  }
});

describe('route table unknown keys: the options toolkit wording, with the full path', () => {
  const clusters = new Set(['a', 'b']);
  const cases: Array<[unknown, string, RegExp]> = [
    [[{ cluster: 'a', mirrors: {} }], 'routes[0].mirrors', /unknown option; did you mean "mirror"\?/],
    [[{ match: { hostname: 'x' }, cluster: 'a' }], 'routes[0].match.hostname', /unknown option.*allowed: host, path/],
    [[{ match: { path: { prefx: '/a' } }, cluster: 'a' }], 'routes[0].match.path.prefx', /did you mean "prefix"\?/],
    [
      [{ match: { headers: [{ name: 'x', exact: '1', regexp: 'y' }] }, cluster: 'a' }],
      'routes[0].match.headers[0].regexp',
      /did you mean "regex"\?/,
    ],
    [[{ split: [{ cluster: 'a', weight: 1, wieght: 2 }] }], 'routes[0].split[0].wieght', /did you mean "weight"\?/],
    [[{ cluster: 'a', mirror: { cluster: 'b', percentage: 1 } }], 'routes[0].mirror.percentage', /unknown option/],
  ];
  for (const [routes, option, message] of cases) {
    it(option, () => {
      assert.throws(() => compileRoutes(routes, clusters), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option,
        message: new RegExp(`${option.replace(/[.[\]]/g, '\\$&')}.*${message.source}`),
      });
    });
  }

  it('value checks name the field and the bad value', () => {
    assert.throws(() => compileRoutes([{ split: [{ cluster: 'a' }] }], clusters), {
      option: 'routes[0].split[0].weight',
      message: /required/,
    });
    assert.throws(() => compileRoutes([{ cluster: 'a', mirror: { cluster: 'b', percent: 101 } }], clusters), {
      option: 'routes[0].mirror.percent',
      message: /expected a percentage from 0 to 100, got 101/,
    });
    assert.throws(() => compileRoutes([{ cluster: 'a', name: '' }], clusters), {
      option: 'routes[0].name',
      message: /expected a non-empty string, got ""/,
    });
    assert.throws(() => compileRoutes([{ cluster: 'z' }], clusters, 'services.shop.routes'), {
      option: 'services.shop.routes[0].cluster',
    });
    assert.throws(() => compileMatch({ headers: [{ exact: '1' }] }, 'm'), {
      option: 'm.headers[0].name',
      message: /required/,
    });
    assert.throws(() => compileMatch({ query: [{ name: 'q', present: 'yes' }] }, 'm'), {
      option: 'm.query[0].present',
      message: /expected a boolean, got "yes"/,
    });
  });
});

describe('weighted split', () => {
  const table = compileRoutes(
    [
      {
        match: { host: 'users' },
        split: [
          { cluster: 'a', weight: 90 },
          { cluster: 'b', weight: 10 },
        ],
      },
    ],
    new Set(['a', 'b']),
  );
  it('follows the weights within statistical tolerance', () => {
    const random = seededRandom(7);
    let b = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (table.route(req(), random)?.cluster === 'b') b++;
    // 10 % ± 5 standard deviations (sd = sqrt(n p (1-p)) ≈ 42).
    assert.ok(Math.abs(b - 2000) < 5 * 42, `b got ${b}`);
  });
  it('no match: no decision', () => {
    assert.equal(table.route(req({ host: 'billing' }), Math.random), undefined);
  });
  it('sticky splits keep a key on one side, and spread keys by weight', () => {
    const sticky = compileRoutes(
      [
        {
          split: [
            { cluster: 'a', weight: 50 },
            { cluster: 'b', weight: 50 },
          ],
          sticky: { header: 'x-user' },
        },
      ],
      new Set(['a', 'b']),
    );
    const random = seededRandom(1);
    let onB = 0;
    for (let user = 0; user < 2000; user++) {
      const headers = { 'x-user': `user-${user}` };
      const first = sticky.route(req({ headers }), random)?.cluster;
      for (let again = 0; again < 5; again++) assert.equal(sticky.route(req({ headers }), random)?.cluster, first);
      if (first === 'b') onB++;
    }
    assert.ok(onB > 850 && onB < 1150, `b got ${onB} of 2000 users`);
    // Without the key, requests are split at random rather than piling onto one side.
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 50; i++) seen.add(sticky.route(req(), random)?.cluster);
    assert.deepEqual([...seen].sort(), ['a', 'b']);
  });
});

describe('priority and zone arithmetic (Envoy overprovisioning factor 1.4)', () => {
  it('keeps all traffic on a healthy first level', () => {
    assert.deepEqual(
      priorityLoads([
        { total: 4, healthy: 4 },
        { total: 4, healthy: 4 },
      ]),
      [1, 0],
    );
  });
  it('spills over in proportion as the first level degrades', () => {
    // 5 of 10 healthy: 70 % stays (5/10 × 1.4), 30 % spills to the next level.
    const [p0, p1] = priorityLoads([
      { total: 10, healthy: 5 },
      { total: 10, healthy: 10 },
    ]);
    assert.ok(Math.abs((p0 as number) - 0.7) < 1e-9 && Math.abs((p1 as number) - 0.3) < 1e-9);
    // 8 of 10 healthy: 1.4 × 80 % ≥ 100 %: nothing spills.
    assert.deepEqual(
      priorityLoads([
        { total: 10, healthy: 8 },
        { total: 10, healthy: 10 },
      ]),
      [1, 0],
    );
  });
  it('scales up when the levels together are less than fully healthy', () => {
    // 2/10 and 2/10: 28 % each, normalised to 50/50.
    const loads = priorityLoads([
      { total: 10, healthy: 2 },
      { total: 10, healthy: 2 },
    ]);
    assert.ok(loads.every((l) => Math.abs(l - 0.5) < 1e-9));
  });
  it('sends everything to the first level when nothing is healthy', () => {
    assert.deepEqual(
      priorityLoads([
        { total: 3, healthy: 0 },
        { total: 3, healthy: 0 },
      ]),
      [1, 0],
    );
  });
  // Envoy docs, "Priority levels": each row is the healthy % of each level (100 endpoints each) and the traffic
  // % Envoy sends to each (its table rounds to whole percent).
  const envoyRows: Array<[number[], number[]]> = [
    [
      [100, 100],
      [100, 0],
    ],
    [
      [72, 100],
      [100, 0],
    ],
    [
      [71, 100],
      [99, 1],
    ],
    [
      [50, 100],
      [70, 30],
    ],
    [
      [25, 100],
      [35, 65],
    ],
    [
      [0, 100],
      [0, 100],
    ],
    [
      [100, 100, 100],
      [100, 0, 0],
    ],
    [
      [72, 72, 100],
      [100, 0, 0],
    ],
    [
      [71, 71, 100],
      [99, 1, 0],
    ],
    [
      [50, 50, 100],
      [70, 30, 0],
    ],
    [
      [25, 25, 100],
      [35, 35, 30],
    ],
    [
      [25, 25, 20],
      [36, 36, 28],
    ],
  ];
  for (const [healthy, traffic] of envoyRows) {
    it(`Envoy priority table: ${healthy.join('/')} % healthy -> ${traffic.join('/')} % traffic`, () => {
      const loads = priorityLoads(healthy.map((h) => ({ total: 100, healthy: h })));
      assert.equal(loads.length, traffic.length);
      loads.forEach((load, i) =>
        assert.ok(Math.abs(load * 100 - (traffic[i] as number)) < 1, `level ${i}: ${load * 100} vs ${traffic[i]}`),
      );
      assert.ok(Math.abs(loads.reduce((a, b) => a + b, 0) - 1) < 1e-9, 'loads sum to 1');
    });
  }
  it('the 71 % row is exact: 1.4 x 71 = 99.4 % stays on P0', () => {
    const [p0, p1] = priorityLoads([
      { total: 100, healthy: 71 },
      { total: 100, healthy: 100 },
    ]);
    assert.ok(Math.abs((p0 as number) - 0.994) < 1e-9 && Math.abs((p1 as number) - 0.006) < 1e-9, `${p0} ${p1}`);
  });
});

describe('per-level panic (Envoy panic threshold with priorities)', () => {
  // Envoy docs, "Panic threshold": healthy % of P0 and P1 (equal sizes), traffic % to each and whether each is in
  // panic, at the default threshold of 50 %.
  const rows: Array<[number, number, number, boolean, number, boolean]> = [
    [72, 72, 100, false, 0, false],
    [71, 71, 99, false, 1, false],
    [50, 60, 70, false, 30, false],
    [25, 100, 35, false, 65, false],
    [25, 25, 50, true, 50, true],
    [5, 65, 7, true, 93, false],
  ];
  for (const [h0, h1, t0, panic0, t1, panic1] of rows) {
    it(`${h0}/${h1} % healthy: ${t0}/${t1} % traffic, panic ${panic0}/${panic1}`, () => {
      const plan = planPriorities(
        [
          { total: 100, healthy: h0 },
          { total: 100, healthy: h1 },
        ],
        50,
      );
      assert.ok(Math.abs((plan.loads[0] as number) * 100 - t0) < 1, `P0 ${plan.loads[0]}`);
      assert.ok(Math.abs((plan.loads[1] as number) * 100 - t1) < 1, `P1 ${plan.loads[1]}`);
      assert.deepEqual(plan.panic, [panic0, panic1]);
    });
  }
  it('ignores panic while the levels together are 100 % available (B1: P0 all ejected, P1 healthy)', () => {
    const plan = planPriorities(
      [
        { total: 4, healthy: 0 },
        { total: 2, healthy: 2 },
      ],
      50,
    );
    assert.deepEqual(plan, { loads: [0, 1], panic: [false, false] });
  });
  it('a single level keeps the plain threshold: 4 of 10 is panic, 5 of 10 is not', () => {
    assert.deepEqual(planPriorities([{ total: 10, healthy: 4 }], 50), { loads: [1], panic: [true] });
    assert.deepEqual(planPriorities([{ total: 10, healthy: 5 }], 50), { loads: [1], panic: [false] });
  });
  it('every level in panic: loads follow the endpoint counts', () => {
    const plan = planPriorities(
      [
        { total: 6, healthy: 1 },
        { total: 2, healthy: 0 },
      ],
      50,
    );
    assert.deepEqual(plan, { loads: [0.75, 0.25], panic: [true, true] });
  });
  it('threshold 0: never in panic', () => {
    const plan = planPriorities(
      [
        { total: 4, healthy: 0 },
        { total: 4, healthy: 0 },
      ],
      0,
    );
    assert.deepEqual(plan, { loads: [1, 0], panic: [false, false] });
  });
});

describe('zone shares (Envoy zone aware routing)', () => {
  const near = (actual: readonly number[] | undefined, expected: readonly number[]) => {
    assert.ok(actual !== undefined, 'zone preference applies');
    assert.equal(actual.length, expected.length);
    actual.forEach((a, i) => assert.ok(Math.abs(a - (expected[i] as number)) < 1e-9, `${actual} vs ${expected}`));
  };
  it('keeps everything local while the local zone has at least its callers share of the healthy endpoints', () => {
    near(
      zoneShares(
        [
          { zone: 'a', total: 3, healthy: 3 },
          { zone: 'b', total: 3, healthy: 3 },
        ],
        'a',
      ),
      [1, 0],
    );
  });
  it('spills the local shortfall to the other zones by residual capacity', () => {
    // Upstream 1/3 local for 1/2 of the callers: 2/3 stays.
    near(
      zoneShares(
        [
          { zone: 'a', total: 2, healthy: 1 },
          { zone: 'b', total: 2, healthy: 2 },
        ],
        'a',
      ),
      [2 / 3, 1 / 3],
    );
    // Envoy's own example: callers 40/40/20 %, upstream 25/50/25 %: 62.5 % local, residual 10 and 5 points.
    near(
      zoneShares(
        [
          { zone: 'a', total: 1, healthy: 1 },
          { zone: 'b', total: 2, healthy: 2 },
          { zone: 'c', total: 1, healthy: 1 },
        ],
        'a',
        { a: 40, b: 40, c: 20 },
      ),
      [0.625, 0.375 * (2 / 3), 0.375 * (1 / 3)],
    );
  });
  it('with callers spread like the endpoints, one local endpoint of 7 keeps all its callers traffic', () => {
    const zones = [
      { zone: 'a', total: 1, healthy: 1 },
      { zone: 'b', total: 6, healthy: 6 },
    ];
    near(zoneShares(zones, 'a'), [1, 0]);
    // Callers spread evenly over the two zones: the one endpoint can only take 2/7 of this zone's traffic.
    near(zoneShares(zones, 'a', { a: 1, b: 1 }), [2 / 7, 5 / 7]);
  });
  it('does not apply without a healthy local endpoint', () => {
    assert.equal(
      zoneShares(
        [
          { zone: 'a', total: 2, healthy: 0 },
          { zone: 'b', total: 2, healthy: 2 },
        ],
        'a',
      ),
      undefined,
    );
    assert.equal(zoneShares([{ zone: 'b', total: 2, healthy: 2 }], 'a'), undefined);
  });
});

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
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = pickFrom(snap, ctx, random);
      assert.equal(r?.type, 'complete');
      const l = label((r as { target: Host }).target);
      counts[l] = (counts[l] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
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
});

describe('zoneAware option validation', () => {
  const bad: Array<[string, unknown, string]> = [
    ['callers not an object', { localZone: 'a', callers: 3 }, 'zoneAware.callers'],
    ['negative caller count', { localZone: 'a', callers: { a: 1, b: -1 } }, 'zoneAware.callers.b'],
    ['no callers in the local zone', { localZone: 'a', callers: { b: 1 } }, 'zoneAware.callers.a'],
    ['unknown key', { localZone: 'a', localShare: 0.5 }, 'zoneAware.localShare'],
  ];
  for (const [name, zoneAware, option] of bad) {
    it(name, () => {
      assert.throws(() => new Cluster('svc', { target: [], zoneAware } as ClusterOptions), {
        code: 'SIDECARLESS_INVALID_OPTION',
        option,
      });
    });
  }
  it('resolveZoneAwareOptions validates through the toolkit, under the path it is given', () => {
    assert.equal(resolveZoneAwareOptions(undefined), undefined);
    assert.deepEqual(resolveZoneAwareOptions({ localZone: 'a' }), { localZone: 'a', minClusterSize: 6 });
    assert.deepEqual(resolveZoneAwareOptions({ localZone: 'a', minClusterSize: 1, callers: { a: 2, b: 0 } }), {
      localZone: 'a',
      minClusterSize: 1,
      callers: { a: 2, b: 0 },
    });
    const bad: Array<[unknown, string, RegExp]> = [
      [{ localZone: 'a', localShare: 0.5 }, 'zoneAware.localShare', /unknown option \(allowed: localZone,/],
      [{ localzone: 'a' }, 'zoneAware.localzone', /unknown option; did you mean "localZone"\?/],
      [{}, 'zoneAware.localZone', /required/],
      [{ localZone: '' }, 'zoneAware.localZone', /expected a non-empty string/],
      [{ localZone: 'a', minClusterSize: 0 }, 'zoneAware.minClusterSize', /expected an integer >= 1, got 0/],
      [{ localZone: 'a', callers: [] }, 'zoneAware.callers', /expected an object of zone names/],
      [{ localZone: 'a', callers: { a: 1, b: -1 } }, 'zoneAware.callers.b', /expected a number >= 0, got -1/],
      [{ localZone: 'a', callers: { a: 1, b: undefined } }, 'zoneAware.callers.b', /required/],
      [{ localZone: 'a', callers: { b: 1 } }, 'zoneAware.callers.a', /the local zone must have callers/],
      [{ localZone: 'a', callers: { a: 0 } }, 'zoneAware.callers.a', /the local zone must have callers/],
      ['a', 'zoneAware', /expected an object, got "a"/],
    ];
    for (const [raw, option, message] of bad) {
      assert.throws(() => resolveZoneAwareOptions(raw), { code: 'SIDECARLESS_INVALID_OPTION', option, message });
    }
    assert.throws(() => resolveZoneAwareOptions({ localZone: 'a', bogus: 1 }, 'clusters.users.zoneAware'), {
      option: 'clusters.users.zoneAware.bogus',
    });
    assert.ok(Object.isFrozen(resolveZoneAwareOptions({ localZone: 'a', callers: { a: 1 } })?.callers));
  });

  it('accepts callers per zone', async () => {
    const cluster = new Cluster('svc', { target: [], zoneAware: { localZone: 'a', callers: { a: 2, b: 6 } } });
    await cluster.destroy();
  });
});
