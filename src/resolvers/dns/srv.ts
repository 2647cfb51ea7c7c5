/**
 * The `srv:` resolver: SRV records (RFC 2782) of a service name, their targets resolved to addresses, polled as
 * the TTLs expire.
 *
 * Target syntax:
 *
 * - `srv:///_http._tcp.svc.example` — ask the system's nameservers, through the `resolv.conf` search list
 *   (`srv:///_http._tcp.users` in a Kubernetes pod);
 * - `srv://10.0.0.2:53/_http._tcp.svc.example` — ask the nameserver in the authority (IP literal, port 53 default).
 *
 * The port comes from each SRV record, so the name takes none. Query parameters are those of `dns:` (`minTtlMs`,
 * `maxTtlMs`, `family`, `timeoutMs`, `retries`, `udpPayloadSize`); `family` selects the address records used for SRV
 * targets. Example: `srv://127.0.0.1:5353/_http._tcp.svc.test?maxTtlMs=30000&family=4`.
 *
 * Behaviour: see {@link SrvResolver}.
 *
 * @module
 */
import { isIP } from 'node:net';
import { LRUCache } from 'lru-cache';
import { createEndpoint, type Endpoint, endpointKey, MAX_ENDPOINT_PRIORITY } from '../../common/endpoint.js';
import { DnsError, InvalidEndpointError, InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import { checkObject, describe, integer, isRecord, readOptions } from '../../common/options.js';
import { keepFailedFamily, resolveHostName } from './resolver.js';
import { hostsAddresses, isNegativeAnswer, negativeTtlSeconds, searchNames } from './search.js';
import type { AddressRecord, SrvRecord } from './client.js';
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
import type { ResolverFactory } from '../resolver.js';
import { asTargetError } from '../target.js';

/** When a target could not be resolved, the set is resolved again after at most this, seconds. */
const FAILED_TARGET_RETRY_S = 5;

/**
 * Options of {@link SrvResolver}. Timing and client options are shared with the `dns:` resolver.
 *
 * @category Resolvers
 */
export interface SrvResolverOptions extends DnsPollingOptions {
  /** The SRV owner name, e.g. `_http._tcp.svc.example` (RFC 2782 `_Service._Proto.Name`). */
  readonly name: string;
  /**
   * How many SRV targets' addresses to cache (each for its own TTL, clamped), from 1 to 65536 (the cache allocates
   * its tables for this many entries up front; one reply cannot name more than a few thousand targets).
   * @defaultValue 1000
   */
  readonly cacheSize?: number | undefined;
}

/**
 * The largest `cacheSize`. `lru-cache` allocates its tables for `max` entries at construction, so an unbounded option
 * is an out-of-memory abort waiting for a typo; one reply (at most 64 KiB, some 20 bytes per SRV record) cannot name
 * more than about 3000 targets, so a larger cache would hold mostly targets no answer names any more.
 */
const MAX_SRV_CACHE_SIZE = 65_536;

/**
 * The endpoint weight an SRV record of weight 0 gets. RFC 2782: weight 0 records "should have a very small chance
 * of being selected" when others have weight; endpoint weights must be positive, so 0 maps to this.
 */
export const SRV_ZERO_WEIGHT = 0.01;

interface CachedAddresses {
  readonly records: readonly AddressRecord[];
  /** When the entry expires, clock ms. */
  readonly expiresAt: number;
  /** The NXDOMAIN/NODATA a target with no records got: still the reason of an empty set while cached. */
  readonly negative?: DnsError | undefined;
}

/**
 * Resolves a service's SRV records into endpoints, one per (record, target address):
 *
 * - `port` from the record; `weight` = SRV weight (0 becomes 0.01); `priority` = SRV priority
 *   clamped to {@link MAX_ENDPOINT_PRIORITY} (0 is the most preferred, as in RFC 2782; priorities above 127 all
 *   become 127); metadata `srvName`, `srvTarget`, `srvPriority`, `srvWeight` keep the raw values.
 * - The SRV name goes through the `resolv.conf` search list as a `dns:` name does (`srvName` metadata is the name
 *   that answered). Target addresses come from the hosts file when it lists the target (an operator's pin wins, as
 *   for any name), else from the reply's additional section (RFC 2782 "Usage rules") for the families it holds,
 *   else from A/AAAA queries (targets are absolute names: no search list), cached per target for their TTL in an LRU
 *   cache. With `family: 'any'` and glue of one family only, the other family is asked.
 * - A sole record with target `.` means "service decidedly not available" and gives an empty set; `.` records
 *   among others are skipped. A target whose address lookup is NXDOMAIN/NODATA contributes nothing (every target
 *   gone: the empty set's reason is that error, and the SRV name is still asked again at the TTL below). A target
 *   whose lookup fails (SERVFAIL, timeout) keeps its previous addresses (none the first time) and the others are
 *   used, the failure reported and the set asked again within 5 s; the resolution fails (the last set stays) only
 *   when no target gives an address.
 * - When two records lead to the same `address:port`, the first (lowest priority, then highest weight) wins.
 * - A record whose target is not a host name (bytes outside ASCII, a label too long) is skipped and reported, as a
 *   record with port 0 is; the others are used.
 * - Re-resolves when the smallest TTL among the SRV records, the addresses used and the targets' negative answers
 *   expires, clamped to [`minTtlMs`, `maxTtlMs`]. Failures, negative answers, a failed address family
 *   (`family: 'any'`) and `refresh()` behave as for `dns:` (see `DnsResolver`); a resolution that follows
 *   `refresh()` also asks the targets' addresses again instead of taking them from the cache.
 *
 * @example
 * ```ts
 * const resolver = new SrvResolver({ name: '_http._tcp.users.internal', nameservers: ['10.0.0.2'] });
 * const client = createClient({ target: resolver, picker: 'weighted-round-robin' });
 * ```
 *
 * @category Resolvers
 */
export class SrvResolver extends DnsPollingResolver {
  /** The SRV owner name (lower-cased, no trailing dot). */
  readonly name: string;
  /** The name as looked up: with its trailing dot when given one (absolute: no search list). */
  readonly #query: string;
  readonly #cache: LRUCache<string, CachedAddresses>;

  /** Validates every option, each read once (throws `SIDECARLESS_INVALID_OPTION` naming it); starts no I/O. */
  constructor(options: SrvResolverOptions) {
    if (!isRecord(options)) throw new InvalidOptionError('options', `expected an object, got ${describe(options)}`);
    // A snapshot through the toolkit, each option read once: a getter or Proxy trap that throws is a typed error
    // naming the option, and every check below sees the one value read.
    options = readOptions('options', () =>
      checkObject(options, ['name', 'cacheSize', ...POLLING_OPTION_KEYS], ''),
    ) as unknown as SrvResolverOptions;
    const { name, cacheSize = 1000 } = options;
    if (typeof name !== 'string' || !isDnsName(name) || isIP(name) !== 0) {
      throw new InvalidOptionError('name', `expected an SRV name like _http._tcp.example.com, got ${describe(name)}`);
    }
    integer(cacheSize, 'cacheSize', 1000, 1, MAX_SRV_CACHE_SIZE);
    const resolved = resolveDnsPollingOptions(options, ['name', 'cacheSize']);
    const normalized = name.toLowerCase().replace(/\.$/, '');
    super(resolved, `srv:${normalized}`);
    this.name = normalized;
    this.#query = name.toLowerCase();
    this.#cache = new LRUCache({ max: cacheSize });
  }

  /** @internal */
  protected async lookup(): Promise<DnsResolution> {
    const view = await this.systemView();
    const found = await searchNames(this.#query, view.candidates(this.#query), 'SRV', (n) =>
      this.client.resolveSrv(n, view.query),
    );
    const answer = found.value;
    const srvName = found.name;
    const now = this.options.clock.now();
    // The search names tried before this one may exist once their negative answers expire.
    let ttl = found.negativeTtl ?? Number.POSITIVE_INFINITY;
    let skipped: InvalidEndpointError | undefined;
    const usable: SrvRecord[] = [];
    for (const r of answer.records) {
      ttl = Math.min(ttl, r.ttl);
      if (r.target === '.') continue;
      if (isIP(r.target) === 0 && !isDnsName(r.target)) {
        // A target no query can name (bytes outside ASCII decode as U+FFFD, which would be sent as a malformed
        // query that never gets an answer): skipped and reported as a port 0 is, the rest used (invariant 4).
        skipped ??= new InvalidEndpointError(
          `SRV record of ${srvName} names target ${JSON.stringify(r.target)}, which is not a host name; skipped`,
        );
        continue;
      }
      usable.push(r);
    }
    // RFC 2782: lowest priority first; within it, heavier records first (for deterministic dedupe).
    usable.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    const wanted = (family: 4 | 6) => this.options.family === 'any' || this.options.family === family;
    const targets = [...new Set(usable.map((r) => r.target))];
    const addresses = new Map<string, readonly AddressRecord[]>();
    const refreshed = this.refreshed;
    let degraded: DnsError | undefined;
    // A target that could not be resolved (SERVFAIL, a timeout): its last addresses are used, or it is left out;
    // the other targets still make the set (invariant 4: one broken name does not take the service down).
    let failed: DnsError | undefined;
    // A target that does not exist (NXDOMAIN, NODATA): the reason of an empty set.
    let negative: DnsError | undefined;
    // The earliest a negative target, or a target's family with no records, may be asked again, seconds: it may
    // exist by then.
    let negativeTtl = Number.POSITIVE_INFINITY;
    await eachLimited(targets, MAX_CONCURRENT_TARGET_LOOKUPS, async (target) => {
      if (isIP(target) !== 0) {
        // Not allowed by RFC 2782, but seen in the wild.
        const family = isIP(target) as 4 | 6;
        addresses.set(
          target,
          wanted(family) ? [{ name: target, ttl: Number.MAX_SAFE_INTEGER, address: target, family }] : [],
        );
        return;
      }
      // The hosts file before the glue, as for any name (README): a line pinning a target is an operator's override.
      const fromHosts = hostsAddresses(view.hosts, target, this.options.family);
      if (fromHosts.length > 0) {
        addresses.set(target, fromHosts);
        return;
      }
      const extra = answer.additionals.filter((a) => a.name === target && wanted(a.family));
      // Glue stands in for a lookup only for the families it holds: a server may add a target's A and AAAA as
      // separate RRsets and leave one out (RFC 2782 only urges it to add addresses), so with family 'any' and one
      // family's glue the other is asked (or taken from the cache), as for a target without glue.
      const glued = new Set(extra.map((a) => a.family));
      const family: DnsFamily = glued.size === 0 ? this.options.family : glued.has(4) ? 6 : 4;
      if (glued.size > 0 && (this.options.family !== 'any' || glued.size === 2)) {
        addresses.set(target, extra);
        return;
      }
      // A family looked up beside glue is cached apart from the target's full lookup.
      const key = family === this.options.family ? target : `${target} ${family}`;
      const use = (records: readonly AddressRecord[]) => addresses.set(target, [...extra, ...records]);
      const cached = this.#cache.get(key);
      // After a refresh() hint (an endpoint refused connections) the addresses are asked again: the target may
      // have moved, and its cached addresses could be good for up to maxTtlMs more.
      if (cached !== undefined && cached.expiresAt > now && !refreshed) {
        // Count only the remaining lifetime towards the next resolution.
        const left = Math.max(0, Math.floor((cached.expiresAt - now) / 1000));
        if (cached.negative !== undefined) {
          negative ??= cached.negative;
          negativeTtl = Math.min(negativeTtl, left);
        }
        use(cached.records.map((r) => ({ ...r, ttl: left })));
        return;
      }
      let records: AddressRecord[];
      let recordTtl: number;
      let gone: DnsError | undefined;
      try {
        // SRV targets are absolute names (RFC 2782): DNS with no search list (the hosts file was looked at above).
        const found = await resolveHostName(this.client, view, target, family, [target]);
        // A family with no records (family 'any') may have some once its negative answer expires.
        recordTtl = Math.min(...found.records.map((r) => r.ttl), found.negativeTtl ?? Number.POSITIVE_INFINITY);
        negativeTtl = Math.min(negativeTtl, found.negativeTtl ?? Number.POSITIVE_INFINITY);
        // One family failed, the other answered: as for dns:, with the failed family's last addresses kept.
        records = keepFailedFamily(found.records, found.failed, cached?.records);
        degraded ??= found.failed?.error;
      } catch (err) {
        if (!isNegativeAnswer(err)) {
          if (!(err instanceof DnsError)) throw err;
          failed ??= err;
          use(cached?.records ?? []);
          return;
        }
        negative ??= err;
        gone = err;
        records = [];
        recordTtl = negativeTtlSeconds(err);
        negativeTtl = Math.min(negativeTtl, recordTtl);
      }
      const expiresAt = this.options.clock.now() + this.clampTtl(recordTtl);
      this.#cache.set(key, { records, expiresAt, negative: gone });
      use(records);
    });
    const endpoints: Endpoint[] = [];
    const seen = new Set<string>();
    for (const r of usable) {
      for (const a of addresses.get(r.target) ?? []) {
        ttl = Math.min(ttl, a.ttl);
        const key = endpointKey(a.address, r.port);
        if (seen.has(key)) continue;
        seen.add(key);
        try {
          endpoints.push(
            createEndpoint({
              host: a.address,
              port: r.port,
              weight: r.weight === 0 ? SRV_ZERO_WEIGHT : r.weight,
              priority: Math.min(r.priority, MAX_ENDPOINT_PRIORITY),
              metadata: {
                srvName,
                srvTarget: r.target,
                srvPriority: String(r.priority),
                srvWeight: String(r.weight),
              },
            }),
          );
        } catch (err) {
          // A record no connection can be made to (port 0, 0.0.0.0): skipped and reported, the rest used (invariant 4).
          if (!(err instanceof InvalidEndpointError)) throw err;
          skipped ??= new InvalidEndpointError(
            `SRV record of ${srvName} (${r.target}:${r.port}): ${err.message}; skipped`,
            {
              cause: err,
            },
          );
        }
      }
    }
    // Nothing usable: fail the run, so the last good set stays (invariant 4).
    if (endpoints.length === 0 && (failed ?? skipped) !== undefined) throw failed ?? skipped;
    ttl = Math.min(ttl, negativeTtl);
    // A failed target is asked again soon, not after the others' TTL.
    if (failed !== undefined) ttl = Math.min(ttl, FAILED_TARGET_RETRY_S);
    // Every target is gone: an empty set with the reason (`notFound`), as for dns:. Not thrown: the SRV records'
    // own TTL still decides when the name is asked again (it may name a live target by then), not the targets'.
    const notFound = endpoints.length === 0 ? negative : undefined;
    const finiteTtl = Number.isFinite(ttl) ? ttl : undefined;
    return { endpoints, ttl: finiteTtl, skipped, degraded: degraded ?? failed, notFound };
  }

  /**
   * Stops polling, closes the DNS client's sockets and drops the cached target addresses. Idempotent; no listener
   * call happens after it.
   */
  override close(): void {
    super.close();
    this.#cache.clear();
  }
}

/**
 * Target look-ups in flight at once for one SRV answer: each is a UDP socket, and an answer naming thousands of
 * targets must not exhaust the process's file descriptors (EMFILE fails every socket of the process, not only ours).
 */
const MAX_CONCURRENT_TARGET_LOOKUPS = 32;

/** Runs `work` on every item, at most `limit` at a time; the first failure starts no more and is the rejection. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    try {
      while (next < items.length) await work(items[next++] as T);
    } catch (err) {
      next = items.length;
      throw err;
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Factory for `srv:` targets. Throws {@link InvalidTargetError} for a malformed target or query parameter.
 *
 * @category Resolvers
 */
export const srvResolverFactory: ResolverFactory = (target, context) => {
  const name = target.path;
  if (name.length === 0) throw new InvalidTargetError(target.raw, 'expected srv://[nameserver]/_service._proto.name');
  if (name.includes(':') || name.includes('/')) {
    throw new InvalidTargetError(target.raw, 'an SRV name takes no port or path: ports come from the SRV records');
  }
  const options = dnsOptionsFromTarget(target);
  return asTargetError(
    target,
    () => new SrvResolver({ clock: context.clock, random: context.random, ...options, name }),
  );
};
