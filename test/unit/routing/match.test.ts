import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileMatch } from '../../../src/routing/match.js';
import { req } from './request.js';

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
    ['a host header rule sees the URL authority', { headers: [{ name: 'Host', exact: 'users' }] }, req(), true],
    [
      'a host header rule sees an explicit Host header, lower case',
      { headers: [{ name: 'host', exact: 'one.svc' }] },
      req({ headers: { Host: 'One.svc' } }),
      true,
    ],
    [
      'a host header rule on another host',
      { headers: [{ name: 'host', exact: 'one.svc' }] },
      req({ host: 'two.svc' }),
      false,
    ],
    ['a host present rule holds for a URL-only request', { headers: [{ name: 'host', present: true }] }, req(), true],
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

describe('route matchers that can never match are refused (probe 20)', () => {
  const refuses = (match: unknown, option: string, message: RegExp) =>
    assert.throws(() => compileMatch(match, 'routes[0].match'), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option,
      message,
    });

  it('refuses a method that is not an RFC 9110 token, naming it (or its entry in a list)', () => {
    for (const method of ['GET\r\n', 'G E T', 'GE\u0000T', 'GÉT', 'GET/1', 'M'.repeat(1 << 20).concat(' ')]) {
      refuses({ method }, 'routes[0].match.method', /expected an HTTP method \(an RFC 9110 token/);
      refuses({ method: ['GET', method] }, 'routes[0].match.method[1]', /expected an HTTP method/);
    }
    assert.equal(compileMatch({ method: ['get', 'PURGE', 'M-SEARCH'] }, 'm')(req({ method: 'PURGE' })), true);
  });

  it('refuses a header name that is not a token; a query parameter name may be any text (it is percent-decoded)', () => {
    for (const name of ['x a', 'x a\u0000', 'x\r\ny', 'x:y', 'ü', '']) {
      refuses({ headers: [{ name, exact: 'v' }] }, 'routes[0].match.headers[0].name', /expected a header name/);
    }
    assert.equal(
      compileMatch({ headers: [{ name: 'X-User_Id', exact: 'v' }] }, 'm')(req({ headers: { 'x-user_id': 'v' } })),
      true,
    );
    assert.equal(compileMatch({ query: [{ name: 'a b', exact: 'v' }] }, 'm')(req({ path: '/?a%20b=v' })), true);
  });
});
