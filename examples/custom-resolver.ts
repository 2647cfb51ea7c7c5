/**
 * A custom resolver in a few lines: endpoints come from anywhere (here, a file of `host:port` lines re-read every
 * second). Registered under its own URL scheme, so `file:///path/to/list` works as a target.
 *
 * Run: node --import tsx examples/custom-resolver.ts
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createClient,
  createEndpointSet,
  createResolverRegistry,
  type Endpoint,
  type Resolver,
  ResolverError,
  type ResolverListener,
} from '../src/index.js';

/** Reads `host:port` lines from a file every `intervalMs`. */
class FileResolver implements Resolver {
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  constructor(
    private readonly path: string,
    private readonly intervalMs = 1000,
  ) {}

  start(listener: ResolverListener): void {
    const poll = async () => {
      let endpoints: Endpoint[] | undefined;
      let failure: unknown;
      try {
        const lines = (await readFile(this.path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
        endpoints = createEndpointSet(lines);
      } catch (err) {
        failure = err;
      }
      // close() may have run while the file was being read: then no listener call and no new timer.
      if (this.#closed) return;
      if (endpoints !== undefined) listener.onUpdate(endpoints);
      else listener.onError(new ResolverError(`cannot use ${this.path}`, { cause: failure })); // last known good stays
      this.#timer = setTimeout(poll, this.intervalMs).unref();
    };
    void poll(); // async: never delivers inside start()
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}

// Two local backends.
const servers = await Promise.all(
  ['a', 'b'].map(
    (id) =>
      new Promise<{ server: http.Server; address: string }>((resolve) => {
        const server = http.createServer((_req, res) => res.end(id));
        server.listen(0, '127.0.0.1', () =>
          resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }),
        );
      }),
  ),
);
const listFile = join(tmpdir(), `sidecarless-endpoints-${process.pid}.txt`);
await writeFile(listFile, servers.map((s) => s.address).join('\n'));

const resolvers = createResolverRegistry().register('file', (target) => new FileResolver(`/${target.path}`));
const client = createClient({ target: `file://${listFile}`, resolvers });

const answers: string[] = [];
for (let i = 0; i < 4; i++) answers.push(await (await client.fetch('http://inventory/')).text());
console.log(`answers: ${answers.join(' ')}`);

await client.close();
await Promise.all(servers.map(({ server }) => new Promise((r) => server.close(r))));
