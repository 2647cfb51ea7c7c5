import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUILT_IN_POLICIES, isBuiltInPolicy } from '../../../src/pickers/built-in.js';
import { roundRobinPolicy } from '../../../src/pickers/round-robin.js';
import { createPickerRegistry } from '../../../src/pickers/registry.js';

// The balancer checks a custom policy's targets (a lookup per pick, an insertion per endpoint per update) and
// trusts the built-ins': every name a new registry holds must configure to a policy it trusts.
describe('isBuiltInPolicy', () => {
  it('is true for every policy of a new registry, as configured', () => {
    const registry = createPickerRegistry();
    assert.deepEqual(registry.names(), BUILT_IN_POLICIES.map((p) => p.name).sort());
    for (const name of registry.names()) {
      const option = name === 'ring-hash' || name === 'maglev' ? { name, hashKey: { header: 'x-key' } } : name;
      assert.ok(isBuiltInPolicy(registry.configure(option).policy), name);
    }
  });

  it('is false for a registered policy, even one made from a built-in', () => {
    const copy = { ...roundRobinPolicy, name: 'my-round-robin' };
    const registry = createPickerRegistry().register(copy);
    assert.equal(isBuiltInPolicy(registry.configure('my-round-robin').policy), false);
    // Registered under a built-in's name, it replaces the built-in: not trusted either.
    const shadow = createPickerRegistry().register({ ...roundRobinPolicy });
    assert.equal(isBuiltInPolicy(shadow.configure('round-robin').policy), false);
  });
});
