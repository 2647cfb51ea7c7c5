/**
 * The etcd auth token of one list-and-watch cycle: the login (`/v3/auth/authenticate`), going on without a token
 * when etcd auth is off, and a new login when etcd no longer takes the token. The rules are those of etcd's Go
 * client (`clientv3`): "authentication is not enabled" is no failure, and a request refused for its token (expired,
 * older than the auth store, or none sent while auth has since been enabled) is retried once after a new login.
 *
 * @module
 */
import { isRecord } from '../../common/options.js';
import { authFaultOf, bad, parseJson } from './parse.js';

/** Posts a JSON body to one etcd member and returns the answer's text (non-200 answers throw). */
export type EtcdPost = (path: string, payload: unknown, headers: Record<string, string>) => Promise<string>;

/** See the module documentation. One per cycle. @internal */
export class EtcdAuth {
  /** The headers of every request of the cycle: the token, when etcd gave one. */
  readonly headers: Record<string, string> = { 'content-type': 'application/json' };
  readonly #username: string | undefined;
  readonly #password: string | undefined;
  readonly #post: EtcdPost;
  readonly #debug: (format: string, ...args: unknown[]) => void;
  /** A new login was made since the last watch that worked: a token refused again is a failure, not a retry. */
  #renewed = false;

  constructor(
    credentials: { readonly username: string | undefined; readonly password: string | undefined },
    post: EtcdPost,
    debug: (format: string, ...args: unknown[]) => void,
  ) {
    this.#username = credentials.username;
    this.#password = credentials.password;
    this.#post = post;
    this.#debug = debug;
  }

  /** Logs in when credentials were given; with etcd auth off, goes on without a token. */
  async login(): Promise<void> {
    if (this.#username === undefined) return;
    let body: string;
    try {
      body = await this.#post(
        '/v3/auth/authenticate',
        { name: this.#username, password: this.#password },
        { 'content-type': 'application/json' },
      );
    } catch (err) {
      if (authFaultOf(err) !== 'not-enabled') throw err;
      // Credentials usually reach the clients before `etcdctl auth enable`: read without a token meanwhile. A
      // request refused later for want of one brings a new login (retry()).
      this.#debug('etcd auth is not enabled; going on without a token');
      delete this.headers.authorization;
      return;
    }
    const parsed = parseJson(body, 'auth response');
    if (!isRecord(parsed) || typeof parsed.token !== 'string' || parsed.token.length === 0) {
      throw bad('etcd auth response has no token');
    }
    this.headers.authorization = parsed.token;
  }

  /**
   * Whether `error` is a token etcd refused that a new login may cure: credentials were given, and no new login was
   * made since the last watch that worked (so a token refused again and again fails the cycle, with backoff).
   */
  renewable(error: unknown): boolean {
    return this.#username !== undefined && !this.#renewed && authFaultOf(error) === 'token';
  }

  /** Logs in again after a refused token (see {@link EtcdAuth.renewable}). */
  async renew(): Promise<void> {
    this.#renewed = true;
    await this.login();
  }

  /** The watch delivered something after its creation: a later refused token may be met by a new login again. */
  worked(): void {
    this.#renewed = false;
  }

  /** Runs `request`, and once more after a new login when etcd refused its token. */
  async retry<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      if (!this.renewable(err)) throw err;
      this.#debug('etcd refused the token (%s); logging in again', (err as Error).message);
      await this.renew();
      return request();
    }
  }
}
