/**
 * A small stub DNS client: one question per query over UDP (node:dgram), falling back to TCP (node:net, 2-byte
 * length framing, RFC 1035 §4.2.2) when the UDP reply is truncated. Messages are encoded and decoded with
 * `dns-packet`.
 *
 * Hardening (RFC 5452): every query uses a fresh random 16-bit ID (node:crypto) and a fresh socket on an ephemeral
 * port; a reply is accepted only if it comes from the server asked, carries the same ID, has QR set and echoes the
 * question (name compared case-insensitively, type, class). Anything else is ignored and the client keeps waiting
 * until the per-try timeout. A reply that cannot be decoded never throws out of the client: it is ignored too and
 * reported as `SIDECARLESS_DNS_MALFORMED` if no valid reply follows.
 *
 * Handles: a query in flight holds its socket (so an `await` on it keeps the process alive, for at most
 * `timeoutMs × (retries + 1)` plus a TCP fallback); timers are the injected clock's (unref'd for the system clock).
 * {@link DnsClient.close} closes every socket at once.
 *
 * @size single algorithm: a stub resolver's exchange (one question over UDP or TCP, checked, retried across
 * nameservers)
 *
 * @module
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { parseHostPort } from '../../common/endpoint.js';
import {
  DnsError,
  type DnsErrorCode,
  InvalidOptionError,
  isSidecarlessError,
  ResolverError,
} from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import {
  array,
  clock as readClock,
  describe,
  integer,
  isRecord,
  joinPath,
  MAX_TIMER_MS,
  rejectUnknownKeys,
} from '../../common/options.js';
import { type Clock, systemClock } from '../../common/runtime.js';
import {
  type AddressRecord,
  chainOf,
  type DnsQueryType,
  encodeQuery,
  extractAddresses,
  extractSrv,
  negativeTtlOf,
  parseReply,
  RCODES,
  referralOf,
  type ReplyVerdict,
  type SrvRecord,
  type WireMessage,
} from './packet.js';

export type { AddressRecord, DnsQueryType, SrvRecord } from './packet.js';

const debug = createDebug('dns');

/** Options of the DNS client behind `dns:` and `srv:` targets (`DnsResolver`, `SrvResolver`). */
export interface DnsClientOptions {
  /**
   * Nameservers to ask, in order: IP literals with an optional port (`10.0.0.2`, `10.0.0.2:5353`, `[::1]:53`,
   * `::1`), in a non-empty array without holes. Each try goes to the next server in the list, wrapping around.
   * @defaultValue `dns.getServers()` (the system's resolv.conf servers, or what `dns.setServers()` set), read at
   * construction
   */
  readonly nameservers?: readonly string[] | undefined;
  /** How long one try waits for a valid reply, ms (the TCP fallback gets the same again). @defaultValue 2000 */
  readonly timeoutMs?: number | undefined;
  /**
   * Further tries after the first, each on the next nameserver, when a try times out, fails on the network, gets
   * only malformed replies, SERVFAIL, REFUSED or a referral (RFC 2308 §2.2: NS and no SOA in the authority section;
   * reported as SERVFAIL with rcode NOERROR). NXDOMAIN and NODATA are answers and are not retried.
   * @defaultValue 2
   */
  readonly retries?: number | undefined;
  /**
   * The UDP payload size advertised with EDNS(0) (RFC 6891 §6.2.5). 512 sends no OPT record at all: classic DNS,
   * where anything larger than 512 bytes comes back truncated (RFC 1035 §4.2.1) and is re-asked over TCP.
   * @defaultValue 1232 (the DNS Flag Day 2020 value, safe from IP fragmentation)
   */
  readonly udpPayloadSize?: number | undefined;
  /**
   * Clock for the per-try timeouts: `now`, `setTimeout` and `clearTimeout`, each checked at construction.
   * @defaultValue systemClock
   */
  readonly clock?: Clock | undefined;
}

/** Validated {@link DnsClientOptions}. */
export interface ResolvedDnsClientOptions {
  /** Nameservers to ask, in order (the usable system ones when none were given; may then be empty). */
  readonly nameservers: readonly Nameserver[];
  /** How long one try waits for a valid reply, ms. */
  readonly timeoutMs: number;
  /** Further tries after the first (0 to 100). */
  readonly retries: number;
  /** UDP payload size advertised with EDNS(0), bytes; 512 means no OPT record. */
  readonly udpPayloadSize: number;
  /** Clock for the per-try timeouts. */
  readonly clock: Clock;
}

/** A parsed nameserver address. */
export interface Nameserver {
  /** IP literal, IPv6 without brackets, in canonical form (`::1`, however it was written). */
  readonly host: string;
  /** UDP/TCP port; 53 unless the address gave one. */
  readonly port: number;
  /** IP version of `host`. */
  readonly family: 4 | 6;
  /** `host:port` (`[v6]:port`), for messages. */
  readonly label: string;
}

/** Per-query overrides of the client's settings (what the system's `resolv.conf` says, read at each resolution). */
export interface QuerySettings {
  /** Nameservers to ask instead of the client's. */
  readonly nameservers?: readonly Nameserver[] | undefined;
  /** Per-try timeout instead of the client's, ms. */
  readonly timeoutMs?: number | undefined;
  /** Further tries instead of the client's. */
  readonly retries?: number | undefined;
  /** Start each query at the next nameserver, round robin (`options rotate`), instead of at the first. */
  readonly rotate?: boolean | undefined;
  /**
   * The nameserver the query starts at (an index, modulo the list's length), instead of the first or the rotation's
   * next: set by {@link DnsClient.oneRotationStep}.
   */
  readonly start?: number | undefined;
  /** Ask over TCP only (`options use-vc`), instead of UDP first. */
  readonly tcp?: boolean | undefined;
}

/** A successful answer. */
export interface DnsAnswer<T> {
  /** Records of the type asked, owned by the name asked or by a name its CNAME chain in the answer leads to. */
  readonly records: readonly T[];
  /** A and AAAA records from the additional section (RFC 2782 suggests servers put SRV targets' addresses there). */
  readonly additionals: readonly AddressRecord[];
  /** The nameserver that answered. */
  readonly nameserver: string;
  /** Whether the answer came over UDP or (after truncation) TCP. */
  readonly transport: 'udp' | 'tcp';
}

/**
 * `address` as the socket layer writes a datagram's source address (libuv's `inet_ntop`: `0:0::0001` is `::1`,
 * `2001:0DB8::53` is `2001:db8::53`), so that a reply's source compares equal to the server asked however the
 * address was written. An IPv6 zone (`%eth0`) is kept as written.
 */
function canonicalAddress(address: string, family: 4 | 6): string {
  const zone = address.indexOf('%');
  const bare = zone < 0 ? address : address.slice(0, zone);
  const canonical = new net.SocketAddress({ address: bare, family: family === 6 ? 'ipv6' : 'ipv4' }).address;
  return zone < 0 ? canonical : canonical + address.slice(zone);
}

/**
 * Parses one nameserver address, its IP written in the one form replies come from (see `canonicalAddress`). Throws
 * {@link InvalidOptionError} naming `option`.
 */
export function parseNameserver(text: string, option: string): Nameserver {
  if (typeof text !== 'string' || text.length === 0) {
    throw new InvalidOptionError(option, `expected an IP address with optional port, got ${describe(text)}`);
  }
  let parsed: { host: string; port: number };
  try {
    parsed = parseHostPort(text, 53);
  } catch (err) {
    throw new InvalidOptionError(option, `invalid nameserver ${JSON.stringify(text)}`, { cause: err });
  }
  const family = net.isIP(parsed.host);
  if (family !== 4 && family !== 6) {
    throw new InvalidOptionError(option, `nameserver ${JSON.stringify(text)} must be an IP address, not a host name`);
  }
  if (parsed.port < 1 || parsed.port > 65535) {
    throw new InvalidOptionError(option, `nameserver ${JSON.stringify(text)} has a port outside 1-65535`);
  }
  const host = canonicalAddress(parsed.host, family);
  return {
    host,
    port: parsed.port,
    family,
    label: family === 6 ? `[${host}]:${parsed.port}` : `${host}:${parsed.port}`,
  };
}

/** The keys of {@link DnsClientOptions}. @internal */
export const DNS_CLIENT_OPTION_KEYS = ['nameservers', 'timeoutMs', 'retries', 'udpPayloadSize', 'clock'] as const;

/**
 * Validates {@link DnsClientOptions}, naming a bad option by its path under `path` (`''` at the top level), unknown
 * keys included.
 */
export function resolveDnsClientOptions(options: DnsClientOptions | undefined, path = ''): ResolvedDnsClientOptions {
  if (options !== undefined && !isRecord(options)) {
    throw new InvalidOptionError(path || 'options', `expected an object, got ${describe(options)}`);
  }
  const o: Record<string, unknown> = options ?? {};
  rejectUnknownKeys(o, path, DNS_CLIENT_OPTION_KEYS);
  const at = (key: string) => joinPath(path, key);
  let nameservers: Nameserver[];
  if (o.nameservers === undefined) {
    // The system list may hold entries we cannot use (e.g. link-local with a zone); skip those.
    nameservers = [];
    // Through the module object, not a named import: dns.setServers() installs a new default resolver and rebinds
    // the module's functions, so a getServers imported by name would keep reporting the servers of the old one.
    for (const server of dns.getServers()) {
      try {
        nameservers.push(parseNameserver(server, at('nameservers')));
      } catch {
        debug('ignoring system nameserver %s', server);
      }
    }
  } else {
    // Through the toolkit: an array with a hole (`[, '10.0.0.2']`) is refused, not mapped around.
    nameservers = array(o.nameservers, at('nameservers'), 'a non-empty array of IP addresses', 1).map((s, i) =>
      parseNameserver(s as string, joinPath(at('nameservers'), i)),
    );
  }
  // Every method the client calls (setTimeout, clearTimeout) checked here, with `now`: a partial clock fails now.
  const clock = readClock(o.clock, at('clock'), systemClock);
  const resolved: ResolvedDnsClientOptions = Object.freeze({
    nameservers,
    timeoutMs: integer(o.timeoutMs, at('timeoutMs'), 2000, 1, MAX_TIMER_MS),
    retries: integer(o.retries, at('retries'), 2, 0, 100),
    udpPayloadSize: integer(o.udpPayloadSize, at('udpPayloadSize'), 1232, 512, 65535),
    clock,
  });
  RESOLVED.add(resolved);
  return resolved;
}

/** Option objects produced by {@link resolveDnsClientOptions}, which {@link DnsClient} takes as they are. */
const RESOLVED = new WeakSet<object>();

interface Exchange {
  readonly packet: WireMessage;
  readonly rcode: number;
  readonly flags: number;
  readonly transport: 'udp' | 'tcp';
  readonly nameserver: Nameserver;
}

/**
 * A stub resolver client: asks configured nameservers (recursion desired) one question at a time.
 *
 * @example
 * ```ts
 * const client = new DnsClient({ nameservers: ['127.0.0.1:5353'], timeoutMs: 500 });
 * const { records } = await client.resolveSrv('_http._tcp.svc.example');
 * client.close();
 * ```
 */
export class DnsClient {
  readonly #options: ResolvedDnsClientOptions;
  readonly #cancels = new Set<(error: Error) => void>();
  #closed = false;
  /** Queries started with `rotate`: the next one starts at this nameserver (modulo the list). */
  #rotation = 0;

  /** Validates the options at once (throws `SIDECARLESS_INVALID_OPTION` naming the option). */
  constructor(options?: DnsClientOptions | ResolvedDnsClientOptions) {
    this.#options =
      options !== undefined && RESOLVED.has(options)
        ? (options as ResolvedDnsClientOptions)
        : resolveDnsClientOptions(options as DnsClientOptions | undefined);
  }

  /** The nameservers asked, in order. */
  get nameservers(): readonly string[] {
    return this.#options.nameservers.map((s) => s.label);
  }

  /**
   * A or AAAA records of `name` (`family` 4 or 6). Rejects with a {@link DnsError} (NXDOMAIN and NODATA included)
   * or, after {@link DnsClient.close}, a `SIDECARLESS_RESOLVER_FAILED` error.
   */
  async resolveAddresses(name: string, family: 4 | 6, settings?: QuerySettings): Promise<DnsAnswer<AddressRecord>> {
    const type = family === 4 ? 'A' : 'AAAA';
    const { ex, records } = await this.#query(name, type, settings, (packet) => {
      const chain = chainOf(packet.answers ?? [], name);
      return extractAddresses(packet.answers, chain.names, chain.ttl).filter((r) => r.family === family);
    });
    return this.#answer(ex, name, type, records);
  }

  /** SRV records of `name` (e.g. `_http._tcp.svc.example`), with the additional section's addresses. */
  async resolveSrv(name: string, settings?: QuerySettings): Promise<DnsAnswer<SrvRecord>> {
    const { ex, records } = await this.#query(name, 'SRV', settings, (packet) => {
      const chain = chainOf(packet.answers ?? [], name);
      return extractSrv(packet.answers, chain.names, chain.ttl);
    });
    return this.#answer(ex, name, 'SRV', records);
  }

  /**
   * Settings for queries that count as one query for `options rotate`: all start at the same nameserver, and the
   * rotation moves on once. glibc sends a name's A and AAAA queries in one exchange, which rotates once; counted
   * apart, with two nameservers every A query would start at the first and every AAAA query at the second.
   * Without `rotate`, `settings` as they are.
   */
  oneRotationStep(settings: QuerySettings = {}): QuerySettings {
    if (settings.rotate !== true || settings.start !== undefined) return settings;
    return { ...settings, start: this.#nextRotation() };
  }

  /** Aborts every query in flight and closes its socket. Idempotent; later queries reject. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = new ResolverError('DNS client closed');
    for (const cancel of [...this.#cancels]) cancel(error);
  }

  #answer<T>(ex: Exchange, name: string, type: DnsQueryType, records: T[]): DnsAnswer<T> {
    if (records.length === 0) {
      throw new DnsError(
        'SIDECARLESS_DNS_NODATA',
        `${name} has no ${type} record (NODATA from ${ex.nameserver.label})`,
        {
          queryName: name,
          queryType: type,
          rcode: 'NOERROR',
          nameserver: ex.nameserver.label,
          negativeTtl: negativeTtlOf(ex.packet),
        },
      );
    }
    return {
      records,
      additionals: extractAddresses(ex.packet.additionals, undefined),
      nameserver: ex.nameserver.label,
      transport: ex.transport,
    };
  }

  /**
   * Asks the nameservers in turn until one answers: records (`extract` finds them), NXDOMAIN or NODATA. A referral
   * is a failed try like SERVFAIL: the server does not hold the name, another may.
   */
  async #query<T>(
    name: string,
    type: DnsQueryType,
    settings: QuerySettings | undefined,
    extract: (packet: WireMessage) => T[],
  ): Promise<{ ex: Exchange; records: T[] }> {
    settings ??= {};
    if (this.#closed) throw new ResolverError('DNS client closed');
    const nameservers = settings.nameservers ?? this.#options.nameservers;
    const retries = settings.retries ?? this.#options.retries;
    const timeoutMs = settings.timeoutMs ?? this.#options.timeoutMs;
    const details = { queryName: name, queryType: type };
    if (nameservers.length === 0) {
      throw new DnsError('SIDECARLESS_DNS_NETWORK', `No nameserver to ask for ${name} ${type}`, details);
    }
    let last: unknown;
    // glibc's RES_ROTATE: each query starts one nameserver further, then goes through the list in order.
    const start = (settings.start ?? (settings.rotate === true ? this.#nextRotation() : 0)) % nameservers.length;
    for (let i = 0; i <= retries; i++) {
      const server = nameservers[(start + i) % nameservers.length] as Nameserver;
      const at = { ...details, nameserver: server.label };
      try {
        const ex = await this.#try(server, name, type, timeoutMs, settings.tcp === true);
        const rcode = RCODES[ex.rcode] ?? `RCODE${ex.rcode}`;
        if (ex.rcode === 0) {
          const records = extract(ex.packet);
          const referral = records.length === 0 ? referralOf(ex.packet, ex.flags) : undefined;
          if (referral === undefined) return { ex, records };
          throw new DnsError(
            'SIDECARLESS_DNS_SERVFAIL',
            `${server.label} sent ${referral} for ${name} ${type}, not an answer`,
            { ...at, rcode },
          );
        }
        const negativeTtl = negativeTtlOf(ex.packet);
        if (ex.rcode === 3) {
          // An answer, not a failure: asking another server would not change it.
          throw new DnsError('SIDECARLESS_DNS_NXDOMAIN', `${name} does not exist (NXDOMAIN from ${server.label})`, {
            ...at,
            rcode,
            negativeTtl,
          });
        }
        const code: DnsErrorCode = ex.rcode === 5 ? 'SIDECARLESS_DNS_REFUSED' : 'SIDECARLESS_DNS_SERVFAIL';
        last = new DnsError(code, `${server.label} answered ${rcode} for ${name} ${type}`, { ...at, rcode });
      } catch (err) {
        if (this.#closed || (isSidecarlessError(err) && err.code === 'SIDECARLESS_DNS_NXDOMAIN')) throw err;
        last = err;
      }
      debug('%s %s: try %d on %s failed: %s', name, type, i + 1, server.label, (last as Error).message);
    }
    throw last;
  }

  /** The next rotation step (`options rotate`): a counter, taken modulo the nameserver list by the query. */
  #nextRotation(): number {
    const step = this.#rotation++;
    if (this.#rotation >= 0x40000000) this.#rotation = 0;
    return step;
  }

  async #try(
    server: Nameserver,
    name: string,
    type: DnsQueryType,
    timeoutMs: number,
    useTcp: boolean,
  ): Promise<Exchange> {
    const id = randomInt(0, 65536);
    const query = encodeQuery(id, name, type, this.#options.udpPayloadSize);
    if (!useTcp) {
      const udp = await this.#udp(server, query, id, name, type, timeoutMs);
      if (udp.kind === 'reply') return { ...udp, transport: 'udp', nameserver: server };
      debug('%s %s: truncated over UDP from %s, retrying over TCP', name, type, server.label);
    }
    const tcp = await this.#tcp(server, query, id, name, type, timeoutMs);
    return { ...tcp, transport: 'tcp', nameserver: server };
  }

  /** Runs one socket exchange: settles once, clears its timer, closes its socket. */
  #exchange<T>(
    server: Nameserver,
    name: string,
    type: DnsQueryType,
    timeoutMs: number,
    body: (
      settle: (error: Error | undefined, value?: T) => void,
      state: { malformed: string | undefined },
    ) => {
      close(): void;
    },
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const state = { malformed: undefined as string | undefined };
      let done = false;
      let timer: unknown;
      let handle: { close(): void } | undefined;
      const settle = (error: Error | undefined, value?: T) => {
        if (done) return;
        done = true;
        this.#options.clock.clearTimeout(timer);
        this.#cancels.delete(settle);
        try {
          handle?.close();
        } catch {
          // already closed
        }
        if (error === undefined) resolve(value as T);
        else reject(error);
      };
      this.#cancels.add(settle);
      timer = this.#options.clock.setTimeout(() => {
        const details = { queryName: name, queryType: type, nameserver: server.label };
        settle(
          state.malformed === undefined
            ? new DnsError(
                'SIDECARLESS_DNS_TIMEOUT',
                `No reply from ${server.label} for ${name} ${type} within ${timeoutMs} ms`,
                details,
              )
            : new DnsError(
                'SIDECARLESS_DNS_MALFORMED',
                `Only malformed replies from ${server.label} for ${name} ${type} (${state.malformed})`,
                details,
              ),
        );
      }, timeoutMs);
      try {
        handle = body(settle, state);
        if (done) handle.close();
      } catch (err) {
        settle(this.#networkError(server, name, type, err));
      }
    });
  }

  #networkError(server: Nameserver, name: string, type: DnsQueryType, cause: unknown): DnsError {
    const message = (cause as Error)?.message ?? String(cause);
    return new DnsError('SIDECARLESS_DNS_NETWORK', `Asking ${server.label} for ${name} ${type} failed: ${message}`, {
      queryName: name,
      queryType: type,
      nameserver: server.label,
      cause,
    });
  }

  #udp(
    server: Nameserver,
    query: Buffer,
    id: number,
    name: string,
    type: DnsQueryType,
    timeoutMs: number,
  ): Promise<Extract<ReplyVerdict, { kind: 'reply' | 'truncated' }>> {
    return this.#exchange(server, name, type, timeoutMs, (settle, state) => {
      const socket = dgram.createSocket(server.family === 6 ? 'udp6' : 'udp4');
      socket.on('error', (err) => settle(this.#networkError(server, name, type, err)));
      socket.on('message', (msg, rinfo) => {
        if (rinfo.port !== server.port || rinfo.address.toLowerCase() !== server.host) return;
        const verdict = parseReply(msg, id, name, type);
        if (verdict.kind === 'reply' || verdict.kind === 'truncated') settle(undefined, verdict);
        else {
          if (verdict.kind === 'malformed') state.malformed = verdict.reason;
          debug('%s %s: ignoring a reply from %s (%s)', name, type, server.label, verdict.reason);
        }
      });
      // A connected socket only receives datagrams from the server (RFC 5452 §4.3: check the source address).
      socket.connect(server.port, server.host, () => {
        socket.send(query, (err) => {
          if (err) settle(this.#networkError(server, name, type, err));
        });
      });
      return { close: () => socket.close() };
    });
  }

  #tcp(
    server: Nameserver,
    query: Buffer,
    id: number,
    name: string,
    type: DnsQueryType,
    timeoutMs: number,
  ): Promise<Extract<ReplyVerdict, { kind: 'reply' }>> {
    return this.#exchange(server, name, type, timeoutMs, (settle) => {
      const socket = net.connect({ host: server.host, port: server.port });
      let buffered: Buffer = Buffer.alloc(0);
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write(frame));
      socket.on('error', (err) => settle(this.#networkError(server, name, type, err)));
      socket.on('close', () =>
        settle(this.#networkError(server, name, type, new Error('connection closed before a reply'))),
      );
      socket.on('data', (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        // RFC 1035 §4.2.2: each message is prefixed with its length as a 2-byte big-endian integer.
        while (buffered.length >= 2) {
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) return;
          const message = buffered.subarray(2, 2 + length);
          buffered = buffered.subarray(2 + length);
          const verdict = parseReply(message, id, name, type);
          if (verdict.kind === 'reply') return settle(undefined, verdict);
          if (verdict.kind === 'truncated') {
            return settle(
              new DnsError('SIDECARLESS_DNS_MALFORMED', `${server.label} sent a truncated reply over TCP`, {
                queryName: name,
                queryType: type,
                nameserver: server.label,
              }),
            );
          }
          if (verdict.kind === 'malformed') {
            // The stream is intact (framing held) but the server is broken; waiting will not help.
            return settle(
              new DnsError(
                'SIDECARLESS_DNS_MALFORMED',
                `Malformed reply from ${server.label} over TCP (${verdict.reason})`,
                { queryName: name, queryType: type, nameserver: server.label },
              ),
            );
          }
        }
      });
      return { close: () => socket.destroy() };
    });
  }
}
