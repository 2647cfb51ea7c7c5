/**
 * DNS messages: building a query and checking and decoding a reply (RFC 1035, with `dns-packet`), and extracting
 * the records the resolvers use (A, AAAA, SRV, the CNAME chain, the negative TTL of RFC 2308). Pure functions that
 * never throw on bad bytes; the socket client is `dns/client.ts`.
 *
 * @module
 */
import net from 'node:net';
import dnsPacket from 'dns-packet';

/**
 * A decoded resource record as far as this client reads it: a structural view of what `dns-packet` decodes, every
 * field checked before use. The client's own type, so that no signature here names `dns-packet`'s types (a
 * devDependency: the published `.d.ts` files must not need them). @internal
 */
export interface WireRecord {
  readonly type?: unknown;
  readonly name?: unknown;
  readonly class?: unknown;
  readonly ttl?: unknown;
  readonly data?: unknown;
}

/** A decoded DNS message, as far as this client reads it (see {@link WireRecord}). @internal */
export interface WireMessage {
  readonly questions?: readonly WireRecord[] | undefined;
  readonly answers?: readonly WireRecord[] | undefined;
  readonly authorities?: readonly WireRecord[] | undefined;
  readonly additionals?: readonly WireRecord[] | undefined;
}

/** The record types this client queries. */
export type DnsQueryType = 'A' | 'AAAA' | 'SRV';

/** An A or AAAA record, validated. */
export interface AddressRecord {
  /** Owner name, lower-cased, without trailing dot. */
  readonly name: string;
  /** TTL, seconds (RFC 2181 §8: values above 2^31 - 1 read as 0). */
  readonly ttl: number;
  /** The IP address, lower-cased. */
  readonly address: string;
  /** 4 for an A record, 6 for AAAA. */
  readonly family: 4 | 6;
}

/** An SRV record (RFC 2782), validated. */
export interface SrvRecord {
  /** Owner name (`_service._proto.name`), lower-cased, without trailing dot. */
  readonly name: string;
  /** TTL, seconds, capped by the CNAME chain that led to the record (values above 2^31 - 1 read as 0). */
  readonly ttl: number;
  /** 0 to 65535; lower is preferred (RFC 2782). */
  readonly priority: number;
  /** Relative weight among records of the same priority, 0 to 65535 (RFC 2782). */
  readonly weight: number;
  /** Port of the service on `target`, 0 to 65535. */
  readonly port: number;
  /** Target host name, lower-cased, without trailing dot; `'.'` means "service not available here". */
  readonly target: string;
}

const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const MAX_CNAME_CHAIN = 8;

/** RCODE mnemonics (RFC 1035 §4.1.1). @internal */
export const RCODES: Readonly<Record<number, string>> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
};

/** Lower-cases and strips the trailing dot, so names compare as DNS does (RFC 4343). */
export function normalizeDnsName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Encodes a query for one question, recursion desired, with an EDNS(0) OPT record advertising `udpPayloadSize`
 * (none when it is 512: classic DNS). @internal
 */
export function encodeQuery(id: number, name: string, type: DnsQueryType, udpPayloadSize: number): Buffer {
  const additionals: dnsPacket.Answer[] =
    udpPayloadSize > 512
      ? [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [];
  return dnsPacket.encode({ type: 'query', id, flags: FLAG_RD, questions: [{ type, name, class: 'IN' }], additionals });
}

/** What {@link parseReply} made of one datagram or TCP message. @internal */
export type ReplyVerdict =
  /** Not a reply to this query (wrong ID, QR clear, other question, other opcode): keep waiting. */
  | { readonly kind: 'ignore'; readonly reason: string }
  /** Looks like a reply to this query but cannot be decoded: keep waiting, remember it. */
  | { readonly kind: 'malformed'; readonly reason: string }
  /** A reply to this query with TC set: ask again over TCP. */
  | { readonly kind: 'truncated' }
  /** A valid reply to this query. */
  | { readonly kind: 'reply'; readonly rcode: number; readonly packet: WireMessage };

/**
 * Checks one reply against the query (ID, QR bit, opcode, question) and decodes it. Never throws, whatever the
 * bytes. Exported for the fuzz tests. @internal
 */
export function parseReply(buf: Buffer, id: number, name: string, type: DnsQueryType): ReplyVerdict {
  // Header: ID(2) FLAGS(2) QDCOUNT ANCOUNT NSCOUNT ARCOUNT (RFC 1035 §4.1.1).
  if (!Buffer.isBuffer(buf) || buf.length < 12) return { kind: 'malformed', reason: 'shorter than a header' };
  if (buf.readUInt16BE(0) !== id) return { kind: 'ignore', reason: 'wrong ID' };
  const flags = buf.readUInt16BE(2);
  if ((flags & FLAG_QR) === 0) return { kind: 'ignore', reason: 'QR bit clear' };
  if (((flags >> 11) & 0xf) !== 0) return { kind: 'ignore', reason: 'not a QUERY opcode' };
  let packet: WireMessage;
  try {
    packet = dnsPacket.decode(buf) as WireMessage;
  } catch (err) {
    // A truncated reply may be cut mid-record; its header is enough to go to TCP.
    if ((flags & FLAG_TC) !== 0) return { kind: 'truncated' };
    return { kind: 'malformed', reason: `undecodable: ${(err as Error)?.message ?? String(err)}` };
  }
  const questions = packet.questions;
  if (!Array.isArray(questions) || questions.length !== 1) return { kind: 'ignore', reason: 'not one question' };
  const q = questions[0];
  if (
    q === undefined ||
    typeof q.name !== 'string' ||
    normalizeDnsName(q.name) !== normalizeDnsName(name) ||
    q.type !== type ||
    q.class !== 'IN'
  ) {
    return { kind: 'ignore', reason: 'question does not match' };
  }
  if ((flags & FLAG_TC) !== 0) return { kind: 'truncated' };
  return { kind: 'reply', rcode: flags & 0xf, packet };
}

function validTtl(ttl: unknown): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) return 0;
  return ttl > 0x7fffffff ? 0 : Math.floor(ttl);
}

function isIn(record: WireRecord): boolean {
  return record.class === undefined || record.class === 'IN';
}

/**
 * The names whose records answer `name`: itself and the CNAME chain found in the answer section (RFC 1034
 * §3.6.2), with the smallest CNAME TTL on the way. @internal
 */
export function chainOf(answers: readonly WireRecord[], name: string): { names: Set<string>; ttl: number } {
  const names = new Set([normalizeDnsName(name)]);
  let ttl = Number.POSITIVE_INFINITY;
  for (let i = 0; i < MAX_CNAME_CHAIN; i++) {
    let grew = false;
    for (const a of answers) {
      if (a.type !== 'CNAME' || !isIn(a) || typeof a.data !== 'string' || typeof a.name !== 'string') continue;
      const target = normalizeDnsName(a.data);
      if (names.has(normalizeDnsName(a.name)) && !names.has(target)) {
        names.add(target);
        ttl = Math.min(ttl, validTtl(a.ttl));
        grew = true;
      }
    }
    if (!grew) break;
  }
  return { names, ttl };
}

/** Extracts valid A/AAAA records of `names` (all names when undefined) from a section. Never throws. @internal */
export function extractAddresses(
  section: readonly WireRecord[] | undefined,
  names: Set<string> | undefined,
  ttlCap = Number.POSITIVE_INFINITY,
): AddressRecord[] {
  const out: AddressRecord[] = [];
  if (!Array.isArray(section)) return out;
  for (const a of section) {
    if ((a.type !== 'A' && a.type !== 'AAAA') || !isIn(a) || typeof a.name !== 'string') continue;
    const owner = normalizeDnsName(a.name);
    if (names !== undefined && !names.has(owner)) continue;
    const family = typeof a.data === 'string' ? net.isIP(a.data) : 0;
    if ((a.type === 'A' && family !== 4) || (a.type === 'AAAA' && family !== 6)) continue;
    out.push({
      name: owner,
      ttl: Math.min(validTtl(a.ttl), ttlCap),
      address: (a.data as string).toLowerCase(),
      family: family as 4 | 6,
    });
  }
  return out;
}

/** Extracts valid SRV records of `names` from a section. Never throws. @internal */
export function extractSrv(
  section: readonly WireRecord[] | undefined,
  names: Set<string>,
  ttlCap = Number.POSITIVE_INFINITY,
): SrvRecord[] {
  const out: SrvRecord[] = [];
  if (!Array.isArray(section)) return out;
  for (const a of section) {
    if (a.type !== 'SRV' || !isIn(a) || typeof a.name !== 'string') continue;
    const owner = normalizeDnsName(a.name);
    if (!names.has(owner)) continue;
    const d = a.data as { target?: unknown; port?: unknown; priority?: unknown; weight?: unknown } | undefined;
    if (typeof d !== 'object' || d === null || typeof d.target !== 'string') continue;
    const u16 = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
    if (!u16(d.port) || !u16(d.priority) || !u16(d.weight)) continue;
    out.push({
      name: owner,
      ttl: Math.min(validTtl(a.ttl), ttlCap),
      priority: d.priority as number,
      weight: d.weight as number,
      port: d.port as number,
      target: d.target === '.' || d.target === '' ? '.' : normalizeDnsName(d.target),
    });
  }
  return out;
}

/** RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM). @internal */
export function negativeTtlOf(packet: WireMessage): number | undefined {
  for (const a of packet.authorities ?? []) {
    if (a.type !== 'SOA') continue;
    const minimum = (a.data as { minimum?: unknown } | undefined)?.minimum;
    return Math.min(validTtl(a.ttl), validTtl(minimum));
  }
  return undefined;
}
