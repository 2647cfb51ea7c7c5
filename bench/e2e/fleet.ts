/**
 * Backend processes for the e2e benchmark: start, configure over IPC, kill with SIGKILL, restart on the same port,
 * and stop. Every process started here is registered so `killAllChildren()` (called from `finally` and from the
 * process `exit` handler) can end it whatever happens.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BackendCommand, BackendConfig, BackendHits, BackendMessage } from './backend.js';

const BACKEND_SCRIPT = fileURLToPath(new URL('./backend.ts', import.meta.url));
const COMMAND_TIMEOUT_MS = 10_000;

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Registers a temp dir so it is removed at the end of the run even after a crash. */
export function trackDir(dir: string): void {
  tempDirs.add(dir);
}

/** Removes a temp dir now. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Registers a child process so it is killed at the end of the run. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** SIGKILLs every child still running and removes every temp dir (synchronous, safe in an `exit` handler). */
export function killAllChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type CommandInit = DistributiveOmit<BackendCommand, 'seq'>;

/** One backend process. */
export class Backend {
  readonly id: string;
  port = 0;
  #child: ChildProcess | undefined;
  #seq = 0;
  #waiting = new Map<number, { resolve: (m: BackendMessage) => void; reject: (e: Error) => void }>();
  #config: Partial<BackendConfig> = {};

  constructor(id: string) {
    this.id = id;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the process (on `this.port` when it is set, so a restart keeps the address) and waits for it. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', BACKEND_SCRIPT, this.id, String(this.port)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    trackChild(child);
    this.#child = child;
    child.on('message', (m: BackendMessage) => {
      if (m.type === 'ready') return;
      const w = this.#waiting.get(m.seq);
      if (w === undefined) return;
      this.#waiting.delete(m.seq);
      w.resolve(m);
    });
    child.once('exit', (code, signal) => {
      const err = new Error(`backend ${this.id} exited (${signal ?? code})`);
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`backend ${this.id} did not start within 15 s`)), 15_000);
      const onMessage = (m: BackendMessage) => {
        if (m.type !== 'ready') return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(m.port);
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`backend ${this.id} exited during start (${signal ?? code})`));
      });
    });
    this.port = port;
    if (Object.keys(this.#config).length > 0) await this.configure(this.#config);
  }

  #command(init: CommandInit): Promise<BackendMessage> {
    const child = this.#child;
    if (child === undefined || !this.running || !child.connected) {
      return Promise.reject(new Error(`backend ${this.id} is not running`));
    }
    const seq = ++this.#seq;
    return new Promise<BackendMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(seq);
        reject(new Error(`backend ${this.id}: no answer to ${init.type} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.#waiting.set(seq, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ ...init, seq } as BackendCommand);
    });
  }

  /** Merges `config` into the backend's configuration (kept across restarts). */
  async configure(config: Partial<BackendConfig>): Promise<void> {
    this.#config = { ...this.#config, ...config };
    await this.#command({ type: 'config', config });
  }

  /** Resets the configuration to the defaults (healthy, no latency) and listens again if refusing. */
  async reset(config: Partial<BackendConfig> = {}): Promise<void> {
    this.#config = {};
    await this.#command({ type: 'listen' });
    await this.configure({
      latency: { kind: 'fixed', ms: 0 },
      slow: false,
      slowFactor: 10,
      errorRate: 0,
      errorStatus: 503,
      resetRate: 0,
      stallRate: 0,
      ...config,
    });
  }

  /** Closes the listening socket and every connection: new connections are refused. */
  async refuse(): Promise<void> {
    await this.#command({ type: 'refuse' });
  }

  /** Listens again on the same port. */
  async listen(): Promise<void> {
    await this.#command({ type: 'listen' });
  }

  /** The backend's request counters (and resets them when `reset`). */
  async hits(reset = false): Promise<BackendHits> {
    const m = await this.#command({ type: 'hits', reset });
    if (m.type !== 'hits') throw new Error(`backend ${this.id}: unexpected answer ${m.type}`);
    return { requests: m.requests, ok: m.ok, errors: m.errors, resets: m.resets, stalls: m.stalls };
  }

  /** SIGKILLs the process and waits for it to be gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await gone;
  }

  /** Asks the process to exit; SIGKILLs it after 2 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    try {
      child.disconnect();
    } catch {
      child.kill('SIGKILL');
    }
    await gone;
    clearTimeout(timer);
  }
}

/** Starts `n` backends in parallel, ids `${prefix}0`... */
export async function startFleet(n: number, prefix = 'b'): Promise<Backend[]> {
  const backends = Array.from({ length: n }, (_, i) => new Backend(`${prefix}${i}`));
  await Promise.all(backends.map((b) => b.start()));
  return backends;
}
