/** Shared builders for the picker tests. */
import { createEndpoint } from '../../../src/common/endpoint.js';
import type { Pickable, PickContext, Picker } from '../../../src/pickers/picker.js';
import * as loadModule from '../../../src/pickers/load.js';
import type { PeakEwma } from '../../../src/pickers/load.js';
import { targetMaker } from '../../../bench/micro/slotted.js';
import { FakeClock, seededRandom } from '../../helpers/fake-clock.js';

/** A mutable target: tests set `inFlight` and `load` directly. */
export interface TestTarget extends Pickable {
  inFlight: number;
  load?: PeakEwma | undefined;
}

/** `n` targets `10.0.x.y:8080`, with the given weights (default 1). */
export function makeTargets(n: number, weights?: readonly number[]): TestTarget[] {
  return Array.from({ length: n }, (_, i) => {
    const endpoint = createEndpoint({ host: `10.0.${i >> 8}.${i & 255}`, port: 8080, weight: weights?.[i] ?? 1 });
    return { key: endpoint.key, endpoint, inFlight: 0 };
  });
}

/**
 * The same targets shaped as subchannels present themselves to pickers: the in-flight count in a table shared by the
 * set (`InFlightCounts`, under `inFlightTable` and `inFlightSlot`), which the load-aware pickers then read instead of
 * the target. Tests still set `inFlight` (written through to the table). The picker bench's targets.
 */
export function makeSlottedTargets(n: number, weights?: readonly number[]): TestTarget[] {
  const make = targetMaker(loadModule);
  return makeTargets(n, weights).map((plain) => make({ key: plain.key, endpoint: plain.endpoint }, 0));
}

export function env(seed = 1, clock = new FakeClock()) {
  return { random: seededRandom(seed), clock };
}

export const ctx: PickContext = { method: 'GET', path: '/', authority: 'svc', headers: null };

export function ctxWith(headers: unknown, path = '/'): PickContext {
  return { method: 'GET', path, authority: 'svc', headers };
}

/** The key of the target `picker` chooses for `context`. */
export function pickKey(picker: Picker, context: PickContext = ctx): string {
  const r = picker.pick(context);
  if (r.type !== 'complete') throw new Error(`expected a complete pick, got ${r.type}`);
  return r.target.key;
}

/** Pick counts per key over `n` picks. */
export function counts(picker: Picker, n: number, context: PickContext = ctx): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const k = pickKey(picker, context);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
