/**
 * One ZooKeeper session through node-zookeeper-client: its state, promise-returning reads with watches, and the
 * translation of the client's errors into {@link ZooKeeperError}s. The only module that imports the client library;
 * its types stay in here (the published declarations must not name them: a user without
 * `@types/node-zookeeper-client` compiles against `sidecarless/zookeeper` under `skipLibCheck: false`).
 *
 * Watches: the session registers one watcher function per kind (children, data, existence) for every path, so the
 * client's watcher table holds at most one listener per path and kind however often a path is re-read (the client
 * keys watchers by function identity), and a watch re-set by the client after a reconnection (`SetWatches`) still
 * reaches the resolver.
 *
 * Liveness: node-zookeeper-client has no read timeout (its socket timeout only queues pings), so a member that keeps
 * the TCP connection open but stops answering (a half-open connection, a frozen server) would hold the session
 * "connected" for good. The session applies the Java client's rule: when nothing (no ping reply, no answer, no watch
 * event) has been received for 2/3 of the negotiated session timeout, the connection is dropped and the client moves
 * to the next member, in time to resume the session there before it expires. The resolver also drops the connection
 * an operation timed out on ({@link ZooKeeperSession.dropConnection}).
 *
 * Closing: the close request is sent if connected; a server that does not end the connection within
 * {@link CLOSE_GRACE_MS} (a frozen one) has it ended for it, so that no socket keeps the process alive. Once closed,
 * the client opens no connection ({@link fenceConnects}): it schedules connections it cannot be asked to cancel.
 *
 * @module
 */
import zookeeper from 'node-zookeeper-client';
import type { Clock, TimerHandle } from '../../common/runtime.js';
import { ZooKeeperError } from '../errors.js';

/** How long a closed session waits for the server to end the connection after the close request, ms. */
export const CLOSE_GRACE_MS = 1000;

/** The read timeout of the liveness rule for a negotiated session timeout: 2/3 of it, as the Java client. */
export function readTimeoutOf(sessionTimeoutMs: number): number {
  return Math.max(1, Math.floor((sessionTimeoutMs * 2) / 3));
}

/** The part of a node-zookeeper-client `Client` the resolver uses (a test double implements the same). */
export interface ZooKeeperClientLike {
  connect(): void;
  close(): void;
  addAuthInfo(scheme: string, auth: Buffer): void;
  on(event: 'state', listener: (state: { name: string; code: number }) => void): unknown;
  getChildren(
    path: string,
    watcher: ((event: { type: number; name: string; path: string }) => void) | undefined,
    callback: (error: Error | null, children: string[]) => void,
  ): void;
  getData(
    path: string,
    watcher: ((event: { type: number; name: string; path: string }) => void) | undefined,
    callback: (error: Error | null, data: Buffer | null | undefined) => void,
  ): void;
  exists(
    path: string,
    watcher: ((event: { type: number; name: string; path: string }) => void) | undefined,
    callback: (error: Error | null, stat: unknown) => void,
  ): void;
}

/** Creates a client for a connection string (node-zookeeper-client's `createClient` by default). */
export type ZooKeeperClientFactory = (
  connect: string,
  options: { sessionTimeout: number; spinDelay: number; retries: number },
) => ZooKeeperClientLike;

/** The default factory: node-zookeeper-client. */
export const defaultClientFactory: ZooKeeperClientFactory = (connect, options) =>
  zookeeper.createClient(connect, options) as unknown as ZooKeeperClientLike;

/** A session's state, from the client's `state` events. */
export type SessionState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'auth-failed' | 'closed';

/** What a watch reports: the kind of watch that fired, the ZooKeeper event name and the path. */
export interface WatchEvent {
  readonly watch: 'children' | 'data' | 'exists';
  /** `NODE_CREATED`, `NODE_DELETED`, `NODE_DATA_CHANGED` or `NODE_CHILDREN_CHANGED`. */
  readonly type: string;
  /** The node's path, under the chroot (the client strips the chroot). */
  readonly path: string;
}

/** Settings of a {@link ZooKeeperSession}. */
export interface SessionOptions {
  readonly connect: string;
  readonly sessionTimeoutMs: number;
  readonly digest: string | undefined;
  readonly factory: ZooKeeperClientFactory;
  /** Clock of the liveness and close timers. */
  readonly clock: Clock;
  /** Every state change. */
  readonly onState: (state: SessionState) => void;
  /** Every watch that fires. */
  readonly onWatch: (event: WatchEvent) => void;
  /** A connection dropped by the session (why, for the debug log). */
  readonly onDrop?: ((why: string) => void) | undefined;
}

/** node-zookeeper-client's exception codes, by number (its `Exception` names). */
const CODE_NAMES: Readonly<Record<number, string>> = {
  [-1]: 'SYSTEM_ERROR',
  [-2]: 'RUNTIME_INCONSISTENCY',
  [-3]: 'DATA_INCONSISTENCY',
  [-4]: 'CONNECTION_LOSS',
  [-5]: 'MARSHALLING_ERROR',
  [-6]: 'UNIMPLEMENTED',
  [-7]: 'OPERATION_TIMEOUT',
  [-8]: 'BAD_ARGUMENTS',
  [-100]: 'API_ERROR',
  [-101]: 'NO_NODE',
  [-102]: 'NO_AUTH',
  [-103]: 'BAD_VERSION',
  [-108]: 'NO_CHILDREN_FOR_EPHEMERALS',
  [-110]: 'NODE_EXISTS',
  [-111]: 'NOT_EMPTY',
  [-112]: 'SESSION_EXPIRED',
  [-113]: 'INVALID_CALLBACK',
  [-114]: 'INVALID_ACL',
  [-115]: 'AUTH_FAILED',
};

/** ZooKeeper's name of an error the client passed, or `undefined` when it is not a ZooKeeper exception. */
export function zooKeeperCodeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? (CODE_NAMES[code] ?? `ZOOKEEPER_ERROR_${code}`) : undefined;
}

/** A client error as a {@link ZooKeeperError} (`what` names the operation and node, for the message). */
export function toZooKeeperError(error: unknown, what: string): ZooKeeperError {
  if (error instanceof ZooKeeperError) return error;
  const zooKeeperCode = zooKeeperCodeOf(error);
  const options = { cause: error, zooKeeperCode };
  switch (zooKeeperCode) {
    case 'CONNECTION_LOSS':
      return new ZooKeeperError('connection', `ZooKeeper connection lost during ${what}`, options);
    case 'SESSION_EXPIRED':
      return new ZooKeeperError('session-expired', `ZooKeeper session expired during ${what}`, options);
    case 'NO_AUTH':
      return new ZooKeeperError(
        'forbidden',
        `ZooKeeper refused ${what}: the node's ACL does not allow it (NO_AUTH)`,
        options,
      );
    case 'AUTH_FAILED':
      return new ZooKeeperError('forbidden', `ZooKeeper refused the credentials (AUTH_FAILED) during ${what}`, options);
    case 'OPERATION_TIMEOUT':
      return new ZooKeeperError('timeout', `ZooKeeper timed out ${what}`, options);
    case undefined:
      return new ZooKeeperError(
        'server-error',
        `ZooKeeper ${what} failed: ${String((error as Error)?.message ?? error)}`,
        options,
      );
    default:
      return new ZooKeeperError('server-error', `ZooKeeper ${what} failed (${zooKeeperCode})`, options);
  }
}

const EVENT_NAMES: Readonly<Record<number, string>> = {
  1: 'NODE_CREATED',
  2: 'NODE_DELETED',
  3: 'NODE_DATA_CHANGED',
  4: 'NODE_CHILDREN_CHANGED',
};

const STATE_NAMES: Readonly<Record<string, SessionState>> = {
  SYNC_CONNECTED: 'connected',
  CONNECTED_READ_ONLY: 'connected',
  DISCONNECTED: 'disconnected',
  EXPIRED: 'expired',
  AUTH_FAILED: 'auth-failed',
};

/**
 * One ZooKeeper session (one client). Dead once expired, refused (`auth-failed`) or closed: the resolver then opens
 * another. Reads reject with a {@link ZooKeeperError}; a read of a node that does not exist resolves `undefined`.
 */
export class ZooKeeperSession {
  readonly #client: ZooKeeperClientLike;
  #state: SessionState = 'connecting';
  /** Connected now (closing then sends the close request, and the server ends the connection). */
  #connected = false;
  readonly #watchers: Record<WatchEvent['watch'], (event: { type: number; path: string }) => void>;
  readonly #clock: Clock;
  readonly #sessionTimeoutMs: number;
  readonly #onDrop: ((why: string) => void) | undefined;
  /** Connections made so far: tells the connection an operation was sent on from a later one. */
  #connection = 0;
  /** When something was last received on the current connection (clock ms). */
  #lastHeard = 0;
  /** The socket whose `data` events move `#lastHeard`. */
  #heardOn: SocketLike | undefined;
  #liveness: TimerHandle | undefined;
  /** Cancels the pause the client takes once every member was tried (see {@link fenceConnects}). */
  readonly #stopSpin: () => void;
  readonly #heard = (): void => {
    this.#lastHeard = this.#clock.now();
  };

  constructor(options: SessionOptions) {
    this.#clock = options.clock;
    this.#sessionTimeoutMs = options.sessionTimeoutMs;
    this.#onDrop = options.onDrop;
    // spinDelay: the pause after every member was tried; retries: 0, the resolver retries on its own terms.
    this.#client = options.factory(options.connect, {
      sessionTimeout: options.sessionTimeoutMs,
      spinDelay: 1000,
      retries: 0,
    });
    if (options.digest !== undefined) this.#client.addAuthInfo('digest', Buffer.from(options.digest, 'utf8'));
    this.#stopSpin = fenceConnects(this.#client, this.#clock, () => this.#state === 'closed');
    this.#client.on('state', (state) => {
      const next = STATE_NAMES[state.name];
      // Expired, refused or closed is final: the client reports `DISCONNECTED` after those too.
      if (next === undefined || this.dead || this.#state === next) return;
      this.#state = next;
      this.#connected = next === 'connected';
      if (this.#connected) this.#watchLiveness();
      else this.#stopLiveness();
      options.onState(next);
    });
    const watcher = (watch: WatchEvent['watch']) => (event: { type: number; path: string }) => {
      if (this.#state === 'closed') return;
      options.onWatch({ watch, type: EVENT_NAMES[event.type] ?? String(event.type), path: event.path });
    };
    this.#watchers = { children: watcher('children'), data: watcher('data'), exists: watcher('exists') };
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Expired, refused or closed: no read will succeed on it again. */
  get dead(): boolean {
    return this.#state === 'expired' || this.#state === 'auth-failed' || this.#state === 'closed';
  }

  /** The current connection's number (one more at every connection), for {@link ZooKeeperSession.dropConnection}. */
  get connection(): number {
    return this.#connection;
  }

  /** Starts connecting (to a random member, then the others in turn). */
  connect(): void {
    this.#client.connect();
  }

  /** The children of `path` (watched), or `undefined` when the node does not exist. */
  children(path: string): Promise<string[] | undefined> {
    return new Promise((resolve, reject) => {
      this.#client.getChildren(path, this.#watchers.children, (error, children) => {
        if (error === null) resolve(children);
        else if (zooKeeperCodeOf(error) === 'NO_NODE') resolve(undefined);
        else reject(toZooKeeperError(error, `listing the children of ${path}`));
      });
    });
  }

  /** The data of `path` (watched; an empty buffer for none), or `undefined` when the node does not exist. */
  data(path: string): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      this.#client.getData(path, this.#watchers.data, (error, data) => {
        if (error === null) resolve(data ?? Buffer.alloc(0));
        else if (zooKeeperCodeOf(error) === 'NO_NODE') resolve(undefined);
        else reject(toZooKeeperError(error, `reading ${path}`));
      });
    });
  }

  /** Whether `path` exists, leaving a watch that fires when it is created or deleted. */
  exists(path: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#client.exists(path, this.#watchers.exists, (error, stat) => {
        if (error === null) resolve(stat !== null && stat !== undefined);
        else reject(toZooKeeperError(error, `checking ${path}`));
      });
    });
  }

  /**
   * Drops a connection attempt that got no session within the caller's patience: node-zookeeper-client bounds the TCP
   * connect but not the handshake after it, so a server that accepts the connection and never answers the connect
   * request (one seen during a restart) would stall the client for good. Destroying the socket makes the client
   * move on to the next member. Returns whether there was an attempt to drop.
   */
  dropAttempt(): boolean {
    if (this.#state === 'connected' || this.dead) return false;
    const manager = managerOf(this.#client);
    if (manager?.state !== CONNECTING || manager.socket === undefined) return false;
    manager.socket.destroy();
    return true;
  }

  /**
   * Drops connection number `connection` if it is still the current one and connected (an operation sent on it got
   * no answer in time): the client moves to the next member and resumes the session there. Returns whether it did.
   */
  dropConnection(connection: number, why = 'an operation got no answer'): boolean {
    if (this.#state !== 'connected' || connection !== this.#connection) return false;
    const socket = managerOf(this.#client)?.socket;
    if (socket === undefined) return false;
    this.#stopLiveness();
    this.#onDrop?.(why);
    socket.destroy();
    return true;
  }

  /** Starts the liveness rule on the connection just made (a client without a reachable socket: a test double). */
  #watchLiveness(): void {
    this.#connection++;
    this.#stopLiveness();
    const socket = managerOf(this.#client)?.socket;
    if (socket?.on === undefined) return;
    if (this.#heardOn !== socket) {
      socket.on('data', this.#heard);
      this.#heardOn = socket;
    }
    this.#lastHeard = this.#clock.now();
    this.#checkLiveness();
  }

  #stopLiveness(): void {
    if (this.#liveness !== undefined) this.#clock.clearTimeout(this.#liveness);
    this.#liveness = undefined;
  }

  /** Drops the connection if nothing was received for the read timeout, else checks again when it would be. */
  #checkLiveness(): void {
    this.#liveness = undefined;
    if (this.#state !== 'connected') return;
    const negotiated = managerOf(this.#client)?.sessionTimeout;
    const readTimeout = readTimeoutOf(
      typeof negotiated === 'number' && negotiated > 0 ? negotiated : this.#sessionTimeoutMs,
    );
    const silent = this.#clock.now() - this.#lastHeard;
    if (silent < readTimeout) {
      this.#liveness = this.#clock.setTimeout(() => this.#checkLiveness(), readTimeout - silent);
      return;
    }
    this.dropConnection(this.#connection, `nothing received for ${Math.round(silent)} ms`);
  }

  /** Closes the session (its ephemeral nodes, if any, go with it). Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    const wasLive = this.#state !== 'expired' && this.#state !== 'auth-failed';
    this.#state = 'closed';
    const connected = this.#connected;
    this.#stopLiveness();
    this.#stopSpin();
    try {
      if (wasLive) this.#client.close();
    } catch {
      // nothing more to release
    }
    // Not connected, the client's close only queues the close request and its connection attempts go on (a socket
    // connecting, a connect timer of up to sessionTimeout / members): end them, so no handle keeps the process alive.
    if (!connected) stopConnecting(this.#client);
    // Connected, the server ends the connection once it has closed the session; one that does not answer (frozen,
    // half-open) would leave the socket open for good: it is ended after a grace (an unref'd timer, like the clock's).
    else this.#clock.setTimeout(() => stopConnecting(this.#client), CLOSE_GRACE_MS);
  }
}

/**
 * Ends the connection attempts of a node-zookeeper-client client that was asked to close while not connected: its
 * socket, and its connect timer. Reaches into the client's connection manager (no public API does this); does
 * nothing on a client without one (a test double).
 */
function stopConnecting(client: ZooKeeperClientLike): void {
  const manager = managerOf(client);
  if (manager === undefined) return;
  if (manager.connectTimeoutHandler !== undefined && manager.connectTimeoutHandler !== null) {
    clearTimeout(manager.connectTimeoutHandler as NodeJS.Timeout);
  }
  manager.socket?.destroy();
}

/**
 * Makes a node-zookeeper-client client open no connection once `closed()` holds. The client defers every connection
 * (`findNextServer` runs it on the next tick, or after a random `spinDelay` once every member was tried) and
 * reconnects from its socket's `close` handler after emitting `DISCONNECTED` (so after a listener closed it): none of
 * that can be cancelled through its API, and a connection opened after close would never be ended (to a member that
 * never answers, it keeps the process alive), or, when the server answers it, has its connect response read as the
 * reply to the queued close request, whose unknown "error code" is thrown from the socket's `data` handler and
 * crashes the process. Wraps the connection manager's two entry points, and takes the pause after every member was
 * tried on `clock` (ref'd, as the client's own): its timer has no handle, and would hold the process for up to
 * `spinDelay` after close. Returns what cancels that pause. Does nothing on a test double.
 */
function fenceConnects(client: ZooKeeperClientLike, clock: Clock, closed: () => boolean): () => void {
  const manager = managerOf(client) as FenceableManager | undefined;
  const none = (): void => {};
  if (typeof manager?.findNextServer !== 'function' || typeof manager.connect !== 'function') return none;
  const { findNextServer, connect } = manager;
  let spin: TimerHandle | undefined;
  manager.findNextServer = function (this: FenceableManager, callback) {
    if (closed()) return;
    const fenced = (server: unknown) => {
      if (!closed()) callback(server);
    };
    const { serverAttempts, servers, spinDelay } = this;
    // Every member tried: the client would pause on a timer of its own (see above). The pause is taken here, then the
    // client goes on as after its own pause (its count of attempts reset, its next member taken at once).
    if (Array.isArray(servers) && serverAttempts === servers.length && typeof spinDelay === 'number') {
      spin = clock.setTimeout(
        () => {
          spin = undefined;
          if (closed()) return;
          this.serverAttempts = -1;
          findNextServer.call(this, fenced);
        },
        Math.random() * spinDelay,
        true,
      );
      return;
    }
    findNextServer.call(this, fenced);
  };
  manager.connect = function (this: unknown) {
    if (!closed()) connect.call(this);
  };
  return () => {
    if (spin !== undefined) clock.clearTimeout(spin);
    spin = undefined;
  };
}

/** The connection manager's methods {@link fenceConnects} wraps. */
interface FenceableManager {
  findNextServer?: (callback: (server: unknown) => void) => void;
  connect?: () => void;
  /** Members tried since the last pause; the pause comes when it reaches `servers.length`. */
  serverAttempts?: number;
  readonly servers?: readonly unknown[];
  /** The most the pause lasts, ms (the client waits a random part of it). */
  readonly spinDelay?: number;
}

/** node-zookeeper-client's `ConnectionManager` state while it connects (its `STATES.CONNECTING`). */
const CONNECTING = 1;

/** The parts of node-zookeeper-client's connection manager reached into (none when the client is a test double). */
interface ConnectionManagerLike {
  readonly state?: number;
  readonly socket?: SocketLike;
  readonly connectTimeoutHandler?: unknown;
  /** The session timeout, negotiated with the server once connected. */
  readonly sessionTimeout?: number;
}

/** The parts of the client's socket used. */
interface SocketLike {
  destroy(): void;
  on?(event: 'data', listener: () => void): unknown;
}

function managerOf(client: ZooKeeperClientLike): ConnectionManagerLike | undefined {
  return (client as { connectionManager?: ConnectionManagerLike }).connectionManager;
}
