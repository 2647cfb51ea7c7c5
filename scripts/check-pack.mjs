// Fails when `npm pack` would ship anything users do not need: only the compiled library (dist/, JavaScript and
// declarations), the README, the changelog, the license and package.json belong in the tarball.
import { execFileSync } from 'node:child_process';

const [pack] = JSON.parse(
  execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' }),
);
const allowed = /^(dist\/.+\.(js|d\.ts)|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/;
const unexpected = pack.files.map((f) => f.path).filter((path) => !allowed.test(path));
const missing = [
  'dist/index.js',
  'dist/index.d.ts',
  'dist/extend.js',
  'dist/extend.d.ts',
  'dist/exporters/prometheus.js',
  'dist/exporters/opentelemetry.js',
  'dist/zookeeper.js',
  'dist/zookeeper.d.ts',
].filter((path) => !pack.files.some((f) => f.path === path));
if (unexpected.length > 0 || missing.length > 0) {
  console.error(
    `npm pack: unexpected files: ${unexpected.join(', ') || 'none'}; missing: ${missing.join(', ') || 'none'}`,
  );
  process.exit(1);
}
console.log(`npm pack: ${pack.files.length} files, ${(pack.size / 1024).toFixed(1)} kB packed, only dist/ and docs`);
