/**
 * What a child of the watched ZooKeeper node says about an instance: pure functions from a child's name and data to
 * an endpoint, for both layouts (see the `sidecarless/zookeeper` module documentation).
 *
 * **Apache Curator service discovery** (`curator-x-discovery`): `<basePath>/<service>/<instance id>`, the data a
 * `ServiceInstance` as `JsonInstanceSerializer` writes it:
 * ```json
 * {"name":"users","id":"2f1c…","address":"10.0.0.1","port":8080,"sslPort":null,"payload":null,
 *  "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null,"enabled":true}
 * ```
 * `address` is required; the port is `port`, or `sslPort` with `curatorPort: 'sslPort'` (an instance without the
 * chosen one is skipped). An instance with `"enabled": false` (Curator 4.2+) is left out, as Curator's own
 * providers leave it out; it is not counted as skipped. Metadata: `curator.id`, `curator.name`,
 * `curator.serviceType`, `curator.port`, `curator.sslPort` (when set), `curator.payload` (the payload as JSON, when
 * not null) and, for an object payload, `payload.<key>` for each string, number or boolean value.
 *
 * **host:port**: a child named `host:port` (`[v6]:port` for IPv6), or any child whose data is `host:port` as text.
 *
 * **Dubbo providers** (Dubbo 2.x's ZooKeeper registry, `/dubbo/<interface>/providers`): a child named by its
 * URL-encoded provider URL, `dubbo%3A%2F%2F10.0.0.1%3A20880%2Fcom.foo.Service%3F…`; the data (Curator's default, the
 * local IP address) is not read. The endpoint is the URL's `host:port`; a provider URL with `enabled=false` is left
 * out, as Dubbo's consumers leave it out. Metadata: `dubbo.protocol` and, when present, `dubbo.application`,
 * `dubbo.interface`, `dubbo.version`, `dubbo.group`, `dubbo.weight`.
 *
 * Every endpoint gets `zookeeper.node` = the child's name in its metadata.
 *
 * @module
 */
import { createEndpoint, type Endpoint, parseHostPort } from '../../common/endpoint.js';
import { isRecord } from '../../common/options.js';
import { ZooKeeperError } from '../errors.js';
import type { ZooKeeperLayout } from './options.js';

/** How {@link parseZooKeeperNode} reads a child. */
export interface NodeParseOptions {
  readonly layout: ZooKeeperLayout;
  readonly curatorPort: 'port' | 'sslPort';
}

/** The longest payload JSON kept in `curator.payload`, in characters; a longer one is cut with `…`. */
const MAX_PAYLOAD_CHARS = 4096;

const bad = (name: string, why: string, cause?: unknown) =>
  new ZooKeeperError(
    'bad-response',
    `ZooKeeper node ${JSON.stringify(name)} ${why}`,
    cause === undefined ? undefined : { cause },
  );

function portField(value: unknown): number | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65_535) return Number.NaN;
  return value;
}

/** A Curator `ServiceInstance`; `undefined` for a disabled one. Throws a `bad-response` {@link ZooKeeperError}. */
export function parseCuratorInstance(
  name: string,
  instance: Record<string, unknown>,
  curatorPort: 'port' | 'sslPort',
): Endpoint | undefined {
  if (instance.enabled === false) return undefined;
  const { address } = instance;
  if (typeof address !== 'string' || address.length === 0)
    throw bad(name, 'holds a Curator instance without an address');
  const port = portField(instance.port);
  const sslPort = portField(instance.sslPort);
  if (Number.isNaN(port) || Number.isNaN(sslPort)) {
    throw bad(name, 'holds a Curator instance whose port or sslPort is not a port number (1 to 65535)');
  }
  const chosen = curatorPort === 'port' ? port : sslPort;
  if (chosen === undefined) {
    const other = curatorPort === 'port' ? 'sslPort' : 'port';
    const hint = (curatorPort === 'port' ? sslPort : port) === undefined ? '' : ` (it has a ${other}: set curatorPort)`;
    throw bad(name, `holds a Curator instance without a ${curatorPort}${hint}`);
  }
  const metadata: Record<string, string> = { 'zookeeper.node': name };
  for (const field of ['id', 'name', 'serviceType'] as const) {
    const value = instance[field];
    if (typeof value === 'string' && value.length > 0) metadata[`curator.${field}`] = value;
  }
  if (port !== undefined) metadata['curator.port'] = String(port);
  if (sslPort !== undefined) metadata['curator.sslPort'] = String(sslPort);
  const { payload } = instance;
  if (payload !== null && payload !== undefined) {
    const text = JSON.stringify(payload);
    metadata['curator.payload'] = text.length > MAX_PAYLOAD_CHARS ? `${text.slice(0, MAX_PAYLOAD_CHARS)}…` : text;
    if (isRecord(payload)) {
      for (const [key, value] of Object.entries(payload)) {
        if (key === '@class') continue; // Jackson's type id in Curator's non-compatible serializer
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
          metadata[`payload.${key}`] = String(value);
        }
      }
    }
  }
  try {
    return createEndpoint({ host: address, port: chosen, metadata });
  } catch (err) {
    throw bad(name, `holds a Curator instance with an unusable address: ${(err as Error).message}`, err);
  }
}

function hostPortEndpoint(name: string, text: string): Endpoint {
  const { host, port } = parseHostPort(text);
  return createEndpoint({ host, port, metadata: { 'zookeeper.node': name } });
}

/** The provider URL parameters kept as `dubbo.<name>` metadata. */
const DUBBO_PARAMETERS = ['application', 'interface', 'version', 'group', 'weight'] as const;

/**
 * A child named by a URL-encoded provider URL (Dubbo's layout): its endpoint, `undefined` for a disabled provider, or
 * `null` when the name is no encoded URL. Throws a `bad-response` {@link ZooKeeperError} for an unusable one.
 */
function parseProviderUrl(name: string): Endpoint | undefined | null {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*%3A%2F%2F/i.test(name)) return null;
  let url: URL;
  try {
    url = new URL(decodeURIComponent(name));
  } catch (err) {
    throw bad(name, 'is not a valid URL-encoded provider URL', err);
  }
  const protocol = url.protocol.slice(0, -1);
  if (protocol === 'consumer') throw bad(name, 'is a Dubbo consumer, not a provider (watch the providers node)');
  if (url.searchParams.get('enabled') === 'false') return undefined;
  const metadata: Record<string, string> = { 'zookeeper.node': name, 'dubbo.protocol': protocol };
  for (const key of DUBBO_PARAMETERS) {
    const value = url.searchParams.get(key);
    if (value !== null && value !== '') metadata[`dubbo.${key}`] = value;
  }
  try {
    const { host, port } = parseHostPort(url.host);
    return createEndpoint({ host, port, metadata });
  } catch (err) {
    throw bad(name, `is a provider URL without a usable host:port: ${(err as Error).message}`, err);
  }
}

function jsonObject(data: Buffer | undefined): Record<string, unknown> | undefined {
  if (data === undefined || data.length === 0) return undefined;
  const text = data.toString('utf8').trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The endpoint a child of the watched node describes (`name` is the child's name, `data` its data), `undefined` for
 * a Curator instance that is disabled. Throws a `bad-response` {@link ZooKeeperError} when the child describes no
 * usable endpoint in the layout asked.
 */
export function parseZooKeeperNode(
  name: string,
  data: Buffer | undefined,
  options: NodeParseOptions,
): Endpoint | undefined {
  const { layout } = options;
  if (layout !== 'host-port') {
    const instance = jsonObject(data);
    if (instance !== undefined) return parseCuratorInstance(name, instance, options.curatorPort);
    if (layout === 'curator') {
      const what = data === undefined || data.length === 0 ? 'has no data' : 'does not hold a JSON object';
      throw bad(name, `${what} (expected a Curator service instance)`);
    }
  }
  let nameError: unknown;
  try {
    return hostPortEndpoint(name, name);
  } catch (err) {
    nameError = err;
  }
  const provider = parseProviderUrl(name);
  if (provider !== null) return provider;
  const text = data === undefined ? '' : data.toString('utf8').trim();
  if (text.length > 0 && text.length <= 300) {
    try {
      return hostPortEndpoint(name, text);
    } catch (err) {
      throw bad(name, `is not named host:port and its data is not host:port: ${(err as Error).message}`, err);
    }
  }
  const why =
    layout === 'auto'
      ? 'is neither a Curator instance nor host:port (by name or data)'
      : 'is not named host:port and holds no host:port';
  throw bad(name, `${why}: ${(nameError as Error).message}`, nameError);
}
