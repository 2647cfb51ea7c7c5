/**
 * Reads the hosts file and `resolv.conf` for the DNS resolvers, parsed with `dns/system-config.ts`. Each
 * resolution calls {@link SystemFiles.load}: a file is `stat`ed and parsed again only when it changed (inode, size or
 * modification time), so an edited `/etc/hosts` is picked up at the next resolution without re-reading it every time.
 *
 * A missing system file (the defaults `/etc/hosts`, `/etc/resolv.conf`) reads as empty, as glibc treats it; a file
 * the user named that cannot be read fails the resolution (the last good set stays in use).
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ResolverError } from '../../common/errors.js';
import { type HostsTable, parseHosts, parseResolvConf, type ResolvConf } from './system-config.js';

/** Where the files are; `undefined` turns one off. @internal */
export interface SystemFilesOptions {
  readonly hostsFile: string | undefined;
  readonly resolvConf: string | undefined;
  /** Whether the user named the file (then it must be readable). */
  readonly hostsFileRequired: boolean;
  readonly resolvConfRequired: boolean;
}

/** The system configuration one resolution uses. @internal */
export interface SystemConfig {
  readonly hosts: HostsTable;
  readonly resolvConf: ResolvConf;
}

const EMPTY_HOSTS: HostsTable = new Map();

interface Cached<T> {
  readonly stamp: string;
  readonly value: T;
}

/** One file, re-parsed when its stat stamp changes. */
class WatchedFile<T> {
  #cached: Cached<T> | undefined;

  constructor(
    readonly path: string | undefined,
    readonly required: boolean,
    readonly what: string,
    readonly parse: (text: string) => T,
  ) {}

  async load(): Promise<T> {
    if (this.path === undefined) return this.parse('');
    try {
      const s = await stat(this.path);
      const stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (this.#cached?.stamp === stamp) return this.#cached.value;
      const value = this.parse(await readFile(this.path, 'utf8'));
      this.#cached = { stamp, value };
      return value;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!this.required && (code === 'ENOENT' || code === 'ENOTDIR')) {
        this.#cached = { stamp: 'missing', value: this.parse('') };
        return this.#cached.value;
      }
      throw new ResolverError(`Cannot read the ${this.what} ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** The hosts file and `resolv.conf` of one resolver. @internal */
export class SystemFiles {
  readonly #hosts: WatchedFile<HostsTable>;
  readonly #resolvConf: WatchedFile<ResolvConf>;

  constructor(options: SystemFilesOptions) {
    this.#hosts = new WatchedFile(options.hostsFile, options.hostsFileRequired, 'hosts file', (text) =>
      text.length === 0 ? EMPTY_HOSTS : parseHosts(text),
    );
    this.#resolvConf = new WatchedFile(options.resolvConf, options.resolvConfRequired, 'resolv.conf', (text) =>
      options.resolvConf === undefined
        ? parseResolvConf('')
        : parseResolvConf(text, hostname(), {
            LOCALDOMAIN: process.env.LOCALDOMAIN,
            RES_OPTIONS: process.env.RES_OPTIONS,
          }),
    );
  }

  /** Both files, re-read where they changed. Rejects with a `ResolverError` for an unreadable named file. */
  async load(): Promise<SystemConfig> {
    const [hosts, resolvConf] = await Promise.all([this.#hosts.load(), this.#resolvConf.load()]);
    return { hosts, resolvConf };
  }
}
