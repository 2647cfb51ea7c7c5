/**
 * The dispatcher made for undici's global slot (`setGlobalDispatcher`): it balances the client's own service names
 * and sends every other host to an ordinary undici Agent, as if sidecarless were not installed.
 *
 * `client.dispatcher` balances whatever it is given (a single-service client treats any URL's authority as the
 * logical name of its one service), which is right for a call that names it explicitly and wrong for the process-wide
 * default that also carries the payment provider's and the metadata server's requests.
 *
 * @module
 */
import { Dispatcher } from 'undici';
import { array, checkObject, describe, isObject, joinPath, readOptions } from '../common/options.js';
import { InvalidOptionError } from '../common/errors.js';
import { toDualHandler } from '../common/handler.js';
import { parseOrigin } from '../request/origin.js';
import { bindThroughCompose, type DispatchTarget } from './dispatcher.js';
import { destroyArguments, whenSettled } from '../common/callback-style.js';

/** The client's balanced dispatcher, as the global one sees it. */
interface BalancedTarget extends DispatchTarget {
  /** True once the client is closing or closed (its `dispatch` then refuses every request). */
  readonly closed: boolean;
}

/**
 * Options of {@link Client.globalDispatcher}.
 *
 * @category Client
 */
export interface GlobalDispatcherOptions {
  /**
   * More host names (without port, case-insensitive; `*.suffix` matches any name under `suffix`) that balance
   * through the client. Always balanced besides these: on a single-service client its `name` when that is a host
   * name; on a multi-service client the cluster names, the hosts its route rules name, and its discovery domain.
   */
  readonly hosts?: readonly string[] | undefined;
  /**
   * Where every other request goes: a dispatcher of yours (for instance an undici `EnvHttpProxyAgent`; it is not
   * closed with the client). Once the client is closed, the global dispatcher sends it nothing more: every request,
   * to any host, fails with `SIDECARLESS_CLIENT_CLOSED`. @defaultValue an undici `Agent` of the client's (one for all
   * its global dispatchers, made on first use), closed with the client
   */
  readonly others?:
    | {
        /** undici's `Dispatcher.dispatch` (of any major). */
        dispatch(options: never, handler: never): boolean;
      }
    | undefined;
}

const HOST = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/i;

/** A set of host names and `*.suffix` wildcards, matched case-insensitively. */
export class HostSet {
  readonly #exact = new Set<string>();
  readonly #suffixes: string[] = [];

  constructor(patterns: Iterable<string>) {
    for (const raw of patterns) {
      const pattern = raw.toLowerCase();
      if (pattern.startsWith('*.')) this.#suffixes.push(pattern.slice(1));
      else this.#exact.add(pattern);
    }
  }

  get size(): number {
    return this.#exact.size + this.#suffixes.length;
  }

  /** `host` is lower case. */
  has(host: string): boolean {
    if (this.#exact.has(host)) return true;
    for (const suffix of this.#suffixes) if (host.length > suffix.length && host.endsWith(suffix)) return true;
    return false;
  }
}

/** Whether `name` may serve as a host name (a single-service client's default name, `static:...`, may not). */
export function isHostName(name: string): boolean {
  return HOST.test(name) && !name.startsWith('*.');
}

/** Validates {@link GlobalDispatcherOptions} (paths under `globalDispatcher`). */
export function normalizeGlobalDispatcherOptions(raw: unknown): {
  hosts: string[];
  others: Dispatcher | undefined;
} {
  // A getter or Proxy trap that throws is an invalid option (`globalDispatcher`), never a raw error.
  return readOptions('globalDispatcher', () => normalizeUnguarded(raw));
}

function normalizeUnguarded(raw: unknown): { hosts: string[]; others: Dispatcher | undefined } {
  const path = 'globalDispatcher';
  const o = checkObject(raw === undefined ? {} : raw, ['hosts', 'others'], path);
  const hosts: string[] = [];
  if (o.hosts !== undefined) {
    array(o.hosts, joinPath(path, 'hosts'), 'an array of host names').forEach((h: unknown, i) => {
      if (typeof h !== 'string' || !HOST.test(h)) {
        throw new InvalidOptionError(
          joinPath(joinPath(path, 'hosts'), i),
          `expected a host name without port (or \`*.suffix\`), got ${describe(h)}`,
        );
      }
      hosts.push(h.toLowerCase());
    });
  }
  const others = o.others;
  if (others !== undefined && (!isObject(others) || typeof others.dispatch !== 'function')) {
    throw new InvalidOptionError(joinPath(path, 'others'), `expected an undici Dispatcher, got ${describe(others)}`);
  }
  return { hosts, others: others as Dispatcher | undefined };
}

function hostOf(origin: unknown): string | undefined {
  try {
    return parseOrigin(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * A dispatcher for the global slot: own hosts balance, others go out plainly.
 *
 * Closing or destroying it closes or destroys the client, and with it the Agent other hosts went to (not an `others`
 * of yours). Once the client is closing, every request is refused as the balanced dispatcher refuses it
 * (`SIDECARLESS_CLIENT_CLOSED`), whatever its host: the Agent is closing too, and a request after `close()` fails with
 * the one documented code.
 *
 * It holds nothing of its own to release: a test suite may ask for one per test against a shared client, and each
 * dropped one is collected. Without `others`, other hosts go to the client's one plain Agent, made on first use.
 */
export class GlobalDispatcher extends Dispatcher {
  readonly #balanced: BalancedTarget;
  readonly #owns: (host: string) => boolean;
  readonly #others: Dispatcher | undefined;
  readonly #plain: () => Dispatcher;
  readonly #count: () => void;

  /** @internal Created by the client; `plain` gives (makes, the first time) the client's Agent for other hosts. */
  constructor(
    balanced: BalancedTarget,
    owns: (host: string) => boolean,
    others: Dispatcher | undefined,
    plain: () => Dispatcher,
    count: () => void,
  ) {
    super();
    this.#balanced = balanced;
    this.#owns = owns;
    this.#others = others;
    this.#plain = plain;
    this.#count = count;
    bindThroughCompose(this, GlobalDispatcher.prototype, ['close', 'destroy']);
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const host = hostOf((options as Partial<Dispatcher.DispatchOptions> | null)?.origin);
    // An origin that does not parse goes to the balancer, which fails it with a typed error; so does any request
    // once the client is closing (SIDECARLESS_CLIENT_CLOSED, whatever the host).
    const balance = host === undefined || this.#balanced.closed || this.#owns(host);
    if (balance) return this.#balanced.dispatch(options, handler);
    this.#count();
    // A dispatcher of the user's may be of another undici major than the caller: give it both handler styles.
    if (this.#others === undefined) return this.#plain().dispatch(options, handler);
    return this.#others.dispatch(options, toDualHandler(handler) as never);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    return whenSettled(this.#balanced.close(), callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const args = destroyArguments(errOrCallback, callback);
    return whenSettled(this.#balanced.destroy(args.err), args.callback);
  }
}
