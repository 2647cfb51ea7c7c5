import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AllEjectedError,
  CircuitOpenError,
  DeadlineExceededError,
  InvalidOptionError,
  NoEndpointsError,
  NoRouteError,
  PerTryTimeoutError,
  ResponseDiscardedError,
  statusForError,
} from '../../../src/index.js';

const coded = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(code), { code, ...extra });

describe('statusForError', () => {
  const cases: [string, unknown, number][] = [
    ['no endpoints', new NoEndpointsError('users', 100), 503],
    ['all ejected', new AllEjectedError('users'), 503],
    ['breaker open', new CircuitOpenError('users'), 503],
    ['deadline', new DeadlineExceededError(100), 504],
    ['per-try timeout', new PerTryTimeoutError(50), 504],
    ['no route', new NoRouteError('api', '/x'), 404],
    ['a retried status set aside, then not retried', new ResponseDiscardedError('10.0.0.1:80', 503), 502],
    ['bad option', new InvalidOptionError('timeout', 'negative'), 500],
    // fetch wraps network failures: TypeError('fetch failed', { cause })
    ['wrapped by fetch', new TypeError('fetch failed', { cause: new NoEndpointsError('users', 100) }), 503],
    ['connection refused', coded('ECONNREFUSED'), 503],
    ['reset mid-exchange', new TypeError('fetch failed', { cause: coded('UND_ERR_SOCKET') }), 502],
    ['undici headers timeout', coded('UND_ERR_HEADERS_TIMEOUT'), 504],
    ['caller aborted', Object.assign(new Error('aborted'), { name: 'AbortError' }), 499],
    ['something else', new RangeError('nope'), 500],
    ['not an error', 'a string', 500],
  ];
  for (const [what, error, status] of cases) {
    it(`${what} -> ${status}`, () => {
      assert.equal(statusForError(error), status);
    });
  }
});
