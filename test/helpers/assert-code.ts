import assert from 'node:assert/strict';
import { isSidecarlessError, type SidecarlessError } from 'sidecarless';

/** Asserts that `fn` throws a sidecarless error with `code` (and, when given, naming `option`). */
export function assertCode(fn: () => unknown, code: string, option?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSidecarlessError(err), `expected a SidecarlessError, got ${String(err)}`);
    assert.equal((err as SidecarlessError).code, code, (err as Error).message);
    if (option !== undefined) assert.equal((err as { option?: string }).option, option, (err as Error).message);
    return true;
  });
}
