// What a consumer project sees: packs the tarball and, in throwaway projects under .tmp/consumer, compiles strict
// TypeScript against it (module nodenext and bundler, skipLibCheck false, no extra @types), then runs an ESM and a
// CommonJS program that import every entry point and send a request through the balancer to a local server.
//
// Usage: node scripts/check-consumer.mjs [--node24]   (--node24 also runs the programs on Node 24)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const work = path.join(root, '.tmp', 'consumer');
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit', env: process.env });
const write = (file, text) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const [pack] = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }),
);
const tarball = path.join(work, pack.filename);
const own = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const tsVersion = own.devDependencies.typescript;
const nodeTypes = own.devDependencies['@types/node'];

const project = path.join(work, 'app');
write(
  path.join(project, 'package.json'),
  JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2),
);
run(
  'npm',
  [
    'install',
    '--no-audit',
    '--no-fund',
    '--silent',
    tarball,
    `typescript@${tsVersion}`,
    `@types/node@${nodeTypes}`,
    'prom-client@15',
    '@opentelemetry/api@1',
  ],
  project,
);

const program = `import { createClient, isSidecarlessError, type ClientOptions, type ClusterStats } from 'sidecarless';
import * as extend from 'sidecarless/extend';
import { registerPrometheusMetrics } from 'sidecarless/prometheus';
import * as otel from 'sidecarless/opentelemetry';
import { createServer } from 'node:http';

const server = createServer((_req, res) => res.end('ok'));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as { port: number };
const options: ClientOptions = { target: \`static://127.0.0.1:\${port}\` };
const client = createClient(options);
const res = await client.fetch('http://svc/');
const text = await res.text();
const stats: ClusterStats[] = client.stats().clusters;
await client.close();
server.close();
if (text !== 'ok' || stats.length !== 1) throw new Error('unexpected answer');
console.log('consumer ok', typeof isSidecarlessError, typeof registerPrometheusMetrics, Object.keys(extend).length > 0, Object.keys(otel).length > 0);
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
  console.log(`consumer: tsc (${name}, skipLibCheck false)`);
  run(path.join(project, 'node_modules', '.bin', 'tsc'), ['-p', `tsconfig.${name}.json`], project);
}

write(
  path.join(project, 'cjs.cjs'),
  `const { createClient } = require('sidecarless');
const extend = require('sidecarless/extend');
require('sidecarless/prometheus');
require('sidecarless/opentelemetry');
const client = createClient({ target: 'static://127.0.0.1:1' });
client.close().then(() => console.log('consumer cjs ok', typeof extend));
`,
);
const runtimes = [['node', []]];
if (process.argv.includes('--node24')) runtimes.push(['npm', ['exec', '--yes', '--package=node@24', '--', 'node']]);
for (const [cmd, pre] of runtimes) {
  run(cmd, [...pre, '-e', 'console.log("consumer: node", process.version)'], project);
  run(cmd, [...pre, 'out-nodenext/main.js'], project);
  run(cmd, [...pre, 'cjs.cjs'], project);
}
console.log('consumer: all checks passed');
