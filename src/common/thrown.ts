/**
 * Describing what plugin code threw without throwing again: custom resolvers and pickers, listeners and getters may
 * throw anything.
 *
 * @module
 */

/**
 * What was thrown, as text, never throwing itself. Plugin code (custom resolvers and pickers, listeners) may throw
 * anything: `String()` of an object without a prototype throws, and so may a Proxy's traps.
 */
export function thrownMessage(thrown: unknown): string {
  try {
    if (thrown instanceof Error) return String(thrown.message);
  } catch {
    // a Proxy whose getPrototypeOf or get trap throws: described below, or not at all
  }
  try {
    return String(thrown);
  } catch {
    return 'a value that cannot be described';
  }
}

/** `thrown` if it is an `Error`, else an `Error` describing it with it as `cause` (see {@link thrownMessage}). */
export function asError(thrown: unknown): Error {
  let isError = false;
  try {
    isError = thrown instanceof Error;
  } catch {
    // as in thrownMessage
  }
  return isError ? (thrown as Error) : new Error(thrownMessage(thrown), { cause: thrown });
}
