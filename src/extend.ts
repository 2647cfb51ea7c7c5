/**
 * Building blocks for writing your own picker policies and resolvers: the hash functions and key hashers the
 * built-in hashing policies use, the EDF heap, the picker helpers, the built-in policies and resolver factories (to
 * wrap or re-register), the backoff, seeded randomness, target and endpoint parsing, and the options validators.
 *
 * **Less stable than the root entry.** `sidecarless` (the root entry) is the stable contract: `Resolver`,
 * `PickerPolicy` and the rest of it change only in a major version. What is exported here is how the built-ins are
 * made; it may change in a minor version when the built-ins need it to. Pin a minor version (`~0.2.0`) if you
 * depend on it. See docs/ARCHITECTURE.md for where a policy or a resolver fits.
 *
 * @example
 * ```ts
 * import type { PickerPolicy } from 'sidecarless';
 * import { completeResults, options } from 'sidecarless/extend';
 *
 * const firstPolicy: PickerPolicy<Record<string, never>> = {
 *   name: 'first',
 *   // `path` is where the picker option sits (`clusters.users.picker`): errors name the full path.
 *   parseConfig: (raw, path = 'picker') => (options.rejectUnknownKeys(raw, path, []), {}),
 *   build: (targets) => {
 *     const [first] = completeResults(targets);
 *     return { pick: () => first! };
 *   },
 * };
 * ```
 *
 * @packageDocumentation
 * @module sidecarless/extend
 */

// Hashing: xxh32 over bytes and strings, written into a Uint32Array you own (no allocation), and the `hashKey`
// option turned into a hasher of requests.
export { hashString, hashStringInto, xxh32, xxh32Into } from './pickers/hash.js';
export type { KeyHasher, RequestHasher } from './pickers/hash-key.js';
export { parseHashKey, parseKeyHasher } from './pickers/hash-key.js';
export { findHeader } from './common/headers.js';

// The contracts these blocks serve, re-exported from `sidecarless` so a policy or resolver can import from one place
export type {
  Pickable,
  PickContext,
  Picker,
  PickerBuild,
  PickerEnvironment,
  PickerPolicy,
  PickResult,
  Resolver,
  ResolverContext,
  ResolverFactory,
  ResolverListener,
  Target,
  Clock,
  RandomSource,
  BackoffOptions,
} from './index.js';

// Scheduling and picker helpers
export { EdfHeap } from './pickers/edf.js';
export { allEqual, completeResults, indexOf, sortedByKey, weightsOf } from './pickers/util.js';
export type { PeakEwmaOptions } from './pickers/load.js';
export { PeakEwma } from './pickers/load.js';

// The built-in policies (registered by createPickerRegistry) and their validated settings
export { roundRobinPolicy } from './pickers/round-robin.js';
export { randomPolicy } from './pickers/random.js';
export { weightedRoundRobinPolicy } from './pickers/weighted-round-robin.js';
export { weightedRandomPolicy } from './pickers/weighted-random.js';
export type { LeastRequestConfig } from './pickers/least-request.js';
export { leastRequestPolicy } from './pickers/least-request.js';
export type { PeakEwmaConfig } from './pickers/peak-ewma.js';
export { peakEwmaPolicy } from './pickers/peak-ewma.js';
export type { RingHashConfig } from './pickers/ring-hash.js';
export { ringHashPolicy } from './pickers/ring-hash.js';
export type { MaglevConfig } from './pickers/maglev.js';
export { maglevPolicy } from './pickers/maglev.js';

// Resolvers: target and endpoint parsing, the built-in factories (registered by createResolverRegistry)
export { parseTarget } from './resolvers/target.js';
export { endpointKey, MAX_ENDPOINT_PRIORITY, MAX_ENDPOINT_WEIGHT, parseHostPort } from './common/endpoint.js';
export { staticResolverFactory } from './resolvers/static.js';
export { dnsResolverFactory } from './resolvers/dns/resolver.js';
export { srvResolverFactory } from './resolvers/dns/srv.js';
export { consulResolverFactory } from './resolvers/consul/resolver.js';
export { etcdResolverFactory } from './resolvers/etcd/resolver.js';
export { kubernetesResolverFactory } from './resolvers/kubernetes/resolver.js';

// ---------------------------------------------------------------------------------------------------------------
// The shared loop of the resolvers that watch a remote source (start, refresh, close, backoff, last known good),
// and the bounded response-body reader they use: a custom resolver for another registry is a WatchTask.
export type { WatchLoopOptions, WatchResult, WatchRun, WatchTask } from './resolvers/watch-loop.js';
export { WatchLoop } from './resolvers/watch-loop.js';
export type { ResponseBody } from './resolvers/read-body.js';
export { readBody } from './resolvers/read-body.js';

// Backoff: exponential with jitter, the one shape every backoff option has
export type { BackoffDefaults, ResolvedBackoffOptions } from './common/backoff.js';
export { Backoff, resolveBackoffOptions } from './common/backoff.js';

// Time and randomness: inject them into your policy or resolver rather than reading globals
export { seededRandom, systemClock, systemRandom } from './common/runtime.js';

/**
 * The options toolkit: the validators every built-in option uses, for a custom policy's `parseConfig` or a custom
 * resolver's options, so that a bad value is reported the same way (an `InvalidOptionError` naming the dotted path):
 * `options.duration(raw.intervalMs, options.joinPath(path, 'intervalMs'), 1000)`.
 */
export * as options from './common/options-toolkit.js';
