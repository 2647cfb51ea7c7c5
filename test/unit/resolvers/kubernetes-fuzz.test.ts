/**
 * Fuzzes the Kubernetes watch-stream parser with fast-check (seeded): the line reader under any chunking, watch lines
 * (random text, random JSON, mutated valid events), and EndpointSlice objects through the merge. Each input either
 * parses or fails with a `KubernetesError`; nothing else may escape, and every built set has unique keys. The number
 * of inputs tried is printed at the end (`fuzz inputs: ...`).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { KubernetesError } from 'sidecarless';
import {
  buildEndpoints,
  type EndpointSlice,
  parseSlice,
  parseWatchLine,
} from '../../../src/resolvers/kubernetes/parse.js';
import { LineReader } from '../../../src/resolvers/kubernetes/watch.js';

const SEED = 20261203;
const counts = { chunkings: 0, lines: 0, mutated: 0, slices: 0 };
after(() => {
  const total = counts.chunkings + counts.lines + counts.mutated + counts.slices;
  console.log(`fuzz inputs: ${JSON.stringify(counts)} total ${total}`);
});

/** Runs `f`; a thrown error must be a KubernetesError. */
function typed<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof KubernetesError)) throw err;
    return undefined;
  }
}

const condition = fc.option(fc.oneof(fc.boolean(), fc.constant('yes'), fc.constant(1)), { nil: undefined });
const endpointArb = fc.record(
  {
    addresses: fc.oneof(
      fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain(), fc.string({ maxLength: 8 })), { maxLength: 3 }),
      fc.constant(null),
    ),
    conditions: fc.record({ ready: condition, serving: condition, terminating: condition }, { requiredKeys: [] }),
    zone: fc.option(fc.constantFrom('z1', 'z2', '', 7), { nil: undefined }),
    hints: fc.option(
      fc.record({ forZones: fc.array(fc.record({ name: fc.constantFrom('z1', 'z2') }), { maxLength: 2 }) }),
      {
        nil: undefined,
      },
    ),
  },
  { requiredKeys: ['addresses'] },
);
const sliceArb = fc.record(
  {
    metadata: fc.record({ name: fc.constantFrom('a', 'b', 'c', ''), resourceVersion: fc.string({ maxLength: 4 }) }),
    addressType: fc.constantFrom('IPv4', 'IPv6', 'FQDN', 'Other'),
    ports: fc.array(
      fc.record(
        {
          name: fc.constantFrom('http', 'admin', ''),
          port: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.constant(null)),
          protocol: fc.constantFrom('TCP', 'UDP'),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    ),
    endpoints: fc.array(endpointArb, { maxLength: 5 }),
  },
  { requiredKeys: ['metadata'] },
);
const eventArb = fc.record({
  type: fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR', 'OTHER'),
  object: fc.oneof(
    sliceArb,
    fc.record({ kind: fc.constant('Status'), code: fc.constantFrom(410, 500), reason: fc.string() }),
  ),
});

describe('kubernetes watch-stream fuzz', () => {
  it('the line reader yields the same lines under any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 40 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 20 }),
        (texts, cuts) => {
          counts.chunkings++;
          const lines = texts.map((t) => t.replaceAll('\n', ' ').trim());
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
          const reader = new LineReader(1 << 20);
          const got: string[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const size = cuts[i % cuts.length] as number;
            got.push(...reader.push(bytes.subarray(at, at + size)));
            at += size;
          }
          got.push(...reader.end());
          assert.deepEqual(
            got,
            lines.filter((l) => l.length > 0),
          );
        },
      ),
      { seed: SEED, numRuns: 1500 },
    );
  });

  it('random text and random JSON lines parse or fail with a KubernetesError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 4 })), (line) => {
        counts.lines++;
        typed(() => parseWatchLine(line));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('mutated events parse or fail typed, and whatever parses merges into a set with unique keys', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 400 }),
        fc.constantFrom(undefined, 'z1'),
        fc.constantFrom<string | number | undefined>('http', 'admin', 8080, undefined),
        (events, cut, zone, port) => {
          counts.mutated++;
          const slices = new Map<string, EndpointSlice>();
          for (const event of events) {
            const full = JSON.stringify(event);
            // Either the line as sent, or a truncated one (a torn write).
            const line = cut % 3 === 0 ? full.slice(0, cut) : full;
            const parsed = typed(() => parseWatchLine(line));
            if (parsed === undefined || (parsed.type !== 'ADDED' && parsed.type !== 'MODIFIED')) continue;
            const slice = typed(() => parseSlice(parsed.object));
            if (slice !== undefined) slices.set(slice.name, slice);
          }
          const built = buildEndpoints(slices, port, zone);
          const keys = built.endpoints.map((e) => e.key);
          assert.equal(new Set(keys).size, keys.length);
          for (const e of built.endpoints) assert.ok(e.port >= 1 && e.port <= 65535);
        },
      ),
      { seed: SEED, numRuns: 2500 },
    );
  });

  it('random EndpointSlice-shaped objects parse or fail with a KubernetesError', () => {
    fc.assert(
      fc.property(fc.oneof(sliceArb, fc.anything()), (object) => {
        counts.slices++;
        const slice = typed(() => parseSlice(object));
        if (slice !== undefined) buildEndpoints(new Map([[slice.name, slice]]), 'http', 'z1');
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
