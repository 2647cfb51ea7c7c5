import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type EjectionInfo,
  meanAndStdev,
  OUTLIER_DETECTION_DEFAULTS,
  type OutlierDetectionOptions,
  OutlierDetector,
  type ReturnInfo,
  resolveOutlierDetectionOptions,
} from '../../../src/health/outlier-detector.js';
import type { RandomSource } from '../../../src/common/runtime.js';
import type { AttemptOutcome } from '../../../src/common/outcome.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

const status = (statusCode: number): AttemptOutcome => ({
  statusCode,
  errorKind: undefined,
  error: undefined,
  latencyMs: 1,
});
const failed = (errorKind: AttemptOutcome['errorKind'], statusCode = 0): AttemptOutcome => ({
  statusCode,
  errorKind,
  error: new Error(String(errorKind)),
  latencyMs: 1,
});
const OK = status(200);

type Event = ['eject', string, EjectionInfo] | ['return', string, ReturnInfo];

function setup(options: OutlierDetectionOptions = {}, n = 10, random: RandomSource = seededRandom(1)) {
  const clock = new FakeClock();
  const events: Event[] = [];
  const detector = new OutlierDetector<string>(resolveOutlierDetectionOptions(options)!, {
    clock,
    random,
    onEject: (h, info) => events.push(['eject', h, info]),
    onReturn: (h, info) => events.push(['return', h, info]),
  });
  const hosts = Array.from({ length: n }, (_, i) => `h${i}`);
  detector.setHosts(hosts);
  const send = (host: string, outcome: AttemptOutcome, times = 1) => {
    for (let i = 0; i < times; i++) detector.record(host, outcome);
  };
  const ejected = () => hosts.filter((h) => detector.isEjected(h));
  return { clock, events, detector, hosts, send, ejected };
}

describe('outlier detection: consecutive rules', () => {
  it('ejects after five consecutive 5xx, as the fifth arrives, and nothing else', () => {
    const { send, ejected, events } = setup();
    send('h0', status(500), 4);
    send('h1', status(503), 3);
    assert.deepEqual(ejected(), []);
    send('h0', status(502));
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events.length, 1);
    const [kind, host, info] = events[0]!;
    assert.equal(kind, 'eject');
    assert.equal(host, 'h0');
    assert.deepEqual(info, { reason: 'consecutive-5xx', ejectionMs: 30_000, timesEjected: 1, multiplier: 1 });
  });

  it('a success or a 4xx resets the count; 4xx never count', () => {
    const { send, ejected } = setup();
    send('h0', status(500), 4);
    send('h0', OK);
    send('h0', status(500), 4);
    send('h0', status(404));
    send('h0', status(500), 4);
    send('h1', status(404), 50);
    send('h2', status(429), 50);
    assert.deepEqual(ejected(), []);
  });

  it('counts local-origin failures as 5xx by default (not split)', () => {
    const { send, ejected, events } = setup();
    send('h0', failed('connect'), 2);
    send('h0', failed('timeout'));
    send('h0', failed('reset'));
    assert.deepEqual(ejected(), []);
    send('h0', status(503));
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events[0]![2].reason, 'consecutive-5xx');
  });

  it('counts an `other` error without a response as a 5xx, and a response with a late `other` error as a success', () => {
    const { send, ejected, detector } = setup();
    send('h0', failed('other'), 4);
    send('h0', failed('other', 200));
    assert.equal(detector.snapshot('h0')?.consecutive5xx, 0);
    send('h0', failed('other'), 5);
    assert.deepEqual(ejected(), ['h0']);
  });

  it('aborted attempts count for nothing: they neither fail nor reset', () => {
    const { send, ejected, detector } = setup();
    send('h1', failed('aborted'), 20);
    assert.deepEqual(detector.snapshot('h1'), {
      ejected: false,
      multiplier: 0,
      timesEjected: 0,
      consecutive5xx: 0,
      consecutiveGatewayFailure: 0,
      consecutiveLocalOriginFailure: 0,
      requests: 0,
      failures: 0,
    });
    send('h0', status(500), 4);
    send('h0', failed('aborted'), 3);
    send('h0', status(500));
    assert.deepEqual(ejected(), ['h0']);
  });

  it('an aborted attempt with a final response counts as that response (the caller let go of its body)', () => {
    const { send, ejected, detector } = setup();
    // 200, 200, 500 with every body discarded by the caller: the 500s are not consecutive.
    for (let i = 0; i < 5; i++) {
      send('h0', failed('aborted', 200), 2);
      send('h0', failed('aborted', 500));
    }
    assert.deepEqual(ejected(), []);
    assert.equal(detector.snapshot('h0')?.requests, 15);
    // A 500 whose body the caller cancels, every time: ejected at the fifth, as without the abort.
    send('h1', failed('aborted', 500), 4);
    assert.deepEqual(ejected(), []);
    send('h1', failed('aborted', 500));
    assert.deepEqual(ejected(), ['h1']);
    // An informational response is not the answer: an abort after a 100 still counts for nothing.
    send('h2', status(500), 4);
    send('h2', failed('aborted', 100), 3);
    assert.equal(detector.snapshot('h2')?.consecutive5xx, 4);
  });

  it('gateway failures are detected but not enforced by default', () => {
    const { send, ejected } = setup({ consecutive5xx: 100 });
    send('h0', status(503), 20);
    assert.deepEqual(ejected(), []);
  });

  it('ejects after consecutive 502/503/504 when enforced; another 5xx resets the gateway count', () => {
    const { send, ejected, events } = setup({
      consecutive5xx: 100,
      consecutiveGatewayFailure: 3,
      enforcingConsecutiveGatewayFailure: 100,
    });
    send('h1', status(502), 2);
    send('h1', status(500));
    send('h1', status(504), 2);
    assert.deepEqual(ejected(), []);
    send('h0', status(502));
    send('h0', status(503));
    send('h0', failed('connect')); // a 503 when not split
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events[0]![2].reason, 'consecutive-gateway-failure');
  });

  it('split mode: local-origin failures have their own rule and neither count nor reset the 5xx count', () => {
    const { send, ejected, events, detector } = setup({ splitExternalLocalOriginErrors: true });
    send('h0', status(503), 3);
    send('h0', failed('reset'), 2);
    send('h0', status(503));
    assert.deepEqual(ejected(), []);
    assert.equal(detector.snapshot('h0')?.consecutive5xx, 4);
    send('h0', status(503));
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events[0]![2].reason, 'consecutive-5xx');

    // Any response (even a 5xx) is a local-origin success and resets the local-origin count.
    send('h1', failed('connect'), 4);
    send('h1', status(500));
    send('h1', failed('timeout'), 4);
    assert.equal(detector.snapshot('h1')?.consecutiveLocalOriginFailure, 4);
    detector.uneject('h0');
    send('h1', failed('connect'));
    assert.ok(detector.isEjected('h1'));
    assert.equal(events.at(-1)![2].reason, 'consecutive-local-origin-failure');
  });

  it('ignores outcomes for hosts it does not track', () => {
    const { send, detector } = setup();
    send('nope', status(500), 10);
    assert.equal(detector.isEjected('nope'), false);
    assert.equal(detector.ejectedCount, 0);
  });
});

describe('outlier detection: enforcement percentages', () => {
  it('ejects when random() × 100 is below the percentage, using the injected random source', () => {
    let next = 0.49;
    const { send, ejected } = setup({ enforcingConsecutive5xx: 50 }, 10, () => next);
    send('h0', status(500), 5);
    assert.deepEqual(ejected(), ['h0']);
    next = 0.5;
    const second = setup({ enforcingConsecutive5xx: 50 }, 10, () => next);
    second.send('h0', status(500), 5);
    assert.deepEqual(second.ejected(), []);
    // The count restarts after an unenforced detection, so another run gets another roll.
    second.send('h0', status(500), 4);
    next = 0.1;
    second.send('h0', status(500));
    assert.deepEqual(second.ejected(), ['h0']);
  });

  it('ejects about the enforced share of outliers, deterministically for a seed', () => {
    const run = (seed: number) => {
      const t = setup({ enforcingConsecutive5xx: 30, maxEjectionPercent: 100 }, 200, seededRandom(seed));
      for (const h of t.hosts) t.send(h, status(500), 5);
      return t.ejected().length;
    };
    const count = run(7);
    assert.equal(run(7), count);
    assert.ok(count > 40 && count < 80, `ejected ${count} of 200 at 30 %`);
  });

  it('0 % never ejects, whatever the failures', () => {
    const { send, ejected } = setup({ enforcingConsecutive5xx: 0 });
    send('h0', status(500), 100);
    assert.deepEqual(ejected(), []);
  });
});

describe('outlier detection: max ejection percent', () => {
  it('caps ejections at 10 % of the hosts', () => {
    const { send, ejected } = setup({}, 20);
    for (const h of ['h0', 'h1', 'h2', 'h3']) send(h, status(500), 5);
    assert.deepEqual(ejected(), ['h0', 'h1']);
  });

  it('always allows one ejection, even when one host is more than the percentage', () => {
    const small = setup({}, 3);
    small.send('h0', status(500), 5);
    small.send('h1', status(500), 5);
    assert.deepEqual(small.ejected(), ['h0']);
    const zero = setup({ maxEjectionPercent: 0 }, 10);
    zero.send('h3', status(500), 5);
    zero.send('h4', status(500), 5);
    assert.deepEqual(zero.ejected(), ['h3']);
  });

  it('never exceeds the percentage once more than one host is ejected', () => {
    const { send, ejected } = setup({ maxEjectionPercent: 50 }, 5);
    for (const h of ['h0', 'h1', 'h2', 'h3', 'h4']) send(h, status(500), 5);
    assert.deepEqual(ejected(), ['h0', 'h1']);
  });

  it('a blocked detection ejects later, once room is freed', () => {
    const { send, ejected, detector } = setup({}, 10);
    send('h0', status(500), 5);
    send('h1', status(500), 5);
    assert.deepEqual(ejected(), ['h0']);
    detector.uneject('h0');
    send('h1', status(500), 5);
    assert.deepEqual(ejected(), ['h1']);
  });
});

describe('outlier detection: ejection time', () => {
  it('grows with each ejection (30 s, 60 s, 90 s ...) up to the 300 s cap, returning at the sweep after it', () => {
    const { clock, send, detector, events } = setup();
    const expected = [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300].map((s) => s * 1000);
    for (const ms of expected) {
      send('h0', status(500), 5);
      const eject = events.at(-1)!;
      assert.equal(eject[0], 'eject');
      assert.equal((eject[2] as EjectionInfo).ejectionMs, ms);
      // Ejections happen on sweep boundaries here, so the host returns exactly at the sweep `ms` later.
      clock.advance(ms - 1);
      assert.ok(detector.isEjected('h0'), `still out just before ${ms} ms`);
      clock.advance(1);
      assert.equal(detector.isEjected('h0'), false);
      const back = events.at(-1)!;
      assert.equal(back[0], 'return');
      assert.deepEqual(back[2], {
        reason: 'elapsed',
        ejectionReason: 'consecutive-5xx',
        ejectedForMs: ms,
        timesEjected: (eject[2] as EjectionInfo).timesEjected,
      });
    }
    assert.equal(detector.snapshot('h0')?.multiplier, 10);
    assert.equal(detector.snapshot('h0')?.timesEjected, 12);
  });

  it('returns at the first sweep after the ejection time when ejected mid-interval', () => {
    const { clock, send, detector } = setup();
    clock.advance(5_000);
    send('h0', status(500), 5);
    clock.advance(29_999); // t = 34 999: sweep at 30 000 saw 25 s
    assert.ok(detector.isEjected('h0'));
    clock.advance(5_001); // sweep at 40 000 sees 35 s
    assert.equal(detector.isEjected('h0'), false);
  });

  it('decays the multiplier by one per interval while the host stays in', () => {
    const { clock, send, detector, events } = setup();
    for (let i = 0; i < 3; i++) {
      send('h0', status(500), 5);
      clock.advance((events.at(-1)![2] as EjectionInfo).ejectionMs);
    }
    assert.equal(detector.snapshot('h0')?.multiplier, 3);
    clock.advance(10_000);
    assert.equal(detector.snapshot('h0')?.multiplier, 2);
    clock.advance(10_000);
    assert.equal(detector.snapshot('h0')?.multiplier, 1);
    send('h0', status(500), 5);
    assert.equal((events.at(-1)![2] as EjectionInfo).ejectionMs, 60_000);
    clock.advance(60_000);
    clock.advance(100_000);
    assert.equal(detector.snapshot('h0')?.multiplier, 0);
    send('h0', status(500), 5);
    assert.equal((events.at(-1)![2] as EjectionInfo).ejectionMs, 30_000);
  });

  it('adds jitter from the random source', () => {
    const { send, events } = setup({ jitterMs: 1000 }, 10, () => 0.5);
    send('h0', status(500), 5);
    assert.equal((events[0]![2] as EjectionInfo).ejectionMs, 30_500);
  });

  it('honours custom base and max ejection times', () => {
    const { send, events, detector } = setup({ baseEjectionTimeMs: 1000, maxEjectionTimeMs: 2500 });
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      send('h0', status(500), 5);
      times.push((events.at(-1)![2] as EjectionInfo).ejectionMs);
      detector.uneject('h0');
    }
    assert.deepEqual(times, [1000, 2000, 2500, 2500]);
  });
});

describe('outlier detection: success rate', () => {
  /** Sends `total` requests to `host` with `failures` spread out (never two in a row when avoidable). */
  function traffic(send: (h: string, o: AttemptOutcome) => void, host: string, total: number, failures: number) {
    let sent = 0;
    for (let i = 0; i < total; i++) {
      const fail = Math.floor(((i + 1) * failures) / total) > sent;
      if (fail) sent++;
      send(host, fail ? status(500) : OK);
    }
  }

  it('computes mean and population stdev as Envoy does ({50,100,100,100,100}: 90, 20)', () => {
    assert.deepEqual(meanAndStdev([50, 100, 100, 100, 100]), { mean: 90, stdev: 20 });
  });

  it('ejects a host below mean − 1.9 × stdev at the interval, and only it', () => {
    // Success rates 50, 100, 100, 100, 100: mean 90, stdev 20, threshold 90 − 38 = 52.
    const { clock, send, ejected, events } = setup({}, 5);
    traffic(send, 'h0', 100, 50);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(send, h, 100, 0);
    assert.deepEqual(ejected(), []);
    clock.advance(10_000);
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events[0]![2].reason, 'success-rate');
  });

  it('keeps a host just above the threshold', () => {
    // 80, 90, 100, 100, 100: mean 94, stdev 8, threshold 94 − 15.2 = 78.8: nobody is below.
    const { clock, send, ejected } = setup({ maxEjectionPercent: 100 }, 5);
    traffic(send, 'h0', 100, 20);
    traffic(send, 'h1', 100, 10);
    for (const h of ['h2', 'h3', 'h4']) traffic(send, h, 100, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), []);
    // With a factor of 1, the threshold is 86: h0 (80) goes, h1 (90) stays.
    const strict = setup({ maxEjectionPercent: 100, successRateStdevFactor: 1 }, 5);
    traffic(strict.send, 'h0', 100, 20);
    traffic(strict.send, 'h1', 100, 10);
    for (const h of ['h2', 'h3', 'h4']) traffic(strict.send, h, 100, 0);
    strict.clock.advance(10_000);
    assert.deepEqual(strict.ejected(), ['h0']);
  });

  it('also requires a gap of successRateMinimumGap points below the mean (0 restores Envoy exactly)', () => {
    // 92, 100, 100, 100, 100: mean 98.4, stdev 3.2, threshold 98.4 − 6.08 = 92.32: Envoy ejects h0, 6.4 points
    // below the mean; the default 10-point gap keeps it.
    const run = (options: OutlierDetectionOptions) => {
      const t = setup(options, 5);
      traffic(t.send, 'h0', 100, 8);
      for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(t.send, h, 100, 0);
      t.clock.advance(10_000);
      return t.ejected();
    };
    assert.deepEqual(run({}), []);
    assert.deepEqual(run({ successRateMinimumGap: 0 }), ['h0']);
    assert.deepEqual(run({ successRateMinimumGap: 6 }), ['h0']);
    assert.deepEqual(run({ successRateMinimumGap: 7 }), []);
  });

  it('needs the minimum number of hosts with enough volume', () => {
    const four = setup({}, 4);
    traffic(four.send, 'h0', 100, 50);
    for (const h of ['h1', 'h2', 'h3']) traffic(four.send, h, 100, 0);
    four.clock.advance(10_000);
    assert.deepEqual(four.ejected(), [], 'four hosts are fewer than successRateMinimumHosts');

    const lowVolume = setup({}, 5);
    traffic(lowVolume.send, 'h0', 99, 50);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(lowVolume.send, h, 100, 0);
    lowVolume.clock.advance(10_000);
    assert.deepEqual(lowVolume.ejected(), [], 'h0 has 99 requests, below successRateRequestVolume');
  });

  it('looks only at the interval just ended', () => {
    const { clock, send, ejected } = setup({}, 5);
    traffic(send, 'h0', 60, 30);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(send, h, 60, 0);
    clock.advance(10_000);
    traffic(send, 'h0', 60, 30);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(send, h, 60, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), []);
  });

  it('counts local-origin failures in the local-origin success rate when split', () => {
    const { clock, send, ejected, events } = setup({ splitExternalLocalOriginErrors: true }, 5);
    for (let i = 0; i < 100; i++) send('h0', i % 2 === 0 ? failed('connect') : OK);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(send, h, 100, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), ['h0']);
    assert.equal(events[0]![2].reason, 'local-origin-success-rate');
  });

  it('can be switched off with enforcingSuccessRate: 0', () => {
    const { clock, send, ejected } = setup({ enforcingSuccessRate: 0 }, 5);
    traffic(send, 'h0', 100, 50);
    for (const h of ['h1', 'h2', 'h3', 'h4']) traffic(send, h, 100, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), []);
  });
});

describe('outlier detection: failure percentage', () => {
  const options: OutlierDetectionOptions = {
    enforcingSuccessRate: 0,
    enforcingFailurePercentage: 100,
    consecutive5xx: 1000,
    maxEjectionPercent: 100,
  };
  const load = (send: (h: string, o: AttemptOutcome) => void, host: string, total: number, failures: number) => {
    for (let i = 0; i < total; i++) send(host, i < failures ? status(503) : OK);
  };

  it('is off by default', () => {
    const { clock, send, ejected } = setup({ enforcingSuccessRate: 0, consecutive5xx: 1000 }, 5);
    for (const h of ['h0', 'h1', 'h2', 'h3', 'h4']) load(send, h, 50, 50);
    clock.advance(10_000);
    assert.deepEqual(ejected(), []);
  });

  it('ejects hosts at or above 85 % failures with at least 50 requests, when 5 hosts qualify', () => {
    const { clock, send, ejected, events } = setup(options, 6);
    load(send, 'h0', 100, 85); // 85 %: out
    load(send, 'h1', 100, 84); // 84 %: stays
    load(send, 'h2', 49, 49); // 100 % but below the volume
    for (const h of ['h3', 'h4', 'h5']) load(send, h, 50, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), ['h0']);
    assert.deepEqual(
      events.map((e) => e[2].reason),
      ['failure-percentage'],
    );
  });

  it('needs failurePercentageMinimumHosts hosts with enough volume', () => {
    const { clock, send, ejected } = setup(options, 5);
    load(send, 'h0', 100, 100);
    for (const h of ['h1', 'h2', 'h3']) load(send, h, 50, 0);
    load(send, 'h4', 10, 0);
    clock.advance(10_000);
    assert.deepEqual(ejected(), []);
  });

  it('split mode: the local-origin failure percentage ejects on connect failures only, when enforced', () => {
    const split: OutlierDetectionOptions = {
      ...options,
      enforcingFailurePercentage: 0,
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailure: 1000,
      enforcingLocalOriginSuccessRate: 0,
    };
    const run = (extra: OutlierDetectionOptions) => {
      const t = setup({ ...split, ...extra }, 6);
      // Interleaved, so that no consecutive rule could fire even at its default threshold.
      for (let i = 0; i < 100; i++) t.send('h0', i % 10 === 0 ? OK : failed('connect')); // 90 %: out
      for (let i = 0; i < 100; i++) t.send('h1', i < 16 ? OK : failed('reset')); // 84 %: stays
      load(t.send, 'h2', 100, 100); // every request a 503: a local-origin success (the host answered)
      for (const h of ['h3', 'h4', 'h5']) load(t.send, h, 50, 0);
      t.clock.advance(10_000);
      return t;
    };
    const enforced = run({ enforcingFailurePercentageLocalOrigin: 100 });
    assert.deepEqual(enforced.ejected(), ['h0']);
    assert.deepEqual(
      enforced.events.map((e) => e[2].reason),
      ['local-origin-failure-percentage'],
    );
    assert.deepEqual(run({}).ejected(), [], 'off by default (enforcingFailurePercentageLocalOrigin: 0)');
  });
});

describe('outlier detection: membership, manual control, lifecycle', () => {
  it('setHosts keeps the state of hosts that stay and forgets removed ones', () => {
    const { send, detector, ejected } = setup({}, 3);
    send('h0', status(500), 5);
    send('h1', status(500), 4);
    detector.setHosts(['h1', 'h2', 'h3']);
    assert.equal(detector.ejectedCount, 0);
    assert.equal(detector.isEjected('h0'), false);
    send('h1', status(500));
    assert.ok(detector.isEjected('h1'));
    detector.setHosts(['h0', 'h1', 'h2', 'h3']);
    assert.equal(detector.snapshot('h0')?.timesEjected, 0, 'a re-added host starts clean');
    assert.deepEqual(ejected(), ['h1']);
  });

  it('eject() and uneject() for a health checker, with events and the cap', () => {
    const { detector, events } = setup({}, 10);
    assert.equal(detector.eject('h2'), true);
    assert.equal(detector.eject('h3'), false, 'the cap holds for manual ejections too');
    assert.equal(detector.eject('h2'), false);
    assert.equal(events[0]![2].reason, 'health-check');
    assert.equal(detector.uneject('h2', 'health-check'), true);
    assert.equal(detector.uneject('h2'), false);
    assert.deepEqual(events[1], [
      'return',
      'h2',
      { reason: 'health-check', ejectionReason: 'health-check', ejectedForMs: 0, timesEjected: 1 },
    ]);
  });

  it('does not count failures of an ejected host toward another ejection, nor run it through success rate', () => {
    const { clock, send, detector, events } = setup({}, 5);
    send('h0', status(500), 5);
    send('h0', status(500), 200);
    for (const h of ['h1', 'h2', 'h3', 'h4']) send(h, OK, 100);
    clock.advance(10_000);
    assert.equal(events.length, 1);
    assert.equal(detector.snapshot('h0')?.timesEjected, 1);
  });

  it('runs one unref-able timer and clears it on close', () => {
    const { clock, detector } = setup();
    assert.equal(clock.pending, 1);
    clock.advance(25_000);
    assert.equal(clock.pending, 1);
    detector.close();
    detector.close();
    assert.equal(clock.pending, 0);
  });

  it('after close, nothing more is ejected', () => {
    const { send, detector, ejected } = setup();
    detector.close();
    send('h0', status(500), 10);
    assert.deepEqual(ejected(), []);
  });
});

describe('outlier detection: options', () => {
  it('is on by default with Envoy defaults; false switches it off', () => {
    assert.equal(resolveOutlierDetectionOptions(undefined), OUTLIER_DETECTION_DEFAULTS);
    assert.equal(resolveOutlierDetectionOptions(true), OUTLIER_DETECTION_DEFAULTS);
    assert.equal(resolveOutlierDetectionOptions(false), undefined);
    assert.deepEqual(
      { ...resolveOutlierDetectionOptions({}) },
      {
        intervalMs: 10_000,
        baseEjectionTimeMs: 30_000,
        maxEjectionTimeMs: 300_000,
        jitterMs: 0,
        maxEjectionPercent: 10,
        consecutive5xx: 5,
        enforcingConsecutive5xx: 100,
        consecutiveGatewayFailure: 5,
        enforcingConsecutiveGatewayFailure: 0,
        splitExternalLocalOriginErrors: false,
        consecutiveLocalOriginFailure: 5,
        enforcingConsecutiveLocalOriginFailure: 100,
        successRateMinimumHosts: 5,
        successRateRequestVolume: 100,
        successRateStdevFactor: 1.9,
        successRateMinimumGap: 10,
        enforcingSuccessRate: 100,
        enforcingLocalOriginSuccessRate: 100,
        failurePercentageThreshold: 85,
        failurePercentageMinimumHosts: 5,
        failurePercentageRequestVolume: 50,
        enforcingFailurePercentage: 0,
        enforcingFailurePercentageLocalOrigin: 0,
      },
    );
  });

  const bad: Array<[unknown, string]> = [
    [{ consecutive5xx: 0 }, 'outlierDetection.consecutive5xx'],
    [{ consecutive5xx: -1 }, 'outlierDetection.consecutive5xx'],
    [{ consecutive5xx: 2.5 }, 'outlierDetection.consecutive5xx'],
    [{ consecutiveGatewayFailure: '5' }, 'outlierDetection.consecutiveGatewayFailure'],
    [{ maxEjectionPercent: 101 }, 'outlierDetection.maxEjectionPercent'],
    [{ maxEjectionPercent: -1 }, 'outlierDetection.maxEjectionPercent'],
    [{ enforcingSuccessRate: 150 }, 'outlierDetection.enforcingSuccessRate'],
    [{ failurePercentageThreshold: Number.NaN }, 'outlierDetection.failurePercentageThreshold'],
    [{ intervalMs: 0 }, 'outlierDetection.intervalMs'],
    [{ intervalMs: -10 }, 'outlierDetection.intervalMs'],
    [{ baseEjectionTimeMs: 0 }, 'outlierDetection.baseEjectionTimeMs'],
    [{ baseEjectionTimeMs: 60_000, maxEjectionTimeMs: 30_000 }, 'outlierDetection.maxEjectionTimeMs'],
    [{ jitterMs: -1 }, 'outlierDetection.jitterMs'],
    [{ successRateStdevFactor: -0.1 }, 'outlierDetection.successRateStdevFactor'],
    [{ successRateMinimumGap: 101 }, 'outlierDetection.successRateMinimumGap'],
    [{ successRateMinimumHosts: 0 }, 'outlierDetection.successRateMinimumHosts'],
    [{ failurePercentageRequestVolume: 0 }, 'outlierDetection.failurePercentageRequestVolume'],
    [{ splitExternalLocalOriginErrors: 'yes' }, 'outlierDetection.splitExternalLocalOriginErrors'],
    [{ consecutive5XX: 3 }, 'outlierDetection.consecutive5XX'],
    ['on', 'outlierDetection'],
    [null, 'outlierDetection'],
  ];
  for (const [raw, option] of bad) {
    it(`rejects ${JSON.stringify(raw)} naming ${option}`, () => {
      assert.throws(() => resolveOutlierDetectionOptions(raw as OutlierDetectionOptions), {
        name: 'InvalidOptionError',
        code: 'SIDECARLESS_INVALID_OPTION',
        option,
      });
    });
  }

  it('refuses an unknown key in the toolkit wording, suggesting the close one', () => {
    assert.throws(() => resolveOutlierDetectionOptions({ consecutive5XX: 3 } as OutlierDetectionOptions), {
      option: 'outlierDetection.consecutive5XX',
      message: /outlierDetection\.consecutive5XX.*unknown option; did you mean "consecutive5xx"\?/,
    });
    assert.throws(() => resolveOutlierDetectionOptions({ interval: 1000 } as OutlierDetectionOptions), {
      option: 'outlierDetection.interval',
      message: /unknown option; did you mean "intervalMs"\?/,
    });
  });

  it('names options under a custom prefix', () => {
    assert.throws(() => resolveOutlierDetectionOptions({ intervalMs: 0 }, 'clusters.users.outlierDetection'), {
      option: 'clusters.users.outlierDetection.intervalMs',
    });
  });
});
