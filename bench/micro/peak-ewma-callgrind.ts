/**
 * Peak-EWMA picks for an instruction and cache-miss count under callgrind (issue 14): load does not change it.
 * `valgrind --tool=callgrind --cache-sim=yes --LL=1048576,16,64 node --import tsx bench/micro/peak-ewma-callgrind.ts
 * --n 10000 --picks 200000 [--src DIR] [--cold]`; run it again with `--picks 0` and divide the difference of the
 * totals (`callgrind_annotate`) by the picks. The targets are `pickers-compare.ts`'s (every other one without an
 * estimate with `--cold`); both runs warm up the same way.
 *
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const root = flag('src') ?? '.';
const n = Number(flag('n') ?? 10_000);
const picks = Number(flag('picks') ?? 200_000);
const cold = process.argv.includes('--cold');
const at = (p: string) => import(pathToFileURL(resolve(root, 'src', p)).href);
const [registry, loadMod, endpoint, runtime] = await Promise.all([
  at('pickers/registry.ts'),
  at('pickers/load.ts'),
  at('common/endpoint.ts'),
  at('common/runtime.ts'),
]);
let a = n >>> 0;
const rnd = (): number => {
  a = (a + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const targets = Array.from({ length: n }, (_, i) => {
  const ep = endpoint.createEndpoint({ host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080 });
  const load = new loadMod.PeakEwma({ clock: runtime.systemClock });
  const rtt = 5 + rnd() * 50;
  if (!cold || i % 2 === 0) load.observe(rtt);
  return { key: ep.key, endpoint: ep, inFlight: Math.floor(rnd() * 10), load };
});
const { policy, config } = registry.createPickerRegistry().configure('peak-ewma');
const picker = policy.build(targets, config, { random: runtime.seededRandom(1), clock: runtime.systemClock });
const ctx = { method: 'GET', path: '/', authority: 'svc', headers: {} };
let last: unknown;
for (let i = 0; i < 300_000; i++) last = picker.pick(ctx); // warm up: optimised before counting
for (let i = 0; i < picks; i++) last = picker.pick(ctx);
process.stdout.write(`${String((last as { target?: { key: string } }).target?.key)} n=${n} picks=${picks}\n`);
