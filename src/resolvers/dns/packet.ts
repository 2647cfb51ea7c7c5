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
const FLAG_AA = 0x0400;
const FLAG_RA = 0x0080;

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
  | { readonly kind: 'reply'; readonly rcode: number; readonly flags: number; readonly packet: WireMessage };

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
    // dns-packet reads past the end of a record cut short (an address of missing bytes reads as zeros, an A
    // record cut in its RDATA as none) and reads A and AAAA RDATA without looking at RDLENGTH: check the framing
    // first, so a reply cut off or padded inside a record is malformed, not a different answer.
    const framing = framingError(buf);
    if (framing !== undefined) throw new Error(framing);
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
  return { kind: 'reply', rcode: flags & 0xf, flags, packet };
}

/** RDLENGTH of the record types whose RDATA `dns-packet` reads at a fixed size (RFC 1035 §3.4.1, RFC 3596 §2.2). */
const FIXED_RDLENGTH: Readonly<Record<number, number>> = { 1: 4, 28: 16 };

/** The offset just past the (possibly compressed) name at `offset`, or -1 when it runs past `end` or is invalid. */
function skipName(buf: Buffer, offset: number, end: number): number {
  let at = offset;
  for (;;) {
    if (at >= end) return -1;
    const len = buf[at] as number;
    if (len === 0) return at + 1;
    // A pointer ends the name (where it points is dns-packet's to check).
    if ((len & 0xc0) === 0xc0) return at + 2 <= end ? at + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    at += 1 + len;
  }
}

/**
 * Why the message's sections do not fit the buffer, or `undefined` when they do: every question and every record
 * (as many as the header counts) must end within the buffer, its RDATA being RDLENGTH bytes (RFC 1035 §4.1), and an
 * A or AAAA record of class IN must have the RDLENGTH of its address. Trailing bytes after the last record are allowed, as
 * resolvers allow them. Never throws. @internal
 */
export function framingError(buf: Buffer): string | undefined {
  if (buf.length < 12) return 'shorter than a header';
  const end = buf.length;
  let at = 12;
  const questions = buf.readUInt16BE(4);
  for (let i = 0; i < questions; i++) {
    at = skipName(buf, at, end);
    if (at < 0 || at + 4 > end) return `question ${i + 1} runs past the end of the message`;
    at += 4;
  }
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  for (let i = 0; i < records; i++) {
    // NAME, then TYPE(2) CLASS(2) TTL(4) RDLENGTH(2), then RDLENGTH bytes of RDATA.
    at = skipName(buf, at, end);
    if (at < 0 || at + 10 > end) return `record ${i + 1} runs past the end of the message`;
    const type = buf.readUInt16BE(at);
    // The top bit of CLASS is mDNS's cache-flush flag; only class IN has the address layout checked.
    const isIn = (buf.readUInt16BE(at + 2) & 0x7fff) === 1;
    const rdlength = buf.readUInt16BE(at + 8);
    at += 10 + rdlength;
    if (at > end) return `record ${i + 1} runs past the end of the message (RDATA cut short)`;
    const fixed = FIXED_RDLENGTH[type];
    if (isIn && fixed !== undefined && rdlength !== fixed) {
      return `record ${i + 1} has an address of ${rdlength} bytes`;
    }
  }
  return undefined;
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
 * §3.6.2), in whatever order the records are listed, with the smallest CNAME TTL on the way. The chain ends at a
 * name with no CNAME or at a name already on it (a loop); a name with several CNAMEs (RFC 2181 §10.1 allows one)
 * follows the first. There is no cap on its length: glibc follows every link the answer holds, and a capped chain
 * would read a valid answer as NODATA (an empty set). The walk is linear: each step uses up one CNAME record of the
 * answer, so a 64 KiB message bounds it. @internal
 */
export function chainOf(answers: readonly WireRecord[], name: string): { names: Set<string>; ttl: number } {
  const links = new Map<string, WireRecord>();
  for (const a of answers) {
    if (a.type !== 'CNAME' || !isIn(a) || typeof a.data !== 'string' || typeof a.name !== 'string') continue;
    const owner = normalizeDnsName(a.name);
    if (!links.has(owner)) links.set(owner, a);
  }
  let current = normalizeDnsName(name);
  const names = new Set([current]);
  let ttl = Number.POSITIVE_INFINITY;
  for (;;) {
    const link = links.get(current);
    if (link === undefined) break;
    const target = normalizeDnsName(link.data as string);
    if (names.has(target)) break;
    names.add(target);
    ttl = Math.min(ttl, validTtl(link.ttl));
    current = target;
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

/**
 * Why a NOERROR reply without the records asked is not a NODATA answer, or `undefined` when it is one. Such a reply
 * is a referral, not an answer, when its authority section holds NS records and no SOA (RFC 2308 §2.2: NODATA "MUST
 * NOT be confused with a referral"), whatever its flags: a server that does not hold the name (it delegated it, or it
 * does not recurse) points elsewhere, and another nameserver may answer. glibc's `send_dg` also moves on from a
 * "referred query": no answer records, AA and RA clear and no additional records (an EDNS OPT aside, which glibc does
 * not send by default). Any other empty NOERROR reply is NODATA, as glibc's `res_query` reads it (NO_DATA), and so is
 * one with an SOA in the authority section whatever its flags (RFC 2308 §2.2's NODATA; the SOA gives its negative
 * TTL). @internal
 */
export function referralOf(packet: WireMessage, flags: number): string | undefined {
  const authorities = packet.authorities ?? [];
  if (authorities.some((a) => a.type === 'SOA')) return undefined;
  if (authorities.some((a) => a.type === 'NS')) return 'a referral (NS records and no SOA in the authority section)';
  const additionals = (packet.additionals ?? []).filter((a) => a.type !== 'OPT');
  if ((packet.answers ?? []).length === 0 && additionals.length === 0 && (flags & (FLAG_AA | FLAG_RA)) === 0) {
    return 'a referred query (no records, neither authoritative nor recursive)';
  }
  return undefined;
}
