// The two client shapes in a consumer: `npx tsc -p tsconfig.json` (which includes test/) checks the
// `@ts-expect-error` lines below, and the test checks that each object the types refuse is refused at runtime too
// (probe 23: `ClientOptions` was a plain union, which lets through every key of either shape).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ClientOptions, createClient } from '../../../src/index.js';
import { assertCode } from '../../helpers/assert-code.js';

const target = 'static://127.0.0.1:1';
const clusters = { x: { target: 'static://127.0.0.1:2' } };
const discovery = { domain: 'svc.test' };

const refused: Array<[string, () => unknown, string]> = [
  // @ts-expect-error a single-service client has no discovery
  ['{ target, discovery }', () => createClient({ target, discovery }), 'target'],
  // @ts-expect-error a single-service client has no passthrough
  ['{ target, passthrough }', () => createClient({ target, passthrough: true }), 'passthrough'],
  // @ts-expect-error a single-service client has no route table
  ['{ target, routes }', () => createClient({ target, routes: [] }), 'routes'],
  // @ts-expect-error target and clusters are two shapes
  ['{ target, clusters }', () => createClient({ target, clusters }), 'target'],
  // @ts-expect-error a multi-service client has no name
  ['{ clusters, name }', () => createClient({ clusters, name: 'x' }), 'name'],
  // @ts-expect-error per-cluster options go per cluster (or in discovery.cluster)
  ['{ clusters, retry }', () => createClient({ clusters, retry: { maxAttempts: 2 } }), 'retry'],
  // @ts-expect-error per-cluster options go per cluster (or in discovery.cluster)
  ['{ discovery, timeoutMs }', () => createClient({ discovery, timeoutMs: 100 }), 'timeoutMs'],
];

describe('ClientOptions: the types refuse what createClient refuses (probe 23)', () => {
  for (const [name, make, option] of refused) {
    it(`${name} fails the type check and throws SIDECARLESS_INVALID_OPTION naming ${option}`, () => {
      assertCode(make, 'SIDECARLESS_INVALID_OPTION', option);
    });
  }

  it('{ target, discovery } is refused naming discovery, not clusters the caller did not pass', () => {
    assert.throws(
      () => createClient({ target, discovery } as unknown as ClientOptions),
      (err: Error) => err.message.includes('`discovery`') && !err.message.includes('clusters'),
    );
  });

  // Probe 24, defect 3: `{ passthrough }` and `{ routes }` without `clusters` or `discovery` were read as a
  // single-service client and refused as "unknown option". The types still accept them: requiring one of `clusters`
  // and `discovery` in `ClientOptions` would refuse a `MultiServiceOptions` variable, whose keys are all optional.
  it('a multi-service option without clusters or discovery is refused saying clusters or discovery is needed', () => {
    for (const options of [{ passthrough: true }, { routes: [] }, { passthrough: false, redirect: {} }]) {
      assert.throws(
        () => createClient(options as ClientOptions),
        (err: Error) =>
          (err as Error & { code?: string }).code === 'SIDECARLESS_INVALID_OPTION' &&
          err.message.includes('`clusters`') &&
          err.message.includes('`discovery`') &&
          !err.message.includes('unknown option'),
        JSON.stringify(options),
      );
    }
    assert.throws(
      () => createClient({} as ClientOptions),
      (err: Error) => err.message.includes('`target`') && err.message.includes('`discovery`'),
    );
  });

  it("the other shape's keys given as undefined type-check and are accepted, as createClient accepts them", async () => {
    const single: ClientOptions = { target, clusters: undefined, discovery: undefined, routes: undefined };
    const multi: ClientOptions = { clusters, name: undefined, timeoutMs: undefined, target: undefined };
    await createClient(single).close();
    await createClient(multi).close();
  });
});
