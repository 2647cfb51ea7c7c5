/**
 * The benchmarks' command lines: `--help` prints the usage and exits; an unknown or misspelt flag, or a stray
 * argument, stops the run at once with the usage (exit code 2) rather than being ignored for minutes.
 *
 * @module
 */

/** The flags a benchmark takes: `valued` ones take the next argument as their value, `switches` take none. */
export interface FlagSpec {
  readonly valued: readonly string[];
  readonly switches: readonly string[];
}

/**
 * Checks `argv` (default: this process's arguments) against `spec`; prints `usage` and exits on `--help`. Returns
 * the flags given: a valued flag's value, `true` for a switch.
 */
export function checkFlags(
  name: string,
  spec: FlagSpec,
  usage: string,
  argv = process.argv.slice(2),
): ReadonlyMap<string, string | true> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  const valued = new Set(spec.valued);
  const switches = new Set(spec.switches);
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const flag = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (flag !== undefined && switches.has(flag)) {
      given.set(flag, true);
      continue;
    }
    if (flag !== undefined && valued.has(flag)) {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) fail(name, `--${flag} needs a value`, usage);
      given.set(flag, value);
      i++;
      continue;
    }
    fail(name, `unknown argument "${arg}"`, usage);
  }
  return given;
}

function fail(name: string, message: string, usage: string): never {
  console.error(`${name}: ${message}\n${usage}`);
  process.exit(2);
}

/** The positive number given as `--name` in `given` (from {@link checkFlags}), or `fallback`; throws for anything else. */
export function positiveFlag(given: ReadonlyMap<string, string | true>, name: string, fallback: number): number {
  const value = given.get(name);
  if (value === undefined) return fallback;
  const n = typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${String(value)}`);
  return n;
}
