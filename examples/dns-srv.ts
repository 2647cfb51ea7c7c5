/**
 * Balance across the endpoints named by DNS SRV records.
 *
 * Run: node --import tsx examples/dns-srv.ts [target]
 *
 * With a target (e.g. `srv://10.0.0.2:53/_http._tcp.users.internal` or `dns:///users.internal:8080`) it fetches
 * `http://service/` through it a few times. Without one it runs standalone: it starts two HTTP backends and a
 * tiny in-process DNS responder on 127.0.0.1 that answers `_http._tcp.demo.test` with two SRV records (priority
 * 0, weights 3 and 1), and balances across them.
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { createClient } from '../src/index.js';

const cleanup: Array<() => void> = [];
let target = process.argv[2];

if (target === undefined) {
  const ports = await Promise.all(
    ['a', 'b'].map(
      (id) =>
        new Promise<number>((resolve) => {
          const server = http.createServer((_req, res) => res.end(`backend ${id}`));
          server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
          cleanup.push(() => server.close());
        }),
    ),
  );
  // A stand-in for a real DNS server: SRV records with their targets' addresses in the additional section.
  const dns = dgram.createSocket('udp4');
  dns.on('message', (msg, peer) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const srv = (weight: number, port: number, host: string): dnsPacket.Answer => ({
      type: 'SRV',
      name: '_http._tcp.demo.test',
      ttl: 30,
      data: { priority: 0, weight, port, target: host },
    });
    const answer = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions: query.questions ?? [],
      answers:
        query.questions?.[0]?.type === 'SRV'
          ? [srv(3, ports[0] ?? 0, 'a.demo.test'), srv(1, ports[1] ?? 0, 'b.demo.test')]
          : [],
      additionals: [
        { type: 'A', name: 'a.demo.test', ttl: 30, data: '127.0.0.1' },
        { type: 'A', name: 'b.demo.test', ttl: 30, data: '127.0.0.1' },
      ],
    });
    dns.send(answer, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => dns.bind(0, '127.0.0.1', () => resolve()));
  cleanup.push(() => dns.close());
  target = `srv://127.0.0.1:${dns.address().port}/_http._tcp.demo.test?family=4`;
}

console.log(`target: ${target}`);
const client = createClient({ target });
try {
  for (let i = 0; i < 4; i++) {
    const res = await client.fetch('http://service/');
    console.log(`${res.status} ${await res.text()}`);
  }
  console.log(
    'endpoints:',
    client.endpoints.map((e) => `${e.key} weight=${e.weight}`),
  );
} finally {
  await client.close();
  for (const fn of cleanup) fn();
}
