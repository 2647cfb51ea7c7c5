// Kubernetes discovery end to end through `createClient`: real HTTP backends on 127.0.0.1 as the pods, the API
// double serving their addresses in EndpointSlices. Pods becoming ready and unready, a rolling update, scale to zero
// and back, an API server restart, zones.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  type Client,
  createClient,
  KubernetesError,
  KubernetesResolver,
  type KubernetesResolverEvent,
  type PickMessage,
} from 'sidecarless';
import { type Backend, startBackends, stopAll } from '../helpers/backends.js';
import { runExample } from '../helpers/run-example.js';
import {
  endpointSlice,
  type KubernetesApiDouble,
  type SliceEndpointSpec,
  startKubernetesApi,
  tlsMaterial,
} from '../helpers/kubernetes-api.js';

const NS = 'shop';
const FAST = { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 };

/** Polls `predicate` every 10 ms, at most `timeoutMs`. */
async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let api: KubernetesApiDouble;
let backends: Backend[];
const clients: Client[] = [];
/** The resolver of each client made by {@link client}. */
const resolverOf = new Map<Client, KubernetesResolver>();

/** A pod: backend `i` on 127.0.0.1 with its conditions. */
const pod = (i: number, extra: Omit<SliceEndpointSpec, 'addresses'> = {}): SliceEndpointSpec => ({
  addresses: ['127.0.0.1'],
  pod: `users-${i}`,
  ...extra,
});

/**
 * Publishes the pods as one slice per backend port (all pods share the address 127.0.0.1, so each needs its own port:
 * the named port `http` maps to the backend's port in its own slice, as named ports may differ between slices).
 */
function publish(pods: ReadonlyMap<number, Omit<SliceEndpointSpec, 'addresses'>>): void {
  const wanted = new Set([...pods.keys()].map((i) => `users-${i}`));
  for (const [i, spec] of pods) {
    api.apply(
      NS,
      endpointSlice(`users-${i}`, 'users', [{ name: 'http', port: (backends[i] as Backend).port }], [pod(i, spec)]),
    );
  }
  for (let i = 0; i < backends.length; i++) {
    if (!wanted.has(`users-${i}`)) {
      try {
        api.delete(NS, `users-${i}`);
      } catch {
        // not published
      }
    }
  }
}

function client(options: { zone?: string; localZone?: string } = {}): Client {
  const resolver = new KubernetesResolver({
    service: 'users',
    namespace: NS,
    port: 'http',
    apiServer: api.url,
    token: 'test-token',
    tls: { ca: tlsMaterial().cert },
    env: {},
    minRelistIntervalMs: 20,
    backoff: FAST,
    ...(options.zone !== undefined ? { zone: options.zone } : {}),
  });
  const c = createClient({
    target: resolver,
    endpointHeader: 'x-endpoint',
    waitForReadyTimeoutMs: 5000,
    drainTimeoutMs: 2000,
    ...(options.localZone !== undefined ? { zoneAware: { localZone: options.localZone, minClusterSize: 1 } } : {}),
  });
  clients.push(c);
  resolverOf.set(c, resolver);
  return c;
}

const keyOf = (i: number) => `127.0.0.1:${(backends[i] as Backend).port}`;
type PodSpec = Omit<SliceEndpointSpec, 'addresses'>;
const pods = (...entries: [number, PodSpec][]) => new Map<number, PodSpec>(entries);
const keys = (c: Client) => c.endpoints.map((e) => e.key).sort();

describe('Kubernetes discovery through createClient', () => {
  before(async () => {
    api = await startKubernetesApi();
    backends = await startBackends(6);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    publish(pods());
  });
  after(async () => {
    await api.close();
    await stopAll(backends);
  });

  it('follows pods becoming ready and unready', async () => {
    publish(pods([0, {}], [1, { ready: false }], [2, {}]));
    const c = client();
    await c.ready();
    assert.deepEqual(keys(c), [keyOf(0), keyOf(2)].sort());
    publish(pods([0, {}], [1, {}], [2, { ready: false }]));
    await until(() => keys(c).join() === [keyOf(0), keyOf(1)].sort().join(), 'pod 1 ready, pod 2 unready');
    const before = (backends[2] as Backend).hits;
    for (let i = 0; i < 10; i++) assert.equal((await c.fetch('http://users/')).status, 200);
    assert.equal((backends[2] as Backend).hits, before, 'no request to the unready pod');
  });

  it('rolling update: zero caller errors, no request to a terminating pod after the update is seen', async () => {
    publish(pods([0, {}], [1, {}]));
    const c = client();
    await c.ready();
    // Picks after the client saw each pod terminate must not name it.
    const terminatingSince = new Map<string, boolean>();
    const violations: string[] = [];
    const onPick = (m: unknown) => {
      const { endpoint } = m as PickMessage;
      if (terminatingSince.get(endpoint) === true) violations.push(endpoint);
    };
    diagnostics.subscribe('sidecarless:pick', onPick);
    let errors = 0;
    let ok = 0;
    let running = true;
    const load = Array.from({ length: 4 }, async () => {
      for (let n = 0; running && n < 5000; n++) {
        try {
          const res = await c.fetch('http://users/');
          await res.text();
          if (res.status === 200) ok++;
          else errors++;
        } catch {
          errors++;
        }
      }
    });
    const step = async (
      pods: Map<number, Omit<SliceEndpointSpec, 'addresses'>>,
      expected: number[],
      terminating: number[],
    ) => {
      publish(pods);
      const want = expected.map(keyOf).sort().join();
      await until(() => keys(c).join() === want, `the set ${want}`);
      for (const i of terminating) terminatingSince.set(keyOf(i), true);
      const mark = ok;
      await until(() => ok >= mark + 20, 'requests after the step');
    };
    try {
      const terminating = { ready: false, serving: true, terminating: true };
      await step(pods([0, {}], [1, {}], [2, { ready: false }]), [0, 1], []); // surge pod created
      await step(pods([0, terminating], [1, {}], [2, {}]), [1, 2], [0]); // new pod ready, old one terminating
      await step(pods([0, terminating], [1, terminating], [2, {}], [3, {}]), [2, 3], [1]);
      await step(pods([2, {}], [3, {}]), [2, 3], []); // old pods gone
    } finally {
      running = false;
      await Promise.all(load);
      diagnostics.unsubscribe('sidecarless:pick', onPick);
    }
    assert.equal(errors, 0, 'no caller errors');
    assert.deepEqual(violations, [], 'no request to a terminating pod after the update was seen');
    assert.ok(ok > 80);
  });

  it('uses serving terminating pods when no pod is ready (as kube-proxy does)', async () => {
    publish(
      pods(
        [0, { ready: false, serving: true, terminating: true }],
        [1, { ready: false, serving: false, terminating: true }],
      ),
    );
    const c = client();
    await c.ready();
    assert.deepEqual(keys(c), [keyOf(0)]);
    assert.equal((await c.fetch('http://users/')).status, 200);
  });

  it('scales to zero and back: a request waits for the pods to come back', async () => {
    publish(pods([0, {}]));
    const c = client();
    await c.ready();
    publish(pods());
    await until(() => c.endpoints.length === 0, 'scale to zero');
    const waiting = c.fetch('http://users/');
    await new Promise((r) => setTimeout(r, 100));
    publish(pods([4, {}]));
    const res = await waiting;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-endpoint'), keyOf(4));
  });

  it('survives an API server restart: serves the last known set while down, follows changes after', async () => {
    publish(pods([0, {}], [1, {}]));
    const c = client();
    await c.ready();
    await api.stop();
    for (let i = 0; i < 6; i++) assert.equal((await c.fetch('http://users/')).status, 200);
    assert.equal(c.endpoints.length, 2);
    publish(pods([1, {}], [5, {}])); // changed while down; the restarted server lost its watch history
    await api.restart();
    await until(() => keys(c).join() === [keyOf(1), keyOf(5)].sort().join(), 'the set after the restart', 8000);
  });

  it('zones steer traffic: endpoints carry their zone, and hints.forZones narrow the set', async () => {
    publish(pods([0, { zone: 'z1' }], [1, { zone: 'z1' }], [2, { zone: 'z2' }], [3, { zone: 'z2' }]));
    const zonal = client({ localZone: 'z1' });
    await zonal.ready();
    const served = new Set<string>();
    for (let i = 0; i < 30; i++) served.add((await zonal.fetch('http://users/')).headers.get('x-endpoint') ?? '');
    assert.deepEqual([...served].sort(), [keyOf(0), keyOf(1)].sort(), 'zone-aware routing keeps traffic in z1');

    publish(
      pods(
        [0, { zone: 'z1', forZones: ['z2'] }],
        [1, { zone: 'z1', forZones: ['z1'] }],
        [2, { zone: 'z2', forZones: ['z2'] }],
      ),
    );
    const hinted = client({ zone: 'z2' });
    await hinted.ready();
    await until(() => hinted.endpoints.length === 2, 'the hinted set');
    assert.deepEqual(keys(hinted), [keyOf(0), keyOf(2)].sort());
  });

  describe('entries that cannot be used', () => {
    const errors: KubernetesError[] = [];
    const onEvent = (m: unknown) => {
      const event = m as KubernetesResolverEvent;
      if (event.kind === 'error' && event.error instanceof KubernetesError) errors.push(event.error);
    };
    before(() => diagnostics.subscribe('sidecarless:kubernetes', onEvent));
    afterEach(() => void errors.splice(0));
    after(() => diagnostics.unsubscribe('sidecarless:kubernetes', onEvent));
    const port = (i: number) => (backends[i] as Backend).port;
    const slice = (i: number, endpoints: SliceEndpointSpec[], addressType: 'IPv4' | 'IPv6' = 'IPv4') =>
      endpointSlice(`users-${i}`, 'users', [{ name: 'http', port: port(i) }], endpoints, addressType);

    it('regression (one malformed MODIFIED event, a port as a string, emptied the set with no error): the last set serves, a bad-response is reported', async () => {
      publish(pods([0, {}]));
      const c = client();
      await c.ready();
      const r = resolverOf.get(c) as KubernetesResolver;
      api.apply(NS, { ...slice(0, [pod(0)]), ports: [{ name: 'http', port: String(port(0)), protocol: 'TCP' }] });
      await until(() => errors.length >= 1, 'the error');
      assert.deepEqual(keys(c), [keyOf(0)], 'the last set stays');
      assert.equal((await c.fetch('http://users/')).status, 200);
      assert.equal(errors[0]?.reason, 'bad-response');
      assert.equal(errors[0]?.code, 'SIDECARLESS_RESOLVER_FAILED');
      assert.match(errors[0]?.message ?? '', /users-0 is malformed: .*port.*; keeping the last set/);
      assert.equal(r.stats.skipped, 1);
      assert.ok((c.stats().clusters[0]?.resolver.errors ?? 0) >= 1);
      // Fixed by the next change: followed again.
      publish(pods([1, {}]));
      await until(() => keys(c).join() === keyOf(1), 'the next good set');
    });

    it('regression (a MODIFIED event whose only address is 999.1.1.1 emptied the set with no error): the last set serves, the address is counted', async () => {
      publish(pods([0, {}]));
      const c = client();
      await c.ready();
      const r = resolverOf.get(c) as KubernetesResolver;
      api.apply(NS, slice(0, [{ addresses: ['999.1.1.1'] }]));
      await until(() => errors.length >= 1, 'the error');
      assert.deepEqual(keys(c), [keyOf(0)], 'the last set stays');
      assert.equal((await c.fetch('http://users/')).status, 200);
      assert.equal(errors[0]?.reason, 'bad-response');
      assert.match(errors[0]?.message ?? '', /users-0: Endpoint host "999\.1\.1\.1".*; keeping the last set/);
      assert.equal(r.stats.skipped, 1);
      // Next to a usable one, the unusable address is skipped (counted, reported) and the rest is the set.
      api.apply(NS, slice(0, [{ addresses: ['999.1.1.1'] }, pod(0)]));
      await until(() => errors.length >= 2, 'the second report');
      assert.match(errors[1]?.message ?? '', /skipped 1 unusable entry/);
      assert.doesNotMatch(errors[1]?.message ?? '', /keeping the last set/);
      assert.deepEqual(keys(c), [keyOf(0)]);
      assert.equal(r.stats.skipped, 2);
    });

    it('skips endpoints at 0.0.0.0, ::, 255.255.255.255 or a multicast address (counted, reported); with none usable the last set stays', async () => {
      publish(pods([0, {}]));
      const c = client();
      await c.ready();
      const r = resolverOf.get(c) as KubernetesResolver;
      api.apply(
        NS,
        slice(0, [
          { addresses: ['0.0.0.0'] },
          { addresses: ['255.255.255.255'] },
          { addresses: ['224.0.0.1'] },
          pod(0),
        ]),
      );
      await until(() => errors.length >= 1, 'the first report');
      assert.match(
        errors[0]?.message ?? '',
        /skipped 3 unusable entries \(first: .*"0\.0\.0\.0" is the unspecified address/,
      );
      assert.deepEqual(keys(c), [keyOf(0)]);
      api.apply(NS, slice(1, [{ addresses: ['::'] }, { addresses: ['ff02::1'] }], 'IPv6'));
      await until(() => errors.length >= 2, 'the second report');
      assert.match(errors[1]?.message ?? '', /skipped 2 unusable entries \(first: .*"::" is the unspecified address/);
      assert.equal(r.stats.skipped, 5);
      assert.deepEqual(keys(c), [keyOf(0)]);
      // None usable: the last set stays, and the report says so.
      api.apply(NS, slice(0, [{ addresses: ['0.0.0.0'] }]));
      await until(() => errors.length >= 3, 'the third report');
      assert.match(errors[2]?.message ?? '', /keeping the last set/);
      assert.deepEqual(keys(c), [keyOf(0)]);
      assert.equal((await c.fetch('http://users/')).status, 200);
    });

    it('a slice scaled to zero endpoints (valid, empty) still empties the set, with no error', async () => {
      publish(pods([0, {}]));
      const c = client();
      await c.ready();
      api.apply(NS, slice(0, []));
      await until(() => c.endpoints.length === 0, 'the empty set');
      assert.equal(errors.length, 0);
      assert.equal(c.stats().clusters[0]?.resolver.errors, 0);
    });
  });

  it('examples/kubernetes.ts runs against the double and moves traffic off the terminating pod', async () => {
    const out = await runExample('kubernetes.ts');
    assert.match(out, /answers: pod [ab], pod [ab], pod [ab], pod [ab]/);
    assert.match(out, /pod a/);
    assert.match(out, /after pod a started terminating: pod b, pod b, pod b/);
  });
});
