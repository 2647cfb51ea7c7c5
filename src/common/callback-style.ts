/**
 * undici's `close([callback])` and `destroy([err], [callback])` calling conventions, for the library's own
 * dispatchers: each works on a promise and hands it back, or calls the callback when it settles.
 *
 * @module
 */

/** `destroy`'s arguments sorted out: the error (`undefined` for none or `null`) and the callback. */
export function destroyArguments(
  errOrCallback: Error | null | (() => void) | undefined,
  callback: (() => void) | undefined,
): { readonly err: Error | undefined; readonly callback: (() => void) | undefined } {
  return typeof errOrCallback === 'function'
    ? { err: undefined, callback: errOrCallback }
    : { err: errOrCallback ?? undefined, callback };
}

/** `done`, or nothing when `callback` is given: it is called once `done` settles (also on failure; no error passed). */
export function whenSettled(done: Promise<void>, callback: (() => void) | undefined): Promise<void> | undefined {
  if (callback === undefined) return done;
  done.then(callback, callback);
  return undefined;
}
