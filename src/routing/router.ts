/**
 * The route table: an ordered list of rules, first match wins, each sending the request to a cluster, a weighted
 * split of clusters (optionally sticky per hash key), or a subset of a cluster's endpoints, with optional
 * mirroring. Compiled and validated as a whole; a {@link Router} swaps tables atomically.
 *
 * @module
 */
import { InvalidOptionError } from '../common/errors.js';
import {
  array,
  checkObject,
  describe,
  duration,
  isRecord,
  joinPath,
  MAX_SHARE_WEIGHT,
  number,
  percent,
  required,
  string,
} from '../common/options.js';
import { parseHashKey, type RequestHasher } from '../pickers/hash-key.js';
import type { HashKeyOption, PickContext } from '../pickers/picker.js';
import type { RandomSource } from '../common/runtime.js';
import { clusterName, compileMatch, type Matcher, type RouteMatch, type RouteRequest } from './match.js';

/** Endpoint metadata a subset requires: every key must be present with exactly this value. @category Routing */
export type SubsetSelector = Readonly<Record<string, string>>;

/**
 * What to do when a route's subset has no endpoint: `any` uses the whole cluster, `fail` fails the request with
 * `SIDECARLESS_EMPTY_SUBSET`, a selector tries that subset instead (then fails if it is empty too).
 *
 * @category Routing
 */
export type SubsetFallback = 'any' | 'fail' | SubsetSelector;

/** One weighted destination of a split. @category Routing */
export interface SplitTarget {
  /** Name of one of the client's clusters. */
  readonly cluster: string;
  /**
   * Relative weight, from 0 to 1e9, at least one of the split above 0 (90 and 10 for a 90/10 canary). The bound keeps
   * the sum exact: weights near the largest double would add up to `Infinity`.
   */
  readonly weight: number;
}

/** One rule of the route table. @category Routing */
export interface RouteConfig {
  /** A name for errors and logs. @defaultValue `routes[i]` */
  readonly name?: string;
  /** What the rule matches; omitted, it matches every request. */
  readonly match?: RouteMatch;
  /** Send matching requests to this cluster. Exactly one of `cluster` and `split`. */
  readonly cluster?: string;
  /** Split matching requests between clusters by weight. */
  readonly split?: readonly SplitTarget[];
  /**
   * Make the split sticky: requests with the same key (a header, cookie, the path, or a function) always go to the
   * same side. Requests without a key are split at random.
   */
  readonly sticky?: HashKeyOption;
  /** Only endpoints whose metadata has these values (e.g. `{ version: 'v2' }`). */
  readonly subset?: SubsetSelector;
  /** When the subset is empty. @defaultValue 'any' */
  readonly subsetFallback?: SubsetFallback;
  /**
   * Also send a copy of `percent` % of matching requests to another cluster (shadow traffic, Host `<host>-shadow`);
   * the copy's response is discarded. At most 64 copies are in flight; streamed bodies (fetch's) are teed and the
   * copy is sent once the body is complete; bodies above 1 MiB (of any kind) are not mirrored, nor requests to an
   * IPv6 literal host (no `<host>-shadow` name can be made of it).
   */
  readonly mirror?: {
    /** Name of the cluster that receives the copies (one of the client's clusters). */
    readonly cluster: string;
    /** Share of matching requests copied, 0 to 100. @defaultValue 100 */
    readonly percent?: number;
    /**
     * Deadline of each copy, ms: a copy with no complete response by then is aborted and counted in
     * `stats().mirrored.dropped`, so a shadow that never answers cannot hold the 64 slots.
     * @defaultValue 5000
     */
    readonly timeoutMs?: number;
  };
}

/** Where one request goes. */
export interface RouteDecision {
  /** Name of the rule that matched (its `name`, else `routes[i]`). */
  readonly route: string;
  /** The cluster the request goes to (for a split, the side chosen for this request). */
  readonly cluster: string;
  /** Endpoint metadata the request is restricted to; `undefined` for the whole cluster. */
  readonly subset: SubsetSelector | undefined;
  /** What to do when the subset is empty; `any` when the rule sets none. */
  readonly subsetFallback: SubsetFallback;
  /** The rule's mirroring, or `undefined` when it mirrors nothing. */
  readonly mirror:
    | {
        /** The cluster that receives the copies. */
        readonly cluster: string;
        /** Fraction of requests copied, 0 to 1 (`percent / 100`). */
        readonly share: number;
        /** Deadline of each copy, ms. */
        readonly timeoutMs: number;
      }
    | undefined;
}

interface CompiledRoute {
  readonly name: string;
  readonly matches: Matcher;
  readonly clusters: readonly string[];
  /** Cumulative weights, same order as `clusters`. */
  readonly cumulative: readonly number[];
  readonly total: number;
  readonly hasher: RequestHasher | undefined;
  readonly base: Omit<RouteDecision, 'cluster'>;
  /** Prebuilt decisions, one per cluster, so routing allocates nothing. */
  readonly decisions: readonly RouteDecision[];
}

/** The default deadline of a mirrored copy, ms. */
const DEFAULT_MIRROR_TIMEOUT_MS = 5000;

const ROUTE_KEYS = ['name', 'match', 'cluster', 'split', 'sticky', 'subset', 'subsetFallback', 'mirror'];

function selector(raw: unknown, option: string): SubsetSelector {
  if (!isRecord(raw) || Object.keys(raw).length === 0) {
    throw new InvalidOptionError(
      option,
      `expected an object of metadata values, e.g. { version: "v2" }, got ${describe(raw)}`,
    );
  }
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') {
      throw new InvalidOptionError(joinPath(option, k), `expected a string, got ${describe(v)}`);
    }
  }
  return Object.freeze({ ...(raw as Record<string, string>) });
}

/**
 * Validates and compiles a route table against the cluster names that exist. Throws {@link InvalidOptionError}
 * naming the bad rule and field (e.g. `routes[2].split[1].weight`).
 */
export function compileRoutes(routes: unknown, clusterNames: ReadonlySet<string>, option = 'routes'): RouteTable {
  const rules = array(routes, option, 'an array of routes');
  // Cluster names compare as hosts do: the client keeps them normalized (clusterName), and so are the ones named here.
  const known = (name: unknown, at: string) => {
    const normalized = typeof name === 'string' ? clusterName(name) : undefined;
    if (normalized === undefined || !clusterNames.has(normalized)) {
      throw new InvalidOptionError(at, `unknown cluster ${describe(name)} (clusters: ${[...clusterNames].join(', ')})`);
    }
    return normalized;
  };
  const hosts: string[] = [];
  const compiled = rules.map((raw, i): CompiledRoute => {
    const at = joinPath(option, i);
    const r = checkObject(raw, ROUTE_KEYS, at);
    const name = string(r.name, joinPath(at, 'name'), at);
    if ((r.cluster === undefined) === (r.split === undefined)) {
      throw new InvalidOptionError(at, 'expected exactly one of `cluster` and `split`');
    }
    let clusters: string[];
    let weights: number[];
    if (r.cluster !== undefined) {
      clusters = [known(r.cluster, joinPath(at, 'cluster'))];
      weights = [1];
    } else {
      const split = joinPath(at, 'split');
      const entries = array(r.split, split, 'a non-empty array of { cluster, weight }', 1).map((entry, j) =>
        checkObject(entry, ['cluster', 'weight'], joinPath(split, j)),
      );
      clusters = entries.map((entry, j) => known(entry.cluster, joinPath(joinPath(split, j), 'cluster')));
      weights = entries.map((entry, j) => {
        const weight = joinPath(joinPath(split, j), 'weight');
        return number(required(entry.weight, weight), weight, 0, 0, false, MAX_SHARE_WEIGHT);
      });
      if (weights.every((w) => w === 0)) throw new InvalidOptionError(split, 'at least one weight must be > 0');
    }
    if (r.sticky !== undefined && r.split === undefined) {
      throw new InvalidOptionError(joinPath(at, 'sticky'), 'only a split can be sticky');
    }
    const hasher = r.sticky === undefined ? undefined : parseHashKey(r.sticky, joinPath(at, 'sticky'));
    const subset = r.subset === undefined ? undefined : selector(r.subset, joinPath(at, 'subset'));
    let subsetFallback: SubsetFallback = 'any';
    if (r.subsetFallback !== undefined) {
      const fallback = joinPath(at, 'subsetFallback');
      if (subset === undefined) throw new InvalidOptionError(fallback, 'needs a `subset`');
      subsetFallback =
        r.subsetFallback === 'any' || r.subsetFallback === 'fail'
          ? r.subsetFallback
          : selector(r.subsetFallback, fallback);
    }
    let mirror: RouteDecision['mirror'];
    if (r.mirror !== undefined) {
      const path = joinPath(at, 'mirror');
      const m = checkObject(r.mirror, ['cluster', 'percent', 'timeoutMs'], path);
      const share = percent(m.percent, joinPath(path, 'percent'), 100) / 100;
      const timeoutMs = duration(m.timeoutMs, joinPath(path, 'timeoutMs'), DEFAULT_MIRROR_TIMEOUT_MS);
      mirror = { cluster: known(m.cluster, joinPath(path, 'cluster')), share, timeoutMs };
    }
    const cumulative: number[] = [];
    let total = 0;
    for (const w of weights) {
      total += w;
      cumulative.push(total);
    }
    const base = { route: name, subset, subsetFallback, mirror };
    return {
      name,
      matches: compileMatch(r.match, joinPath(at, 'match'), hosts),
      clusters,
      cumulative,
      total,
      hasher,
      base,
      decisions: clusters.map((cluster) => Object.freeze({ ...base, cluster })),
    };
  });
  return new RouteTable(compiled, hosts);
}

/** A compiled, immutable route table. */
export class RouteTable {
  readonly #routes: readonly CompiledRoute[];

  /** The host patterns the rules match (lower case, `*.` wildcards as written). */
  readonly hosts: readonly string[];

  /** @internal Built by {@link compileRoutes}. */
  constructor(routes: readonly CompiledRoute[], hosts: readonly string[] = []) {
    this.#routes = routes;
    this.hosts = hosts;
  }

  /** The number of rules. */
  get size(): number {
    return this.#routes.length;
  }

  /** The first matching rule's decision, or undefined. */
  route(request: RouteRequest & PickContext, random: RandomSource): RouteDecision | undefined {
    for (const route of this.#routes) {
      if (!route.matches(request)) continue;
      if (route.decisions.length === 1) return route.decisions[0];
      const hash = route.hasher === undefined ? -1 : route.hasher(request);
      const point = hash >= 0 ? (hash / 4294967296) * route.total : random() * route.total;
      const { cumulative } = route;
      for (let i = 0; i < cumulative.length; i++) {
        if (point < (cumulative[i] as number)) return route.decisions[i];
      }
      return route.decisions[route.decisions.length - 1];
    }
    return undefined;
  }
}
