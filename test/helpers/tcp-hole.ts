/**
 * An endpoint that accepts TCP and never says a word (so a TLS handshake never finishes), in a process of its own:
 * the test process's socket handles are then the client's alone. It reports each connection it accepts and each
 * one that closes.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const SERVER = `const s = require('node:net').createServer((c) => {
  console.log('accepted');
  c.on('data', () => {});
  c.on('error', () => {});
  c.on('close', () => console.log('closed'));
});
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;

export interface TcpHole {
  readonly port: number;
  /** Resolves at the next connection accepted (counting from the previous call). */
  accepted(): Promise<void>;
  /** Resolves at the next connection closed on the server's side. */
  closed(): Promise<void>;
  /** Kills the server process: whatever is still connected to it then fails. */
  stop(): void;
}

export async function startTcpHole(): Promise<TcpHole> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = { accepted: [] as (() => void)[], closed: [] as (() => void)[] };
  const seen = { accepted: 0, closed: 0 };
  const next = (kind: 'accepted' | 'closed'): Promise<void> =>
    new Promise<void>((resolve) => {
      if (seen[kind] > 0) {
        seen[kind]--;
        resolve();
      } else waiting[kind].push(resolve);
    });
  const port = await new Promise<number>((resolve) => {
    lines.on('line', (line) => {
      if (line !== 'accepted' && line !== 'closed') return resolve(Number(line));
      const resolveOne = waiting[line].shift();
      if (resolveOne === undefined) seen[line]++;
      else resolveOne();
    });
  });
  return {
    port,
    accepted: () => next('accepted'),
    closed: () => next('closed'),
    stop: () => child.kill('SIGKILL'),
  };
}

/** The TCP sockets of this process (open handles, unref'd ones included). */
export function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}
