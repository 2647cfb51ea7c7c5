/**
 * A scriptable fake DNS server on 127.0.0.1 (or `::1`; UDP and, optionally, TCP on the same port) for precise unit
 * tests: the handler sees each decoded query and sends whatever bytes it likes, any number of times.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export interface FakeQuery {
  readonly packet: dnsPacket.DecodedPacket;
  readonly raw: Buffer;
  readonly transport: 'udp' | 'tcp';
  /** Sends raw bytes back (framed with a 2-byte length over TCP). */
  send(bytes: Buffer): void;
}

export type FakeHandler = (query: FakeQuery) => void;

export interface FakeDnsServer {
  readonly port: number;
  readonly address: string;
  readonly queries: FakeQuery[];
  handler: FakeHandler;
  close(): Promise<void>;
}

/** Builds a reply to `query` with `answers` (and optional extras), as a real server would. */
export function reply(
  query: FakeQuery,
  init: Partial<dnsPacket.Packet> & { rcode?: number; tc?: boolean } = {},
): Buffer {
  const q = query.packet;
  const flags = 0x8000 | 0x0400 | (init.tc ? 0x0200 : 0) | (init.rcode ?? 0);
  const buf = dnsPacket.encode({
    type: 'response',
    id: q.id ?? 0,
    flags,
    questions: q.questions ?? [],
    answers: init.answers ?? [],
    authorities: init.authorities ?? [],
    additionals: init.additionals ?? [],
  });
  // dns-packet keeps only some flag bits; set the header flags exactly.
  buf.writeUInt16BE(flags, 2);
  return buf;
}

export async function startFakeDns(
  handler: FakeHandler = () => {},
  withTcp = false,
  host: '127.0.0.1' | '::1' = '127.0.0.1',
): Promise<FakeDnsServer> {
  // The TCP listener takes the port the kernel gave the UDP socket, which another process may hold over TCP (seen
  // as EADDRINUSE on a shared machine, after which the open UDP socket kept the test file from exiting): try other
  // ports, and never leave a socket open on failure.
  for (let tries = 1; ; tries++) {
    try {
      return await startOnce(handler, withTcp, host);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 20) throw err;
    }
  }
}

async function startOnce(handler: FakeHandler, withTcp: boolean, host: string): Promise<FakeDnsServer> {
  const udp = dgram.createSocket(host === '::1' ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => udp.bind(0, host, () => resolve()));
  const port = udp.address().port;
  const server: FakeDnsServer = {
    port,
    address: host === '::1' ? `[::1]:${port}` : `${host}:${port}`,
    queries: [],
    handler,
    async close() {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (tcp !== undefined) {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => tcp?.close(() => resolve()));
      }
    },
  };
  udp.on('message', (raw, rinfo) => {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(raw);
    } catch {
      return;
    }
    const query: FakeQuery = {
      packet,
      raw,
      transport: 'udp',
      send: (bytes) => udp.send(bytes, rinfo.port, rinfo.address),
    };
    server.queries.push(query);
    server.handler(query);
  });
  let tcp: net.Server | undefined;
  const sockets = new Set<net.Socket>();
  if (withTcp) {
    tcp = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const raw = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
          buffered = buffered.subarray(2 + raw.length);
          const query: FakeQuery = {
            packet: dnsPacket.decode(raw),
            raw,
            transport: 'tcp',
            send: (bytes) => {
              const len = Buffer.alloc(2);
              len.writeUInt16BE(bytes.length);
              socket.write(Buffer.concat([len, bytes]));
            },
          };
          server.queries.push(query);
          server.handler(query);
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp?.once('error', reject);
        tcp?.listen(port, host, () => resolve());
      });
    } catch (err) {
      udp.close();
      throw err;
    }
  }
  return server;
}

/** An A record answer. */
export function a(name: string, address: string, ttl = 30): dnsPacket.Answer {
  return { type: 'A', name, ttl, class: 'IN', data: address };
}
