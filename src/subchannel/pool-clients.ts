/**
 * The clients of one endpoint's undici `Pool`, remembered so that a request undici refuses at dispatch does not
 * wedge the pool.
 *
 * undici 7's `Client.dispatch` answers a request it refuses outright (an invalid header: `UND_ERR_INVALID_ARG`;
 * `UND_ERR_NOT_SUPPORTED`) with `onError` and `false`, and the `Pool` takes that `false` for backpressure (in
 * `dispatch`, or while handing a client what it had queued): it marks the client as needing a `drain` event, which an
 * idle client never emits. With `connections` reached (the HTTP/2 default is one connection; HTTP/1.1 with
 * `pool.connections`) every later request then waits in the pool's queue for good; a plain undici `Pool` does the
 * same. {@link PoolClients.release} undoes the mark. Nothing here runs per dispatch: the factory runs per connection,
 * the release only after such a refusal.
 *
 * @module
 */
import { Client, type Pool } from 'undici';
import { isCallerError } from '../common/outcome.js';

/** The codes of undici's refusals of a request in `Client.dispatch` itself. */
const DISPATCH_REFUSALS = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/**
 * True when `error` is undici's refusal of a request at dispatch (see the module comment): one of its codes, or a
 * `TypeError` its `Request` constructor threw on the caller's options (the request layer has marked it as the
 * caller's by then: an attempt undici never started).
 */
export function refusedAtDispatch(error: Error): boolean {
  const { code } = error as { code?: unknown };
  if (code === undefined) return error instanceof TypeError && isCallerError(error);
  return DISPATCH_REFUSALS.has(code as string);
}

/** The clients of the pool last made with {@link PoolClients.track}'s options. */
export class PoolClients {
  #clients: Client[] = [];

  /**
   * `options` with a factory that remembers the clients it makes (with `options.factory`, or undici's default),
   * for a new pool; the clients of the previous one are forgotten.
   */
  track(options: Pool.Options): Pool.Options {
    const make = options.factory ?? ((origin: URL, opts: object) => new Client(origin, opts));
    const clients: Client[] = [];
    this.#clients = clients;
    return {
      ...options,
      factory: (origin, opts) => {
        const client = make(origin, opts) as Client;
        clients.push(client);
        // undici's Pool forgets a client after a connection error; so does this list.
        client.on('connectionError', () => {
          const i = clients.indexOf(client);
          if (i !== -1) clients.splice(i, 1);
        });
        return client;
      },
    };
  }

  /**
   * Clears the pool's mark on its clients; call it once the pool has set it (after the refused dispatch returned).
   * Each client emits `drain`, which the pool answers by handing it what the pool queues and marking it again if it
   * is in fact busy. Which client refused is not known, so all emit it; one that is busy then holds in its own queue
   * what it was handed, which undici allows.
   */
  release(origin: string): void {
    for (const client of [...this.#clients]) {
      if (!client.closed && !client.destroyed) (client as NodeJS.EventEmitter).emit('drain', new URL(origin), [client]);
    }
  }
}
