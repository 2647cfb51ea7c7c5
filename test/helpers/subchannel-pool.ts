/**
 * A `SubchannelPool` for tests of updates (no cluster around it): plain HTTP, undici's default pool options, the
 * system clock, a seeded random source, the default connect backoff and a 1 s drain timeout.
 */
import { resolveBackoffOptions } from '../../src/common/backoff.js';
import { systemClock } from '../../src/common/runtime.js';
import { type MembershipChange, SubchannelPool } from '../../src/subchannel/subchannel-pool.js';
import type { Subchannel, SubchannelState } from '../../src/subchannel/subchannel.js';
import type { LegacyHandler } from '../../src/common/handler.js';
import { seededRandom } from './fake-clock.js';

export interface TestPoolHooks {
  /** Each reconciliation's change (joined and left). */
  readonly onMembershipChange?: (change: MembershipChange) => void;
  /** Each subchannel state change, with the state before. */
  readonly onStateChange?: (subchannel: Subchannel, previous: SubchannelState) => void;
}

export function testSubchannelPool(hooks: TestPoolHooks = {}): SubchannelPool {
  return new SubchannelPool({
    protocol: 'http:',
    poolOptions: {},
    clock: systemClock,
    random: seededRandom(1),
    connectBackoff: resolveBackoffOptions(undefined, 'connectBackoff'),
    drainTimeoutMs: 1000,
    observer: { onStateChange: hooks.onStateChange ?? (() => {}), onOutcome: () => {} },
    onMembershipChange: hooks.onMembershipChange ?? (() => {}),
  });
}

/** Dispatches `GET /` on `subchannel` directly; resolves when the response has completed, rejects on its error. */
export function dispatchGet(subchannel: Subchannel): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const handler: LegacyHandler = {
      onConnect() {},
      onHeaders: () => true,
      onData: () => true,
      onComplete: () => resolve(),
      onError: reject,
    };
    subchannel.dispatch({ origin: subchannel.origin, path: '/', method: 'GET' }, handler);
  });
}
