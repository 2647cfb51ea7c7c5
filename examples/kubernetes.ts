/**
 * Balance across the ready pods of a Kubernetes Service, following its EndpointSlices through the API server.
 *
 * Run: node --import tsx examples/kubernetes.ts [target]
 *
 * With a target (e.g. `kubernetes:///users.shop:http`) it fetches `http://users/` through it a few times, with the
 * credentials of the pod it runs in (its service account) or of your kubeconfig's current context. Without one it
 * runs standalone: it starts two HTTP backends and the Kubernetes API double used by the tests (HTTPS, a bearer
 * token), writes a kubeconfig for it, publishes both backends as pods of `users` in `shop`, then marks one as
 * terminating (a rolling update) and shows traffic leaving it.
 * In your own code, import from 'sidecarless' instead of '../src/index.js'.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '../src/index.js';
import { endpointSlice, startKubernetesApi, tlsMaterial } from '../test/helpers/kubernetes-api.js';

const cleanup: Array<() => Promise<void> | void> = [];
let target = process.argv[2];
let rollOut: (() => void) | undefined;

if (target === undefined) {
  const ports = await Promise.all(
    ['a', 'b'].map(
      (id) =>
        new Promise<number>((resolve) => {
          const server = http.createServer((_req, res) => res.end(`pod ${id}`));
          server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
          cleanup.push(() => void server.close());
        }),
    ),
  );
  const api = await startKubernetesApi({ tokens: { 'example-token': ['shop'] } });
  cleanup.push(() => api.close());
  const publish = (terminatingA: boolean) => {
    const [a, b] = ports as [number, number];
    const conditions = terminatingA ? { ready: false, serving: true, terminating: true } : { ready: true };
    api.apply('shop', endpointSlice('users-a', 'users', [{ name: 'http', port: a }], [{ addresses: ['127.0.0.1'], pod: 'users-a', zone: 'z1', ...conditions }]));
    api.apply('shop', endpointSlice('users-b', 'users', [{ name: 'http', port: b }], [{ addresses: ['127.0.0.1'], pod: 'users-b', zone: 'z2' }]));
  }; // prettier-ignore
  publish(false);
  rollOut = () => publish(true);
  // A kubeconfig as kubectl writes it; the resolver reads $KUBECONFIG when it does not run in a pod.
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-example-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'config'),
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: example',
      'clusters:',
      `- {name: double, cluster: {server: "${api.url}", certificate-authority-data: ${Buffer.from(tlsMaterial().cert).toString('base64')}}}`,
      'contexts:',
      '- {name: example, context: {cluster: double, user: reader, namespace: shop}}',
      'users:',
      '- {name: reader, user: {token: example-token}}',
    ].join('\n'),
  );
  process.env.KUBECONFIG = join(dir, 'config');
  delete process.env.KUBERNETES_SERVICE_HOST;
  target = 'kubernetes:///users.shop:http';
}

const client = createClient({ target });
try {
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await (await client.fetch('http://users/')).text());
  console.log(`answers: ${answers.join(', ')}`);
  if (rollOut !== undefined) {
    rollOut();
    for (let i = 0; i < 100 && client.endpoints.length !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    const after: string[] = [];
    for (let i = 0; i < 3; i++) after.push(await (await client.fetch('http://users/')).text());
    console.log(`after pod a started terminating: ${after.join(', ')}`);
  }
} finally {
  await client.close();
  for (const fn of cleanup) await fn();
}
