// The Consul double's filter language (test/helpers/bexpr.ts): the double is only as exact as this.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilter, FilterSyntaxError } from '../../helpers/bexpr.js';

const entry = {
  Node: { Node: 'edge-1', Meta: { rack: 'r1' } },
  Service: { Service: 'web', Tags: ['v2', 'canary'], Port: 8080, Meta: { version: '2', 'build-id': 'b7' } },
  Checks: [{ Status: 'passing' }, { Status: 'warning' }],
};

describe('Consul double filter language', () => {
  const cases: [string, boolean][] = [
    ['', true],
    ['Service.Service == "web"', true],
    ['Service.Service != web', false],
    ['Service.Port == 8080', true],
    ['Service.Meta.version == `2`', true],
    ['Service.Meta["build-id"] == "b7"', true],
    ['Service.Meta.missing == ""', false],
    ['Service.Meta.missing != "x"', true],
    ['Service.Meta.missing is empty', true],
    ['Service.Meta is not empty', true],
    ['"canary" in Service.Tags', true],
    ['"beta" not in Service.Tags', true],
    ['Service.Tags contains "v2"', true],
    ['Service.Tags not contains "v2"', false],
    ['Service.Service contains "e"', true],
    ['Node.Meta contains "rack"', true],
    ['Node.Node matches "^edge-[0-9]+$"', true],
    ['Node.Node not matches "^core"', true],
    ['Checks.Status == "warning"', true],
    ['Checks.Status == "critical"', false],
    ['Checks is not empty', true],
    ['not Service.Port == 8080 or Service.Meta.version == "2" and "v2" in Service.Tags', true],
    ['(not Service.Port == 8080 or Service.Meta.version == "2") and "v3" in Service.Tags', false],
    ['not (Service.Port == 8080)', false],
    ['Service.Service == "we\\"b"', false],
  ];
  for (const [expr, expected] of cases) {
    it(`${expr || '(empty)'} -> ${expected}`, () => {
      assert.equal(compileFilter(expr)(entry), expected);
    });
  }

  for (const bad of [
    'Service.Meta.version ==',
    'Service.Port = 8080',
    'Bogus.Field == "x"',
    '(Service.Port == 8080',
    'Service.Port == 8080 Service.Port == 1',
    'Service.Tags is full',
    'Node.Node matches "("',
    '"unterminated == 1',
    'Service.Port',
  ]) {
    it(`rejects ${bad}`, () => {
      assert.throws(() => compileFilter(bad), FilterSyntaxError);
    });
  }
});
