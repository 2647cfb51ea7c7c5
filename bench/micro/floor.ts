/**
 * The floor of any balancer over undici (issue 14): two dispatchers that do nothing but take the backends in turn
 * and hand the caller's handler on as it is. `pools` dispatches to one undici `Pool` per backend (what the
 * dispatcher does, without a balancer); `clients` to undici `Client`s of its own per backend, a free one or a new
 * one (skipping `Pool`'s layer: the redesign stop 31 asked about). `dispatch-perf --floor` sets them beside the
 * dispatcher, so the cost of the balancer and of `Pool` are read in one window.
 *
 * @module
 */
import { Client, Dispatcher, Pool } from 'undici';
import type { BenchContender } from './backends.js';

/** Each backend in turn, to its own `Pool`. */
class PassPools extends Dispatcher {
  #next = 0;
  readonly #pools: Pool[];

  constructor(origins: readonly string[]) {
    super();
    this.#pools = origins.map((o) => new Pool(o));
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return (this.#pools[this.#next++ % this.#pools.length] as Pool).dispatch(options, handler);
  }

  override async close(): Promise<void> {
    await Promise.all(this.#pools.map((p) => p.close()));
  }
}

/** One backend's `Client`s: those without a request in flight are free (a `Client` pipelines one at a time). */
class Backend {
  readonly free: Client[] = [];
  readonly all: Client[] = [];

  constructor(readonly origin: string) {}

  take(): Client {
    const free = this.free.pop();
    if (free !== undefined) return free;
    const client = new Client(this.origin);
    this.all.push(client);
    client.on('drain', () => this.free.push(client));
    return client;
  }
}

/** Each backend in turn, to a free `Client` of its own (a new one when none is free, as an unbounded `Pool`). */
class PassClients extends Dispatcher {
  #next = 0;
  readonly #backends: Backend[];

  constructor(origins: readonly string[]) {
    super();
    this.#backends = origins.map((o) => new Backend(o));
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const backend = this.#backends[this.#next++ % this.#backends.length] as Backend;
    const client = backend.take();
    // `false`: busy until its `drain`, which puts it back.
    if (client.dispatch(options, handler)) backend.free.push(client);
    return true;
  }

  override async close(): Promise<void> {
    await Promise.all(this.#backends.flatMap((b) => b.all.map((c) => c.close())));
  }
}

/** The two floor contenders over `addresses` (`host:port`), by name. */
export function floorContenders(addresses: readonly string[]): [string, BenchContender][] {
  const origins = addresses.map((a) => `http://${a}`);
  const origin = origins[0] as string;
  const of = (d: Dispatcher): BenchContender => ({ dispatcher: d, origin, close: () => d.close() });
  return [
    ['pools', of(new PassPools(origins))],
    ['clients', of(new PassClients(origins))],
  ];
}
