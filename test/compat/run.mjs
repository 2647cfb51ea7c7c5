// undici compatibility: users pass client.dispatcher to *their* undici, whatever its major. For each major, installs
// undici into a throwaway folder (.tmp/compat/undici<N>), links this repository's build as `sidecarless`, type-checks
// test/compat/program.ts there (strict, no cast) and runs it: undici's request, fetch, stream and
// pipeline through client.dispatcher, Node's global fetch with `dispatcher`, and client.globalDispatcher() in the
// global slot, against local servers. Node 20, 22 and 24 (undici 8 needs Node >= 22.19, so it runs on 22 and 24).
//
// Usage: npm run build && node test/compat/run.mjs   (CI runs it after the build step)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
const node22 = ['npm', ['exec', '--yes', '--package=node@22', '--', 'node']];
const node24 = ['npm', ['exec', '--yes', '--package=node@24', '--', 'node']];
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit', timeout: 120_000 });

if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) throw new Error('build first: npm run build');

// @types/node per major: the Node versions the major supports (their RequestInit types Node's global fetch).
const majors = [
  { undici: '7', types: '20', runtimes: [['node', []], node22, node24] },
  { undici: '8', types: '24', runtimes: [node22, node24] },
];
for (const m of majors) {
  const dir = path.join(root, '.tmp', 'compat', `undici${m.undici}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  console.log(`\ncompat: undici@${m.undici}, @types/node@${m.types}`);
  run('npm', ['install', '--no-audit', '--no-fund', '--silent', `undici@${m.undici}`, `@types/node@${m.types}`], dir);
  // What `npm install sidecarless` gives, with the build of this checkout: a package whose own undici 7 resolves
  // from its folder, next to the user's undici.
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'sidecarless'), 'dir');
  fs.copyFileSync(path.join(import.meta.dirname, 'program.ts'), path.join(dir, 'program.ts'));
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022'], // a Node project: no DOM, so Node's RequestInit (with `dispatcher`) types global fetch
        strict: true,
        // The boundary with the user's undici is what this checks; scripts/check-consumer.mjs checks every .d.ts.
        skipLibCheck: true,
        exactOptionalPropertyTypes: true,
        types: ['node'],
        outDir: 'out',
      },
      files: ['program.ts'],
    }),
  );
  const installed = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', 'undici', 'package.json'), 'utf8'));
  console.log(`compat: tsc against undici ${installed.version}`);
  run(tsc, ['-p', 'tsconfig.json'], dir);
  for (const [cmd, pre] of m.runtimes) run(cmd, [...pre, 'out/program.js', installed.version], dir);
}
console.log('\ncompat: all undici majors passed');
