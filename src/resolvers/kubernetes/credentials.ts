/**
 * Where the Kubernetes API server is and how to authenticate to it, read once when the resolver is constructed:
 *
 * 1. `apiServer` given: that server, with `token`/`tokenFile` and `tls` from the options;
 * 2. in a pod (`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set): `https://$HOST:$PORT`, the service
 *    account's token file (re-read before every list and watch, so a token the kubelet rotated is picked up), its
 *    CA file and its namespace file;
 * 3. otherwise a kubeconfig (`kubeconfig`, else the first file of `$KUBECONFIG`, else `~/.kube/config`), its
 *    current context (or `context`): the cluster's `server`, `certificate-authority(-data)`,
 *    `insecure-skip-tls-verify`, `tls-server-name`, and the user's `token`, `tokenFile`,
 *    `client-certificate(-data)` and `client-key(-data)`; relative paths are relative to the kubeconfig's folder.
 *    Not supported (refused at construction with a message saying so): `exec` and `auth-provider` plugins (cloud
 *    logins: run `kubectl proxy` or pass a token), `username`/`password`, and `proxy-url`.
 *
 * Files are read synchronously here (construction), so a missing or malformed file is an
 * `SIDECARLESS_INVALID_OPTION` error at once; only the token file is read again later.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InvalidOptionError } from '../../common/errors.js';
import { isFieldValue } from '../../common/http-syntax.js';
import { describe, isRecord } from '../../common/options.js';
import type { ResolverTlsOptions } from '../options.js';

/** The service account folder the kubelet mounts into every pod. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Where the bearer token comes from. */
export type TokenSource =
  | { readonly kind: 'none' }
  | { readonly kind: 'static'; readonly token: string }
  | { readonly kind: 'file'; readonly path: string };

/** The resolved connection settings. */
export interface ApiServerConfig {
  /** `https://host:port` (or `http://` for `kubectl proxy`). */
  readonly origin: string;
  /** TLS material (undici `connect` options): the options' `tls` over the pod's or the kubeconfig's. */
  readonly tls: ResolverTlsOptions;
  readonly token: TokenSource;
  /** The namespace this process belongs to (pod namespace file, or the context's namespace), when known. */
  readonly namespace: string | undefined;
  /** How it was found, for debug lines: `options`, `in-cluster` or `kubeconfig <path> (context <name>)`. */
  readonly source: string;
}

/** What {@link resolveApiServer} reads from the options. */
export interface CredentialInputs {
  readonly apiServer: string | undefined;
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly caFile: string | undefined;
  readonly namespaceFile: string | undefined;
  readonly tls: ResolverTlsOptions | undefined;
  readonly kubeconfig: string | undefined;
  readonly context: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

function readText(path: string, option: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new InvalidOptionError(
      option,
      `cannot read the ${what} ${path} (${typeof code === 'string' ? code : 'error'})`,
    );
  }
}

function originOf(server: string, option: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new InvalidOptionError(option, `expected an https:// URL of the API server, got ${describe(server)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InvalidOptionError(option, `expected an https:// URL of the API server, got ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new InvalidOptionError(option, 'expected only scheme, host and port (no credentials, path or query)');
  }
  return url.origin;
}

/** Reads the bearer token now (the file again each time: the kubelet rotates it). */
export async function readToken(source: TokenSource): Promise<string | undefined> {
  if (source.kind === 'none') return undefined;
  if (source.kind === 'static') return source.token;
  const text = (await readFile(source.path, 'utf8')).trim();
  return text.length > 0 ? text : undefined;
}

/** Resolves the API server and credentials (see the module documentation). Throws {@link InvalidOptionError}. */
export function resolveApiServer(input: CredentialInputs): ApiServerConfig {
  const { env } = input;
  const explicitToken: TokenSource | undefined =
    input.token !== undefined
      ? { kind: 'static', token: input.token }
      : input.tokenFile !== undefined
        ? { kind: 'file', path: input.tokenFile }
        : undefined;
  const withCaFile = (tls: ResolverTlsOptions, caFile: string | undefined, option: string): ResolverTlsOptions =>
    caFile === undefined || tls.ca !== undefined ? tls : { ...tls, ca: readText(caFile, option, 'CA file') };
  if (input.apiServer !== undefined) {
    return {
      origin: originOf(input.apiServer, 'apiServer'),
      tls: withCaFile(input.tls ?? {}, input.caFile, 'caFile'),
      token: explicitToken ?? { kind: 'none' },
      namespace: undefined,
      source: 'options',
    };
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host !== undefined && host !== '' && port !== undefined && port !== '') {
    const namespaceFile = input.namespaceFile ?? join(SERVICE_ACCOUNT_DIR, 'namespace');
    let namespace: string | undefined;
    try {
      namespace = readFileSync(namespaceFile, 'utf8').trim() || undefined;
    } catch {
      namespace = undefined; // the namespace file is optional: the target or the option may name one
    }
    return {
      origin: originOf(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, 'KUBERNETES_SERVICE_HOST'),
      tls: withCaFile(input.tls ?? {}, input.caFile ?? join(SERVICE_ACCOUNT_DIR, 'ca.crt'), 'caFile'),
      token: explicitToken ?? { kind: 'file', path: input.tokenFile ?? join(SERVICE_ACCOUNT_DIR, 'token') },
      namespace,
      source: 'in-cluster',
    };
  }
  const fromEnv = env.KUBECONFIG?.split(process.platform === 'win32' ? ';' : ':').find((p) => p !== '');
  const home = env.HOME ?? homedir();
  const path = input.kubeconfig ?? fromEnv ?? join(home, '.kube', 'config');
  return fromKubeconfig(path, input, explicitToken);
}

interface Named {
  readonly name: string;
  readonly value: Record<string, unknown>;
}

function namedList(config: Record<string, unknown>, list: string, field: string, name: string, path: string): Named {
  const items = config[list];
  const found = Array.isArray(items) ? items.find((i) => isRecord(i) && i.name === name) : undefined;
  if (!isRecord(found) || !isRecord(found[field])) {
    throw new InvalidOptionError('kubeconfig', `${path} has no ${field} named ${JSON.stringify(name)} in ${list}`);
  }
  return { name, value: found[field] };
}

function fromKubeconfig(
  path: string,
  input: CredentialInputs,
  explicitToken: TokenSource | undefined,
): ApiServerConfig {
  const text = readText(path, 'kubeconfig', 'kubeconfig (not in a pod: KUBERNETES_SERVICE_HOST is unset)');
  let config: unknown;
  try {
    config = parseYaml(text);
  } catch {
    throw new InvalidOptionError('kubeconfig', `${path} is not valid YAML`);
  }
  if (!isRecord(config)) throw new InvalidOptionError('kubeconfig', `${path} is not a kubeconfig`);
  const contextName = input.context ?? config['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    throw new InvalidOptionError('kubeconfig', `${path} has no current-context (set the \`context\` option)`);
  }
  const context = namedList(config, 'contexts', 'context', contextName, path).value;
  const cluster = namedList(config, 'clusters', 'cluster', String(context.cluster), path).value;
  const user =
    typeof context.user === 'string' && context.user !== ''
      ? namedList(config, 'users', 'user', context.user, path).value
      : {};
  const base = dirname(path);
  const file = (p: unknown) => (typeof p === 'string' && p !== '' ? (isAbsolute(p) ? p : join(base, p)) : undefined);
  const data = (inline: unknown, p: unknown, what: string): string | Buffer | undefined => {
    if (typeof inline === 'string' && inline !== '') return Buffer.from(inline, 'base64');
    const f = file(p);
    return f === undefined ? undefined : readText(f, 'kubeconfig', what);
  };
  for (const unsupported of ['exec', 'auth-provider', 'username', 'password'] as const) {
    if (user[unsupported] !== undefined && explicitToken === undefined) {
      throw new InvalidOptionError(
        'kubeconfig',
        `${path} context ${JSON.stringify(contextName)} uses "${unsupported}", which is not supported ` +
          '(exec and auth-provider plugins, basic auth); use a token, a client certificate, or `kubectl proxy`',
      );
    }
  }
  if (cluster['proxy-url'] !== undefined) {
    throw new InvalidOptionError('kubeconfig', `${path} cluster uses "proxy-url", which is not supported`);
  }
  if (typeof cluster.server !== 'string') throw new InvalidOptionError('kubeconfig', `${path} cluster has no server`);
  const tls: ResolverTlsOptions = {
    ca: data(cluster['certificate-authority-data'], cluster['certificate-authority'], 'certificate authority'),
    cert: data(user['client-certificate-data'], user['client-certificate'], 'client certificate'),
    key: data(user['client-key-data'], user['client-key'], 'client key'),
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    servername: typeof cluster['tls-server-name'] === 'string' ? cluster['tls-server-name'] : undefined,
    ...input.tls,
  };
  const tokenFile = file(user.tokenFile);
  // Sent as a header, as the `token` option is, and refused alike: undici would refuse every request carrying it.
  if (explicitToken === undefined && typeof user.token === 'string' && !isFieldValue(user.token)) {
    throw new InvalidOptionError(
      'kubeconfig',
      `${path} user token is not a valid header value (visible ASCII, spaces and tabs only)`,
    );
  }
  const token: TokenSource =
    explicitToken ??
    (typeof user.token === 'string' && user.token !== ''
      ? { kind: 'static', token: user.token }
      : tokenFile !== undefined
        ? { kind: 'file', path: tokenFile }
        : { kind: 'none' });
  return {
    origin: originOf(cluster.server, 'kubeconfig'),
    tls: input.caFile === undefined ? tls : { ...tls, ca: readText(input.caFile, 'caFile', 'CA file') },
    token,
    namespace: typeof context.namespace === 'string' && context.namespace !== '' ? context.namespace : undefined,
    source: `kubeconfig ${path} (context ${contextName})`,
  };
}
