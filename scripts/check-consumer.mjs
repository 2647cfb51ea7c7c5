// What a consumer project sees: packs the tarball and, in throwaway projects under .tmp/consumer, compiles strict
// TypeScript against it (module nodenext and bundler, skipLibCheck false, no @types beyond @types/node), then runs an
// ESM and a CommonJS (`require`) program that import every entry point and send requests through the balancer to a
// local server. A second project compiles and runs against prom-client 14 (the oldest peer the range allows); a
// third installs the tarball alone (no optional peers) and imports the root entry.
//
// Usage: node scripts/check-consumer.mjs [--node24]   (--node24 also runs the programs on Node 24, through npm exec)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const work = path.join(root, '.tmp', 'consumer');
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit', env: process.env, timeout: 180_000 });
const write = (file, text) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};
const npmInstall = (cwd, packages) =>
  run('npm', ['install', '--no-audit', '--no-fund', '--silent', '--no-package-lock', ...packages], cwd);

if (!fs.existsSync(path.join(root, 'dist', 'index.d.ts'))) {
  // The tarball is packed without its prepack build (below): without dist/ it would hold no code at all.
  console.error('consumer: dist/index.d.ts is missing; run `npm run build` first');
  process.exit(1);
}
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
// --ignore-scripts: prepack builds; CI has built already, and a stale dist is what this check should see.
const [pack] = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
    cwd: root,
    encoding: 'utf8',
  }),
);
const tarball = path.join(work, pack.filename);
console.log(`consumer: packed ${pack.filename} (${pack.entryCount} files)`);
const own = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const tsVersion = own.devDependencies.typescript;

const runtimes = [['node', []]];
if (process.argv.includes('--node24')) runtimes.push(['npm', ['exec', '--yes', '--package=node@24', '--', 'node']]);

// 1. A TypeScript service with the optional peers installed.
const project = path.join(work, 'app');
write(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
// node-zookeeper-client without its @types: the published declarations of sidecarless/zookeeper must not need them.
npmInstall(project, [
  tarball,
  `typescript@${tsVersion}`,
  '@types/node@20',
  'prom-client@15',
  '@opentelemetry/api@1',
  'node-zookeeper-client@1',
]);

const program = `import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createClient,
  createResolverRegistry,
  isSidecarlessError,
  type ClientOptions,
  type ClusterStats,
  type UndiciDispatcher,
} from 'sidecarless';
import * as extend from 'sidecarless/extend';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import { registerOpenTelemetryMetrics } from 'sidecarless/opentelemetry';
import {
  registerZooKeeper,
  ZooKeeperError,
  ZooKeeperResolver,
  type ZooKeeperResolverOptions,
  type ZooKeeperResolverStats,
} from 'sidecarless/zookeeper';

const server = createServer((req, res) => res.end(\`ok \${req.headers.host}\`));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
const options: ClientOptions = { name: 'svc', target: \`static://127.0.0.1:\${port}\`, retry: { maxAttempts: 2 } };
// The README's hashKey function: its parameter is typed from the option (no annotation under strict).
const hashed: ClientOptions = {
  target: \`static://127.0.0.1:\${port}\`,
  picker: { name: 'maglev', hashKey: (ctx) => ctx.path.split('/')[2] },
};
const client = createClient(options);
const res = await client.fetch('http://svc/');
const text = await res.text();
// Node's global fetch with the balanced dispatcher, typed by @types/node (no cast).
const dispatcher: UndiciDispatcher = client.dispatcher;
const viaGlobal = await fetch('http://svc/global', { dispatcher });
const global = client.globalDispatcher();
const stats: readonly ClusterStats[] = client.stats().clusters;
await client.close();
// sidecarless/zookeeper: constructed and closed without a server (no connection is opened before start).
const zkOptions: ZooKeeperResolverOptions = { connect: '127.0.0.1:2181/apps', path: '/services/users' };
const zk = new ZooKeeperResolver(zkOptions);
const zkStats: ZooKeeperResolverStats = zk.stats;
zk.close();
const zkRegistry = registerZooKeeper(createResolverRegistry());
if (!zkRegistry.has('zookeeper') || zkStats.sessions !== 0 || !(new ZooKeeperError('timeout', 't') instanceof Error)) {
  throw new Error('unexpected sidecarless/zookeeper');
}
await new Promise((resolve) => server.close(resolve));
if (text !== 'ok svc' || (await viaGlobal.text()) !== 'ok svc' || stats.length !== 1) throw new Error('unexpected answer');
await createClient(hashed).close();
console.log(
  'consumer esm ok on', process.version,
  typeof isSidecarlessError, typeof registerPrometheusMetrics, typeof registerOpenTelemetryMetrics,
  typeof global.dispatch, Object.keys(extend).length > 0,
);
`;
write(path.join(project, 'src', 'main.ts'), program);
for (const [name, compilerOptions] of [
  ['nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }],
  ['bundler', { module: 'esnext', moduleResolution: 'bundler' }],
]) {
  write(
    path.join(project, `tsconfig.${name}.json`),
    JSON.stringify(
      {
        compilerOptions: {
          ...compilerOptions,
          target: 'es2022',
          lib: ['es2022'], // a Node service: no DOM, so @types/node's RequestInit (with `dispatcher`) applies
          strict: true,
          skipLibCheck: false,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          types: ['node'],
          outDir: `out-${name}`,
        },
        include: ['src'],
      },
      null,
      2,
    ),
  );
  console.log(`consumer: tsc (${name}, strict, skipLibCheck false)`);
  run(path.join(project, 'node_modules', '.bin', 'tsc'), ['-p', `tsconfig.${name}.json`], project);
}

write(
  path.join(project, 'cjs.cjs'),
  `const http = require('node:http');
const { createClient } = require('sidecarless');
const extend = require('sidecarless/extend');
const { registerPrometheusMetrics } = require('sidecarless/prometheus');
const { registerOpenTelemetryMetrics } = require('sidecarless/opentelemetry');
const { ZooKeeperResolver } = require('sidecarless/zookeeper');

const server = http.createServer((req, res) => res.end('ok ' + req.headers.host));
server.listen(0, '127.0.0.1', async () => {
  const client = createClient({ target: 'static://127.0.0.1:' + server.address().port });
  const text = await (await client.fetch('http://svc/')).text();
  await client.close();
  server.close();
  if (text !== 'ok svc') throw new Error('unexpected answer ' + text);
  console.log('consumer cjs ok on', process.version, typeof extend.Backoff, typeof registerPrometheusMetrics,
    typeof registerOpenTelemetryMetrics, typeof ZooKeeperResolver);
});
`,
);
for (const [cmd, pre] of runtimes) {
  run(cmd, [...pre, 'out-nodenext/main.js'], project);
  run(cmd, [...pre, 'cjs.cjs'], project);
}

// 2. prom-client 14, the oldest the peer range allows: the prometheus entry's declarations compile against it (its
// Registry is not generic), and the exporter registers on it.
const prom14 = path.join(work, 'prom14');
write(
  path.join(prom14, 'package.json'),
  JSON.stringify({ name: 'consumer-prom14', private: true, type: 'module' }, null, 2),
);
npmInstall(prom14, [tarball, `typescript@${tsVersion}`, '@types/node@20', 'prom-client@14']);
write(
  path.join(prom14, 'src', 'main.ts'),
  `import { Registry } from 'prom-client';
import { createClient } from 'sidecarless';
import { registerPrometheusMetrics, type PrometheusRegistry } from 'sidecarless/prometheus';

const registry = new Registry();
const asOption: PrometheusRegistry = registry;
const client = createClient({ name: 'svc', target: 'static://127.0.0.1:1' });
const registration = registerPrometheusMetrics(client, { registry: asOption });
const text = await registry.metrics();
registration.unregister();
await client.close();
if (!text.includes('sidecarless_requests_total')) throw new Error('no series on prom-client 14');
console.log('consumer prom-client 14 ok on', process.version);
`,
);
write(
  path.join(prom14, 'tsconfig.json'),
  JSON.stringify(
    {
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022'],
        strict: true,
        skipLibCheck: false,
        types: ['node'],
        outDir: 'out',
      },
      include: ['src'],
    },
    null,
    2,
  ),
);
console.log('consumer: tsc against prom-client 14 (strict, skipLibCheck false)');
run(path.join(prom14, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], prom14);
run('node', ['out/main.js'], prom14);

// 3. The tarball alone: the optional peers are optional (the root and extend entries load without them).
const bare = path.join(work, 'bare');
write(path.join(bare, 'package.json'), JSON.stringify({ name: 'consumer-bare', private: true }, null, 2));
npmInstall(bare, [tarball]);
const bareCheck = `const { createClient } = require('sidecarless'); require('sidecarless/extend');
import('sidecarless').then((m) => { if (m.createClient !== createClient) throw new Error('two copies');
  console.log('consumer bare ok on', process.version); });`;
for (const [cmd, pre] of runtimes) run(cmd, [...pre, '-e', bareCheck], bare);

console.log('consumer: all checks passed');
