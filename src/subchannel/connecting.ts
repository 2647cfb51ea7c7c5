/**
 * The connections of an endpoint's pools that are still being made, so that closing the endpoint ends them.
 *
 * undici's `Pool.destroy()` and `close()` resolve while a connector is still running: the socket of a TCP or TLS
 * connect that has not finished lives on until it does or undici's connect timeout (10 s by default) fires, and it
 * keeps the process alive meanwhile. An endpoint that accepts TCP and never answers the TLS handshake, one that drops
 * SYNs or has a full accept backlog all do it. So the pools connect through {@link ConnectingSockets.wrap}, which
 * keeps each socket until its connect ends, and {@link ConnectingSockets.destroy} (the endpoint is closed) destroys
 * what is left. It costs a closure and a set entry per connection, nothing per request.
 *
 * @module
 */
import { buildConnector, errors, type Pool } from 'undici';

/** An undici connector, as a pool's `connect` option takes it. */
export type Connector = (options: buildConnector.Options, callback: buildConnector.Callback) => unknown;

/** The errors handed to connects ended by {@link ConnectingSockets.destroy}: no failure of the endpoint. */
const cancelled = new WeakSet<Error>();

/** True when `error` ended a connect because its endpoint was closed (see {@link ConnectingSockets.destroy}). */
export function isCancelledConnect(error: unknown): boolean {
  return error instanceof Error && cancelled.has(error);
}

/**
 * The connector undici's `Pool` builds from `options` when its `connect` is not a function (undici 7's `Pool`
 * constructor, option for option): the same connect options, connect timeout and TLS session cache.
 */
export function poolConnector(options: Pool.Options): Connector {
  const { connect, connectTimeout, maxCachedSessions, allowH2, autoSelectFamily, autoSelectFamilyAttemptTimeout } =
    options;
  if (typeof connect === 'function') return connect as Connector;
  const { tls, socketPath } = options as { tls?: object; socketPath?: string };
  return buildConnector({
    ...tls,
    maxCachedSessions,
    allowH2,
    socketPath,
    timeout: connectTimeout,
    ...(typeof autoSelectFamily === 'boolean' ? { autoSelectFamily, autoSelectFamilyAttemptTimeout } : undefined),
    ...connect,
  } as buildConnector.BuildOptions) as Connector;
}

/** What a connect still under way holds: its socket (when the connector returned one) and its callback. */
interface Connecting {
  socket: SocketLike | undefined;
  finish: buildConnector.Callback;
}

interface SocketLike {
  readonly closed?: boolean;
  destroy(error?: Error): unknown;
  on(event: 'error', listener: () => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

function isSocket(value: unknown): value is SocketLike {
  const socket = value as Partial<SocketLike> | null | undefined;
  return typeof socket?.destroy === 'function' && typeof socket.on === 'function' && typeof socket.once === 'function';
}

/** One endpoint's connects under way, across the pools it makes (see the module comment). */
export class ConnectingSockets {
  readonly #connecting = new Set<Connecting>();

  /** Connects under way (tests). */
  get size(): number {
    return this.#connecting.size;
  }
  #destroyed = false;

  /**
   * `connector`, keeping each socket until its connect ends. Once {@link ConnectingSockets.destroy} has run, a
   * connect fails at once (an undici `ClientDestroyedError`).
   */
  wrap(connector: Connector): Connector {
    return (options, callback) => {
      if (this.#destroyed) {
        // Not within undici's own call: its Client may connect again as soon as this one fails.
        const error = this.#error();
        queueMicrotask(() => callback(error, null));
        return undefined;
      }
      let done = false;
      const entry: Connecting = {
        socket: undefined,
        finish: (err, socket) => {
          if (done) {
            // Connected after the endpoint was closed, by a connector that ignored the destroyed socket.
            if (err === null && isSocket(socket)) socket.destroy();
            return;
          }
          done = true;
          this.#connecting.delete(entry);
          callback(err, socket as never);
        },
      };
      this.#connecting.add(entry);
      let socket: unknown;
      try {
        socket = connector(options, entry.finish);
      } catch (err) {
        // A custom connector that throws rather than calling back: undici takes the throw as the connect's failure.
        done = true;
        this.#connecting.delete(entry);
        throw err;
      }
      if (!done && isSocket(socket)) entry.socket = socket;
      return socket as never;
    };
  }

  /**
   * Destroys every socket still connecting, and fails its connect (once; undici's `Client` then accounts for it as
   * for any failed connect); connects asked for later fail at once. Resolves when those sockets have closed.
   */
  destroy(): Promise<void> {
    this.#destroyed = true;
    if (this.#connecting.size === 0) return Promise.resolve();
    const closing: Promise<void>[] = [];
    for (const entry of [...this.#connecting]) {
      const { socket } = entry;
      if (socket !== undefined && socket.closed !== true) {
        closing.push(new Promise<void>((resolve) => socket.once('close', resolve)));
        socket.on('error', () => {}); // the connector's own listener may be gone; the error is reported below
        socket.destroy(this.#error());
      }
      entry.finish(this.#error(), null);
    }
    return Promise.all(closing).then(() => {});
  }

  #error(): Error {
    const error = new errors.ClientDestroyedError();
    cancelled.add(error);
    return error;
  }
}
