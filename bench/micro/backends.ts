/**
 * The micro benches' backend: `n` plain HTTP/1.1 servers on 127.0.0.1 answering `ok`, in a child process (so the
 * client's CPU is the bench process's only), ended when the bench disconnects.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { BalancedPool, type Dispatcher } from 'undici';
import { createClient } from '../../src/index.js';

const BACKEND_SOURCE = `
const http = require('node:http');
const n = Number(process.argv[1]);
const ports = [];
const body = Buffer.from('ok');
for (let i = 0; i < n; i++) {
  const s = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  s.keepAliveTimeout = 60000;
  s.listen(0, '127.0.0.1', () => {
    ports.push(s.address().port);
    if (ports.length === n) process.send({ ports });
  });
}
process.on('disconnect', () => process.exit(0));
`;

/** Starts the backends; resolves with the child and their `127.0.0.1:port` addresses. */
export function startBackends(n: number): Promise<{ child: ChildProcess; addresses: string[] }> {
  const child = spawn(process.execPath, ['-e', BACKEND_SOURCE, String(n)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('message', (m: { ports: number[] }) =>
      resolve({ child, addresses: m.ports.map((p) => `127.0.0.1:${p}`) }),
    );
  });
}

/** One contender of the per-request benches: what it dispatches through, the origin to ask, and how to close it. */
export interface BenchContender {
  readonly dispatcher: Dispatcher;
  readonly origin: string;
  close(): Promise<void>;
}

/**
 * `balanced-pool` (undici's `BalancedPool` over `addresses`), or a sidecarless client over them with its defaults
 * (`sidecarless`) or without retries, retry budget and outlier detection (`lean`). `create` is another copy's
 * `createClient` (a `--baseline`); `options` are added to the client's (e.g. `timeoutMs: 0` under callgrind).
 */
export async function startContender(
  name: string,
  addresses: readonly string[],
  {
    create = createClient,
    options = {},
    readyMs = 5000,
  }: {
    create?: typeof createClient;
    options?: object;
    readyMs?: number;
  } = {},
): Promise<BenchContender> {
  if (name === 'balanced-pool') {
    const bp = new BalancedPool(addresses.map((a) => `http://${a}`));
    return { dispatcher: bp, origin: `http://${addresses[0]}`, close: () => bp.close() };
  }
  const lean = name === 'lean' ? { retry: false, retryBudget: false, outlierDetection: false } : {};
  const client = create({ target: [...addresses], ...options, ...lean } as Parameters<typeof createClient>[0]);
  await client.ready(readyMs);
  return { dispatcher: client.dispatcher as unknown as Dispatcher, origin: 'http://svc', close: () => client.close() };
}
