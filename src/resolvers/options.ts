/**
 * Options the built-in resolvers of a remote source share, with their validation (through the options toolkit,
 * common/options.ts): TLS to the registry ({@link ResolverTlsOptions}) and the clock, random source and backoff
 * the watch loop runs on ({@link RemoteResolverOptions}). Each resolver's own options module calls these, so the
 * shapes, their documentation and their checks are written once.
 *
 * @module
 */
import {
  type BackoffDefaults,
  type BackoffOptions,
  type ResolvedBackoffOptions,
  resolveBackoffOptions,
} from '../common/backoff.js';
import { InvalidOptionError } from '../common/errors.js';
import { boolean, checkObject, clock, describe, func, integer, joinPath } from '../common/options.js';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../common/runtime.js';
import { passphraseOption, tlsMaterial, tlsMaterialShape } from '../common/tls-options.js';
import { serverName } from '../common/wire-options.js';

/**
 * TLS settings of a resolver's connection to its registry (the Consul agent, the etcd members, the Kubernetes API
 * server), passed to undici as `connect` options. Each resolver's `tls` option documents its own defaults (the
 * Kubernetes resolver takes them from the pod or the kubeconfig; these fields override them).
 *
 * @category Resolvers
 */
export interface ResolverTlsOptions {
  /**
   * CA certificate(s) (PEM) to trust instead of the system store (or the resolver's own default CA). PEM text is a
   * string or its bytes: a `Buffer`, or a `Uint8Array` (what a Buffer becomes through `structuredClone` or a
   * worker's message) or any other `ArrayBufferView`, as Node's TLS takes it.
   */
  readonly ca?: string | ArrayBufferView | ReadonlyArray<string | ArrayBufferView> | undefined;
  /** Client certificate (PEM, as for `ca`), for mutual TLS. */
  readonly cert?: string | ArrayBufferView | undefined;
  /** Client private key (PEM, as for `ca`), for mutual TLS; an encrypted one needs `passphrase`. */
  readonly key?: string | ArrayBufferView | undefined;
  /**
   * The passphrase of an encrypted private key (`key`, or the Kubernetes resolver's key from its kubeconfig). A
   * wrong one for `key` is refused at construction, naming `tls.passphrase`, and so is one without a `key` (but for
   * the Kubernetes resolver); it is ignored for a key that is not encrypted.
   */
  readonly passphrase?: string | undefined;
  /** Verify the server certificate. @defaultValue true */
  readonly rejectUnauthorized?: boolean | undefined;
  /**
   * SNI server name and the name the certificate is checked against: an ASCII host name (punycode for an IDN), or
   * an IP address of either family (IPv6 without brackets), checked against the certificate's IP addresses.
   * @defaultValue the server's host
   */
  readonly servername?: string | undefined;
}

const TLS_KEYS = ['ca', 'cert', 'key', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/**
 * Validates a resolver's `tls` option at `path` and returns the fields given (an empty object when none was), or
 * `undefined` when the option is absent. A `passphrase` without a `key` decrypts nothing and is refused, as the
 * client's is, unless the resolver has a key from elsewhere (`keyElsewhere`: the Kubernetes resolver's kubeconfig).
 * Throws {@link InvalidOptionError}. @internal
 */
export function resolveResolverTls(value: unknown, path: string, keyElsewhere = false): ResolverTlsOptions | undefined {
  if (value === undefined) return undefined;
  const t = checkObject(value, TLS_KEYS, path);
  boolean(t.rejectUnauthorized, joinPath(path, 'rejectUnauthorized'), true);
  serverName(t.servername, joinPath(path, 'servername'));
  const passphrase = passphraseOption(t.passphrase, joinPath(path, 'passphrase'));
  if (passphrase !== undefined && t.key === undefined && !keyElsewhere) {
    throw new InvalidOptionError(
      joinPath(path, 'passphrase'),
      'decrypts a private key, and there is none: set tls.key (and tls.cert)',
    );
  }
  const material = tlsMaterialShape(t, path);
  tlsMaterial(material, path, passphrase, joinPath(path, 'passphrase'));
  const picked: Record<string, unknown> = {};
  for (const field of TLS_KEYS) if (t[field] !== undefined) picked[field] = t[field];
  return { ...picked, ...material } as ResolverTlsOptions;
}

/**
 * What every resolver that watches a remote source (Consul, etcd, Kubernetes, ZooKeeper) runs on: its timers, its
 * jitter and its backoff between failures. A resolver built from a target by the cluster gets the cluster's clock
 * and random source.
 *
 * @category Resolvers
 */
export interface RemoteResolverOptions {
  /** Backoff between failed requests or cycles. @defaultValue 1 s, ×1.6, jitter 0.2, max 120 s */
  readonly backoff?: BackoffOptions | undefined;
  /** Clock for the resolver's timers: `now`, `setTimeout` and `clearTimeout`, all checked. @defaultValue systemClock */
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter. @defaultValue {@link systemRandom} */
  readonly random?: RandomSource | undefined;
  /**
   * The most endpoints the resolver holds from its registry (Kubernetes: endpoints across EndpointSlices, each
   * slice counting at least one; etcd: keys under the prefix, those holding an unusable value included; Consul:
   * service entries; ZooKeeper: children). A registry that sends more is refused, not followed: the resolver
   * reports a `DiscoveryError` with `reason` `'limit'`, the cluster keeps its last good set, what the resolver holds
   * stays within the bound, and it reads the registry afresh (after the backoff) until the registry is back within
   * it. 1 to 10,000,000.
   * @defaultValue 100000
   */
  readonly maxEndpoints?: number | undefined;
}

/** The default of {@link RemoteResolverOptions.maxEndpoints}. @internal */
export const DEFAULT_MAX_ENDPOINTS = 100_000;

/** Validated {@link RemoteResolverOptions}. @internal */
export interface ResolvedRemoteResolverOptions {
  readonly backoff: ResolvedBackoffOptions;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly maxEndpoints: number;
}

/**
 * Validates the {@link RemoteResolverOptions} of `options` (the backoff, the random source, the clock), naming a bad one
 * by its path under `path`. `backoffDefaults` is for a resolver whose backoff defaults differ. @internal
 */
export function resolveRemoteResolverOptions(
  options: RemoteResolverOptions,
  path: string,
  backoffDefaults?: BackoffDefaults,
): ResolvedRemoteResolverOptions {
  const o = options as Record<string, unknown>;
  const backoff = resolveBackoffOptions(options.backoff, joinPath(path, 'backoff'), backoffDefaults);
  const random = func<RandomSource>(o.random, joinPath(path, 'random')) ?? systemRandom;
  const maxEndpoints = integer(o.maxEndpoints, joinPath(path, 'maxEndpoints'), DEFAULT_MAX_ENDPOINTS, 1, 10_000_000);
  return { backoff, clock: clock(o.clock, joinPath(path, 'clock'), systemClock), random, maxEndpoints };
}

/**
 * Reads the address of a registry server (a Consul agent, an etcd member): `host:port`, `http://host:port` or
 * `https://host:port`, nothing more. Returns its origin and whether it is TLS. Throws {@link InvalidOptionError}
 * naming `path`. @internal
 */
export function parseHttpOrigin(address: string, path: string): { origin: string; tls: boolean } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidOptionError(path, `expected host:port or http(s)://host:port, got ${describe(address)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidOptionError(path, `expected an http: or https: address, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new InvalidOptionError(path, 'expected only scheme, host and port (no credentials, path or query)');
  }
  return { origin: url.origin, tls: url.protocol === 'https:' };
}
