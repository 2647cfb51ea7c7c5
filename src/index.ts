/**
 * sidecarless: in-process service discovery and client-side load balancing for Node.js.
 *
 * This is the stable entry point: what the README shows, and the contracts for your own resolvers and picker
 * policies. Building blocks for writing those (hash functions, the EDF heap, the backoff, seeded randomness, the
 * options validators) are in `sidecarless/extend`, which is less stable. Metrics exporters are in
 * `sidecarless/prometheus` and `sidecarless/opentelemetry`.
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
 * @module sidecarless
 */

// Client
export type {
  ClientOptions,
  ClientStats,
  DiscoveryOptions,
  DispatchOptionsLike,
  GlobalDispatcherOptions,
  MultiServiceOptions,
  ReadyOptions,
  RedirectOptions,
  SingleServiceOptions,
  UndiciDispatcher,
} from './client/client.js';
export { Client, createClient } from './client/client.js';

// Options
export type { ClusterOptions, Http2Options, TargetOption, TlsOptions } from './cluster/cluster.js';
export type {
  BreakerOptions,
  FallbackResponse,
  HedgeOptions,
  LimitsOptions,
  RequestPolicyOptions,
  RetryBudgetOptions,
  RetryOptions,
} from './request/policy.js';
export type { HealthOptions } from './health/endpoint-health.js';
export type { ExpectedStatus, HealthCheckOptions } from './health/health-check.js';
export type { OutlierDetectionOptions } from './health/outlier-detector.js';
export type { SlowStartOptions } from './health/slow-start.js';
export type { BackoffOptions } from './common/backoff.js';
export type { ZoneAwareOptions } from './balancer/zone.js';
export type { PathMatch, RouteMatch, ValueMatch } from './routing/match.js';
export type { RouteConfig, SplitTarget, SubsetFallback, SubsetSelector } from './routing/router.js';
export type {
  HashKeyOption,
  MaglevOptions,
  MaglevPickerOption,
  RingHashOptions,
  RingHashPickerOption,
} from './pickers/picker.js';
export type { Clock, RandomSource, TimerHandle } from './common/runtime.js';
export { seededRandom } from './common/runtime.js';

// Stats and events
export type { ClusterStats, EndpointStats, StatsOptions } from './cluster/cluster.js';
export type { HistogramSnapshot } from './metrics/histogram.js';
export { histogramQuantile } from './metrics/histogram.js';
export type { BreakerState } from './request/breaker.js';
export type { SubchannelState } from './subchannel/subchannel.js';
export type { ErrorKind } from './common/outcome.js';
export type { Disposable, EjectionReason, HealthEvent, ReturnReason, Subscription } from './metrics/events.js';
export type {
  AttemptEndMessage,
  PickMessage,
  RequestEndMessage,
  RequestStartMessage,
  ResolveMessage,
} from './metrics/events.js';
export { channels } from './metrics/events.js';

// Errors
export type { DnsErrorCode, ErrorCode } from './common/errors.js';
export type { DiscoveryFailureReason } from './resolvers/errors.js';
export { ConsulError, DiscoveryError, EtcdError, KubernetesError } from './resolvers/errors.js';
export { PickerError } from './pickers/errors.js';
export {
  ClientClosedError,
  DnsError,
  DuplicateEndpointError,
  findSidecarlessError,
  InvalidEndpointError,
  InvalidOptionError,
  InvalidRequestError,
  InvalidTargetError,
  isSidecarlessError,
  NoEndpointsError,
  NotProcessedError,
  ProtocolMismatchError,
  ResolverError,
  ServiceNotFoundError,
  SidecarlessError,
  UnknownSchemeError,
} from './common/errors.js';
export {
  AllEjectedError,
  CircuitOpenError,
  DeadlineExceededError,
  EmptySubsetError,
  NoRouteError,
  OverloadedError,
  PerTryTimeoutError,
  RedirectRefusedError,
  ResponseDiscardedError,
  RetryBudgetExhaustedError,
} from './common/request-errors.js';
export { statusForError } from './request/http-status.js';

// Endpoints
export type { Endpoint, EndpointInit } from './common/endpoint.js';
export { createEndpoint, createEndpointSet } from './common/endpoint.js';

// Resolvers: the contract, the registry and the built-in resolvers users construct
export type { Resolver, ResolverContext, ResolverFactory, ResolverListener, Target } from './resolvers/resolver.js';
export { createResolverRegistry, ResolverRegistry } from './resolvers/registry.js';
export { StaticResolver } from './resolvers/static.js';
export type { RemoteResolverOptions, ResolverTlsOptions } from './resolvers/options.js';
export type { DnsResolverOptions } from './resolvers/dns/resolver.js';
export { DnsResolver } from './resolvers/dns/resolver.js';
export type { SrvResolverOptions } from './resolvers/dns/srv.js';
export { SrvResolver } from './resolvers/dns/srv.js';
export type { DnsFamily, DnsPollingOptions, DnsPollingResolver } from './resolvers/dns/poller.js';
export type { DnsClientOptions } from './resolvers/dns/client.js';
export type { ConsulHealthFilter, ConsulResolverOptions, ConsulTlsOptions } from './resolvers/consul/resolver.js';
export { ConsulResolver } from './resolvers/consul/resolver.js';
export type { EtcdResolverOptions, EtcdTlsOptions } from './resolvers/etcd/resolver.js';
export { EtcdResolver } from './resolvers/etcd/resolver.js';
export type {
  KubernetesResolverEvent,
  KubernetesResolverOptions,
  KubernetesResolverStats,
  KubernetesTlsOptions,
} from './resolvers/kubernetes/resolver.js';
export { KubernetesResolver } from './resolvers/kubernetes/resolver.js';

// Pickers: the contract and the registry
export type {
  ConfiguredPolicy,
  Pickable,
  PickContext,
  Picker,
  PickerBuild,
  PickerEnvironment,
  PickerOption,
  PickerPolicy,
  PickResult,
} from './pickers/picker.js';
export { PickerRegistry } from './pickers/picker.js';
export type { PeakEwma, PeakEwmaOptions } from './pickers/load.js';
export { createPickerRegistry } from './pickers/registry.js';
