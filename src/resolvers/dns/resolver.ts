/**
 * The `dns:` resolver: A and AAAA records of a host name, polled as their TTLs expire.
 *
 * Target syntax (gRPC naming):
 *
 * - `dns:///users.internal:8080` — resolve as the system does: the hosts file, then the system's nameservers
 *   through the `resolv.conf` search list (see {@link DnsPollingOptions.resolvConf});
 * - `dns://10.0.0.2:53/users.internal:8080` — ask the nameserver in the authority (IP literal, port 53 default;
 *   `[::1]:5353` for IPv6);
 * - the port defaults to 80 (`dns:///users.internal`); an IP literal host (`dns:///10.0.0.7:80`) needs no query.
 *
 * Query parameters: `minTtlMs` and `maxTtlMs` (ms, clamp the re-resolution interval; defaults 1000 and 300000),
 * `family` (`4`, `6` or `any`, default `any`), `timeoutMs` (ms per try, default 2000), `retries` (default 2),
 * `udpPayloadSize` (EDNS(0) size, default 1232; `512` sends no EDNS). Example:
 * `dns://127.0.0.1:5353/users.internal:8080?minTtlMs=500&family=4`.
 *
 * Behaviour: see {@link DnsResolver}.
 *
 * @module
 */
import { isIP } from 'node:net';
import { createEndpoint, type Endpoint, endpointKey, parseHostPort } from '../../common/endpoint.js';
import { DnsError, InvalidEndpointError, InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import { checkObject, describe, integer, isRecord, readOptions } from '../../common/options.js';
import type { AddressRecord, DnsClient, QuerySettings } from './client.js';
import {
  type DnsFamily,
  type DnsPollingOptions,
  DnsPollingResolver,
  type DnsResolution,
  dnsOptionsFromTarget,
  isDnsName,
  POLLING_OPTION_KEYS,
  resolveDnsPollingOptions,
} from './poller.js';
import { hostsAddresses, isNegativeAnswer, negativeTtlSeconds, searchNames, type SearchView } from './search.js';
import type { ResolverFactory } from '../resolver.js';
import { asTargetError } from '../target.js';

/**
 * Options of {@link DnsResolver}. Timing and client options are shared with the `srv:` resolver.
 *
 * @category Resolvers
 */
export interface DnsResolverOptions extends DnsPollingOptions {
  /** The host name to resolve (an IP literal is served as is, without any query). */
  readonly host: string;
  /** The port every endpoint gets. @defaultValue 80 */
  readonly port?: number | undefined;
}

/** What {@link lookupAddresses} found. @internal */
export interface AddressLookup {
  /** The addresses, of the families that answered. */
  readonly records: AddressRecord[];
  /**
   * With `family: 'any'`: the family whose query failed (timeout, SERVFAIL, REFUSED, malformed replies, network)
   * while the other answered with addresses, and its error.
   */
  readonly failed?: { readonly family: 4 | 6; readonly error: DnsError } | undefined;
  /**
   * How long the absence behind the answer holds, seconds: the smallest negative TTL (RFC 2308 §5) of the search
   * names tried before the one that answered and, with `family: 'any'`, of the family that had no records. The answer
   * is good for no longer: by then a preferred name or the missing family may exist. `undefined` when nothing was
   * negative.
   */
  readonly negativeTtl?: number | undefined;
}

/**
 * Looks up A and/or AAAA records of `name` with `client`. With `family: 'any'`, both are asked in parallel, as one
 * step of `options rotate` (glibc sends them in one exchange): one negative answer (NXDOMAIN/NODATA) counts as "no
 * records of that family"; when one family answers with addresses and the other fails, the answer is the answered
 * half, with the failure in `failed` (as glibc's getaddrinfo returns the A records when the AAAA query times out:
 * a nameserver or middlebox that drops AAAA queries must not make a name unresolvable). Rejects with the failure
 * when no family answered with addresses, and with the negative error when both are negative. @internal
 */
export async function lookupAddresses(
  client: DnsClient,
  name: string,
  family: DnsFamily,
  settings?: QuerySettings,
): Promise<AddressLookup> {
  const families: Array<4 | 6> = family === 'any' ? [4, 6] : [family];
  const pair = client.oneRotationStep(settings);
  const settled = await Promise.allSettled(families.map((f) => client.resolveAddresses(name, f, pair)));
  const records: AddressRecord[] = [];
  let negative: DnsError | undefined;
  let failed: { family: 4 | 6; error: DnsError } | undefined;
  for (const [i, result] of settled.entries()) {
    if (result.status === 'fulfilled') records.push(...result.value.records);
    else if (isNegativeAnswer(result.reason)) negative ??= result.reason;
    // Anything but a DNS failure (the client closed) ends the lookup as it is.
    else if (!(result.reason instanceof DnsError)) throw result.reason;
    else failed ??= { family: families[i] as 4 | 6, error: result.reason };
  }
  if (failed !== undefined) {
    if (records.length === 0) throw failed.error;
    return { records, failed };
  }
  // NXDOMAIN wins over NODATA for reporting: it says more.
  for (const result of settled) {
    if (result.status === 'rejected' && (result.reason as { code?: string }).code === 'SIDECARLESS_DNS_NXDOMAIN') {
      negative = result.reason as DnsError;
    }
  }
  if (records.length === 0 && negative !== undefined) throw negative;
  return { records, negativeTtl: negative === undefined ? undefined : negativeTtlSeconds(negative) };
}

/**
 * The system resolver's order for one name: the hosts file (the name as given), then DNS for each search-list
 * candidate (see `search.ts`). Resolves with the name that answered and its records. @internal
 */
export async function resolveHostName(
  client: DnsClient,
  view: SearchView,
  name: string,
  family: DnsFamily,
  candidates: readonly string[] = view.candidates(name),
): Promise<AddressLookup & { readonly name: string }> {
  const fromHosts = hostsAddresses(view.hosts, name, family);
  if (fromHosts.length > 0) return { name: fromHosts[0]?.name ?? name, records: fromHosts };
  const queryType = family === 'any' ? 'A/AAAA' : family === 4 ? 'A' : 'AAAA';
  const found = await searchNames(name, candidates, queryType, (n) => lookupAddresses(client, n, family, view.query));
  const ttls = [found.negativeTtl, found.value.negativeTtl].filter((t): t is number => t !== undefined);
  return { name: found.name, ...found.value, negativeTtl: ttls.length === 0 ? undefined : Math.min(...ttls) };
}

/**
 * `records` completed with the addresses of the family that failed (`failed`) from `previous`, the last answer for
 * the same name: last known good, per family (invariant 4), so that a flaky AAAA query does not drop the IPv6 half of
 * a working set, while a family that never answered contributes nothing. The kept addresses take the answered
 * records' smallest TTL, so the next resolution asks again when the answered half expires. @internal
 */
export function keepFailedFamily(
  records: readonly AddressRecord[],
  failed: AddressLookup['failed'],
  previous: readonly AddressRecord[] | undefined,
): AddressRecord[] {
  if (failed === undefined || previous === undefined) return [...records];
  const ttl = Math.min(...records.map((r) => r.ttl));
  const kept = previous.filter((r) => r.family === failed.family).map((r) => ({ ...r, ttl }));
  return [...records, ...kept];
}

/**
 * Resolves a host name's A/AAAA records into endpoints (`address:port`, weight 1, priority 0, metadata
 * `{ dnsName }`) and keeps them fresh.
 *
 * - Looks the name up as the system resolver does: in the hosts file first (answers good for 5 s; the file is looked
 *   at again at each resolution, see {@link DnsPollingOptions.hostsFile}), then in DNS for
 *   each `resolv.conf` search-list candidate in glibc's order (`ndots`; a trailing dot makes the name absolute).
 *   Metadata `dnsName` is the name that answered.
 * - Re-resolves when the smallest TTL of the answer expires, clamped to [`minTtlMs`, `maxTtlMs`]; TTL 0 polls at
 *   `minTtlMs`. The negative answers the answer rests on count too (RFC 2308 §5): those of the search names tried
 *   before the one that answered, and with `family: 'any'` that of a family with no records, so a preferred name or
 *   the missing family is seen once its negative TTL runs out.
 * - A failure (timeout, SERVFAIL, REFUSED, malformed replies, network) calls `onError` with a
 *   `SIDECARLESS_DNS_*` error and retries with backoff; the last set delivered stays in use.
 * - An address no connection can be made to (the unspecified `0.0.0.0` or `::`, `255.255.255.255`, a multicast
 *   address; a hosts file may map a blocked name to `0.0.0.0`) is skipped and reported to `onError`
 *   (`SIDECARLESS_INVALID_ENDPOINT`); the rest is delivered. When no address is left, the resolution fails with that
 *   error and the last set stays in use.
 * - With `family: 'any'`, when one family's query fails that way but the other answers with addresses, the set is the
 *   answered addresses plus the failed family's addresses from the previous resolution of the name (none the first
 *   time): glibc's getaddrinfo returns the A records when the AAAA query times out, so a nameserver that drops
 *   AAAA queries does not make the name unresolvable, and a flaky AAAA query does not drop the IPv6 half of a
 *   working set. The failure still goes to `onError` (the set is delivered all the same), at each such resolution.
 * - NXDOMAIN and NODATA (for every search candidate) are authoritative "no such records" answers (RFC 2308) and
 *   are delivered as an empty set, re-asked after the SOA's negative TTL (30 s without SOA), clamped; the
 *   {@link DnsError} (with `triedNames`) then goes to `onError`, so that it is the cause requests see.
 * - `refresh()` re-resolves early, at most once per `minTtlMs`; during the backoff after a failure it is ignored.
 *
 * @example
 * ```ts
 * const resolver = new DnsResolver({ host: 'users.internal', port: 8080, nameservers: ['10.0.0.2'], maxTtlMs: 60_000 });
 * const client = createClient({ target: resolver });
 * ```
 *
 * @category Resolvers
 */
export class DnsResolver extends DnsPollingResolver {
  /** The host name resolved (lower-cased, no trailing dot). */
  readonly host: string;
  /** The name as looked up: with its trailing dot when given one (absolute: no search list). */
  readonly #name: string;
  /** The endpoints' port. */
  readonly port: number;
  readonly #literal: Endpoint | undefined;
  /** The last resolution's name and addresses: where a failed family's addresses are kept from. */
  #previous: { readonly name: string; readonly records: readonly AddressRecord[] } | undefined;

  /** Validates every option, each read once (throws `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: DnsResolverOptions) {
    if (!isRecord(options)) throw new InvalidOptionError('options', `expected an object, got ${describe(options)}`);
    // A snapshot through the toolkit, each option read once: a getter or Proxy trap that throws is a typed error
    // naming the option, and every check below sees the one value read.
    options = readOptions('options', () =>
      checkObject(options, ['host', 'port', ...POLLING_OPTION_KEYS], ''),
    ) as unknown as DnsResolverOptions;
    const { host, port = 80 } = options;
    if (typeof host !== 'string' || host.length === 0) {
      throw new InvalidOptionError('host', `expected a non-empty host name, got ${describe(host)}`);
    }
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(bare) === 0 && !isDnsName(bare)) {
      throw new InvalidOptionError('host', `${JSON.stringify(host)} is not a valid DNS name or IP address`);
    }
    integer(port, 'port', 80, 1, 65535);
    const resolved = resolveDnsPollingOptions(options, ['host', 'port']);
    const name = bare.toLowerCase().replace(/\.$/, '');
    super(resolved, `dns:${name}:${port}`);
    this.host = name;
    this.#name = bare.toLowerCase();
    this.port = port;
    this.#literal = isIP(bare) === 0 ? undefined : literalEndpoint(bare, port);
  }

  /** @internal */
  protected async lookup(): Promise<DnsResolution> {
    if (this.#literal !== undefined) return { endpoints: [this.#literal], ttl: this.options.maxTtlMs / 1000 };
    const found = await resolveHostName(this.client, await this.systemView(), this.#name, this.options.family);
    const previous = this.#previous?.name === found.name ? this.#previous.records : undefined;
    const records = keepFailedFamily(found.records, found.failed, previous);
    this.#previous = { name: found.name, records };
    const seen = new Set<string>();
    const endpoints: Endpoint[] = [];
    // A preferred search name or the family with no records may exist once its negative answer expires.
    let ttl = found.negativeTtl;
    let skipped: InvalidEndpointError | undefined;
    for (const r of records) {
      ttl = ttl === undefined ? r.ttl : Math.min(ttl, r.ttl);
      const key = endpointKey(r.address, this.port);
      if (seen.has(key)) continue;
      seen.add(key);
      try {
        endpoints.push(createEndpoint({ host: r.address, port: this.port, metadata: { dnsName: found.name } }));
      } catch (err) {
        // An address no connection can be made to (0.0.0.0, a multicast one): skipped and reported, the rest used.
        if (!(err instanceof InvalidEndpointError)) throw err;
        skipped ??= new InvalidEndpointError(`${found.name} resolved to ${r.address}: ${err.message}; skipped`, {
          cause: err,
        });
      }
    }
    // Nothing usable: fail the run, so the last good set stays (invariant 4).
    if (endpoints.length === 0 && skipped !== undefined) throw skipped;
    return { endpoints, ttl, skipped, degraded: found.failed?.error };
  }
}

/** The endpoint of an IP literal target; an address no connection can be made to is refused as the `host` option. */
function literalEndpoint(host: string, port: number): Endpoint {
  try {
    return createEndpoint({ host, port });
  } catch (err) {
    if (!(err instanceof InvalidEndpointError)) throw err;
    throw new InvalidOptionError('host', err.message, { cause: err });
  }
}

/**
 * Factory for `dns:` targets. Throws {@link InvalidTargetError} for a malformed target or query parameter.
 *
 * @category Resolvers
 */
export const dnsResolverFactory: ResolverFactory = (target, context) => {
  if (target.path.length === 0) throw new InvalidTargetError(target.raw, 'expected dns://[nameserver]/host[:port]');
  let hostPort: { host: string; port: number };
  try {
    hostPort = parseHostPort(target.path, 80);
  } catch (err) {
    throw new InvalidTargetError(target.raw, (err as Error).message, { cause: err });
  }
  const options = dnsOptionsFromTarget(target);
  return asTargetError(
    target,
    () =>
      new DnsResolver({
        clock: context.clock,
        random: context.random,
        ...options,
        host: hostPort.host,
        port: hostPort.port,
      }),
  );
};
