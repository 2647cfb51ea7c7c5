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
} from './client.js';
export { Client, createClient } from './client.js';
export type { ClusterOptions, ClusterStats, EndpointStats, TargetOption, TlsOptions } from './cluster.js';
export { Cluster } from './cluster.js';
export type { Endpoint, EndpointInit } from './endpoint.js';
export {
  createEndpoint,
  createEndpointSet,
  endpointKey,
  MAX_ENDPOINT_PRIORITY,
  MAX_ENDPOINT_WEIGHT,
  parseHostPort,
} from './endpoint.js';
export type { DnsErrorCode, ErrorCode } from './errors.js';
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
} from './errors.js';
export { statusForError } from './http-status.js';
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
export type { EligibleSet } from './health/panic.js';
export { DEFAULT_PANIC_THRESHOLD, isPanic, resolvePanicThreshold, selectEligible } from './health/panic.js';
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
export { hashString, hashStringInto, xxh32, xxh32Into } from './picker/hash.js';
export type { HashKeyOption, KeyHasher, RequestHasher } from './picker/hash-key.js';
export { findHeader, parseHashKey, parseKeyHasher } from './picker/hash-key.js';
export { createPickerRegistry } from './picker/index.js';
export type { LeastRequestConfig } from './picker/least-request.js';
export { LeastRequestPicker, leastRequestPolicy, WeightedLeastRequestPicker } from './picker/least-request.js';
export type { MaglevConfig, MaglevOptions } from './picker/maglev.js';
export { MAX_MAGLEV_TABLE_SIZE, MaglevPicker, maglevPolicy } from './picker/maglev.js';
export type { PeakEwmaConfig } from './picker/peak-ewma.js';
export { PeakEwmaPicker, peakEwmaPolicy } from './picker/peak-ewma.js';
export type {
  ConfiguredPolicy,
  Pickable,
  PickContext,
  Picker,
  PickerEnvironment,
  PickerOption,
  PickerPolicy,
  PickResult,
} from './picker/picker.js';
export { PickerRegistry, rejectUnknownKeys } from './picker/picker.js';
export { RandomPicker, randomPolicy } from './picker/random.js';
export type { RingHashConfig, RingHashOptions } from './picker/ring-hash.js';
export { MAX_RING_SIZE, RingHashPicker, ringHashPolicy } from './picker/ring-hash.js';
export { roundRobinPolicy } from './picker/round-robin.js';
export { WeightedRandomPicker, weightedRandomPolicy } from './picker/weighted-random.js';
export { WeightedRoundRobinPicker, weightedRoundRobinPolicy } from './picker/weighted-round-robin.js';
export type { BreakerState } from './request/breaker.js';
export type { DispatchTarget } from './request/dispatcher.js';
export { BalancedDispatcher } from './request/dispatcher.js';
export type {
  BreakerOptions,
  FallbackResponse,
  HedgeOptions,
  LimitsOptions,
  RequestPolicyOptions,
  RetryBudgetOptions,
  RetryOptions,
} from './request/policy.js';
export type { DnsResolverOptions } from './resolver/dns.js';
export { DnsResolver, dnsResolverFactory } from './resolver/dns.js';
export type {
  AddressRecord,
  DnsAnswer,
  DnsClientOptions,
  DnsQueryType,
  Nameserver,
  ResolvedDnsClientOptions,
  SrvRecord,
} from './resolver/dns-client.js';
export { DnsClient } from './resolver/dns-client.js';
export type { DnsFamily, DnsPollingOptions, DnsResolution, ResolvedDnsPollingOptions } from './resolver/dns-poller.js';
export { createResolverRegistry } from './resolver/index.js';
export type { Resolver, ResolverContext, ResolverFactory, ResolverListener, Target } from './resolver/resolver.js';
export { parseTarget, ResolverRegistry } from './resolver/resolver.js';
export type { SrvResolverOptions } from './resolver/srv.js';
export { SRV_ZERO_WEIGHT, SrvResolver, srvResolverFactory } from './resolver/srv.js';
export { StaticResolver, staticResolverFactory } from './resolver/static.js';
export type { PathMatch, RouteMatch, RouteRequest, ValueMatch } from './routing/match.js';
export type { LevelHealth, PriorityPlan } from './routing/priority.js';
export { levelHealth, OVERPROVISIONING_FACTOR, planPriorities, priorityLoads } from './routing/priority.js';
export type { RouteConfig, RouteDecision, SplitTarget, SubsetFallback, SubsetSelector } from './routing/router.js';
export { compileRoutes, RouteTable } from './routing/router.js';
export type { ZoneAwareOptions, ZoneCount } from './routing/zone.js';
export { zoneShares } from './routing/zone.js';
export type { Clock, RandomSource, TimerHandle } from './runtime.js';
export { seededRandom, systemClock, systemRandom } from './runtime.js';
export type { BackoffOptions, ResolvedBackoffOptions } from './subchannel/backoff.js';
export { Backoff, resolveBackoffOptions } from './subchannel/backoff.js';
export type { PeakEwmaOptions } from './subchannel/load.js';
export { PeakEwma } from './subchannel/load.js';
export type { AttemptOutcome, ErrorKind } from './subchannel/outcome.js';
export { classifyError } from './subchannel/outcome.js';
export type { SubchannelState } from './subchannel/subchannel.js';
