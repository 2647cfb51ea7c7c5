import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPanic, resolvePanicThreshold, selectEligible } from '../../../src/balancer/panic.js';
import { OutlierDetector, resolveOutlierDetectionOptions } from '../../../src/health/outlier-detector.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

describe('panic threshold', () => {
  it('panics when healthy % < threshold, never with no hosts or threshold 0', () => {
    assert.equal(isPanic(4, 10, 50), true);
    assert.equal(isPanic(5, 10, 50), false);
    assert.equal(isPanic(0, 10, 50), true);
    assert.equal(isPanic(0, 0, 50), false);
    assert.equal(isPanic(0, 10, 0), false);
    assert.equal(isPanic(9, 10, 100), true);
    assert.equal(isPanic(10, 10, 100), false);
    assert.equal(isPanic(1, 3, 50), true);
    assert.equal(isPanic(2, 3, 50), false);
  });

  it('validates the threshold', () => {
    assert.equal(resolvePanicThreshold(undefined), 50);
    assert.equal(resolvePanicThreshold(0), 0);
    assert.equal(resolvePanicThreshold(100), 100);
    for (const raw of [-1, 101, Number.NaN, '50']) {
      assert.throws(() => resolvePanicThreshold(raw as number), { option: 'panicThreshold' });
    }
    assert.throws(() => resolvePanicThreshold(120, 'clusters.a.panicThreshold'), {
      option: 'clusters.a.panicThreshold',
    });
  });

  it('engages when ejections leave too few hosts and disengages as they return', () => {
    const clock = new FakeClock();
    const detector = new OutlierDetector<string>(resolveOutlierDetectionOptions({ maxEjectionPercent: 100 })!, {
      clock,
      random: seededRandom(3),
    });
    const hosts = Array.from({ length: 10 }, (_, i) => `h${i}`);
    detector.setHosts(hosts);
    const eligible = () => selectEligible(hosts, (h) => !detector.isEjected(h), 50);
    for (const h of hosts.slice(0, 5)) detector.eject(h);
    assert.deepEqual(eligible(), { hosts: hosts.slice(5), panic: false });
    detector.eject('h5');
    assert.deepEqual(eligible(), { hosts, panic: true }, '4 of 10 healthy: balance across all');
    detector.uneject('h5');
    assert.deepEqual(eligible(), { hosts: hosts.slice(5), panic: false });
    detector.close();
  });
});
