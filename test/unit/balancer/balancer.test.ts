import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BalancedHost, Balancer, type BalancerSettings } from '../../../src/balancer/balancer.js';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { AllEjectedError, EmptySubsetError } from '../../../src/common/request-errors.js';
import { PickerError } from '../../../src/pickers/errors.js';
import type { ConfiguredPolicy, Pickable, PickContext, PickerPolicy } from '../../../src/pickers/picker.js';
import { createPickerRegistry } from '../../../src/pickers/registry.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

interface Host extends BalancedHost {
  usable: boolean;
}

function host(i: number, metadata: Record<string, string> = {}, priority = 0): Host {
  const endpoint = createEndpoint({ host: `10.0.0.${i}`, port: 80, metadata, priority });
  return { key: endpoint.key, endpoint, inFlight: 0, usable: true, weightFactor: 1 };
}

/** A deterministic policy: always the group's first endpoint (as ring hash is for one key). */
const first: PickerPolicy<undefined> = {
  name: 'first',
  parseConfig: () => undefined,
  build: <T extends Pickable>(targets: readonly T[]) => ({
    pick: () => ({ type: 'complete' as const, target: targets[0] as T }),
  }),
};

const ctx: PickContext = { method: 'GET', path: '/', authority: 'svc', headers: null };
const none: ReadonlySet<Host> = new Set();

function balancer(overrides: Partial<BalancerSettings<Host>> = {}) {
  const panics: boolean[] = [];
  const b = new Balancer<Host>({
    cluster: 'svc',
    policy: { policy: first as PickerPolicy<unknown>, config: undefined },
    environment: { random: seededRandom(1), clock: new FakeClock() },
    random: seededRandom(2),
    zone: undefined,
    panicThreshold: 50,
    eligible: () => true,
    weightFactor: () => 1,
    onPanic: (panic) => panics.push(panic),
    ...overrides,
  });
  return { b, panics };
}

describe('Balancer', () => {
  it('is empty until a rebuild with endpoints, and after clear()', () => {
    const { b } = balancer();
    assert.equal(b.empty, true);
    assert.equal(b.pick(ctx, undefined, none), undefined);
    const hosts = [host(1)];
    b.rebuild(hosts);
    assert.equal(b.empty, false);
    assert.equal(b.pick(ctx, undefined, none), hosts[0]);
    b.clear();
    assert.equal(b.empty, true);
    assert.equal(b.pick(ctx, undefined, none), undefined);
  });

  it('sets weight factors before building and reports panic of the main snapshot', () => {
    const hosts = [host(1), host(2), host(3), host(4)];
    const { b, panics } = balancer({
      weightFactor: (h) => (h === hosts[0] ? 0.5 : 1),
      eligible: (h) => h === hosts[0],
    });
    b.rebuild(hosts);
    assert.equal(hosts[0]?.weightFactor, 0.5);
    assert.deepEqual(panics, [true], '1 of 4 eligible is under the 50 % panic threshold');
  });

  it('fails with SIDECARLESS_ALL_EJECTED when nothing is eligible and panic is off', () => {
    const { b } = balancer({ eligible: () => false, panicThreshold: 0 });
    b.rebuild([host(1)]);
    assert.ok(b.pick(ctx, undefined, none) instanceof AllEjectedError);
  });

  it('a retry avoids the endpoints already tried, even with a deterministic policy', () => {
    const hosts = [host(1), host(2), host(3)];
    const { b } = balancer();
    b.rebuild(hosts);
    const tried = new Set<Host>([hosts[0] as Host]);
    for (let i = 0; i < 50; i++) {
      const picked = b.pick(ctx, undefined, tried);
      assert.ok(picked === hosts[1] || picked === hosts[2]);
    }
    assert.equal(b.pick(ctx, undefined, new Set(hosts)), hosts[0], "all tried: the policy's choice");
  });

  it('picks from a subset, with its fallback when the subset is empty', () => {
    const blue = host(1, { color: 'blue' });
    const green = host(2, { color: 'green' });
    const { b } = balancer();
    b.rebuild([blue, green]);
    const greenOnly = Object.freeze({ color: 'green' });
    const red = Object.freeze({ color: 'red' });
    assert.equal(b.pick(ctx, { subset: greenOnly, subsetFallback: 'any' }, none), green);
    assert.equal(b.pick(ctx, { subset: red, subsetFallback: 'any' }, none), blue);
    assert.equal(b.pick(ctx, { subset: red, subsetFallback: greenOnly }, none), green);
    const failed = b.pick(ctx, { subset: red, subsetFallback: 'fail' }, none);
    assert.ok(failed instanceof EmptySubsetError);
    assert.deepEqual(failed.subset, red);
  });

  it('forgets subset snapshots on rebuild', () => {
    const blue = host(1, { color: 'blue' });
    const { b } = balancer();
    b.rebuild([blue]);
    const green = Object.freeze({ color: 'green' });
    assert.ok(b.pick(ctx, { subset: green, subsetFallback: 'fail' }, none) instanceof EmptySubsetError);
    const greenHost = host(2, { color: 'green' });
    b.rebuild([blue, greenHost]);
    assert.equal(b.pick(ctx, { subset: green, subsetFallback: 'fail' }, none), greenHost);
  });

  it("builds pickers with the configured policy and its environment's clock and random source", () => {
    const environment = { random: seededRandom(3), clock: new FakeClock() };
    let seen: unknown;
    const policy: ConfiguredPolicy = createPickerRegistry().configure('round-robin');
    const spy: ConfiguredPolicy = {
      policy: {
        ...policy.policy,
        build: (targets, config, env) => {
          seen = env;
          return policy.policy.build(targets, config, env);
        },
      },
      config: policy.config,
    };
    const { b } = balancer({ policy: spy, environment });
    const hosts = [host(1), host(2)];
    b.rebuild(hosts);
    // In an object of the balancer's own: what a policy keys by it (ring hash's cache) is the cluster's alone.
    const given = seen as typeof environment;
    assert.notEqual(given, environment);
    assert.equal(given.clock, environment.clock);
    assert.equal(given.random, environment.random);
    const keys = new Set([0, 1, 2, 3].map(() => (b.pick(ctx, undefined, none) as Host).key));
    assert.equal(keys.size, 2);
  });
});

describe("Balancer and a custom policy's malformed answers", () => {
  /** A balancer whose policy's pickers answer every pick with `answer(targets)`. */
  function answering(answer: (targets: readonly Pickable[]) => unknown) {
    const policy: PickerPolicy<undefined> = {
      name: 'odd',
      parseConfig: () => undefined,
      build: (targets) => ({ pick: () => answer(targets) as never }),
    };
    return balancer({ policy: { policy: policy as PickerPolicy<unknown>, config: undefined } }).b;
  }

  it('fails the pick with SIDECARLESS_PICKER_FAILED for a result that is not a PickResult (null, a number)', () => {
    for (const result of [null, 5, 'complete']) {
      const b = answering(() => result);
      b.rebuild([host(1)]);
      const picked = b.pick(ctx, undefined, none);
      assert.ok(picked instanceof PickerError, `${String(result)}: ${String(picked)}`);
      assert.equal(picked.code, 'SIDECARLESS_PICKER_FAILED');
      assert.equal(picked.policy, 'odd');
    }
  });

  it('fails the pick with SIDECARLESS_PICKER_FAILED for a target that is not one of the endpoints', () => {
    const stranger = host(9);
    const b = answering(() => ({ type: 'complete', target: stranger }));
    b.rebuild([host(1)]);
    const picked = b.pick(ctx, undefined, none);
    assert.ok(picked instanceof PickerError, String(picked));
    assert.match(picked.message, /not one of its endpoints/);
    // A retry's exclusion path checks it too.
    assert.ok(b.pick(ctx, undefined, new Set([host(2)])) instanceof PickerError);
  });

  it('still sends a stale target (an endpoint of an earlier set) on', () => {
    const old = host(1);
    const b = answering(() => ({ type: 'complete', target: old }));
    b.rebuild([old]);
    b.rebuild([host(2)]);
    assert.equal(b.pick(ctx, undefined, none), old);
  });

  it('fails the pick with SIDECARLESS_PICKER_FAILED for an unknown type, or a fail or drop without its error', () => {
    for (const result of [{ type: 'bogus' }, { type: 'drop' }, { type: 'fail', error: null }]) {
      const b = answering(() => result);
      b.rebuild([host(1)]);
      const picked = b.pick(ctx, undefined, none);
      assert.ok(picked instanceof PickerError, `${JSON.stringify(result)}: ${String(picked)}`);
    }
    const own = new Error('mine');
    const b = answering(() => ({ type: 'drop', error: own }));
    b.rebuild([host(1)]);
    assert.equal(b.pick(ctx, undefined, none), own, "a result's own error is the request's");
  });

  it('fails the picks of a build that returns no picker with SIDECARLESS_PICKER_FAILED', () => {
    const policy: PickerPolicy<undefined> = {
      name: 'no-picker',
      parseConfig: () => undefined,
      build: () => undefined as never,
    };
    const { b } = balancer({ policy: { policy: policy as PickerPolicy<unknown>, config: undefined } });
    b.rebuild([host(1)]);
    assert.ok(b.pick(ctx, undefined, none) instanceof PickerError);
  });
});
