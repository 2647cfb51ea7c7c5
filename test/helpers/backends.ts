/**
 * Real HTTP backends on 127.0.0.1 for integration tests: each answers with its own id, counts hits, and can be
 * stopped and restarted on the same port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';

export interface Backend {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  hits: number;
  /** Host headers seen, in order. */
  readonly hosts: string[];
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, backend: Backend) => void;

const defaultHandler: Handler = (req, res, backend) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('x-backend', backend.id);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        backend: backend.id,
        method: req.method,
        url: req.url,
        host: req.headers.host,
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    );
  });
};

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startBackend(id: string, handler: Handler = defaultHandler, port = 0): Promise<Backend> {
  let server: http.Server;
  const backend = {
    id,
    port: 0,
    address: '',
    hits: 0,
    hosts: [] as string[],
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    async restart() {
      server = create();
      await listen(server, backend.port);
    },
  };
  const create = () =>
    http.createServer((req, res) => {
      backend.hits++;
      backend.hosts.push(req.headers.host ?? '');
      handler(req, res, backend);
    });
  server = create();
  backend.port = await listen(server, port);
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

export async function startBackends(n: number, handler?: Handler): Promise<Backend[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`, handler)));
}

export async function stopAll(backends: readonly Backend[]): Promise<void> {
  await Promise.all(backends.map((b) => b.stop().catch(() => {})));
}

/**
 * A `startBackend` for one test file: every backend it starts is stopped after the file's tests (node:test
 * `after`, registered where this is called).
 */
export function backendsForFile(): (id: string, handler?: Handler) => Promise<Backend> {
  const started: Backend[] = [];
  after(async () => {
    await stopAll(started);
  });
  return async (id, handler) => {
    const b = await startBackend(id, handler);
    started.push(b);
    return b;
  };
}

/** Answers every request 503, naming itself in `x-backend`. */
export const answer503: Handler = (req, res, b) => {
  req.resume();
  res.writeHead(503, { 'x-backend': b.id });
  res.end();
};
