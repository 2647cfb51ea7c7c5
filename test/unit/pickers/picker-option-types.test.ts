// The hashing policies' settings in a consumer: `npx tsc -p tsconfig.json` (which includes test/) checks the
// `@ts-expect-error` lines below, and the test checks that each object the types refuse is refused at runtime too
// (probe 14: the option alone lets them compile, see PickerOption's TSDoc).
import { describe, it } from 'node:test';
import {
  createClient,
  type MaglevPickerOption,
  type PickerOption,
  type RingHashPickerOption,
} from '../../../src/index.js';
import { assertCode } from '../../helpers/assert-code.js';

const target = 'static://127.0.0.1:1';

const refused: Array<[string, PickerOption, string]> = [
  // @ts-expect-error hashKey is required for ring-hash
  ['ring-hash without hashKey', { name: 'ring-hash' } satisfies RingHashPickerOption, 'picker.hashKey'],
  [
    'a hashKey header that is not a string',
    // @ts-expect-error hashKey.header must be a string
    { name: 'ring-hash', hashKey: { header: 5 } } satisfies RingHashPickerOption,
    'picker.hashKey.header',
  ],
  [
    'a minRingSize that is not a number',
    // @ts-expect-error minRingSize must be a number
    { name: 'ring-hash', hashKey: { header: 'k' }, minRingSize: 'big' } satisfies RingHashPickerOption,
    'picker.minRingSize',
  ],
  [
    'a misspelt maglev setting',
    // @ts-expect-error typo in a maglev setting
    { name: 'maglev', hashKey: { header: 'k' }, tablesize: 65537 } satisfies MaglevPickerOption,
    'picker.tablesize',
  ],
  // @ts-expect-error hashKey is required for maglev
  ['maglev without hashKey', { name: 'maglev', tableSize: 65537 } satisfies MaglevPickerOption, 'picker.hashKey'],
];

describe('typed hashing picker options (probe 14)', () => {
  for (const [name, picker, option] of refused) {
    it(`${name}: a compile error with satisfies, and SIDECARLESS_INVALID_OPTION naming ${option} at runtime`, () => {
      assertCode(() => createClient({ target, picker }), 'SIDECARLESS_INVALID_OPTION', option);
    });
  }

  it('a well-formed option satisfies its type, and a custom policy still takes any settings', async () => {
    const ring = { name: 'ring-hash', hashKey: (ctx) => ctx.path, minRingSize: 64 } satisfies RingHashPickerOption;
    const maglev = { name: 'maglev', hashKey: { cookie: 'sid' }, tableSize: 251 } satisfies MaglevPickerOption;
    const custom: PickerOption = { name: 'my-policy', anything: [1, 2] };
    for (const picker of [ring, maglev]) await createClient({ target, picker }).close();
    assertCode(() => createClient({ target, picker: custom }), 'SIDECARLESS_INVALID_OPTION', 'picker.name');
  });
});
