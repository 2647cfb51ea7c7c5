// The Kubernetes resolver against the API double (test/helpers/kubernetes-api.ts): the list/watch contract,
// credentials, errors, and the shared connection. Client-level scenarios are in kubernetes-client.test.ts.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  createResolverRegistry,
  type Endpoint,
  InvalidOptionError,
  KubernetesError,
  KubernetesResolver,
  type KubernetesResolverEvent,
  type KubernetesResolverOptions,
  type SidecarlessError,
} from 'sidecarless';
import { systemClock, systemRandom } from '../../src/common/runtime.js';
import {
  endpointSlice,
  type KubernetesApiDouble,
  selfSigned,
  startKubernetesApi,
  tlsMaterial,
} from '../helpers/kubernetes-api.js';

class Recorder {
  readonly updates: (readonly Endpoint[])[] = [];
  readonly errors: SidecarlessError[] = [];
  readonly listener = {
    onUpdate: (endpoints: readonly Endpoint[]) => void this.updates.push(endpoints),
    onError: (error: SidecarlessError) => void this.errors.push(error),
  };
  get keys(): string[] {
    return (this.updates.at(-1) ?? []).map((e) => e.key).sort();
  }
}

/** Polls `predicate` every 20 ms, at most `timeoutMs`. */
async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const FAST = { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 };
const NS = 'shop';
const slice = (name: string, port: number, ips: string[], service = 'users') =>
  endpointSlice(
    name,
    service,
    [{ name: 'http', port }],
    ips.map((ip) => ({ addresses: [ip] })),
  );

let api: KubernetesApiDouble;
const open: KubernetesResolver[] = [];
function resolver(options: Partial<KubernetesResolverOptions> = {}): KubernetesResolver {
  const r = new KubernetesResolver({
    service: 'users',
    namespace: NS,
    port: 'http',
    apiServer: api.url,
    token: 'test-token',
    tls: { ca: tlsMaterial().cert },
    env: {},
    watchTimeoutMs: 2000,
    requestTimeoutMs: 1000,
    minRelistIntervalMs: 50,
    refreshIntervalMs: 0,
    backoff: FAST,
    ...options,
  });
  open.push(r);
  return r;
}

describe('KubernetesResolver: list and watch against the API double', () => {
  before(async () => {
    api = await startKubernetesApi({ bookmarkIntervalMs: 300 });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    api.fault = undefined;
    api.silence(false);
    for (const name of ['users-a', 'users-b', 'users-c', 'other-a']) {
      try {
        api.delete(NS, name);
      } catch {
        // not there
      }
    }
  });
  after(() => api.close());

  it('lists with the service label, watches from the list resourceVersion with bookmarks, merges slices', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1', '10.0.0.2']));
    api.apply(NS, slice('other-a', 8080, ['10.9.9.9'], 'other'));
    const rv = api.resourceVersion;
    const rec = new Recorder();
    resolver().start(rec.listener);
    await until(() => rec.updates.length === 1, 'the first set');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080', '10.0.0.2:8080']);
    // Named ports resolve per slice: `http` is 9090 in this one.
    api.apply(NS, slice('users-b', 9090, ['10.0.1.1']));
    await until(() => rec.keys.length === 3, 'the second slice');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.1.1:9090']);
    api.delete(NS, 'users-a');
    await until(() => rec.keys.length === 1, 'the deletion');
    const [list, watch] = api.requests.filter((r) => r.path.endsWith('/namespaces/shop/endpointslices')).slice(-99);
    assert.equal(list?.query.get('labelSelector'), 'kubernetes.io/service-name=users');
    assert.equal(list?.query.get('watch'), null);
    assert.equal(watch?.query.get('watch'), '1');
    assert.equal(watch?.query.get('allowWatchBookmarks'), 'true');
    assert.equal(watch?.query.get('resourceVersion'), String(rv));
    assert.equal(watch?.query.get('timeoutSeconds'), '2');
    assert.ok(api.requests.every((r) => r.authorization === 'Bearer test-token' && !r.path.includes('test-token')));
    assert.equal(rec.errors.length, 0);
  });

  it('resumes from the last resourceVersion (moved by bookmarks) when the server ends the watch, without listing', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await until(() => r.stats.bookmarks >= 1, 'a bookmark');
    const before = api.requests.length;
    api.endWatches();
    await until(() => r.stats.watches >= 2, 'a second watch');
    const rewatch = api.requests.slice(before).find((q) => q.query.get('watch') === '1');
    assert.equal(rewatch?.query.get('resourceVersion'), r.stats.resourceVersion);
    assert.equal(r.stats.lists, 1);
    // Also after the server-side timeout (timeoutSeconds=1).
    const r2 = resolver({ watchTimeoutMs: 1000 });
    r2.start(new Recorder().listener);
    await until(() => r2.stats.watches >= 2, 'a watch after the server timeout', 8000);
    assert.equal(r2.stats.lists, 1);
    assert.equal(rec.errors.length, 0);
  });

  it('backs off when the server keeps ending watches early (regression guard against a re-watch hot loop)', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const r = resolver({ backoff: { initialMs: 200, maxMs: 5000, multiplier: 2, jitter: 0 } });
    r.start(new Recorder().listener);
    await until(() => r.stats.watches === 1, 'the watch');
    // End every watch as soon as it opens, for 1.5 s: without backoff that is a re-watch every 50 ms (about 30).
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      api.endWatches();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(r.stats.watches <= 6, `${r.stats.watches} watches in 1.5 s`);
    assert.equal(r.stats.errors, 0, 'an early end is not an error');
  });

  it('backs off when every watch expires at once, even on the version a list just gave (a list per minRelistIntervalMs before)', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const r = resolver({ backoff: { initialMs: 200, maxMs: 5000, multiplier: 2, jitter: 0 } });
    const rec = new Recorder();
    r.start(rec.listener);
    await until(() => r.stats.watches === 1, 'the watch');
    api.expireWatches(true);
    try {
      api.endWatches();
      // For 1.5 s: at minRelistIntervalMs (50 ms) that is about 30 lists; with the backoff (200, 400, 800 ms) 3 or 4.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(r.stats.lists <= 6, `${r.stats.lists} lists in 1.5 s`);
      assert.ok(r.stats.expired >= 1);
      assert.deepEqual(rec.keys, ['10.0.0.1:8080'], 'the set stays');
    } finally {
      api.expireWatches(false);
    }
    // A watch that lasts resets it: the set follows changes again.
    api.apply(NS, slice('users-b', 8080, ['10.0.0.2']));
    await until(() => rec.keys.length === 2, 'the next set', 8000);
  });

  // Plain HTTP too (`kubectl proxy`): there, a watch answered 410 crashed the process (its unread body destroyed with
  // no error listener).
  for (const [expiredAs, tls] of [
    ['event', true],
    ['status', true],
    ['status', false],
  ] as const) {
    it(`lists again when the resourceVersion expired (410 as ${expiredAs === 'event' ? 'an ERROR event' : 'the HTTP status'}${tls ? '' : ', plain HTTP'})`, async () => {
      const local = await startKubernetesApi({ expiredAs, tls });
      const saved = api;
      api = local;
      try {
        local.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
        const rec = new Recorder();
        const r = resolver(tls ? {} : { tls: undefined });
        r.start(rec.listener);
        await until(() => r.stats.watches === 1, 'the watch');
        await local.stop(); // the watch breaks; while down, changes happen and history is compacted
        local.apply(NS, slice('users-b', 8080, ['10.0.0.2']));
        local.compact();
        await local.listen(Number(new URL(local.url).port));
        await until(() => rec.keys.length === 2, 'the re-listed set', 8000);
        assert.equal(r.stats.expired, 1);
        assert.equal(r.stats.lists, 2);
        assert.ok(rec.errors.every((e) => e instanceof KubernetesError && e.reason !== 'bad-response'));
      } finally {
        await Promise.all(open.splice(0).map((r) => r.close()));
        await local.close();
        api = saved;
      }
    });
  }

  it('backs off when every watch fails at its first line (it reset the backoff when the stream opened: 1 s forever)', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const r = resolver({ backoff: { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0 } });
    const rec = new Recorder();
    r.start(rec.listener);
    await until(() => r.stats.watches === 1, 'the watch');
    // From now on, every watch opens (200) and then says ERROR 500 as its first event.
    api.failWatches(true);
    try {
      api.endWatches();
      const started = Date.now();
      await until(() => rec.errors.length >= 4, 'four failed watches', 10_000);
      // 100, 200, 400 ms between them at least: not before 700 ms (without the backoff growing: 300 ms or less).
      assert.ok(Date.now() - started >= 650, `four failures in ${Date.now() - started} ms`);
      assert.ok(rec.errors.every((e) => e instanceof KubernetesError && e.reason === 'server-error'));
    } finally {
      api.failWatches(false);
    }
  });

  it('401 and 403 are KubernetesError forbidden naming the RBAC rule; the token is never in a message', async () => {
    const rec = new Recorder();
    resolver({ token: 'wrong-token' }).start(rec.listener);
    await until(() => rec.errors.length >= 1, 'the 401');
    const unauthorized = rec.errors[0] as KubernetesError;
    assert.ok(unauthorized instanceof KubernetesError);
    assert.equal(unauthorized.code, 'SIDECARLESS_RESOLVER_FAILED');
    assert.equal(unauthorized.reason, 'forbidden');
    assert.equal(unauthorized.status, 401);
    assert.match(unauthorized.message, /get, list and watch on endpointslices in the API group discovery\.k8s\.io/);
    assert.doesNotMatch(unauthorized.message, /wrong-token/);

    const scoped = await startKubernetesApi({ tokens: { 'test-token': ['elsewhere'] } });
    const saved = api;
    api = scoped;
    try {
      const rec403 = new Recorder();
      resolver().start(rec403.listener);
      await until(() => rec403.errors.length >= 1, 'the 403');
      const forbidden = rec403.errors[0] as KubernetesError;
      assert.equal(forbidden.reason, 'forbidden');
      assert.equal(forbidden.status, 403);
      assert.match(forbidden.message, /403 Forbidden for endpointslices in namespace "shop"/);
      assert.match(forbidden.message, /Role \(bound with a RoleBinding\)/);
      assert.match(forbidden.message, /cannot list resource "endpointslices"/);
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await scoped.close();
      api = saved;
    }
  });

  it('keeps the last known good set while the API server fails or is silent, and recovers', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const rec = new Recorder();
    const r = resolver({ watchTimeoutMs: 1000, requestTimeoutMs: 300 });
    r.start(rec.listener);
    await until(() => rec.updates.length === 1, 'the first set');
    api.silence(); // the watch stays open but nothing arrives: presumed dead after 1000 + 300 ms
    await until(() => rec.errors.some((e) => (e as KubernetesError).reason === 'timeout'), 'the idle timeout', 8000);
    api.silence(false);
    api.fault = { status: 500 };
    await until(() => rec.errors.some((e) => (e as KubernetesError).reason === 'http-status'), 'a 500');
    assert.equal(rec.updates.length, 1, 'no update while failing: the last set stays');
    api.fault = undefined;
    api.apply(NS, slice('users-b', 8080, ['10.0.0.2']));
    await until(() => rec.keys.length === 2, 'recovery', 8000);
  });

  it('skips and counts malformed EndpointSlices; a line that is not JSON ends the watch, which resumes', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    api.apply(NS, {
      metadata: { name: 'users-c', labels: { 'kubernetes.io/service-name': 'users' } },
      addressType: 'Carrier-Pigeon',
    });
    const rec = new Recorder();
    const r = resolver();
    r.start(rec.listener);
    await until(() => rec.updates.length === 1, 'the first set');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080']);
    assert.equal(r.stats.skipped, 1);
    // The skipped slice is reported (a bad-response naming it); the rest of the set is used.
    assert.equal(rec.errors.length, 1);
    assert.match(rec.errors[0]?.message ?? '', /skipped 1 unusable entry \(first: EndpointSlice users-c is malformed/);
    assert.doesNotMatch(rec.errors[0]?.message ?? '', /keeping the last set/);
    api.broadcastRaw('{"type":"MODIFIED","object":');
    await until(() => rec.errors.some((e) => /watch event is not valid JSON/.test(e.message)), 'the bad line');
    api.apply(NS, slice('users-b', 8080, ['10.0.0.2']));
    await until(() => rec.keys.length === 2, 'the resumed watch');
  });

  it('bounds the list answer by maxResponseBytes', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const rec = new Recorder();
    resolver({ maxResponseBytes: 100 }).start(rec.listener);
    await until(() => rec.errors.length >= 1, 'the error');
    assert.equal((rec.errors[0] as KubernetesError).reason, 'bad-response');
    assert.match(rec.errors[0]?.message ?? '', /larger than 100 bytes/);
  });

  it('pages the list with limit and continue', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    api.apply(NS, slice('users-b', 8080, ['10.0.0.2']));
    api.apply(NS, slice('users-c', 8080, ['10.0.0.3']));
    const rec = new Recorder();
    resolver({ pageSize: 2 }).start(rec.listener);
    await until(() => rec.updates.length === 1, 'the set');
    assert.equal(rec.keys.length, 3);
    assert.ok(api.requests.some((q) => q.query.get('continue') !== null));
  });

  it('refresh() lists again', async () => {
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    const r = resolver();
    r.start(new Recorder().listener);
    await until(() => r.stats.watches === 1, 'the watch');
    r.refresh();
    await until(() => r.stats.lists === 2, 'the second list');
  });

  it("shares one HTTP/2 connection among a client's resolvers and publishes diagnostics events", async () => {
    const events: KubernetesResolverEvent[] = [];
    const onEvent = (m: unknown) => void events.push(m as KubernetesResolverEvent);
    diagnostics.subscribe('sidecarless:kubernetes', onEvent);
    try {
      const fresh = await startKubernetesApi();
      const saved = api;
      api = fresh;
      try {
        for (const s of ['a', 'b', 'c']) fresh.apply(NS, slice(`${s}-1`, 8080, [`10.0.0.${s.charCodeAt(0)}`], s));
        const resolvers = ['a', 'b', 'c'].map((service) => resolver({ service }));
        const recs = resolvers.map(() => new Recorder());
        resolvers.forEach((r, i) => r.start((recs[i] as Recorder).listener));
        await until(() => resolvers.every((r) => r.stats.watches === 1), 'three watches');
        assert.equal(fresh.connections, 1);
        assert.equal(fresh.watchers, 3);
        assert.ok(fresh.requests.every((q) => q.httpVersion === '2.0'));
      } finally {
        await Promise.all(open.splice(0).map((r) => r.close()));
        await fresh.close();
        api = saved;
      }
    } finally {
      diagnostics.unsubscribe('sidecarless:kubernetes', onEvent);
    }
    assert.ok(events.some((e) => e.kind === 'list' && e.service === 'a' && e.namespace === NS));
    assert.ok(events.some((e) => e.kind === 'watch'));
    assert.ok(events.some((e) => e.kind === 'update' && e.endpoints === 1 && e.state === 'ready'));
  });
});

describe('KubernetesResolver: credentials', () => {
  let dir: string;
  before(async () => {
    api = await startKubernetesApi({ tokens: { 'token-1': ['*'], 'token-2': ['*'] } });
    api.apply(NS, slice('users-a', 8080, ['10.0.0.1']));
    dir = mkdtempSync(join(tmpdir(), 'sidecarless-k8s-creds-'));
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });
  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('in a pod: KUBERNETES_SERVICE_HOST/_PORT, the CA, the namespace file, and the token file re-read as rotated', async () => {
    writeFileSync(join(dir, 'token'), 'token-1\n');
    writeFileSync(join(dir, 'ca.crt'), tlsMaterial().cert);
    writeFileSync(join(dir, 'namespace'), NS);
    const { port } = new URL(api.url);
    const r = new KubernetesResolver({
      service: 'users',
      port: 'http',
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port },
      tokenFile: join(dir, 'token'),
      caFile: join(dir, 'ca.crt'),
      namespaceFile: join(dir, 'namespace'),
      tls: { servername: 'kubernetes.default.svc' },
      minRelistIntervalMs: 50,
      backoff: FAST,
    });
    open.push(r);
    assert.equal(r.namespace, NS);
    const rec = new Recorder();
    r.start(rec.listener);
    await until(() => rec.updates.length === 1, 'the set');
    assert.equal(api.requests.at(-1)?.authorization, 'Bearer token-1');
    writeFileSync(join(dir, 'token'), 'token-2');
    r.refresh();
    await until(() => api.requests.at(-1)?.authorization === 'Bearer token-2', 'the rotated token');
  });

  it('outside a cluster: the kubeconfig current context (inline CA, token, namespace; relative file paths)', async () => {
    writeFileSync(join(dir, 'token-file'), 'token-1');
    const kubeconfig = join(dir, 'config');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: dev',
        'clusters:',
        '- name: double',
        '  cluster:',
        `    server: ${api.url}`,
        `    certificate-authority-data: ${Buffer.from(tlsMaterial().cert).toString('base64')}`,
        'contexts:',
        '- name: dev',
        '  context: {cluster: double, user: me, namespace: shop}',
        '- name: plugin',
        '  context: {cluster: double, user: cloud}',
        'users:',
        '- name: me',
        '  user:',
        '    tokenFile: token-file',
        '- name: cloud',
        '  user:',
        '    exec: {command: gke-gcloud-auth-plugin, apiVersion: client.authentication.k8s.io/v1beta1}',
      ].join('\n'),
    );
    const r = new KubernetesResolver({ service: 'users', port: 'http', kubeconfig, env: {}, backoff: FAST });
    open.push(r);
    assert.equal(r.namespace, NS);
    const rec = new Recorder();
    r.start(rec.listener);
    await until(() => rec.updates.length === 1, 'the set');
    assert.deepEqual(rec.keys, ['10.0.0.1:8080']);
    assert.throws(
      () => new KubernetesResolver({ service: 'users', kubeconfig, context: 'plugin', env: {} }),
      (err: unknown) => err instanceof InvalidOptionError && /"exec", which is not supported/.test(err.message),
    );
    assert.throws(
      () => new KubernetesResolver({ service: 'users', env: { HOME: dir } }),
      (err: unknown) => err instanceof InvalidOptionError && /KUBERNETES_SERVICE_HOST is unset/.test(err.message),
    );
    // The target form through the registry: `kubernetes:///service.namespace:port`, credentials from $KUBECONFIG.
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = kubeconfig;
    try {
      const fromTarget = createResolverRegistry().create('kubernetes:///users.shop:http', {
        clock: systemClock,
        random: systemRandom,
        cluster: 'users',
      }) as KubernetesResolver;
      open.push(fromTarget);
      const rec2 = new Recorder();
      fromTarget.start(rec2.listener);
      await until(() => rec2.updates.length === 1, 'the set from the target');
      assert.deepEqual(rec2.keys, ['10.0.0.1:8080']);
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  it('outside a cluster: a kubeconfig user with a client certificate and key (file paths, no token)', async () => {
    const client = selfSigned('sidecarless-client');
    const mtls = await startKubernetesApi({ clientCa: client.cert, tokens: {} });
    try {
      mtls.apply(NS, slice('users-a', 8080, ['10.0.0.7']));
      writeFileSync(join(dir, 'client.crt'), client.cert);
      writeFileSync(join(dir, 'client.key'), client.key);
      writeFileSync(join(dir, 'ca.crt'), tlsMaterial().cert);
      const kubeconfig = join(dir, 'config-mtls');
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          'current-context': 'mtls',
          clusters: [{ name: 'c', cluster: { server: mtls.url, 'certificate-authority': 'ca.crt' } }],
          contexts: [{ name: 'mtls', context: { cluster: 'c', user: 'u', namespace: NS } }],
          users: [{ name: 'u', user: { 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key') } }],
        }),
      );
      const r = new KubernetesResolver({ service: 'users', port: 'http', kubeconfig, env: {}, backoff: FAST });
      open.push(r);
      const rec = new Recorder();
      r.start(rec.listener);
      await until(() => rec.updates.length === 1, 'the set over mutual TLS');
      assert.deepEqual(rec.keys, ['10.0.0.7:8080']);
      assert.equal(mtls.requests.at(-1)?.authorization, undefined);
    } finally {
      await Promise.all(open.splice(0).map((x) => x.close()));
      await mtls.close();
    }
  });
});
