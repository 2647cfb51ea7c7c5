/**
 * Options of the ZooKeeper resolver: their types, their validation (through the options toolkit, common/options.ts)
 * and their reading from a `zookeeper:` target.
 *
 * @module
 */
import type { BackoffOptions, ResolvedBackoffOptions } from '../../common/backoff.js';
import { InvalidOptionError, InvalidTargetError } from '../../common/errors.js';
import {
  describe,
  duration,
  isRecord,
  joinPath,
  oneOf,
  readOptions,
  rejectUnknownKeys,
  string,
} from '../../common/options.js';
import type { Clock, RandomSource } from '../../common/runtime.js';
import { type RemoteResolverOptions, resolveRemoteResolverOptions } from '../options.js';
import type { Target } from '../resolver.js';
import { hasUserinfo, redactTarget, unknownParameter } from '../target.js';

/**
 * How the children of the watched node describe instances (see the `sidecarless/zookeeper` module documentation):
 * - `auto`: each child on its own: Curator JSON when its data is a JSON object, else `host:port` from its name (or
 *   from the URL-encoded provider URL it is named by, as Dubbo registers providers), else from its data;
 * - `curator`: Apache Curator service discovery only (`<base>/<service>/<instance id>`, JSON data);
 * - `host-port`: children named `host:port` or by a URL-encoded (Dubbo) provider URL, or holding `host:port` as their
 *   data.
 *
 * @category Resolvers
 */
export type ZooKeeperLayout = 'auto' | 'curator' | 'host-port';

/**
 * Options of {@link ZooKeeperResolver}.
 *
 * @category Resolvers
 */
export interface ZooKeeperResolverOptions extends RemoteResolverOptions {
  /**
   * The ensemble, as ZooKeeper's own clients take it: `host:port[,host:port...][/chroot]`, e.g.
   * `zk1:2181,zk2:2181,zk3:2181/apps`. The resolver connects to any member (in random order, moving on when one
   * fails); the chroot, when given, is prefixed to every path. A member without a port uses 2181.
   * @defaultValue '127.0.0.1:2181'
   */
  readonly connect?: string | undefined;
  /**
   * The node whose children are the service's instances, absolute (under the chroot): for Curator service discovery
   * `<basePath>/<service name>`, e.g. `/services/users`.
   */
  readonly path: string;
  /** How children describe instances. @defaultValue 'auto' */
  readonly layout?: ZooKeeperLayout | undefined;
  /**
   * For Curator instances: which port to use. `port` (plain) or `sslPort` (for clusters that speak TLS to their
   * endpoints). An instance without the chosen port is skipped and counted; the other port is always in the
   * endpoint's metadata.
   * @defaultValue 'port'
   */
  readonly curatorPort?: 'port' | 'sslPort' | undefined;
  /**
   * Digest credentials, `user:password`, sent with `addAuthInfo('digest', ...)` on every session, for nodes whose
   * ACL requires them. Never logged or put in an error message; refused in targets.
   * @defaultValue none
   */
  readonly digest?: string | undefined;
  /** The session timeout asked of the server (which clamps it to its own min and max), ms. @defaultValue 30000 */
  readonly sessionTimeoutMs?: number | undefined;
  /**
   * How long a (re)connection to the ensemble may take before it is reported as a `timeout` error (the client keeps
   * trying every member meanwhile, and the last endpoint set stays in use), ms.
   * @defaultValue 10000
   */
  readonly connectTimeoutMs?: number | undefined;
  /** Longest wait for the answer to one operation (children, data), ms. @defaultValue 10000 */
  readonly requestTimeoutMs?: number | undefined;
  /** Minimum time between two full listings (the hot-loop guard), ms. @defaultValue 1000 */
  readonly minRelistIntervalMs?: number | undefined;
  /** Minimum time between two `refresh()`-triggered listings, ms. @defaultValue 5000 */
  readonly refreshIntervalMs?: number | undefined;
  /**
   * Backoff between failed cycles, capped lower than the other resolvers' (120 s); a session that reconnects also
   * wakes the resolver before the delay ends.
   * @defaultValue 1 s, ×1.6, jitter 0.2, max 30 s
   */
  readonly backoff?: BackoffOptions | undefined;
}

const OPTION_KEYS = [
  'connect',
  'path',
  'layout',
  'curatorPort',
  'digest',
  'sessionTimeoutMs',
  'connectTimeoutMs',
  'requestTimeoutMs',
  'minRelistIntervalMs',
  'refreshIntervalMs',
  'backoff',
  'clock',
  'random',
  'maxEndpoints',
] as const;

/** The ZooKeeper backoff's defaults: gRPC's, capped at 30 s (a reconnection also wakes the resolver early). */
const ZOOKEEPER_BACKOFF = { initialMs: 1000, multiplier: 1.6, jitter: 0.2, maxMs: 30_000 };

/** Validated {@link ZooKeeperResolverOptions}. @internal */
export interface ResolvedZooKeeperOptions {
  /**
   * The connection string as validated (members trimmed, each with its port, then the chroot): node-zookeeper-client
   * does not trim, and would look up a member `' zk1'`.
   */
  readonly connect: string;
  /** `host:port` of each member, for messages. */
  readonly servers: readonly string[];
  /** The chroot, or `''`. */
  readonly chroot: string;
  /** The watched node, normalized (no trailing `/`). */
  readonly path: string;
  readonly layout: ZooKeeperLayout;
  readonly curatorPort: 'port' | 'sslPort';
  readonly digest: string | undefined;
  readonly sessionTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly minRelistIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly backoff: ResolvedBackoffOptions;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** The most endpoints held from the registry. */
  readonly maxEndpoints: number;
}

/** ZooKeeper's path rule: absolute, no empty, `.` or `..` segment, no trailing `/` (except the root). */
function validPath(path: string): boolean {
  if (!path.startsWith('/')) return false;
  if (path === '/') return true;
  if (path.endsWith('/')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return false;
  return path
    .slice(1)
    .split('/')
    .every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/** Splits and checks a connection string; throws a message (without the option name) for a bad one. */
export function parseConnectString(connect: string): { servers: string[]; chroot: string } {
  const slash = connect.indexOf('/');
  const hosts = slash < 0 ? connect : connect.slice(0, slash);
  let chroot = slash < 0 ? '' : connect.slice(slash);
  if (chroot === '/') chroot = '';
  if (chroot !== '' && !validPath(chroot)) {
    throw new Error(`the chroot ${describe(chroot)} is not a valid ZooKeeper path`);
  }
  const servers = hosts.split(',').map((s) => s.trim());
  if (servers.length === 0 || servers.some((s) => s === '')) {
    throw new Error('expected host:port[,host:port...][/chroot] with no empty member');
  }
  const out: string[] = [];
  for (const server of servers) {
    // node-zookeeper-client splits a member at ':' (no IPv6 literals), so refuse what it would misread.
    const match = /^([A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(server);
    const port = match?.[2] === undefined ? 2181 : Number(match[2]);
    if (match === null || port < 1 || port > 65_535) {
      throw new Error(`bad member ${describe(server)}: expected host or host:port (IPv6 literals are not supported)`);
    }
    out.push(`${match[1]}:${port}`);
  }
  return { servers: out, chroot };
}

/**
 * Validates {@link ZooKeeperResolverOptions}, naming a bad option by its path under `path` (`''` at the top level).
 * Throws {@link InvalidOptionError}. @internal
 */
export function resolveZooKeeperOptions(options: ZooKeeperResolverOptions, path = ''): ResolvedZooKeeperOptions {
  return readOptions(path || 'options', () => resolveZooKeeperOptionsUnguarded(options, path));
}

function resolveZooKeeperOptionsUnguarded(options: ZooKeeperResolverOptions, path = ''): ResolvedZooKeeperOptions {
  if (!isRecord(options)) throw new InvalidOptionError(path || 'options', 'expected an object with at least `path`');
  rejectUnknownKeys(options, path, OPTION_KEYS);
  const o = options as unknown as Record<string, unknown>;
  const at = (key: string) => joinPath(path, key);
  const connect = string(o.connect, at('connect'), '127.0.0.1:2181');
  let parsed: { servers: string[]; chroot: string };
  try {
    parsed = parseConnectString(connect);
  } catch (err) {
    throw new InvalidOptionError(at('connect'), (err as Error).message);
  }
  const node = string(o.path, at('path'), undefined);
  if (node === undefined) {
    throw new InvalidOptionError(
      at('path'),
      'required: the node whose children are the instances, e.g. "/services/users"',
    );
  }
  const normalized = node.length > 1 && node.endsWith('/') ? node.slice(0, -1) : node;
  if (!validPath(normalized)) {
    throw new InvalidOptionError(
      at('path'),
      `expected an absolute ZooKeeper path like "/services/users", got ${describe(node)}`,
    );
  }
  const digest = o.digest;
  if (digest !== undefined && (typeof digest !== 'string' || !/^[^:]+:.*$/s.test(digest))) {
    // The value is a credential: never echo it.
    throw new InvalidOptionError(at('digest'), 'expected "user:password" (a user name, a colon, the password)');
  }
  return {
    connect: `${parsed.servers.join(',')}${parsed.chroot}`,
    servers: parsed.servers,
    chroot: parsed.chroot,
    path: normalized,
    layout: oneOf(o.layout, at('layout'), 'auto', ['auto', 'curator', 'host-port'] as const),
    curatorPort: oneOf(o.curatorPort, at('curatorPort'), 'port', ['port', 'sslPort'] as const),
    digest,
    sessionTimeoutMs: duration(o.sessionTimeoutMs, at('sessionTimeoutMs'), 30_000),
    connectTimeoutMs: duration(o.connectTimeoutMs, at('connectTimeoutMs'), 10_000),
    requestTimeoutMs: duration(o.requestTimeoutMs, at('requestTimeoutMs'), 10_000),
    minRelistIntervalMs: duration(o.minRelistIntervalMs, at('minRelistIntervalMs'), 1000, true),
    refreshIntervalMs: duration(o.refreshIntervalMs, at('refreshIntervalMs'), 5000, true),
    ...resolveRemoteResolverOptions(options, path, ZOOKEEPER_BACKOFF),
  };
}

/**
 * Builds {@link ZooKeeperResolverOptions} from a parsed target:
 * `zookeeper://host:port[,host:port...]/path/to/service[?chroot=/apps&layout=curator&curatorPort=sslPort]`.
 * With no authority (`zookeeper:///services/users`) the ensemble is `127.0.0.1:2181`.
 */
export function zooKeeperOptionsFromTarget(target: Target): ZooKeeperResolverOptions {
  // Values of parameters other than these, userinfo and a fragment hidden: a digest may be there under any name.
  const raw = redactTarget(target.raw, new Set(['chroot', 'layout', 'curatorport']));
  if (hasUserinfo(target.raw)) throw new InvalidTargetError(raw, 'credentials are not accepted in the target');
  const allowed = ['chroot', 'layout', 'curatorPort'];
  for (const key of target.query.keys()) {
    if (!allowed.includes(key)) {
      const hint = key === 'digest' || key === 'password' ? ' (credentials go in the options object)' : '';
      throw new InvalidTargetError(
        raw,
        `${unknownParameter(target.query, key)}${hint} (allowed: ${allowed.join(', ')})`,
      );
    }
  }

  let path: string;
  try {
    path = `/${decodeURIComponent(target.path)}`;
  } catch {
    throw new InvalidTargetError(raw, 'the path is not valid percent-encoding');
  }
  if (path === '/') {
    throw new InvalidTargetError(
      raw,
      'expected zookeeper://host:port[,host:port]/path/to/service with a non-empty path',
    );
  }
  const chroot = target.query.get('chroot') ?? '';
  if (chroot !== '' && !chroot.startsWith('/')) throw new InvalidTargetError(raw, 'chroot must start with "/"');
  const options: Record<string, unknown> = {
    connect: `${target.authority === '' ? '127.0.0.1:2181' : target.authority}${chroot}`,
    path,
  };
  const layout = target.query.get('layout');
  if (layout !== null) options.layout = layout;
  const curatorPort = target.query.get('curatorPort');
  if (curatorPort !== null) options.curatorPort = curatorPort;
  return options as unknown as ZooKeeperResolverOptions;
}
