/**
 * Golden route vectors for the hashing policies: fixed keys and a fixed endpoint set, and the endpoint each key
 * reaches. The vectors were recorded from release 0.1.0's code (before the hashers became allocation-free), so a
 * change of hash function, seed, virtual-node naming, ring collision order or Maglev turn order, anything that
 * would move keys between two versions running side by side, fails here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEndpoint } from '../../../src/common/endpoint.js';
import { xxh32 } from '../../../src/pickers/hash.js';
import { buildMaglevTable, maglevPolicy } from '../../../src/pickers/maglev.js';
import type { Pickable, PickContext, Picker } from '../../../src/pickers/picker.js';
import { ringHashPolicy } from '../../../src/pickers/ring-hash.js';
import { seededRandom } from '../../../src/common/runtime.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const WEIGHTS = [1, 1, 2, 1, 3, 1, 1, 5, 1, 2, 1, 1];

/** Twelve endpoints, equal weights or {@link WEIGHTS}; a vector's digit `i` (base 12) is endpoint `i`. */
function endpoints(weighted: boolean): Pickable[] {
  return WEIGHTS.map((weight, i) => {
    const endpoint = createEndpoint({
      host: `10.1.${i}.${(i * 37) % 256}`,
      port: 8000 + i,
      weight: weighted ? weight : 1,
    });
    return { key: endpoint.key, endpoint, inFlight: 0 };
  });
}

// Short keys (under 4 and under 16 bytes, the two tails of XXH32), long ones, non-ASCII (the UTF-8 path,
// including an astral character and a lone surrogate), then generated ones.
const PROBES = [
  'a',
  'ab',
  'abc',
  'abcd',
  'user-42',
  '0123456789abcdef',
  '0123456789abcdef0',
  'The quick brown fox jumps over the lazy dog',
  'café',
  '日本語のキー',
  '🔑-key',
  '\ud800lone',
  'x'.repeat(100),
  ...Array.from({ length: 51 }, (_, i) => `golden-${i}-${(i * 2654435761) % 1000003}`),
];

const header = (key: string): PickContext => ({
  method: 'GET',
  path: '/',
  authority: 'svc',
  headers: { 'x-key': key },
});
const cookie = (key: string): PickContext => ({
  method: 'GET',
  path: '/',
  authority: 'svc',
  headers: { cookie: `a=1; sid=${key}` },
});
const path = (key: string): PickContext => ({ method: 'GET', path: `/u/${key}?q=1`, authority: 'svc', headers: null });
const fnPath = (key: string): PickContext => ({ method: 'GET', path: `/${key}`, authority: 'svc', headers: null });

/** The endpoint index (as a base-12 digit) each probe reaches. */
function routes(picker: Picker, targets: readonly Pickable[], context: (key: string) => PickContext): string {
  const index = new Map(targets.map((t, i) => [t.key, i]));
  return PROBES.map((key) => {
    const r = picker.pick(context(key));
    assert.equal(r.type, 'complete');
    return (index.get(r.type === 'complete' ? r.target.key : '') ?? -1).toString(12);
  }).join('');
}

// Built in a fixed order, with a random source and clock that play no part in keyed routing.
const env = () => ({ random: seededRandom(9), clock: new FakeClock() });

describe('golden route vectors (routes must not move between versions)', () => {
  const cases: {
    name: string;
    build: (targets: Pickable[]) => Picker;
    context: (key: string) => PickContext;
    equal: string;
    weighted: string;
  }[] = [
    {
      name: 'ring-hash, header key, default ring',
      build: (t) => ringHashPolicy.build(t, ringHashPolicy.parseConfig({ hashKey: { header: 'x-key' } }), env()),
      context: header,
      equal: '98821047302a74557a1933450948968349ba11835862819208b82553b7a42922',
      weighted: '97822044202a74457a4933450772949399971183482787920777257397a77722',
    },
    {
      name: 'ring-hash, cookie key',
      build: (t) => ringHashPolicy.build(t, ringHashPolicy.parseConfig({ hashKey: { cookie: 'sid' } }), env()),
      context: cookie,
      equal: '98821047302a74557a1933450948968349ba11835862819208b82553b7a42922',
      weighted: '97822044202a74457a4933450772949399971183482787920777257397a77722',
    },
    {
      name: 'ring-hash, function key',
      build: (t) =>
        ringHashPolicy.build(
          t,
          ringHashPolicy.parseConfig({ hashKey: (c: PickContext) => c.authority + c.path }),
          env(),
        ),
      context: fnPath,
      equal: '3a40b72799795ab59a574944002a86b265b155a7a0580756a8758025b9b16015',
      weighted: '2a74292749795ab5975749447077477469b254a7a758975644748225b9b16015',
    },
    {
      name: 'maglev, header key, M = 65537',
      build: (t) => maglevPolicy.build(t, maglevPolicy.parseConfig({ hashKey: { header: 'x-key' } }), env()),
      context: header,
      equal: '508bb3502410759515aab8688b212150b8476bb64791a145b92363294949982b',
      weighted: '749bb3502417759515a7b76787212150b7477bb6479147444923632944479724',
    },
    {
      name: 'maglev, header key, M = 4099',
      build: (t) =>
        maglevPolicy.build(t, maglevPolicy.parseConfig({ hashKey: { header: 'x-key' }, tableSize: 4099 }), env()),
      context: header,
      equal: '8994b26318882a49715a20633b96b47b7a43b03680a6723541990216a10b64b4',
      weighted: '8994926418782a49715a20677b96b47b7a47907670a972774499021771076474',
    },
    {
      name: 'maglev, path key',
      build: (t) => maglevPolicy.build(t, maglevPolicy.parseConfig({ hashKey: { path: true } }), env()),
      context: path,
      equal: '38048695b6534906674947083161b576056985736470a415775a72470247662a',
      weighted: '3804849526734976674947083161b777052782737470a475777772770277267a',
    },
  ];

  for (const c of cases) {
    it(`${c.name}: fixed keys reach the recorded endpoints, equal and unequal weights`, () => {
      const equal = endpoints(false);
      assert.equal(routes(c.build(equal), equal, c.context), c.equal, 'equal weights');
      const weighted = endpoints(true);
      assert.equal(routes(c.build(weighted), weighted, c.context), c.weighted, 'weights 1, 1, 2, 1, 3, ...');
    });
  }

  it('the vectors do not depend on the order endpoints arrive in', () => {
    const equal = endpoints(false);
    const reversed = [...equal].reverse();
    const config = maglevPolicy.parseConfig({ hashKey: { header: 'x-key' } });
    assert.equal(routes(maglevPolicy.build(reversed, config, env()), equal, header), cases[3]!.equal);
    const ringConfig = ringHashPolicy.parseConfig({ hashKey: { header: 'x-key' } });
    assert.equal(routes(ringHashPolicy.build(reversed, ringConfig, env()), equal, header), cases[0]!.equal);
  });
});

describe('golden Maglev tables', () => {
  // XXH32 of whole tables (the Int32Array's bytes), recorded from the build as of commit 45214cc, which walked every
  // claim over a table initialised to -1 (now: a bit set of taken slots, and the last claims computed rather than
  // walked). Every slot must stay where it was: a moved slot moves keys between two versions running side by side.
  const key = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`;
  const cases: [n: number, m: number, weight: (i: number) => number, checksum: string][] = [
    [1000, 65537, () => 1, '6ab098e7'],
    [10, 65537, () => 1, '2e5866b1'],
    [3, 2, () => 1, 'da0a0754'],
    [10, 7, () => 1, 'e5d055de'],
    [500, 655373, () => 1, '9ac913e0'],
    [1000, 65537, (i) => 1 + (i % 5), 'edb6df37'],
    [7, 4099, (i) => [1, 2, 5, 0.5, 3, 3, 1][i]!, '230c5fdb'],
  ];
  for (const [n, m, weight, checksum] of cases) {
    it(`N = ${n}, M = ${m}, ${weight(1) === weight(0) ? 'equal' : 'unequal'} weights: the recorded table`, () => {
      const keys = Array.from({ length: n }, (_, i) => key(i)).sort();
      const table = buildMaglevTable(keys, new Float64Array(keys.map((_, i) => weight(i))), m);
      assert.equal(xxh32(new Uint8Array(table.buffer)).toString(16), checksum);
    });
  }
});
