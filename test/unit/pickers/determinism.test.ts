import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { maglevPolicy } from '../../../src/pickers/maglev.js';
import { ringHashPolicy } from '../../../src/pickers/ring-hash.js';
import { runJsonFixture } from '../../helpers/process.js';
import { ctxWith, env, makeTargets, pickKey } from './helpers.js';

const fixture = fileURLToPath(new URL('../../fixtures/picker-routes.ts', import.meta.url));

function runChild(input: unknown): Promise<{ ring: string[]; maglev: string[] }> {
  return runJsonFixture(fixture, [], input);
}

describe('hash policies across processes', () => {
  it('ring-hash and maglev built in a child process route 5000 keys exactly as in this process', async () => {
    const weights = Array.from({ length: 40 }, (_, i) => 1 + (i % 4));
    const targets = makeTargets(40, weights);
    const probes = Array.from({ length: 5000 }, (_, i) => `user-${i}-${(i * 2654435761) % 1000003}`);
    const child = await runChild({ keys: targets.map((t) => t.key), weights, probes });
    const hashKey = { header: 'x-key' };
    const ring = ringHashPolicy.build(targets, ringHashPolicy.parseConfig({ hashKey }), env(3));
    const maglev = maglevPolicy.build(targets, maglevPolicy.parseConfig({ hashKey }), env(4));
    const here = {
      ring: probes.map((k) => pickKey(ring, ctxWith({ 'x-key': k }))),
      maglev: probes.map((k) => pickKey(maglev, ctxWith({ 'x-key': k }))),
    };
    assert.deepEqual(child.ring, here.ring);
    assert.deepEqual(child.maglev, here.maglev);
    assert.ok(new Set(here.ring).size === 40 && new Set(here.maglev).size === 40);
  });
});
