/**
 * The package's entry points as a user imports them: by package name (`sidecarless`, `sidecarless/extend`,
 * `sidecarless/prometheus`, `sidecarless/opentelemetry`; tsconfig `paths` map them to src/ for tsx and tsc).
 *
 * - Every class the README tells users to construct is exported and constructible with the options it shows,
 *   including the etcd resolver's `username`/`password` and the Consul resolver's `token`, used against a server.
 * - The root entry's runtime exports are a snapshot: adding or removing one is a deliberate change to this list (and
 *   to etc/sidecarless.api.md, which `npm run api:check` holds to the built declarations).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { Registry } from 'prom-client';
import * as root from 'sidecarless';
import {
  Client,
  ConsulError,
  ConsulResolver,
  createClient,
  createPickerRegistry,
  createResolverRegistry,
  DnsResolver,
  type Endpoint,
  EtcdError,
  EtcdResolver,
  findSidecarlessError,
  isSidecarlessError,
  type PickerPolicy,
  type ResolverListener,
  seededRandom,
  SidecarlessError,
  SrvResolver,
  StaticResolver,
  statusForError,
} from 'sidecarless';
import * as extend from 'sidecarless/extend';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';

/** The root entry's runtime exports, sorted. Types are not here: etc/sidecarless.api.md lists them. */
const ROOT_RUNTIME_EXPORTS = [
  'AllEjectedError',
  'CircuitOpenError',
  'Client',
  'ClientClosedError',
  'ConsulError',
  'ConsulResolver',
  'DeadlineExceededError',
  'DiscoveryError',
  'DnsError',
  'DnsResolver',
  'DuplicateEndpointError',
  'EmptySubsetError',
  'EtcdError',
  'EtcdResolver',
  'InvalidEndpointError',
  'InvalidOptionError',
  'InvalidRequestError',
  'InvalidTargetError',
  'KubernetesError',
  'KubernetesResolver',
  'NoEndpointsError',
  'NoRouteError',
  'NotProcessedError',
  'OverloadedError',
  'PerTryTimeoutError',
  'PickerError',
  'PickerRegistry',
  'ProtocolMismatchError',
  'RedirectRefusedError',
  'ResolverError',
  'ResolverRegistry',
  'ResponseDiscardedError',
  'RetryBudgetExhaustedError',
  'ServiceNotFoundError',
  'SidecarlessError',
  'SrvResolver',
  'StaticResolver',
  'UnknownSchemeError',
  'channels',
  'createClient',
  'createEndpoint',
  'createEndpointSet',
  'createPickerRegistry',
  'createResolverRegistry',
  'findSidecarlessError',
  'histogramQuantile',
  'isSidecarlessError',
  'seededRandom',
  'statusForError',
];

/** A listener that records what a resolver delivers. */
function recorder(): ResolverListener & { updates: Endpoint[][]; errors: unknown[]; next(): Promise<Endpoint[]> } {
  const updates: Endpoint[][] = [];
  const errors: unknown[] = [];
  const waiting: ((set: Endpoint[]) => void)[] = [];
  return {
    updates,
    errors,
    onUpdate(endpoints) {
      updates.push([...endpoints]);
      waiting.shift()?.([...endpoints]);
    },
    onError(error) {
      errors.push(error);
    },
    next: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

/** A node:http server on 127.0.0.1 for one test; `close()` also drops held-open connections. */
async function serve(handler: http.RequestListener): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  return body;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('package entry points', () => {
  it('the root entry exports exactly the curated runtime names', () => {
    assert.deepEqual(Object.keys(root).sort(), [...ROOT_RUNTIME_EXPORTS].sort());
  });

  it('internals stay out of the root entry', () => {
    for (const name of [
      'Cluster',
      'OutlierDetector',
      'SlowStartTracker',
      'Backoff',
      'meanAndStdev',
      'xxh32Into',
      'planPriorities',
      'levelHealth',
      'selectEligible',
      'BalancedDispatcher',
      'parseTarget',
    ]) {
      assert.equal(name in root, false, `${name} is not exported from sidecarless`);
    }
  });

  it('createClient and new Client build a client from a static target', async () => {
    const a = createClient({ target: 'static://127.0.0.1:1' });
    const b = new Client({ target: ['127.0.0.1:1', '127.0.0.1:2'], random: seededRandom(1) });
    assert.ok(a instanceof Client);
    await b.ready(2000);
    assert.deepEqual(
      b.endpoints.map((e) => e.key),
      ['127.0.0.1:1', '127.0.0.1:2'],
    );
    await Promise.all([a.close(), b.close()]);
  });

  it('StaticResolver under a scheme of your own (the README example)', async () => {
    const fleet: Record<string, string[]> = { checkout: ['127.0.0.1:1'] };
    const lookUp = (name: string) => fleet[name] ?? [];
    const resolvers = createResolverRegistry().register('fleet', (target) => new StaticResolver(lookUp(target.path)));
    const client = createClient({ target: 'fleet:///checkout', resolvers });
    await client.ready(2000);
    assert.deepEqual(
      client.endpoints.map((e) => e.key),
      ['127.0.0.1:1'],
    );
    await client.close();
  });

  it('DnsResolver and SrvResolver are constructible with the README options (no I/O until start)', async () => {
    const dns = new DnsResolver({ host: 'users.internal', port: 8080, family: 4, retries: 1 });
    const srv = new SrvResolver({ name: '_http._tcp.users.internal', family: 'any' });
    assert.equal(dns.host, 'users.internal');
    assert.equal(srv.name, '_http._tcp.users.internal');
    // An IP literal is served as is, without a query: start() delivers it.
    const literal = new DnsResolver({ host: '127.0.0.1', port: 9000 });
    const rec = recorder();
    literal.start(rec);
    assert.deepEqual(
      (await rec.next()).map((e) => e.key),
      ['127.0.0.1:9000'],
    );
    for (const r of [dns, srv, literal]) r.close();
  });

  it('ConsulResolver takes the README options and sends the ACL token in X-Consul-Token only', async () => {
    const seen: { url: string; token: string | string[] | undefined }[] = [];
    const consul = await serve((req, res) => {
      seen.push({ url: req.url ?? '', token: req.headers['x-consul-token'] });
      if ((req.url ?? '').includes('index=')) return; // a blocking query: hold it until close
      res.setHeader('x-consul-index', '7');
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify([
          {
            Node: { Node: 'n1', Address: '10.0.0.1', Datacenter: 'dc1' },
            Service: { ID: 'web-1', Service: 'web', Address: '', Port: 8080, Tags: ['v2'], Meta: {} },
            Checks: [{ Status: 'passing' }],
          },
        ]),
      );
    });
    const resolver = new ConsulResolver({
      address: consul.origin.slice('http://'.length),
      service: 'web',
      token: 'secret-token',
      datacenter: 'dc1',
      tags: ['v2'],
      health: 'passing',
      env: {},
    });
    const rec = recorder();
    resolver.start(rec);
    assert.deepEqual(
      (await rec.next()).map((e) => e.key),
      ['10.0.0.1:8080'],
    );
    await resolver.close();
    await consul.close();
    assert.equal(seen[0]?.token, 'secret-token');
    assert.ok(seen.every(({ url }) => !url.includes('secret-token')));
    assert.match(seen[0]?.url ?? '', /^\/v1\/health\/service\/web\?/);
  });

  it('EtcdResolver authenticates with username and password, then lists with the token', async () => {
    const seen: { url: string; body: string; authorization: string | undefined }[] = [];
    const etcd = await serve(async (req, res) => {
      const body = await readBody(req);
      seen.push({ url: req.url ?? '', body, authorization: req.headers.authorization });
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v3/auth/authenticate') {
        res.end(JSON.stringify({ header: { revision: '3' }, token: 'etcd-token' }));
      } else if (req.url === '/v3/kv/range') {
        const kv = { key: b64('/services/users/a'), value: b64('10.0.0.1:8080'), mod_revision: '3' };
        res.end(JSON.stringify({ header: { revision: '3' }, kvs: [kv], count: '1' }));
      } else {
        // The watch: created, then held open until the resolver closes.
        res.write(`${JSON.stringify({ result: { header: { revision: '3' }, created: true } })}\n`);
      }
    });
    const resolver = new EtcdResolver({
      endpoints: [etcd.origin],
      prefix: '/services/users/',
      username: 'alice',
      password: 's3cret',
    });
    const rec = recorder();
    resolver.start(rec);
    assert.deepEqual(
      (await rec.next()).map((e) => e.key),
      ['10.0.0.1:8080'],
    );
    await resolver.close();
    await etcd.close();
    assert.equal(seen[0]?.url, '/v3/auth/authenticate');
    assert.deepEqual(JSON.parse(seen[0]?.body ?? '{}'), { name: 'alice', password: 's3cret' });
    assert.equal(seen[1]?.url, '/v3/kv/range');
    assert.equal(seen[1]?.authorization, 'etcd-token');
    assert.deepEqual(rec.errors, []);
  });

  it('errors are exported, branded and mapped to statuses', () => {
    const consul = new ConsulError('forbidden', 'ACL not found', { status: 403 });
    const etcd = new EtcdError('timeout', 'watch idle');
    for (const err of [consul, etcd]) {
      assert.ok(err instanceof SidecarlessError);
      assert.ok(isSidecarlessError(err));
      assert.equal(err.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.equal(findSidecarlessError(new TypeError('fetch failed', { cause: err })), err);
    }
    assert.equal(consul.reason, 'forbidden');
    assert.equal(typeof statusForError(etcd), 'number');
  });

  it('a policy of your own registers through createPickerRegistry, built from sidecarless/extend blocks', async () => {
    const first: PickerPolicy<Record<string, never>> = {
      name: 'first',
      // As the sidecarless/extend TSDoc example writes it: errors name the option's full path.
      parseConfig: (raw, path = 'picker') => (extend.options.rejectUnknownKeys(raw, path, []), {}),
      build(targets) {
        const results = extend.completeResults(extend.sortedByKey(targets));
        return { pick: () => results[0]! };
      },
    };
    const pickers = createPickerRegistry().register(first);
    assert.ok(pickers.names().includes('first'));
    assert.ok(pickers.names().includes('ring-hash'));
    const client = createClient({ target: ['127.0.0.1:1'], picker: 'first', pickers });
    await client.close();
    assert.throws(() => createClient({ target: ['127.0.0.1:1'], picker: { name: 'first', x: 1 }, pickers }), {
      code: 'SIDECARLESS_INVALID_OPTION',
      option: 'picker.x',
    });
    assert.throws(
      () =>
        createClient({ clusters: { users: { target: ['127.0.0.1:1'], picker: { name: 'first', x: 1 }, pickers } } }),
      { code: 'SIDECARLESS_INVALID_OPTION', option: 'clusters.users.picker.x' },
    );
  });

  it('sidecarless/extend carries the building blocks', () => {
    assert.equal(extend.xxh32(new TextEncoder().encode('abc')), 0x32d153ff);
    assert.equal(extend.hashString('abc'), 0x32d153ff);
    const backoff = new extend.Backoff(
      extend.resolveBackoffOptions({ initialMs: 100, maxMs: 1000 }, 'b'),
      extend.seededRandom(7),
    );
    assert.ok(backoff.next() > 0);
    assert.equal(extend.seededRandom(3)(), seededRandom(3)());
    assert.equal(extend.parseTarget('dns:///users:8080').scheme, 'dns');
    assert.equal(typeof extend.EdfHeap, 'function');
    for (const policy of [extend.roundRobinPolicy, extend.ringHashPolicy, extend.maglevPolicy]) {
      assert.ok(createPickerRegistry().names().includes(policy.name));
    }
    for (const factory of [extend.staticResolverFactory, extend.dnsResolverFactory, extend.etcdResolverFactory]) {
      assert.equal(typeof factory, 'function');
    }
  });

  it('the exporters register on a client', async () => {
    const client = createClient({ target: ['127.0.0.1:1'], name: 'shop' });
    const registry = new Registry();
    const prometheus = registerPrometheusMetrics(client, { registry });
    assert.match(await registry.metrics(), /sidecarless_requests_total\{client="shop",upstream_cluster="shop"\} 0/);
    prometheus.unregister();
    registerOpenTelemetryMetrics(client, { meter: metrics.getMeter('entry-points') }).unregister();
    await client.close();
  });
});
