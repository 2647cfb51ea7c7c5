import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEndpoint, createPickerRegistry, type Pickable } from '../../../src/index.js';
import { roundRobinPolicy } from '../../../src/pickers/round-robin.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const targets: Pickable[] = ['a:1', 'b:2', 'c:3'].map((s) => {
  const [host, port] = s.split(':');
  const endpoint = createEndpoint({ host: host!, port: Number(port) });
  return { key: endpoint.key, endpoint, inFlight: 0 };
});
const ctx = { method: 'GET', path: '/', authority: 'svc', headers: null };

function keys(random: number, n: number): string[] {
  const picker = roundRobinPolicy.build(targets, {}, { random: () => random, clock: new FakeClock() });
  return Array.from({ length: n }, () => {
    const r = picker.pick(ctx);
    assert.equal(r.type, 'complete');
    return r.type === 'complete' ? r.target.key : '';
  });
}

describe('round-robin', () => {
  it('cycles through every target in order', () => {
    assert.deepEqual(keys(0, 6), ['a:1', 'b:2', 'c:3', 'a:1', 'b:2', 'c:3']);
  });
  it('starts at a random offset', () => {
    assert.deepEqual(keys(0.7, 3), ['c:3', 'a:1', 'b:2']);
  });
  it('returns the same result objects on every pick (no allocation)', () => {
    const picker = roundRobinPolicy.build(targets, {}, { random: () => 0, clock: new FakeClock() });
    const first = picker.pick(ctx);
    picker.pick(ctx);
    picker.pick(ctx);
    assert.equal(picker.pick(ctx), first);
  });
  it('takes no settings: unknown ones are typed errors naming the option', () => {
    assert.throws(() => createPickerRegistry().configure({ name: 'round-robin', choiceCount: 2 }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'picker.choiceCount',
    });
    assert.throws(() => createPickerRegistry().configure('no-such-policy'), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'picker.name',
    });
  });
});
