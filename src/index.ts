/**
 * sidecarless: in-process service discovery and client-side load balancing for Node.js.
 *
 * @example
 * ```ts
 * import { createClient } from 'sidecarless';
 *
 * const client = createClient({ target: 'static://127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083' });
 * const res = await client.fetch('http://users/api/me');
 * await client.close();
 * ```
 *
 * @packageDocumentation
 */

export type {
  ClientOptions,
  ClientStats,
  DiscoveryOptions,
  MultiServiceOptions,
  SingleServiceOptions,
} from './client/client.js';
export { Client, createClient } from './client/client.js';
export type { ClusterOptions, ClusterStats, EndpointStats, TargetOption, TlsOptions } from './cluster/cluster.js';
export { Cluster } from './cluster/cluster.js';
export type { Endpoint, EndpointInit } from './common/endpoint.js';
export {
  createEndpoint,
  createEndpointSet,
  endpointKey,
  MAX_ENDPOINT_PRIORITY,
  MAX_ENDPOINT_WEIGHT,
  parseHostPort,
} from './common/endpoint.js';
export type { DnsErrorCode, ErrorCode } from './common/errors.js';
export {
  AllEjectedError,
  CircuitOpenError,
  ClientClosedError,
  DeadlineExceededError,
  DnsError,
  DuplicateEndpointError,
  EmptySubsetError,
  findSidecarlessError,
  InvalidEndpointError,
  InvalidOptionError,
  InvalidTargetError,
  isSidecarlessError,
  NoEndpointsError,
  NoRouteError,
  OverloadedError,
  PerTryTimeoutError,
  ProtocolMismatchError,
  ResolverError,
  RetryBudgetExhaustedError,
  SidecarlessError,
  UnknownSchemeError,
} from './common/errors.js';
export { statusForError } from './request/http-status.js';
export type { Disposable, HealthEvent, HealthOptions } from './health/endpoint-health.js';
export type {
  EjectionControl,
  ExpectedStatus,
  HealthCheckerHooks,
  HealthCheckOptions,
  ResolvedHealthCheckOptions,
} from './health/health-check.js';
export { HealthChecker, resolveHealthCheckOptions } from './health/health-check.js';
export type {
  EjectionInfo,
  EjectionReason,
  OutlierDetectionOptions,
  OutlierDetectorHooks,
  OutlierHostSnapshot,
  ResolvedOutlierDetectionOptions,
  ReturnInfo,
  ReturnReason,
} from './health/outlier-detector.js';
export {
  meanAndStdev,
  OUTLIER_DETECTION_DEFAULTS,
  OutlierDetector,
  resolveOutlierDetectionOptions,
} from './health/outlier-detector.js';
export type { EligibleSet } from './balancer/panic.js';
export { DEFAULT_PANIC_THRESHOLD, isPanic, resolvePanicThreshold, selectEligible } from './balancer/panic.js';
export type { ResolvedSlowStartOptions, SlowStartOptions } from './health/slow-start.js';
export { resolveSlowStartOptions, SlowStartTracker, slowStartFactor } from './health/slow-start.js';
export type {
  AttemptEndMessage,
  PickMessage,
  RequestEndMessage,
  RequestStartMessage,
  ResolveMessage,
} from './metrics/events.js';
export { channels } from './metrics/events.js';
export type { HistogramSnapshot } from './metrics/histogram.js';
export { histogramQuantile, LATENCY_BUCKETS_MS } from './metrics/histogram.js';
export { hashString, hashStringInto, xxh32, xxh32Into } from './pickers/hash.js';
export type { HashKeyOption, KeyHasher, RequestHasher } from './pickers/hash-key.js';
export { findHeader, parseHashKey, parseKeyHasher } from './pickers/hash-key.js';
export { createPickerRegistry } from './pickers/registry.js';
export type { LeastRequestConfig } from './pickers/least-request.js';
export { LeastRequestPicker, leastRequestPolicy, WeightedLeastRequestPicker } from './pickers/least-request.js';
export type { MaglevConfig, MaglevOptions } from './pickers/maglev.js';
export { MAX_MAGLEV_TABLE_SIZE, MaglevPicker, maglevPolicy } from './pickers/maglev.js';
export type { PeakEwmaConfig } from './pickers/peak-ewma.js';
export { PeakEwmaPicker, peakEwmaPolicy } from './pickers/peak-ewma.js';
export type {
  ConfiguredPolicy,
  Pickable,
  PickContext,
  Picker,
  PickerEnvironment,
  PickerOption,
  PickerPolicy,
  PickResult,
} from './pickers/picker.js';
export { PickerRegistry, rejectUnknownKeys } from './pickers/picker.js';
export { RandomPicker, randomPolicy } from './pickers/random.js';
export type { RingHashConfig, RingHashOptions } from './pickers/ring-hash.js';
export { MAX_RING_SIZE, RingHashPicker, ringHashPolicy } from './pickers/ring-hash.js';
export { roundRobinPolicy } from './pickers/round-robin.js';
export { WeightedRandomPicker, weightedRandomPolicy } from './pickers/weighted-random.js';
export { WeightedRoundRobinPicker, weightedRoundRobinPolicy } from './pickers/weighted-round-robin.js';
export type { BreakerState } from './request/breaker.js';
export type { DispatchTarget } from './client/dispatcher.js';
export { BalancedDispatcher } from './client/dispatcher.js';
export type {
  BreakerOptions,
  FallbackResponse,
  HedgeOptions,
  LimitsOptions,
  RequestPolicyOptions,
  RetryBudgetOptions,
  RetryOptions,
} from './request/policy.js';
export type { DnsResolverOptions } from './resolvers/dns/resolver.js';
export { DnsResolver, dnsResolverFactory } from './resolvers/dns/resolver.js';
export type {
  AddressRecord,
  DnsAnswer,
  DnsClientOptions,
  DnsQueryType,
  Nameserver,
  ResolvedDnsClientOptions,
  SrvRecord,
} from './resolvers/dns/client.js';
export { DnsClient } from './resolvers/dns/client.js';
export type { DnsFamily, DnsPollingOptions, DnsResolution, ResolvedDnsPollingOptions } from './resolvers/dns/poller.js';
export { createResolverRegistry, ResolverRegistry } from './resolvers/registry.js';
export type { Resolver, ResolverContext, ResolverFactory, ResolverListener, Target } from './resolvers/resolver.js';
export { parseTarget } from './resolvers/target.js';
export type { SrvResolverOptions } from './resolvers/dns/srv.js';
export { SRV_ZERO_WEIGHT, SrvResolver, srvResolverFactory } from './resolvers/dns/srv.js';
export { StaticResolver, staticResolverFactory } from './resolvers/static.js';
export type { PathMatch, RouteMatch, RouteRequest, ValueMatch } from './routing/match.js';
export type { LevelHealth, PriorityPlan } from './balancer/priority.js';
export { levelHealth, OVERPROVISIONING_FACTOR, planPriorities, priorityLoads } from './balancer/priority.js';
export type { RouteConfig, RouteDecision, SplitTarget, SubsetFallback, SubsetSelector } from './routing/router.js';
export { compileRoutes, RouteTable } from './routing/router.js';
export type { ZoneAwareOptions, ZoneCount } from './balancer/zone.js';
export { zoneShares } from './balancer/zone.js';
export type { Clock, RandomSource, TimerHandle } from './common/runtime.js';
export { seededRandom, systemClock, systemRandom } from './common/runtime.js';
export type { BackoffOptions, ResolvedBackoffOptions } from './common/backoff.js';
export { Backoff, resolveBackoffOptions } from './common/backoff.js';
export type { PeakEwmaOptions } from './pickers/load.js';
export { PeakEwma } from './pickers/load.js';
export type { AttemptOutcome, ErrorKind } from './common/outcome.js';
export { classifyError } from './common/outcome.js';
export type { SubchannelState } from './subchannel/subchannel.js';
