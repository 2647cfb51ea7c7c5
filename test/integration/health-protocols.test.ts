// Active health checks speak to endpoints as the cluster's traffic does: over TLS they verify the certificate against
// the same kind of name (regression: checks of a TLS cluster with IP endpoints verified against the IP, so every check
// failed and the whole cluster went out), and to an HTTP/2 cluster they speak HTTP/2 (regression: they spoke
// HTTP/1.1, which h2c and h2-only TLS endpoints refuse). Real servers on 127.0.0.1 with a certificate made here.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ClientOptions, createClient, type HealthEvent, StaticResolver } from '../../src/index.js';
import { selfSigned } from '../helpers/kubernetes-api.js';

interface Server {
  close(): void;
  address(): AddressInfo | string | null;
  listen(port: number, host: string, cb: () => void): unknown;
}

let tls: { cert: string; key: string };
const open: Server[] = [];
before(() => {
  // Names `users` only: a check that verifies against the endpoint's IP fails.
  tls = selfSigned('users', 'DNS:users');
});
after(() => {
  for (const s of open) s.close();
});

/** Starts `server` on 127.0.0.1 and returns its `host:port`. */
async function listen(server: Server): Promise<string> {
  open.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Waits until `done()` holds, polling, or fails after `ms`. */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A client of `targets` checking `/hc` every 50 ms; counts the checks each server answered, records events. */
async function checked(targets: string[], options: Partial<ClientOptions>, host?: string) {
  const events: string[] = [];
  const client = createClient({
    name: 'users',
    target: targets,
    panicThreshold: 0,
    healthCheck: { path: '/hc', intervalMs: 50, timeoutMs: 1000, unhealthyThreshold: 2, host },
    ...options,
  } as ClientOptions);
  client.onHealthEvent((e: HealthEvent) => events.push(`${e.endpoint.key} ${e.type}`));
  return { client, events };
}

describe('health checks of a TLS cluster verify the name its traffic verifies', () => {
  const httpsServer = (seen: string[]) =>
    https.createServer(tls, (req, res) => {
      if (req.url === '/hc') seen.push(req.headers.host ?? '');
      res.end('ok');
    });

  it('checks IP endpoints against the cluster name when nothing else names them (no unhealthy endpoint)', async () => {
    const seen: string[] = [];
    const targets = [await listen(httpsServer(seen)), await listen(httpsServer(seen))];
    const { client, events } = await checked(targets, { tls: { ca: tls.cert } });
    try {
      await until(() => seen.length >= 6, 5000, 'checks to reach the servers');
      assert.deepEqual(events, [], 'no endpoint turned unhealthy');
      const res = await client.fetch('https://users/x');
      assert.equal(await res.text(), 'ok');
    } finally {
      await client.close();
    }
  });

  it("uses the TLS name of the cluster's latest request, and healthCheck.host without its port", async () => {
    const seen: string[] = [];
    const target = [await listen(httpsServer(seen))];
    // Named `svc`: the checks learn `users` from the request's URL.
    const a = await checked(target, { name: 'svc', tls: { ca: tls.cert }, panicThreshold: 50 });
    try {
      assert.equal(await (await a.client.fetch('https://users/x')).text(), 'ok');
      const before = seen.length;
      await until(() => seen.length >= before + 4, 5000, 'checks with the name of the request');
    } finally {
      await a.client.close();
    }
    const b = await checked(target, { name: 'svc', tls: { ca: tls.cert } }, 'users:8443');
    try {
      const before = seen.length;
      await until(() => seen.length >= before + 4, 5000, 'checks named by healthCheck.host');
      assert.equal(seen.at(-1), 'users:8443', 'the Host header keeps its port');
      assert.deepEqual(b.events, []);
    } finally {
      await b.client.close();
    }
  });
});

describe('health checks of an HTTP/2 cluster speak HTTP/2', () => {
  const h2Handler = (seen: string[]) => (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (req.url === '/hc') seen.push(req.httpVersion);
    res.end('ok');
  };

  it('checks h2c endpoints (prior knowledge) over HTTP/2 and keeps them healthy', async () => {
    const seen: string[] = [];
    const targets = [
      await listen(http2.createServer(h2Handler(seen))),
      await listen(http2.createServer(h2Handler(seen))),
    ];
    const { client, events } = await checked(targets, { http2: true });
    try {
      await until(() => seen.length >= 6, 5000, 'h2c checks to reach the servers');
      assert.ok(seen.every((v) => v === '2.0'));
      assert.deepEqual(events, []);
      assert.equal(await (await client.fetch('http://users/x')).text(), 'ok');
    } finally {
      await client.close();
    }
  });

  it('checks h2-only TLS endpoints over HTTP/2 (ALPN) and keeps them healthy', async () => {
    const seen: string[] = [];
    const server = http2.createSecureServer({ ...tls, allowHTTP1: false }, h2Handler(seen));
    const { client, events } = await checked([await listen(server)], { http2: true, tls: { ca: tls.cert } });
    try {
      await until(() => seen.length >= 3, 5000, 'h2 checks to reach the server');
      assert.ok(seen.every((v) => v === '2.0'));
      assert.deepEqual(events, []);
      assert.equal(await (await client.fetch('https://users/x')).text(), 'ok');
    } finally {
      await client.close();
    }
  });
});

describe('health checks that cannot connect, and endpoints that leave (probe 9)', () => {
  /** A TCP server that takes connections and never answers: a TLS handshake to it stalls. */
  async function silent(): Promise<{ address: string; sockets: Set<net.Socket> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    open.push({
      close: () => {
        for (const socket of sockets) socket.destroy();
        server.close();
      },
      address: () => server.address(),
      listen: () => undefined,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
  }

  for (const http2 of [false, true]) {
    it(`a check stuck in the TLS handshake fails at timeoutMs, not at undici's 10 s connect timeout; close() does not wait for it${http2 ? ' (HTTP/2)' : ''}`, async () => {
      const { address } = await silent();
      const events: string[] = [];
      const client = createClient({
        name: 'users',
        target: [address],
        panicThreshold: 0,
        tls: { ca: tls.cert },
        http2,
        healthCheck: { path: '/hc', intervalMs: 5000, timeoutMs: 200, unhealthyThreshold: 1 },
      });
      client.onHealthEvent((e: HealthEvent) => events.push(e.type));
      try {
        await until(() => events.includes('unhealthy'), 5000, 'the endpoint to turn unhealthy');
      } finally {
        const started = Date.now();
        await client.close();
        // A graceful close of the checks' pools waited for the stalled connect (up to 10 s).
        assert.ok(Date.now() - started < 5000, `close() took ${Date.now() - started} ms`);
      }
    });
  }

  it('an HTTP/2 endpoint that leaves the set has its check connection closed', async () => {
    const connections = new Map<string, number>();
    const servers = await Promise.all(
      [0, 1, 2].map(async () => {
        const server = http2.createServer((_req, res) => res.end('ok'));
        const address = await listen(server);
        connections.set(address, 0);
        server.on('connection', (socket: net.Socket) => {
          connections.set(address, (connections.get(address) ?? 0) + 1);
          socket.on('close', () => connections.set(address, (connections.get(address) ?? 0) - 1));
        });
        return address;
      }),
    );
    const resolver = new StaticResolver(servers);
    const client = createClient({
      name: 'users',
      target: resolver,
      http2: true,
      healthCheck: { path: '/hc', intervalMs: 50, timeoutMs: 1000 },
    });
    try {
      await until(
        () => servers.every((a) => (connections.get(a) ?? 0) > 0),
        5000,
        'check connections to every endpoint',
      );
      const [gone, ...kept] = servers as [string, ...string[]];
      resolver.update(kept);
      // Without traffic the cluster's own pools hold no connection to it: only the checks' could stay open.
      await until(() => connections.get(gone) === 0, 5000, "the departed endpoint's check connection to close");
      for (const a of kept) assert.ok((connections.get(a) ?? 0) > 0, `${a} is still checked`);
    } finally {
      await client.close();
    }
  });
});
