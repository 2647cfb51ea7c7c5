/**
 * One e2e benchmark backend: an HTTP/1.1 server on 127.0.0.1 in its own process, started by `fleet.ts` with
 * `process.execPath --import tsx bench/e2e/backend.ts <id> [port]` and an IPC channel, and driven over IPC.
 *
 * Every request is answered after a delay drawn from the configured latency distribution (times `slowFactor` in
 * slow mode), with `x-backend: <id>` and a small body, unless a fault is drawn first, in this order: a connection
 * reset (`resetRate`: the socket is destroyed without a response), a stall (`stallRate`: no answer for `stallMs`,
 * then the socket is destroyed), an error status (`errorRate`: `errorStatus`, 503 by default).
 *
 * Messages in: `{ type: 'config', config }` (merged into the current one), `{ type: 'refuse' }` (close the
 * listening socket and destroy every open connection: new connections are refused), `{ type: 'listen' }` (listen
 * again on the same port), `{ type: 'hits', reset }` (reply with the counters), `{ type: 'exit' }`.
 * Messages out: `{ type: 'ready', port }`, `{ type: 'ack', seq }` after each command, `{ type: 'hits', ... }`.
 * The process exits when its parent goes away (IPC disconnect), so a crashed harness leaves nothing behind.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/** A latency distribution, ms. */
export type LatencySpec =
  | { readonly kind: 'fixed'; readonly ms: number }
  | { readonly kind: 'uniform'; readonly minMs: number; readonly maxMs: number }
  /** Log-normal: `medianMs` × e^(sigma × N(0,1)). */
  | { readonly kind: 'lognormal'; readonly medianMs: number; readonly sigma: number };

export interface BackendConfig {
  readonly latency: LatencySpec;
  /** Latency multiplier while slow mode is on. */
  readonly slowFactor: number;
  readonly slow: boolean;
  readonly errorRate: number;
  readonly errorStatus: number;
  readonly resetRate: number;
  readonly stallRate: number;
  readonly stallMs: number;
}

export const DEFAULT_BACKEND_CONFIG: BackendConfig = {
  latency: { kind: 'fixed', ms: 0 },
  slowFactor: 10,
  slow: false,
  errorRate: 0,
  errorStatus: 503,
  resetRate: 0,
  stallRate: 0,
  stallMs: 10_000,
};

export type BackendCommand =
  | { readonly type: 'config'; readonly seq: number; readonly config: Partial<BackendConfig> }
  | { readonly type: 'refuse'; readonly seq: number }
  | { readonly type: 'listen'; readonly seq: number }
  | { readonly type: 'hits'; readonly seq: number; readonly reset: boolean }
  | { readonly type: 'exit'; readonly seq: number };

export interface BackendHits {
  readonly requests: number;
  readonly ok: number;
  readonly errors: number;
  readonly resets: number;
  readonly stalls: number;
}

export type BackendMessage =
  | { readonly type: 'ready'; readonly port: number }
  | { readonly type: 'ack'; readonly seq: number; readonly error?: string }
  | ({ readonly type: 'hits'; readonly seq: number } & BackendHits);

function gaussian(): number {
  // Box-Muller; 1 - random() keeps the log argument in (0, 1].
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

function draw(spec: LatencySpec): number {
  switch (spec.kind) {
    case 'fixed':
      return spec.ms;
    case 'uniform':
      return spec.minMs + Math.random() * (spec.maxMs - spec.minMs);
    case 'lognormal':
      return spec.medianMs * Math.exp(spec.sigma * gaussian());
  }
}

function main(): void {
  const id = process.argv[2] ?? 'b';
  const wantedPort = Number(process.argv[3] ?? 0);
  let config: BackendConfig = DEFAULT_BACKEND_CONFIG;
  let hits = { requests: 0, ok: 0, errors: 0, resets: 0, stalls: 0 };
  const sockets = new Set<Socket>();
  const body = Buffer.from(`ok from ${id}\n`);

  const answer = (res: ServerResponse): void => {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-backend': id });
    res.end(body);
    hits.ok++;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    hits.requests++;
    // Drain any request body; the benchmark requests are GETs without one.
    req.resume();
    const r = Math.random();
    if (r < config.resetRate) {
      hits.resets++;
      req.socket.destroy();
      return;
    }
    if (r < config.resetRate + config.stallRate) {
      hits.stalls++;
      const t = setTimeout(() => req.socket.destroy(), config.stallMs);
      req.socket.once('close', () => clearTimeout(t));
      return;
    }
    if (r < config.resetRate + config.stallRate + config.errorRate) {
      hits.errors++;
      res.writeHead(config.errorStatus, { 'content-length': 0, 'x-backend': id });
      res.end();
      return;
    }
    const ms = Math.max(0, draw(config.latency)) * (config.slow ? config.slowFactor : 1);
    if (ms < 0.5) answer(res);
    else setTimeout(answer, ms, res);
  };

  const server = createServer({ keepAliveTimeout: 60_000 }, handle);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let port = wantedPort;

  const send = (m: BackendMessage): void => {
    if (process.connected) process.send?.(m);
  };

  const listen = (cb: () => void): void => {
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = server.address();
      if (addr !== null && typeof addr === 'object') port = addr.port;
      cb();
    });
  };

  process.on('message', (m: BackendCommand) => {
    switch (m.type) {
      case 'config':
        config = { ...config, ...m.config };
        send({ type: 'ack', seq: m.seq });
        break;
      case 'refuse':
        if (!server.listening) {
          send({ type: 'ack', seq: m.seq });
          break;
        }
        server.close();
        for (const s of sockets) s.destroy();
        send({ type: 'ack', seq: m.seq });
        break;
      case 'listen':
        if (server.listening) send({ type: 'ack', seq: m.seq });
        else listen(() => send({ type: 'ack', seq: m.seq }));
        break;
      case 'hits':
        send({ type: 'hits', seq: m.seq, ...hits });
        if (m.reset) hits = { requests: 0, ok: 0, errors: 0, resets: 0, stalls: 0 };
        break;
      case 'exit':
        send({ type: 'ack', seq: m.seq });
        process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  server.on('error', (err) => {
    process.stderr.write(`backend ${id}: ${err.message}\n`);
    process.exit(1);
  });
  listen(() => send({ type: 'ready', port }));
}

if (
  process.send !== undefined &&
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(process.argv[1]).href
) {
  main();
}
