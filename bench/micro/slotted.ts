/**
 * Bench targets shaped as the library's subchannels present themselves to pickers: the in-flight count in a table
 * shared by the set (`InFlightCounts` in `src/pickers/load.ts`, under the `inFlightTable` and `inFlightSlot` keys),
 * read and written through `inFlight`. The picker benches use them so that they measure the pickers on the targets a
 * client passes them; `plain` gives the custom-target shape (a plain `inFlight` field) instead, which is also what a
 * `src/` older than the tables gets.
 *
 * @module
 */

/** The parts of a `pickers/load` module this reads (an older one has none of them). */
export interface LoadModule {
  readonly InFlightCounts?: new () => { readonly array: Int32Array; take(): number };
  readonly inFlightTable?: symbol;
  readonly inFlightSlot?: symbol;
}

/**
 * A maker of targets of one set (one table, as one subchannel pool has): `fields` plus an `inFlight` starting at
 * `inFlight`.
 */
export function targetMaker(
  mod: LoadModule,
  plain = false,
): <F extends object>(fields: F, inFlight: number) => F & { inFlight: number } {
  const { InFlightCounts, inFlightTable, inFlightSlot } = mod;
  if (plain || InFlightCounts === undefined || inFlightTable === undefined || inFlightSlot === undefined) {
    return (fields, inFlight) => ({ ...fields, inFlight });
  }
  const table = new InFlightCounts();
  return <F extends object>(fields: F, inFlight: number) => {
    const target = { ...fields } as F & { inFlight: number };
    const slot = table.take();
    Object.defineProperty(target, inFlightTable, { value: table });
    Object.defineProperty(target, inFlightSlot, { value: slot });
    Object.defineProperty(target, 'inFlight', {
      enumerable: true,
      get: () => table.array[slot] as number,
      set: (v: number) => {
        table.array[slot] = v;
      },
    });
    target.inFlight = inFlight;
    return target;
  };
}
