import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileMatch } from '../../../src/routing/match.js';
import { compileRoutes } from '../../../src/routing/router.js';
import { seededRandom } from '../../helpers/fake-clock.js';
import { req } from './request.js';

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
    // Host patterns no request host can equal (probe 11: accepted, then every request failed with NO_ROUTE).
    ['host with a port', [{ match: { host: 'svc:8080' }, cluster: 'a' }], 'routes[0].match.host'],
    ['host with a scheme', [{ match: { host: 'http://svc' }, cluster: 'a' }], 'routes[0].match.host'],
    ['host *', [{ match: { host: '*' }, cluster: 'a' }], 'routes[0].match.host'],
    ['host *.', [{ match: { host: ['ok', '*.'] }, cluster: 'a' }], 'routes[0].match.host'],
    ['host with a space', [{ match: { host: 'Svc ' }, cluster: 'a' }], 'routes[0].match.host'],
    ['IPv6 host with a port', [{ match: { host: '[::1]:80' }, cluster: 'a' }], 'routes[0].match.host'],
    ['wildcard over an IPv4 literal', [{ match: { host: '*.1.2.3.4' }, cluster: 'a' }], 'routes[0].match.host'],
    ['wildcard over an IPv6 literal', [{ match: { host: '*.[::1]' }, cluster: 'a' }], 'routes[0].match.host'],
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

  it("sticky on the host header follows the request's Host, written as a URL or as a header", () => {
    const sticky = compileRoutes(
      [
        {
          split: [
            { cluster: 'a', weight: 50 },
            { cluster: 'b', weight: 50 },
          ],
          sticky: { header: 'host' },
        },
      ],
      new Set(['a', 'b']),
    );
    const random = seededRandom(2);
    const clusters = new Set<string | undefined>();
    for (let h = 0; h < 200; h++) {
      const host = `s${h}.svc`;
      const first = sticky.route(req({ host }), random)?.cluster;
      clusters.add(first);
      for (let again = 0; again < 5; again++) {
        assert.equal(sticky.route(req({ host }), random)?.cluster, first);
        assert.equal(sticky.route(req({ host, headers: { host } }), random)?.cluster, first);
      }
    }
    assert.deepEqual([...clusters].sort(), ['a', 'b']);
  });
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

describe('route host patterns are compared as request hosts are (probe 11)', () => {
  const table = compileRoutes(
    [
      { match: { host: 'Svc.' }, cluster: 'a' },
      { match: { host: '*.EU.svc.' }, cluster: 'b' },
      { match: { host: 'münchen.example' }, cluster: 'a' },
    ],
    new Set(['a', 'b']),
  );
  it('a trailing dot and upper case in the pattern, punycode for a Unicode name', () => {
    const random = seededRandom(1);
    assert.equal(table.route(req({ host: 'svc' }), random)?.cluster, 'a');
    assert.equal(table.route(req({ host: 'x.eu.svc' }), random)?.cluster, 'b');
    assert.equal(table.route(req({ host: 'xn--mnchen-3ya.example' }), random)?.cluster, 'a');
  });
});
