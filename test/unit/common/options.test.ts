import assert from 'node:assert/strict';
import vm from 'node:vm';
import { describe, it } from 'node:test';
import { InvalidOptionError } from '../../../src/common/errors.js';
import {
  array,
  boolean,
  checkObject,
  clock,
  describe as describeValue,
  duration,
  durationSum,
  func,
  integer,
  isHeaderSafe,
  isRecord,
  joinPath,
  MAX_TIMER_MS,
  number,
  oneOf,
  percent,
  rejectUnknownKeys,
  required,
  string,
  suggest,
  toggle,
} from '../../../src/common/options.js';

/** Asserts `fn` throws an InvalidOptionError naming `option` whose message matches `message`. */
function refuses(fn: () => unknown, option: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidOptionError, String(err));
    assert.equal(err.code, 'SIDECARLESS_INVALID_OPTION');
    assert.equal(err.option, option);
    assert.match(err.message, message);
    assert.ok(err.message.includes(option), `the message names the option: ${err.message}`);
    return true;
  });
}

describe('options toolkit: paths and descriptions', () => {
  it('joinPath joins keys with dots and indexes with brackets, and a key at the top level stands alone', () => {
    assert.equal(joinPath('', 'timeoutMs'), 'timeoutMs');
    assert.equal(joinPath('retry', 'perTryTimeoutMs'), 'retry.perTryTimeoutMs');
    assert.equal(joinPath(joinPath('clusters', 'users'), 'retry'), 'clusters.users.retry');
    assert.equal(joinPath('routes', 2), 'routes[2]');
    assert.equal(joinPath(joinPath(joinPath('routes', 0), 'split'), 1), 'routes[0].split[1]');
  });

  it('describe names a bad value briefly, truncating long strings at 60 characters', () => {
    assert.equal(describeValue('abc'), '"abc"');
    const long = 'x'.repeat(100);
    assert.equal(describeValue(long), JSON.stringify(`${'x'.repeat(60)}…`));
    assert.equal(describeValue('y'.repeat(60)), JSON.stringify('y'.repeat(60)), 'exactly 60: not truncated');
    assert.equal(describeValue([1, 2]), 'an array');
    assert.equal(describeValue({ a: 1 }), 'an object');
    assert.equal(describeValue(null), 'null');
    assert.equal(describeValue(undefined), 'undefined');
    assert.equal(
      describeValue(() => 1),
      'a function',
    );
    assert.equal(describeValue(10n), '10n');
    assert.equal(describeValue(Number.NaN), 'NaN');
    assert.equal(describeValue(-1.5), '-1.5');
    assert.equal(describeValue(true), 'true');
  });

  it('isRecord is true for plain objects only', () => {
    assert.equal(isRecord({}), true);
    assert.equal(isRecord(Object.create(null)), true);
    assert.equal(isRecord([]), false);
    assert.equal(isRecord(null), false);
    assert.equal(isRecord('x'), false);
    assert.equal(isRecord(undefined), false);
    // Probe 20: a Map, Date, RegExp or class instance read as an options object had no keys: "all defaults".
    for (const exotic of [new Map([['maxAttempts', 1]]), new Date(), /x/, new (class Settings {})()]) {
      assert.equal(isRecord(exotic), false, describeValue(exotic));
    }
    // A plain object of another realm (a `vm` context's) is one; that realm's Map or class instance is not.
    assert.equal(isRecord(vm.runInNewContext('({ retry: { maxAttempts: 1 } })')), true);
    assert.equal(isRecord(vm.runInNewContext('Object.create(null)')), true);
    assert.equal(isRecord(vm.runInNewContext('new Map()')), false);
    assert.equal(isRecord(vm.runInNewContext('new (class Settings {})()')), false);
    assert.equal(describeValue(new Map()), 'an object (Map)');
    refuses(() => checkObject(new Date(), ['a'], 'retry'), 'retry', /expected an object, got an object \(Date\)/);
  });
});

describe('options toolkit: null (probe 20)', () => {
  it('every validator refuses null, naming the option and saying to omit it', () => {
    const omit = /got null, which is not accepted: omit the option/;
    refuses(() => integer(null, 'a', 1, 0), 'a', omit);
    refuses(() => duration(null, 'a', 1), 'a', omit);
    refuses(() => boolean(null, 'a', true), 'a', omit);
    refuses(() => func(null, 'a'), 'a', omit);
    refuses(() => toggle(null, 'a', []), 'a', omit);
    refuses(() => checkObject(null, ['a'], 'group'), 'group', /expected an object, got null, which is not accepted/);
  });

  it('checkObject and rejectUnknownKeys refuse a key set to null (getter or not), with the false hint where false turns it off', () => {
    refuses(() => checkObject({ retry: null }, ['retry'], ''), 'retry', /omit the option.*or `false` to turn it off/);
    refuses(() => checkObject({ jitter: null }, ['jitter'], 'backoff'), 'backoff.jitter', /for its default$/);
    refuses(() => rejectUnknownKeys({ tags: null }, '', ['tags']), 'tags', /omit the option/);
    const viaGetter = {
      get limits() {
        return null;
      },
    };
    refuses(() => checkObject(viaGetter, ['limits'], 'c'), 'c.limits', /omit the option/);
    assert.deepEqual(checkObject({ connections: null }, ['connections'], 'pool', ['connections']), {
      connections: null,
    });
  });
});

describe('options toolkit: unknown keys', () => {
  it('accepts an object whose keys are all allowed', () => {
    assert.doesNotThrow(() => rejectUnknownKeys({ a: 1, b: 2 }, 'x', ['a', 'b', 'c']));
    assert.doesNotThrow(() => rejectUnknownKeys({}, 'x', []));
  });

  it('refuses an unknown key in the one wording, with the allowed keys', () => {
    refuses(
      () => rejectUnknownKeys({ zzz: 1 }, 'retry', ['attempts', 'backoff']),
      'retry.zzz',
      /unknown option \(allowed: attempts, backoff\)$/,
    );
    refuses(() => rejectUnknownKeys({ zzz: 1 }, '', ['attempts']), 'zzz', /unknown option/);
    refuses(
      () => rejectUnknownKeys({ bogus: 1 }, 'picker', []),
      'picker.bogus',
      /unknown option \(none are allowed here\)/,
    );
  });

  it('suggests the closest allowed key for a typo ("did you mean")', () => {
    refuses(
      () => rejectUnknownKeys({ intervalMS: 1 }, 'healthCheck', ['intervalMs', 'timeoutMs']),
      'healthCheck.intervalMS',
      /unknown option; did you mean "intervalMs"\? \(allowed: intervalMs, timeoutMs\)/,
    );
    refuses(
      () => rejectUnknownKeys({ wieght: 1 }, 'routes[0].split[0]', ['cluster', 'weight']),
      'routes[0].split[0].wieght',
      /did you mean "weight"\?/,
    );
    assert.equal(suggest('choiceCont', ['choiceCount', 'activeRequestBias']), 'choiceCount');
    assert.equal(suggest('PATH', ['path', 'host']), 'path', 'case-insensitive');
    assert.equal(suggest('completelyDifferent', ['path', 'host']), undefined, 'no suggestion when nothing is close');
    assert.equal(suggest('x', []), undefined);
  });

  it('reports an option renamed in 0.2.0 with its new name, where the new name is allowed', () => {
    refuses(
      () => rejectUnknownKeys({ timeout: 1000 }, '', ['timeoutMs', 'retry']),
      'timeout',
      /renamed to "timeoutMs" in 0\.2\.0/,
    );
    refuses(
      () => rejectUnknownKeys({ perTryTimeout: 1 }, 'retry', ['perTryTimeoutMs']),
      'retry.perTryTimeout',
      /renamed to "perTryTimeoutMs" in 0\.2\.0.*CHANGELOG/,
    );
    refuses(
      () => rejectUnknownKeys({ backoffInitial: 1 }, 'retry', ['attempts', 'backoff']),
      'retry.backoffInitial',
      /renamed to "backoff\.initialMs" in 0\.2\.0/,
    );
    refuses(
      () => rejectUnknownKeys({ decay: 1 }, 'picker', ['decayMs', 'defaultRttMs']),
      'picker.decay',
      /renamed to "decayMs"/,
    );
    // Where the new name is not an option either, an old name is just an unknown key.
    refuses(() => rejectUnknownKeys({ timeout: 1 }, 'tls', ['ca', 'cert']), 'tls.timeout', /^.*unknown option/);
  });

  it('checkObject refuses a non-object, then unknown keys, and returns a snapshot of the record', () => {
    const record = { a: 1 };
    assert.deepEqual(checkObject(record, ['a'], 'opts'), record);
    assert.notEqual(checkObject(record, ['a'], 'opts'), record);
    refuses(() => checkObject(null, ['a'], 'opts'), 'opts', /expected an object, got null/);
    refuses(() => checkObject([1], ['a'], 'opts'), 'opts', /expected an object, got an array/);
    refuses(() => checkObject('a', ['a'], 'opts'), 'opts', /expected an object, got "a"/);
    refuses(() => checkObject({ b: 1 }, ['a'], 'opts'), 'opts.b', /unknown option/);
  });
});

describe('options toolkit: value validators', () => {
  it('integer: in range, or the fallback when undefined', () => {
    assert.equal(integer(undefined, 'n', 7, 1), 7);
    assert.equal(integer(1, 'n', 7, 1), 1);
    assert.equal(integer(100, 'n', 7, 1, 100), 100);
    refuses(() => integer(0, 'n', 7, 1), 'n', /expected an integer >= 1, got 0/);
    refuses(() => integer(101, 'n', 7, 1, 100), 'n', /expected an integer from 1 to 100, got 101/);
    refuses(() => integer(1.5, 'n', 7, 1), 'n', /got 1\.5/);
    refuses(() => integer('3', 'n', 7, 1), 'n', /got "3"/);
    refuses(() => integer(Number.NaN, 'n', 7, 1), 'n', /got NaN/);
    refuses(() => integer(2 ** 53, 'n', 7, 1), 'n', /expected an integer/);
  });

  it('number: finite, >= min (or > min when exclusive), <= max when given', () => {
    assert.equal(number(undefined, 'x', 1.5, 0), 1.5);
    assert.equal(number(0, 'x', 1, 0), 0);
    assert.equal(number(2.5, 'x', 1, 0, true, 10), 2.5);
    refuses(() => number(0, 'x', 1, 0, true), 'x', /expected a number > 0, got 0/);
    refuses(() => number(-1, 'x', 1, 0), 'x', /expected a number >= 0, got -1/);
    refuses(() => number(11, 'x', 1, 0, false, 10), 'x', /expected a number >= 0 and <= 10, got 11/);
    refuses(() => number(Number.POSITIVE_INFINITY, 'x', 1, 0), 'x', /got Infinity/);
    refuses(() => number(null, 'x', 1, 0), 'x', /got null/);
  });

  it('percent: 0 to 100 inclusive', () => {
    assert.equal(percent(undefined, 'p', 50), 50);
    assert.equal(percent(0, 'p', 50), 0);
    assert.equal(percent(100, 'p', 50), 100);
    assert.equal(percent(12.5, 'p', 50), 12.5);
    refuses(() => percent(100.1, 'p', 50), 'p', /expected a percentage from 0 to 100, got 100\.1/);
    refuses(() => percent(-1, 'p', 50), 'p', /percentage/);
    refuses(() => percent('50%', 'p', 50), 'p', /got "50%"/);
  });

  it('duration: ms above 0 (or from 0 when allowZero), up to the longest Node timer by default', () => {
    assert.equal(duration(undefined, 'timeoutMs', 1000), 1000);
    assert.equal(duration(1, 'timeoutMs', 1000), 1);
    assert.equal(duration(MAX_TIMER_MS, 'timeoutMs', 1000), MAX_TIMER_MS);
    assert.equal(duration(0, 'jitterMs', 5, true), 0);
    assert.equal(duration(3600, 'x', 1, false, 3600), 3600);
    refuses(
      () => duration(0, 'timeoutMs', 1000),
      'timeoutMs',
      /expected a number of ms above 0 up to 2147483647, got 0/,
    );
    refuses(() => duration(-1, 'jitterMs', 0, true), 'jitterMs', /expected a number of ms from 0 up to/);
    refuses(() => duration(MAX_TIMER_MS + 1, 'timeoutMs', 1000), 'timeoutMs', /up to 2147483647/);
    refuses(() => duration(3601, 'x', 1, false, 3600), 'x', /up to 3600, got 3601/);
    refuses(() => duration('1s', 'timeoutMs', 1000), 'timeoutMs', /got "1s"/);
    refuses(() => duration(Number.NaN, 'timeoutMs', 1000), 'timeoutMs', /got NaN/);
    assert.equal(MAX_TIMER_MS, 2 ** 31 - 1);
  });

  it('toggle: off (undefined, false), on with defaults (true), or settings with known keys only', () => {
    assert.equal(toggle(undefined, 'http2', ['connections']), undefined);
    assert.equal(toggle(false, 'http2', ['connections']), undefined);
    assert.deepEqual(toggle(true, 'http2', ['connections']), {});
    assert.deepEqual(toggle({ connections: 2 }, 'http2', ['connections']), { connections: 2 });
    refuses(() => toggle('yes', 'http2', ['connections']), 'http2', /expected true, false or an object/);
    refuses(
      () => toggle({ conections: 2 }, 'http2', ['connections']),
      'http2.conections',
      /did you mean "connections"/,
    );
  });

  it('boolean: true or false only', () => {
    assert.equal(boolean(undefined, 'b', true), true);
    assert.equal(boolean(false, 'b', true), false);
    refuses(() => boolean(1, 'b', true), 'b', /expected a boolean, got 1/);
    refuses(() => boolean('true', 'b', true), 'b', /got "true"/);
  });

  it('string: non-empty, matching the pattern when given, described by `what`', () => {
    assert.equal(string(undefined, 's', 'dflt'), 'dflt');
    assert.equal(string(undefined, 's', undefined), undefined);
    assert.equal(string('a', 's', undefined), 'a');
    assert.equal(string('/x', 's', '/', /^\//, 'a path'), '/x');
    refuses(() => string('', 's', 'dflt'), 's', /expected a non-empty string, got ""/);
    refuses(() => string(5, 's', 'dflt'), 's', /expected a non-empty string, got 5/);
    refuses(
      () => string('x', 's', '/', /^\//, 'a path starting with "/"'),
      's',
      /expected a path starting with "\/", got "x"/,
    );
  });

  it('oneOf: one of the listed strings', () => {
    assert.equal(oneOf(undefined, 'mode', 'a', ['a', 'b']), 'a');
    assert.equal(oneOf('b', 'mode', 'a', ['a', 'b']), 'b');
    refuses(() => oneOf('c', 'mode', 'a', ['a', 'b']), 'mode', /expected one of "a", "b", got "c"/);
    refuses(() => oneOf(1, 'mode', 'a', ['a', 'b']), 'mode', /got 1/);
  });

  it('func: a function or undefined', () => {
    const f = (): number => 1;
    assert.equal(func(f, 'onX'), f);
    assert.equal(func(undefined, 'onX'), undefined);
    refuses(() => func('f', 'onX'), 'onX', /expected a function, got "f"/);
  });

  it('required: passes a value through, refuses undefined with an optional hint', () => {
    assert.equal(required(0, 'n'), 0);
    assert.equal(required(null, 'n'), null);
    refuses(() => required(undefined, 'slowStart.windowMs'), 'slowStart.windowMs', /required$/);
    refuses(
      () => required(undefined, 'zoneAware.localZone', 'the zone this process runs in'),
      'zoneAware.localZone',
      /required: the zone this process runs in/,
    );
    assert.equal(number(required(3, 'w'), 'w', 0, 0), 3);
  });
});

describe('options toolkit: read once, holes, whole durations, sums, clocks, header-safe strings', () => {
  it('checkObject reads each key once and names a throwing getter by its field', () => {
    let reads = 0;
    const raw = Object.defineProperty({}, 'a', {
      enumerable: true,
      get: () => {
        reads++;
        return reads === 1 ? 1 : 'changed';
      },
    });
    const snapshot = checkObject(raw, ['a', 'b'], 'opts');
    assert.equal(snapshot.a, 1);
    assert.equal(snapshot.a, 1);
    assert.equal(reads, 1);
    const throwing = Object.defineProperty({}, 'a', {
      enumerable: true,
      get: () => {
        throw new Error('boom');
      },
    });
    refuses(() => checkObject(throwing, ['a'], 'opts.inner'), 'opts.inner.a', /could not be read: boom/);
  });

  it('array refuses a non-array, a short one and a hole (naming the index), and returns a dense copy', () => {
    // eslint-disable-next-line no-sparse-arrays
    refuses(() => array([, 200], 'codes', 'an array of codes'), 'codes[0]', /must not have holes/);
    refuses(() => array(5, 'codes', 'an array of codes'), 'codes', /expected an array of codes, got 5/);
    refuses(() => array([], 'codes', 'a non-empty array', 1), 'codes', /expected a non-empty array/);
    const source = [1, 2];
    const copy = array(source, 'codes');
    assert.deepEqual(copy, [1, 2]);
    assert.notEqual(copy, source);
  });

  it('duration with whole refuses a fraction; durationSum refuses a sum past the longest timer', () => {
    assert.equal(duration(1000.5, 'a', 0), 1000.5);
    refuses(() => duration(1000.5, 'a', 0, false, MAX_TIMER_MS, true), 'a', /whole number of ms/);
    assert.equal(duration(1000, 'a', 0, false, MAX_TIMER_MS, true), 1000);
    durationSum(MAX_TIMER_MS, 'a', 'x + y');
    refuses(() => durationSum(MAX_TIMER_MS + 1, 'a', 'x + y'), 'a', /x \+ y must be at most 2147483647/);
  });

  it('clock needs now, setTimeout and clearTimeout, all functions', () => {
    const fallback = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
    assert.equal(clock(undefined, 'clock', fallback), fallback);
    assert.equal(clock(fallback, 'clock', fallback), fallback);
    refuses(() => clock({ now: () => 0 }, 'clock', fallback), 'clock', /now, setTimeout, clearTimeout/);
    refuses(() => clock({ now: () => 0, setTimeout: () => 0 }, 'x.clock', fallback), 'x.clock', /clearTimeout/);
    refuses(() => clock(null, 'clock', fallback), 'clock', /got null/);
  });

  it('isHeaderSafe refuses control characters (and whitespace unless allowed)', () => {
    assert.ok(isHeaderSafe('users.internal'));
    assert.ok(!isHeaderSafe('users\u0000internal'));
    assert.ok(!isHeaderSafe('users\u007finternal'));
    assert.ok(!isHeaderSafe('a b'));
    assert.ok(isHeaderSafe('a b', true));
    assert.ok(!isHeaderSafe('abc\r\nx: 1', true));
  });

  it('isHeaderSafe refuses text outside ASCII: undici refuses it, or sends other Latin-1 bytes (probe 20)', () => {
    for (const text of ['ü', 'tök日本', 'a\u202eb', '\u0080', '\u00ff']) {
      assert.ok(!isHeaderSafe(text), JSON.stringify(text));
      assert.ok(!isHeaderSafe(text, true), JSON.stringify(text));
    }
    assert.ok(isHeaderSafe('~!#$%&*+-.^_`|', false));
    assert.ok(isHeaderSafe('Bearer a\tb', true));
  });
});
