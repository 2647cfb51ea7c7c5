import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findHeader } from '../../../src/common/headers.js';
import { findHeader as findHeaderFromHashKey } from '../../../src/pickers/hash-key.js';

describe('findHeader', () => {
  const forms = (name: string, value: string) => [
    { [name]: value },
    { [name.toUpperCase()]: value },
    ['accept', '*/*', name, value],
    [
      ['accept', '*/*'],
      [name.toUpperCase(), value],
    ],
    new Map([[name, value]]),
  ];

  it('finds a header case-insensitively in every undici header form', () => {
    for (const headers of forms('x-user', 'ada')) assert.equal(findHeader(headers, 'x-user'), 'ada');
    assert.equal(findHeader(null, 'x-user'), undefined);
    assert.equal(findHeader({ other: 'x' }, 'x-user'), undefined);
    assert.equal(findHeader({ 'x-user': ['a', 'b'] }, 'x-user'), 'a, b');
    assert.equal(findHeader(['x-user', 'a', 'X-User', 'b'], 'x-user'), 'a, b');
  });

  it('is still importable from pickers/hash-key.ts, where it used to live', () => {
    assert.equal(findHeaderFromHashKey, findHeader);
  });
});
