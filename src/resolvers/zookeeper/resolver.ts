/**
 * The ZooKeeper resolver: a service's instances read from the children of one ZooKeeper node, kept fresh with
 * watches. Apache Curator service discovery, plain `host:port` and Dubbo provider children (see `parse.ts`).
 *
 * **Protocol.** One session (node-zookeeper-client) to any member of the ensemble. A cycle lists the node's children
 * with a children watch and reads every child's data with a data watch, delivers the set, then follows the watches:
 * a children event lists the children again (reading the new ones), a data event reads that child again; every read
 * re-arms its watch (ZooKeeper watches fire once). The set is delivered after each batch of events. A missing node is
 * an empty set ("not found") with an existence watch that lists it once it is created.
 *
 * **Failures** (the shared watch loop's rules: the last set stays in use, retries after backoff):
 * - the connection is lost: the cycle fails (`connection`); the client reconnects to any member on its own, and the
 *   reconnection wakes the resolver, which lists again on the same session;
 * - the session expires (the ensemble was out of reach for longer than the session timeout): the cycle fails
 *   (`session-expired`), a new session is opened and the node listed again;
 * - no member answers within `connectTimeoutMs`, or an operation within `requestTimeoutMs`: `timeout`, and the
 *   attempt or connection is dropped for the next member (as is one silent for 2/3 of the session timeout: session.ts);
 * - the node's ACL refuses the credentials: `forbidden`.
 *
 * **refresh()**: lists again on the same session, at most once per `refreshIntervalMs`; ignored during backoff.
 *
 * @module
 */
import type { Endpoint } from '../../common/endpoint.js';
import { InvalidOptionError, ServiceNotFoundError } from '../../common/errors.js';
import { createDebug } from '../../common/debug.js';
import { Backoff } from '../../common/backoff.js';
import { ZooKeeperError } from '../errors.js';
import { withDeadline } from '../deadline.js';
import type { Resolver, ResolverFactory, ResolverListener } from '../resolver.js';
import { asTargetError } from '../target.js';
import type { ResolverRegistry } from '../registry.js';
import { tapErrors, type WatchRun, WatchLoop } from '../watch-loop.js';
import { type ZooKeeperResolverEvent, type ZooKeeperResolverStats, zooKeeperChannel } from './diagnostics.js';
import {
  type ResolvedZooKeeperOptions,
  resolveZooKeeperOptions,
  type ZooKeeperResolverOptions,
  zooKeeperOptionsFromTarget,
} from './options.js';
import { parseZooKeeperNode } from './parse.js';
import {
  defaultClientFactory,
  type SessionState,
  type WatchEvent,
  type ZooKeeperClientFactory,
  ZooKeeperSession,
} from './session.js';

const debug = createDebug('zookeeper');

/** What the resolver holds for one child of the service node. */
interface NodeEntry {
  /** Its endpoint; `undefined` when it is skipped (unusable) or a disabled Curator instance. */
  readonly endpoint: Endpoint | undefined;
  /** Skipped as unusable (not a disabled instance): when only such children are left, the last set stays. */
  readonly skipped?: true;
}

/**
 * Resolves a service from the children of a ZooKeeper node, listed once per session and then watched. See the
 * `sidecarless/zookeeper` module documentation for the layouts and the failure handling.
 *
 * @example
 * ```ts
 * import { createClient } from 'sidecarless';
 * import { ZooKeeperResolver } from 'sidecarless/zookeeper';
 *
 * const users = createClient({
 *   name: 'users',
 *   target: new ZooKeeperResolver({
 *     connect: 'zk1:2181,zk2:2181,zk3:2181/apps', // any member; chroot /apps
 *     path: '/services/users', // Curator: <basePath>/<service name>
 *     digest: `reader:${process.env.ZK_PASSWORD}`,
 *   }),
 * });
 * ```
 *
 * @category Resolvers
 */
export class ZooKeeperResolver implements Resolver {
  readonly #options: ResolvedZooKeeperOptions;
  readonly #loop: WatchLoop;
  readonly #label: string;
  #factory: ZooKeeperClientFactory = defaultClientFactory;
  #session: ZooKeeperSession | undefined;
  #nodes = new Map<string, NodeEntry>();
  /** The service node was missing at the last listing. */
  #missing = false;
  /** Work the watches asked for since the last batch. */
  #pendingChildren = false;
  readonly #pendingData = new Set<string>();
  /** Dead sessions whose death was reported to the listener. */
  readonly #reported = new WeakSet<ZooKeeperSession>();
  /** Wakes the cycle waiting for the next event or state change. */
  #wake: (() => void) | undefined;
  #counts = {
    sessions: 0,
    expirations: 0,
    disconnections: 0,
    lists: 0,
    childEvents: 0,
    dataEvents: 0,
    skipped: 0,
    errors: 0,
  };

  /** Validates every option (throwing `SIDECARLESS_INVALID_OPTION` naming it); opens no connection. */
  constructor(options: ZooKeeperResolverOptions) {
    this.#options = resolveZooKeeperOptions(options);
    const { backoff, chroot, clock, minRelistIntervalMs, path, random, refreshIntervalMs, servers } = this.#options;
    this.#label = `zookeeper:${servers.join(',')}${chroot}${path}`;
    this.#loop = new WatchLoop(
      {
        label: this.#label,
        clock,
        backoff: new Backoff(backoff, random),
        minIntervalMs: minRelistIntervalMs,
        refresh: { mode: 'watch', intervalMs: refreshIntervalMs },
        debug,
        toError: (err) =>
          new ZooKeeperError('server-error', `${this.#label}: ${String((err as Error)?.message ?? err)}`, {
            cause: err,
          }),
      },
      (run) => this.#cycle(run),
    );
  }

  /** The watched node (under the chroot). */
  get path(): string {
    return this.#options.path;
  }

  /** Counters of the sessions and watches. */
  get stats(): ZooKeeperResolverStats {
    return { ...this.#counts, state: this.#session?.state ?? 'closed', nodes: this.#nodes.size };
  }

  /** Replaces the ZooKeeper client library (tests use a double). Call before `start`. @internal */
  setClientFactory(factory: ZooKeeperClientFactory): this {
    this.#factory = factory;
    return this;
  }

  /** Opens a session and starts listing and watching; results go to `listener`. */
  start(listener: ResolverListener): void {
    this.#loop.start(
      tapErrors(listener, (error) => {
        this.#counts.errors++;
        this.#publish({ kind: 'error', error });
      }),
    );
  }

  /** Lists again on the same session, at most once per `refreshIntervalMs`; ignored during backoff. */
  refresh(): void {
    this.#loop.refresh();
  }

  /** Stops watching and closes the session. Idempotent. */
  close(): void {
    if (this.#loop.closed) return;
    this.#loop.close();
    this.#session?.close();
    this.#wake?.();
  }

  #publish(event: Omit<ZooKeeperResolverEvent, 'path' | 'servers'>): void {
    if (!zooKeeperChannel.hasSubscribers) return;
    zooKeeperChannel.publish({ path: this.#options.path, servers: this.#options.servers, ...event });
  }

  #onState(session: ZooKeeperSession, state: SessionState): void {
    if (session !== this.#session || this.#loop.closed) return;
    debug('%s: session %s', this.#label, state);
    if (state === 'disconnected') this.#counts.disconnections++;
    if (state === 'expired') this.#counts.expirations++;
    if (state === 'connected' || state === 'disconnected' || state === 'expired') this.#publish({ kind: state });
    this.#wake?.();
    if (state === 'connected') this.#loop.wake(); // back after a failure: list now, not after the backoff
  }

  #onWatch(session: ZooKeeperSession, event: WatchEvent): void {
    if (session !== this.#session || this.#loop.closed) return;
    const { path } = this.#options;
    if (event.path === path) {
      this.#counts.childEvents++;
      this.#pendingChildren = true;
    } else if (event.path.startsWith(`${path === '/' ? '' : path}/`)) {
      this.#counts.dataEvents++;
      this.#pendingData.add(event.path.slice(path === '/' ? 1 : path.length + 1));
    } else {
      return;
    }
    debug('%s: %s watch fired (%s %s)', this.#label, event.watch, event.type, event.path);
    this.#wake?.();
  }

  /** Resolves on the next state change, watch or abort (`#wake`), or when `ms` passes when given. */
  #nextSignal(signal: AbortSignal, ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const { clock } = this.#options;
      const timer = ms === undefined ? undefined : clock.setTimeout(() => done(), ms);
      const done = () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
      if (signal.aborted) done();
    });
  }

  /** The session, opened if there is none alive, once connected (within `connectTimeoutMs`). */
  async #connected(run: WatchRun): Promise<ZooKeeperSession> {
    let session = this.#session;
    if (session === undefined || session.dead) {
      // A session that died while no cycle watched it (during a backoff): say so, then open another.
      if (session !== undefined && !this.#reported.has(session)) run.report(this.#lost(session));
      session?.close();
      const created: ZooKeeperSession = new ZooKeeperSession({
        connect: this.#options.connect,
        sessionTimeoutMs: this.#options.sessionTimeoutMs,
        digest: this.#options.digest,
        factory: this.#factory,
        clock: this.#options.clock,
        onDrop: (why) => debug('%s: dropping the connection: %s', this.#label, why),
        onState: (state) => this.#onState(created, state),
        onWatch: (event) => this.#onWatch(created, event),
      });
      session = created;
      this.#session = session;
      this.#counts.sessions++;
      this.#publish({ kind: 'session' });
      debug('%s: opening a session', this.#label);
      session.connect();
    }
    const { clock, connectTimeoutMs } = this.#options;
    const deadline = clock.now() + connectTimeoutMs;
    while (session.state !== 'connected') {
      if (run.signal.aborted) throw new ZooKeeperError('connection', `${this.#label}: stopped`);
      if (session.dead) throw this.#lost(session);
      const left = deadline - clock.now();
      if (left <= 0) {
        if (session.dropAttempt())
          debug('%s: no session within %d ms; dropping the attempt', this.#label, connectTimeoutMs);
        throw new ZooKeeperError(
          'timeout',
          `no member of the ZooKeeper ensemble ${this.#options.servers.join(',')} answered within ${connectTimeoutMs} ms`,
        );
      }
      await this.#nextSignal(run.signal, left);
    }
    return session;
  }

  /** The error for a session that is no longer connected (remembered as reported when the session is dead). */
  #lost(session: ZooKeeperSession): ZooKeeperError {
    if (session.dead) this.#reported.add(session);
    switch (session.state) {
      case 'expired':
        return new ZooKeeperError('session-expired', `${this.#label}: the ZooKeeper session expired`, {
          zooKeeperCode: 'SESSION_EXPIRED',
        });
      case 'auth-failed':
        return new ZooKeeperError('forbidden', `${this.#label}: ZooKeeper refused the credentials`, {
          zooKeeperCode: 'AUTH_FAILED',
        });
      default:
        return new ZooKeeperError('connection', `${this.#label}: the connection to ZooKeeper was lost`, {
          zooKeeperCode: 'CONNECTION_LOSS',
        });
    }
  }

  /**
   * One operation, bounded by `requestTimeoutMs` and abandoned when the run is stopped. One that times out drops the
   * connection it was sent on (a member that stopped answering): the client moves to the next member.
   */
  #op<T>(run: WatchRun, session: ZooKeeperSession, what: string, pending: Promise<T>): Promise<T> {
    const connection = session.connection; // the one `pending` was just sent on
    pending.catch(() => {}); // an abandoned operation's late failure is nobody's
    const { clock, requestTimeoutMs } = this.#options;
    return withDeadline(
      clock,
      requestTimeoutMs,
      run.signal,
      (signal) =>
        new Promise<T>((resolve, reject) => {
          const onAbort = () => reject(new ZooKeeperError('timeout', `${what}: stopped`));
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort, { once: true });
          pending.then(
            (value) => {
              signal.removeEventListener('abort', onAbort);
              resolve(value);
            },
            (error: unknown) => {
              signal.removeEventListener('abort', onAbort);
              reject(error);
            },
          );
        }),
      () => {
        session.dropConnection(connection, `no answer for ${what} within ${requestTimeoutMs} ms`);
        return new ZooKeeperError('timeout', `ZooKeeper gave no answer for ${what} within ${requestTimeoutMs} ms`);
      },
    );
  }

  /**
   * One cycle: connect, list everything, deliver, then follow the watches until the session is lost or the run
   * stopped. Never returns normally.
   */
  async #cycle(run: WatchRun): Promise<undefined> {
    const session = await this.#connected(run);
    run.started();
    this.#pendingChildren = false;
    this.#pendingData.clear();
    this.#counts.lists++;
    const problems: ZooKeeperError[] = [];
    await this.#listChildren(run, session, new Map(), problems);
    this.#publish({ kind: 'list' });
    run.healthy();
    this.#deliver(run, problems);
    for (;;) {
      while (!this.#pendingChildren && this.#pendingData.size === 0 && session.state === 'connected') {
        if (run.signal.aborted) throw new ZooKeeperError('connection', `${this.#label}: stopped`);
        await this.#nextSignal(run.signal);
      }
      if (session.state !== 'connected') throw this.#lost(session);
      const batch: ZooKeeperError[] = [];
      if (this.#pendingChildren) {
        this.#pendingChildren = false;
        await this.#listChildren(run, session, this.#nodes, batch);
      }
      const dirty = [...this.#pendingData];
      this.#pendingData.clear();
      await Promise.all(
        dirty
          .filter((name) => this.#nodes.has(name))
          .map((name) => this.#readNode(run, session, name, this.#nodes, batch)),
      );
      this.#deliver(run, batch);
    }
  }

  /** Lists the children (re-arming the children watch) and reads those not in `known`; replaces the held set. */
  async #listChildren(
    run: WatchRun,
    session: ZooKeeperSession,
    known: ReadonlyMap<string, NodeEntry>,
    problems: ZooKeeperError[],
  ): Promise<void> {
    const { path } = this.#options;
    const children = await this.#op(run, session, `listing ${path}`, session.children(path));
    if (children === undefined) {
      this.#nodes = new Map();
      this.#missing = true;
      // Watch for the node's creation; created in the meantime, list again.
      if (await this.#op(run, session, `checking ${path}`, session.exists(path))) this.#pendingChildren = true;
      return;
    }
    this.#missing = false;
    const max = this.#options.maxEndpoints;
    if (children.length > max) {
      // Refused before any child is read (each read arms a data watch): the held nodes and the set in force stay,
      // and the next cycle lists again after the backoff.
      throw new ZooKeeperError('limit', `${this.#label}: ${children.length} children, more than maxEndpoints (${max})`);
    }
    const next = new Map<string, NodeEntry>();
    for (const name of children) {
      const entry = known.get(name);
      if (entry !== undefined) next.set(name, entry);
    }
    await Promise.all(
      children.filter((name) => !next.has(name)).map((name) => this.#readNode(run, session, name, next, problems)),
    );
    this.#nodes = next;
  }

  /** Reads one child's data (re-arming its data watch) into `into`; a gone child is removed, a bad one skipped. */
  async #readNode(
    run: WatchRun,
    session: ZooKeeperSession,
    name: string,
    into: Map<string, NodeEntry>,
    problems: ZooKeeperError[],
  ): Promise<void> {
    const { path } = this.#options;
    const full = `${path === '/' ? '' : path}/${name}`;
    let data: Buffer | undefined;
    try {
      data = await this.#op(run, session, `reading ${full}`, session.data(full));
    } catch (err) {
      if (!(err instanceof ZooKeeperError) || err.reason !== 'forbidden') throw err;
      this.#skip(name, err, into, problems); // a node this identity may not read: skipped, the others are used
      return;
    }
    if (data === undefined) {
      into.delete(name); // deleted since it was listed; the children watch reports it too
      return;
    }
    try {
      into.set(name, { endpoint: parseZooKeeperNode(name, data, this.#options) });
    } catch (err) {
      this.#skip(name, err as ZooKeeperError, into, problems);
    }
  }

  #skip(name: string, error: ZooKeeperError, into: Map<string, NodeEntry>, problems: ZooKeeperError[]): void {
    this.#counts.skipped++;
    into.set(name, { endpoint: undefined, skipped: true });
    problems.push(error);
    debug('%s: skipping %s: %s', this.#label, name, error.message);
  }

  #deliver(run: WatchRun, problems: readonly ZooKeeperError[]): void {
    const { path } = this.#options;
    if (problems.length > 0) {
      const first = problems[0] as ZooKeeperError;
      run.report(
        new ZooKeeperError(
          first.reason,
          `${this.#label}: skipped ${problems.length} unusable node${problems.length === 1 ? '' : 's'} (first: ${first.message})`,
          { cause: first, zooKeeperCode: first.zooKeeperCode },
        ),
      );
    }
    const endpoints: Endpoint[] = [];
    const seen = new Set<string>();
    for (const name of [...this.#nodes.keys()].sort()) {
      const endpoint = this.#nodes.get(name)?.endpoint;
      if (endpoint === undefined) continue;
      if (seen.has(endpoint.key)) {
        debug('%s: %s repeats %s; ignored', this.#label, name, endpoint.key);
        continue;
      }
      seen.add(endpoint.key);
      endpoints.push(endpoint);
    }
    if (endpoints.length === 0 && [...this.#nodes.values()].some((n) => n.skipped === true)) {
      // Nothing usable because of unusable children, not an empty service: the last set stays (invariant 4).
      const message = `${this.#label}: no child of ${path} holds a usable instance; keeping the last set`;
      debug('%s', message);
      if (problems.length === 0) run.report(new ZooKeeperError('bad-response', message));
      return;
    }
    debug('%s: %d endpoints from %d nodes', this.#label, endpoints.length, this.#nodes.size);
    this.#publish({ kind: 'update', endpoints: endpoints.length });
    const why = this.#missing ? 'does not exist' : 'has no usable instance';
    run.deliver(
      endpoints,
      endpoints.length > 0 ? undefined : new ServiceNotFoundError(path, `ZooKeeper node ${path} ${why}`),
    );
  }
}

/**
 * Factory for `zookeeper://host:port[,host:port...]/path/to/service[?chroot=/apps&layout=curator&curatorPort=sslPort]`;
 * clock and random come from the cluster. Register it with {@link registerZooKeeper}.
 *
 * @category Resolvers
 */
export const zooKeeperResolverFactory: ResolverFactory = (target, context) => {
  const options = zooKeeperOptionsFromTarget(target);
  return asTargetError(
    target,
    () => new ZooKeeperResolver({ ...options, clock: context.clock, random: context.random }),
  );
};

/**
 * Registers the `zookeeper:` scheme on `registry` and returns it. Importing `sidecarless/zookeeper` registers
 * nothing by itself: each client has its own registry, so pass the result as the `resolvers` option.
 *
 * @example
 * ```ts
 * import { createClient, createResolverRegistry } from 'sidecarless';
 * import { registerZooKeeper } from 'sidecarless/zookeeper';
 *
 * const client = createClient({
 *   name: 'users',
 *   target: 'zookeeper://zk1:2181,zk2:2181/services/users',
 *   resolvers: registerZooKeeper(createResolverRegistry()),
 * });
 * ```
 *
 * @category Resolvers
 */
export function registerZooKeeper(registry: ResolverRegistry): ResolverRegistry {
  if (typeof (registry as Partial<ResolverRegistry> | null)?.register !== 'function') {
    throw new InvalidOptionError('registry', 'expected a resolver registry (createResolverRegistry())');
  }
  return registry.register('zookeeper', zooKeeperResolverFactory);
}
