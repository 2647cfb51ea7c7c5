/**
 * The picker contract and the policy registry.
 *
 * A picker is an immutable snapshot over the subchannels that were eligible when it was built. The cluster
 * builds a new one whenever membership, weights or eligibility change, and swaps it in atomically; a picker never
 * watches for changes itself. Live load (in-flight counts, latency EWMA) lives on the subchannels, which a picker
 * may read at pick time.
 *
 * @module
 */
import type { Endpoint } from '../common/endpoint.js';
import { InvalidOptionError, isSidecarlessError, type SidecarlessError } from '../common/errors.js';
import { describe, joinPath, readOptions, rejectUnknownKeys as rejectUnknownOptions } from '../common/options.js';
import { thrownMessage } from '../common/thrown.js';
import type { Clock, RandomSource } from '../common/runtime.js';
import type { PeakEwma } from './load.js';

/**
 * What a picker may know of a subchannel. Implemented by the subchannel; pickers read it and never mutate it.
 *
 * @category Pickers
 */
export interface Pickable {
  /** The endpoint key, stable across rebuilds. */
  readonly key: string;
  /** The endpoint (weight, priority, zone, metadata). */
  readonly endpoint: Endpoint;
  /** Requests dispatched and not yet finished, read live at pick time. */
  readonly inFlight: number;
  /**
   * The weight to balance by, when it differs from `endpoint.weight` (slow start ramps it up). Read at build time;
   * optional so custom targets need not provide it.
   */
  readonly weight?: number;
  /**
   * Peak-EWMA of this target's response latency, fed by the subchannel on every finished attempt and read live by
   * the `peak-ewma` policy (which also sets its `decayMs`). Optional so that custom targets need not provide one;
   * `peak-ewma` treats a missing estimate as its default RTT.
   */
  readonly load?: PeakEwma | undefined;
}

/** The request as the picker sees it. Built once per request by the caller. @category Pickers */
export interface PickContext {
  /** Upper-case HTTP method. */
  readonly method: string;
  /** Request path with query. */
  readonly path: string;
  /** The logical authority (`host[:port]`) from the request URL. */
  readonly authority: string;
  /**
   * Request headers exactly as dispatched (undici's forms: object, flat `[k, v, ...]` array, iterable of pairs, or
   * null). Read lazily: most policies never look.
   */
  readonly headers: unknown;
}

/**
 * The result of a pick: a small union rather than an exception (after grpc-js `PickResult`).
 * - `complete`: send the request to `target`.
 * - `queue`: nothing can take it now; wait for the next picker.
 * - `fail`: fail this request with `error` (e.g. every endpoint ejected); the request is not retried, since the
 *   next pick from the same snapshot would fail the same way.
 * - `drop`: the same, for load shedding: the policy chose not to serve the request.
 *
 * @category Pickers
 */
export type PickResult<T extends Pickable = Pickable> =
  | {
      /** Send the request to `target`. */
      readonly type: 'complete';
      /** The chosen target. */
      readonly target: T;
    }
  | {
      /** Nothing can take the request now: it waits for the next picker, up to `waitForReadyTimeoutMs`. */
      readonly type: 'queue';
    }
  | {
      /** Fail the request with `error`. */
      readonly type: 'fail';
      /** The error the request fails with (e.g. {@link AllEjectedError}). */
      readonly error: SidecarlessError;
    }
  | {
      /** Fail the request with `error`, without retrying it. */
      readonly type: 'drop';
      /** The error the request fails with. */
      readonly error: SidecarlessError;
    };

/**
 * An immutable snapshot that chooses a target per request.
 *
 * `pick` is synchronous, does no I/O, must not throw, should not allocate (return results prepared at build time)
 * and is O(1) or O(log n). It may be called any number of times, including after a newer picker replaced it
 * (requests in flight on the old table finish there).
 *
 * @category Pickers
 */
export interface Picker<T extends Pickable = Pickable> {
  /** Chooses where one request (or one retry or hedge attempt) goes, under the rules in the interface description. */
  pick(context: PickContext): PickResult<T>;
}

/** What a policy receives to build a picker. @category Pickers */
export interface PickerEnvironment {
  /** Random source; every random choice a picker makes comes from here. */
  readonly random: RandomSource;
  /** Clock, for policies that decay over time. */
  readonly clock: Clock;
}

/**
 * A load-balancing policy: validates its configuration once, then builds pickers from snapshots.
 *
 * @typeParam C - the validated configuration.
 * @category Pickers
 */
export interface PickerPolicy<C = unknown> {
  /** The name users select it by, e.g. `round-robin`. */
  readonly name: string;
  /**
   * Validates the user's configuration (the object form of the `picker` option minus `name`, or `{}`), applying
   * defaults. Throws {@link InvalidOptionError} naming the field under `path` (`picker.<field>`; `path` defaults
   * to `picker`, and names where the option sits when it is nested). Called once, at client construction. Anything
   * else it throws (a `TypeError` from a bug) fails the construction with an {@link InvalidOptionError} naming
   * `path` itself, with what was thrown as `cause`.
   */
  parseConfig(raw: Readonly<Record<string, unknown>>, path?: string): C;
  /**
   * Builds a picker over `targets` (never empty; the cluster handles the empty case). Called on every change, so
   * it should be fast, but it may allocate. `targets` is handed over and not mutated afterwards. Must be
   * deterministic for a given input order and random source.
   */
  build<T extends Pickable>(targets: readonly T[], config: C, env: PickerEnvironment): Picker<T>;
  /**
   * Optional: starts the same build as {@link PickerPolicy.build} as a {@link PickerBuild} done in steps, for a
   * policy whose build can take longer than a turn of the event loop should (ring hash hashes and sorts up to 8M
   * ring entries). The balancer then runs one step per turn (`setImmediate`), serving requests meanwhile, and swaps
   * the finished picker in atomically. A build a newer rebuild supersedes runs to its end if it has started (its
   * picker then serves, for the targets still in the newest set, until the newest build lands) and is dropped if
   * not; every build is dropped when the cluster closes. The `env` object is the cluster's own (a new one after it
   * closes), so a policy may key what it keeps between builds by it. The picker a build ends with must be exactly the one `build` returns for the same input. A
   * policy without it is built by `build`, synchronously, as before.
   */
  startBuild?<T extends Pickable>(targets: readonly T[], config: C, env: PickerEnvironment): PickerBuild<T>;
}

/**
 * A picker build done in bounded steps, returned by a policy's optional {@link PickerPolicy.startBuild}.
 *
 * The balancer calls `step` once at once (so a small build finishes synchronously, exactly as `build` would), then
 * once per turn of the event loop until it returns the picker. While it runs, requests are served by the previous
 * picker as long as it names an endpoint still eligible, and otherwise (or when there is no previous picker: the
 * cluster's first build) by {@link PickerBuild.interim}.
 *
 * @category Pickers
 */
export interface PickerBuild<T extends Pickable = Pickable> {
  /**
   * Does at most about `budget` units of work (the policy's unit: ring entries for ring hash), then returns the
   * finished picker, or `undefined` when more steps are needed. Not called again once it returned a picker.
   */
  step(budget: number): Picker<T> | undefined;
  /**
   * A picker over the same targets to serve with until the build finishes, cheap to make (called at most once, and
   * only when needed). Ring hash's spreads requests at random until a coarse ring (fewer virtual nodes per
   * endpoint, a prefix of each one's full sequence), built by the next steps, takes over. Without it, the balancer
   * serves such picks from a uniformly random target of the new set.
   */
  interim?(): Picker<T>;
}

/**
 * Where the hash key of a request comes from:
 * - `{ header: 'x-user-id' }`: a request header (case-insensitive; repeated values are joined with `, `);
 *   `{ header: 'host' }` is the request's Host: its own `Host` header, else its URL's authority (lower case);
 * - `{ cookie: 'session' }`: one cookie of the `Cookie` header;
 * - `{ path: true }`: the request path, without the query string;
 * - a function of the {@link PickContext} returning the key, or `undefined` when the request has none. It runs on
 *   every pick, so keep it cheap and do not throw (a throw counts as "no key").
 *
 * An empty value (empty header, empty cookie, empty string from the function) counts as no key.
 *
 * @example
 * ```ts
 * createClient({ target, picker: { name: 'ring-hash', hashKey: { header: 'x-tenant' } } });
 * createClient({ target, picker: { name: 'maglev', hashKey: (ctx) => ctx.path.split('/')[2] } });
 * ```
 *
 * @category Options
 */
export type HashKeyOption =
  | {
      /** Name of the request header whose value is the key (case-insensitive; an RFC 9110 token). */
      readonly header: string;
    }
  | {
      /** Name of the cookie (in the `Cookie` header) whose value is the key. */
      readonly cookie: string;
    }
  | {
      /** Hash the request path, without the query string. */
      readonly path: true;
    }
  | ((context: PickContext) => string | undefined);

/** What users pass for `ring-hash` (besides `name`). @category Options */
export interface RingHashOptions {
  /** See {@link HashKeyOption}. Required. */
  readonly hashKey: HashKeyOption;
  /** @defaultValue 1024 */
  readonly minRingSize?: number;
  /** @defaultValue 8388608 */
  readonly maxRingSize?: number;
  /** @defaultValue 1024 */
  readonly vnodesPerEndpoint?: number;
}

/** What users pass for `maglev` (besides `name`). @category Options */
export interface MaglevOptions {
  /** See {@link HashKeyOption}. Required. */
  readonly hashKey: HashKeyOption;
  /** @defaultValue 65537 */
  readonly tableSize?: number;
}

/**
 * A `ring-hash` picker option with its settings typed. Use it with `satisfies` to have them checked at compile time
 * (see {@link PickerOption} for why the option alone does not).
 *
 * @example
 * ```ts
 * createClient({ target, picker: { name: 'ring-hash', hashKey: { header: 'x-user' } } satisfies RingHashPickerOption });
 * ```
 *
 * @category Options
 */
export type RingHashPickerOption = {
  /** The `ring-hash` policy. */
  readonly name: 'ring-hash';
} & RingHashOptions;

/**
 * A `maglev` picker option with its settings typed. Use it with `satisfies` to have them checked at compile time
 * (see {@link PickerOption} for why the option alone does not).
 *
 * @example
 * ```ts
 * createClient({ target, picker: { name: 'maglev', hashKey: { cookie: 'sid' } } satisfies MaglevPickerOption });
 * ```
 *
 * @category Options
 */
export type MaglevPickerOption = {
  /** The `maglev` policy. */
  readonly name: 'maglev';
} & MaglevOptions;

/**
 * The `picker` option: a policy name, or an object with `name` and the policy's settings, checked by the policy when
 * the client is created (a bad setting throws `SIDECARLESS_INVALID_OPTION` naming it, e.g. `picker.hashKey`).
 *
 * The hashing policies' members ({@link RingHashPickerOption}, {@link MaglevPickerOption}) give a `hashKey` function
 * its {@link PickContext} parameter's type. They do not make the compiler check those policies' other settings: a
 * registered policy may have any name and any settings, so the union also has a member of any `name` with any
 * settings, and TypeScript has no "any string but `ring-hash` and `maglev`" type to keep `{ name: 'ring-hash' }`
 * out of it. A `ring-hash` option missing its `hashKey`, or with a misspelt setting, therefore compiles; write
 * `satisfies RingHashPickerOption` (or `MaglevPickerOption`) after the object to have it checked.
 *
 * @category Pickers
 */
export type PickerOption =
  | string
  | RingHashPickerOption
  | MaglevPickerOption
  | ({
      /** The registered policy name, e.g. `least-request`. */
      readonly name: string;
    } & Readonly<Record<string, unknown>>);

/** A policy together with its validated configuration, ready to build pickers. @category Pickers */
export interface ConfiguredPolicy {
  /** The registered policy. */
  readonly policy: PickerPolicy<unknown>;
  /** What the policy's `parseConfig` returned, passed back to its `build`. */
  readonly config: unknown;
}

/**
 * Maps policy names to policies. Each client has its own; {@link createPickerRegistry} returns one with the
 * built-in policies.
 *
 * @category Pickers
 */
export class PickerRegistry {
  readonly #policies = new Map<string, PickerPolicy<unknown>>();

  /** Registers (or replaces) a policy under its `name`. */
  register<C>(policy: PickerPolicy<C>): this {
    // Read once, through readOptions: a getter or a Proxy that throws is a typed error, not a raw one.
    const name = readOptions('policy', () => {
      if (typeof policy !== 'object' || policy === null || typeof policy.name !== 'string' || policy.name === '') {
        throw new InvalidOptionError('policy.name', 'a picker policy needs a non-empty name');
      }
      if (typeof policy.build !== 'function' || typeof policy.parseConfig !== 'function') {
        throw new InvalidOptionError('policy', 'a picker policy needs parseConfig() and build()');
      }
      const { startBuild } = policy as { startBuild?: unknown };
      if (startBuild !== undefined && typeof startBuild !== 'function') {
        throw new InvalidOptionError('policy.startBuild', `must be a function when given, got ${describe(startBuild)}`);
      }
      return policy.name;
    });
    this.#policies.set(name, policy as PickerPolicy<unknown>);
    return this;
  }

  /** The registered names, sorted. */
  names(): string[] {
    return [...this.#policies.keys()].sort();
  }

  /**
   * Resolves the `picker` option to a policy and its validated configuration. Throws
   * {@link InvalidOptionError} for an unknown name or a bad setting; anything else the policy's `parseConfig`
   * throws (a `TypeError` from a custom policy) becomes an {@link InvalidOptionError} naming `optionName` (the
   * `picker` option, as the user wrote its path), with the original as `cause`.
   */
  configure(option: PickerOption, optionName = 'picker'): ConfiguredPolicy {
    let name: unknown;
    let raw: Record<string, unknown> = {};
    if (typeof option === 'string') {
      name = option;
    } else if (typeof option === 'object' && option !== null) {
      // Read once, here: a getter or a Proxy trap that throws is named after this option, not the whole options.
      ({ name, ...raw } = readOptions(optionName, () => ({ ...option })));
    } else {
      throw new InvalidOptionError(optionName, `expected a policy name or { name, ... }, got ${describe(option)}`);
    }
    const policy = typeof name === 'string' ? this.#policies.get(name) : undefined;
    if (policy === undefined) {
      throw new InvalidOptionError(
        joinPath(optionName, 'name'),
        `unknown policy ${describe(name)} (registered: ${this.names().join(', ')})`,
      );
    }
    let config: unknown;
    try {
      config = policy.parseConfig(raw, optionName);
    } catch (err) {
      if (isSidecarlessError(err)) throw err;
      throw new InvalidOptionError(
        optionName,
        `the policy ${describe(name)} failed to parse its settings: ${thrownMessage(err)}`,
        { cause: err },
      );
    }
    return { policy, config };
  }
}

/**
 * Throws {@link InvalidOptionError} for the first key of `raw` not in `allowed`, named `<path>.<key>` (`path`
 * defaults to `picker`), in the options toolkit's one wording (`unknown option; did you mean ...? (allowed: ...)`).
 * For policies' `parseConfig`; a thin wrapper over the toolkit's `rejectUnknownKeys(record, path, allowed)`.
 */
export function rejectUnknownKeys(
  raw: Readonly<Record<string, unknown>>,
  allowed: readonly string[],
  path = 'picker',
): void {
  rejectUnknownOptions(raw, path, allowed);
}
