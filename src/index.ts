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

export type { ClientOptions, ClientStats } from './client.js';
export { Client, createClient } from './client.js';
export type { ClusterOptions, ClusterStats, EndpointStats, TargetOption } from './cluster.js';
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
export type { ErrorCode } from './errors.js';
export {
  ClientClosedError,
  DuplicateEndpointError,
  findSidecarlessError,
  InvalidEndpointError,
  InvalidOptionError,
  InvalidTargetError,
  isSidecarlessError,
  NoEndpointsError,
  ProtocolMismatchError,
  ResolverError,
  SidecarlessError,
  UnknownSchemeError,
} from './errors.js';
export { createPickerRegistry } from './picker/index.js';
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
export { roundRobinPolicy } from './picker/round-robin.js';
export type { DispatchTarget } from './request/dispatcher.js';
export { BalancedDispatcher } from './request/dispatcher.js';
export { createResolverRegistry } from './resolver/index.js';
export type { Resolver, ResolverContext, ResolverFactory, ResolverListener, Target } from './resolver/resolver.js';
export { parseTarget, ResolverRegistry } from './resolver/resolver.js';
export { StaticResolver, staticResolverFactory } from './resolver/static.js';
export type { Clock, RandomSource, TimerHandle } from './runtime.js';
export { systemClock, systemRandom } from './runtime.js';
export type { BackoffOptions, ResolvedBackoffOptions } from './subchannel/backoff.js';
export { Backoff, resolveBackoffOptions } from './subchannel/backoff.js';
export type { AttemptOutcome, ErrorKind } from './subchannel/outcome.js';
export { classifyError } from './subchannel/outcome.js';
export type { SubchannelState } from './subchannel/subchannel.js';
