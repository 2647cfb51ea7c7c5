import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileMatch } from '../../src/routing/match.js';
import { localZoneShare, priorityLoads } from '../../src/routing/priority.js';
import { compileRoutes } from '../../src/routing/router.js';
import { seededRandom } from '../helpers/fake-clock.js';

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
  it('prefers the local zone while it has capacity', () => {
    assert.equal(localZoneShare({ total: 4, healthy: 4 }, 4), 1);
    assert.ok(Math.abs(localZoneShare({ total: 4, healthy: 2 }, 4) - 0.7) < 1e-9);
    assert.equal(localZoneShare({ total: 4, healthy: 0 }, 4), 0);
    assert.equal(localZoneShare({ total: 4, healthy: 1 }, 0), 1);
  });
});
