/**
 * The incremental paths of a resolver update give what a full rebuild gives (issue 14, "Scale"): for random
 * sequences of sets, the subchannel pool's validation (which reuses what it validated before, by position, by key
 * and by comparing fields) accepts and rejects exactly what validating every entry anew does, and yields equal
 * endpoints; the pool keeps a key's subchannel while the key stays. Properties with fast-check, seeded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createEndpoint, type Endpoint, type EndpointInit, parseHostPort } from '../../../src/common/endpoint.js';
import { type MembershipChange, SubchannelPool } from '../../../src/subchannel/subchannel-pool.js';
import type { Subchannel } from '../../../src/subchannel/subchannel.js';
import { testSubchannelPool } from '../../helpers/subchannel-pool.js';

function makePool(changes: MembershipChange[]): SubchannelPool {
  return testSubchannelPool({ onMembershipChange: (change) => changes.push(change) });
}

// Hosts include spellings that normalize to another (upper case, a trailing dot, IPv6 written two ways).
const HOSTS = ['a.example', 'A.Example', 'a.example.', '10.0.0.1', '::1', '0:0::1', '[::1]', 'b.example'];
const PORTS = [80, 8080];

interface Spec {
  readonly host: string;
  readonly port: number;
  readonly weight: number | undefined;
  readonly priority: number | undefined;
  readonly zone: string | undefined;
  readonly metadata: Record<string, string> | undefined;
  /** How the resolver hands it over. */
  readonly form: 'kept' | 'created' | 'init' | 'spread' | 'string' | 'stale-key' | 'invalid' | 'frozen-init';
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  host: fc.constantFrom(...HOSTS),
  port: fc.constantFrom(...PORTS),
  weight: fc.constantFrom(undefined, 1, 2),
  priority: fc.constantFrom(undefined, 0, 1),
  zone: fc.constantFrom(undefined, 'z1'),
  metadata: fc.constantFrom(undefined, {}, { v: '1' }, { v: '2' }, { v: '1', w: 'x' }),
  form: fc.constantFrom('kept', 'created', 'init', 'spread', 'string', 'stale-key', 'invalid', 'frozen-init'),
});

/** The resolver's side: one frozen endpoint kept per spec (as `StaticResolver` keeps them), the rest made anew. */
function entryFor(spec: Spec, kept: Map<string, Endpoint>): unknown {
  const init: EndpointInit = {
    host: spec.host,
    port: spec.port,
    weight: spec.weight,
    priority: spec.priority,
    zone: spec.zone,
    metadata: spec.metadata,
  };
  switch (spec.form) {
    case 'kept': {
      const id = JSON.stringify(init);
      let e = kept.get(id);
      if (e === undefined) kept.set(id, (e = createEndpoint(init)));
      return e;
    }
    case 'created':
      return createEndpoint(init);
    case 'init':
      return { ...init };
    case 'frozen-init':
      return Object.freeze({ ...init, metadata: init.metadata && Object.freeze({ ...init.metadata }) });
    case 'spread':
      return { ...createEndpoint(init) };
    case 'string':
      return spec.host.includes(':') && !spec.host.startsWith('[')
        ? `[${spec.host}]:${spec.port}`
        : `${spec.host}:${spec.port}`;
    case 'stale-key':
      // A copy whose key no longer matches its port: the key must not be trusted.
      return { ...createEndpoint(init), port: spec.port === 80 ? 8080 : 80 };
    case 'invalid':
      return { ...init, port: 0 };
  }
}

/** What validating every entry anew gives: `createEndpointSet`, skipping (and naming) what it would throw on. */
function reference(entries: readonly unknown[]): { endpoints: Endpoint[]; rejected: string[] } {
  const endpoints: Endpoint[] = [];
  const rejected: string[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    let e: Endpoint;
    try {
      e = typeof entry === 'string' ? createEndpoint(parseHostPort(entry)) : createEndpoint(entry as EndpointInit);
    } catch {
      rejected.push('SIDECARLESS_INVALID_ENDPOINT');
      continue;
    }
    if (seen.has(e.key)) {
      rejected.push('SIDECARLESS_DUPLICATE_ENDPOINT');
      continue;
    }
    seen.add(e.key);
    endpoints.push(e);
  }
  return { endpoints, rejected };
}

describe('incremental validation and reconciliation', () => {
  it('accepts, rejects and yields what validating every entry anew does, and keeps subchannels by key', () => {
    fc.assert(
      fc.property(fc.array(fc.array(specArb, { maxLength: 12 }), { minLength: 1, maxLength: 8 }), (sets) => {
        const changes: MembershipChange[] = [];
        const pool = makePool(changes);
        const kept = new Map<string, Endpoint>();
        let previous = new Map<string, Subchannel>();
        for (const specs of sets) {
          const entries = specs.map((s) => entryFor(s, kept));
          const expected = reference(entries);
          const got = pool.validate(entries as (string | EndpointInit)[]);
          assert.deepEqual(
            got.rejected.map((e) => e.code),
            expected.rejected,
          );
          assert.deepEqual(got.endpoints, expected.endpoints);
          // As the cluster does: a set with nothing valid and something rejected keeps the last one.
          if (got.rejected.length > 0 && got.endpoints.length === 0) continue;
          changes.length = 0;
          pool.update(got.endpoints, got.sources, got.found);
          const now = pool.subchannels;
          assert.deepEqual(
            now.map((s) => s.endpoint),
            expected.endpoints,
          );
          const byKey = new Map(now.map((s) => [s.key, s]));
          for (const [key, subchannel] of previous) {
            if (byKey.has(key)) assert.equal(byKey.get(key), subchannel, `${key} keeps its subchannel`);
          }
          // What joined and left, as reported, is the difference of the two sets.
          const added = now.filter((s) => !previous.has(s.key));
          const removed = [...previous.values()].filter((s) => !byKey.has(s.key));
          if (changes.length === 1) {
            assert.deepEqual(new Set(changes[0]!.added), new Set(added));
            assert.deepEqual(new Set(changes[0]!.removed), new Set(removed));
          } else {
            assert.equal(changes.length, 0);
            assert.equal(added.length + removed.length, 0, 'a change in membership is reported');
          }
          previous = byKey;
        }
        void pool.destroy();
      }),
      { numRuns: 300, seed: 14 },
    );
  });

  it('reuses the validated endpoint for a new object with the same fields, and validates a changed one', () => {
    const pool = makePool([]);
    const first = Array.from({ length: 50 }, (_, i) =>
      createEndpoint({ host: `10.0.0.${i + 1}`, port: 80, metadata: { i: String(i) } }),
    );
    let v = pool.validate(first);
    pool.update(v.endpoints, v.sources, v.found);
    // Every object new (as DNS, Consul, etcd and Kubernetes deliver them), in another order, one changed.
    const fresh = first.map((e) => ({ ...e, metadata: { ...e.metadata } })).reverse();
    fresh[10] = { ...fresh[10]!, weight: 5 };
    v = pool.validate(fresh);
    const held = new Set(pool.subchannels.map((s) => s.endpoint));
    assert.equal(v.endpoints.filter((e) => held.has(e)).length, 49, 'the 49 unchanged are the endpoints held');
    assert.equal(v.endpoints[10]!.weight, 5);
    assert.ok(!held.has(v.endpoints[10]!));
    pool.update(v.endpoints, v.sources, v.found);
    assert.equal(pool.subchannels[10]!.endpoint.weight, 5);
    void pool.destroy();
  });
});
