/**
 * How long a `ring-hash` build blocks the event loop (issue 14, "Scale"): not a test, a measurement.
 *
 * Times, in wall time and the main thread's CPU time (Linux `/proc/thread-self/schedstat`, as bench/scale.ts reads
 * it): `ringHashPolicy.build` with default settings (1024 vnodes per endpoint, ring capped at 8M entries) at
 * N = 1,000 / 10,000 / 50,000 from an empty cache (a cluster's first build) and again after one endpoint left (the
 * cached rebuild); Maglev's build at N = 10,000; and a balancer rebuild of N = 10,000 with ring hash: the stall of
 * its synchronous part and, when the build is sliced, the longest slice and the number of turns.
 *
 * And a cluster through the package entry (`--cluster`, ring hash, maglev or round robin, a process each is
 * better): 10,000 idle endpoints pushed by a resolver, then 1 % of them replaced, then one removed; for each, the
 * main thread's CPU time of the resolver's push (the synchronous part) and of the longest turns of the event loop
 * over the next seconds (a chain of `setImmediate` callbacks, the time between two of them), which covers the
 * update's slices and switch and the picker's steps.
 *
 *   node --import tsx bench/micro/ring-build.ts [--n 1000,10000,50000] [--cluster ring-hash|maglev|round-robin]
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setImmediate as turn } from 'node:timers/promises';
import { createClient, type Endpoint, type Resolver, type ResolverListener } from 'sidecarless';
import { Balancer, type BalancedHost } from '../../src/balancer/balancer.js';
import { createEndpoint } from '../../src/common/endpoint.js';
import { maglevPolicy } from '../../src/pickers/maglev.js';
import { createPickerRegistry } from '../../src/pickers/registry.js';
import { ringHashPolicy } from '../../src/pickers/ring-hash.js';
import { FakeClock, seededRandom } from '../../test/helpers/fake-clock.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '1000,10000,50000' }, cluster: { type: 'string' } },
});
const sizes = (values.n ?? '').split(',').map(Number);

const SCHEDSTAT = '/proc/thread-self/schedstat';
const threadMs = (): number =>
  existsSync(SCHEDSTAT) ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6 : process.cpuUsage().user / 1e3;
function timed<R>(fn: () => R): { wall: number; main: number; result: R } {
  const m = threadMs();
  const t = performance.now();
  const result = fn();
  return { wall: performance.now() - t, main: threadMs() - m, result };
}
const fmt = (t: { wall: number; main: number }) => `${t.wall.toFixed(1)} ms (main CPU ${t.main.toFixed(1)})`;

interface Host extends BalancedHost {
  usable: boolean;
}
function hosts(n: number): Host[] {
  return Array.from({ length: n }, (_, i) => {
    const endpoint = createEndpoint({ host: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port: 8080 });
    return { key: endpoint.key, endpoint, inFlight: 0, usable: true, weightFactor: 1 };
  });
}
const env = { random: seededRandom(1), clock: new FakeClock() };

async function balancerRun(label: string, population: Host[][]): Promise<void> {
  const registry = createPickerRegistry();
  const policy = registry.configure({ name: 'ring-hash', hashKey: { header: 'x-user' } });
  const b = new Balancer<Host>({
    cluster: 'bench',
    policy,
    environment: env,
    random: seededRandom(2),
    zone: undefined,
    panicThreshold: 50,
    eligible: () => true,
    onPanic: () => {},
  });
  for (const [i, set] of population.entries()) {
    const sync = timed(() => b.rebuild(set));
    const slices: number[] = [];
    while (b.building && slices.length < 100_000) {
      const m = threadMs();
      await turn();
      slices.push(threadMs() - m);
    }
    slices.sort((x, y) => y - x);
    const total = slices.reduce((x, y) => x + y, 0);
    console.log(
      `balancer rebuild N=${set.length} ring-hash (${label}, ${i === 0 ? 'first build' : 'one endpoint fewer'}): ` +
        `synchronous ${fmt(sync)}` +
        (slices.length > 0
          ? `; then ${slices.length} turns, ${total.toFixed(0)} ms main CPU in all, longest ${slices
              .slice(0, 3)
              .map((x) => x.toFixed(1))
              .join(', ')} ms`
          : ''),
    );
  }
}

async function clusterRun(picker: string): Promise<void> {
  class PushResolver implements Resolver {
    listener: ResolverListener | undefined;
    start(listener: ResolverListener): void {
      this.listener = listener;
    }
    push(set: readonly Endpoint[]): void {
      this.listener?.onUpdate(set);
    }
    close(): void {}
  }
  const resolver = new PushResolver();
  const option =
    picker === 'ring-hash' || picker === 'maglev' ? { name: picker, hashKey: { header: 'x-user' } } : picker;
  const client = createClient({ clusters: { svc: { target: resolver, picker: option } } });
  const idle = (from: number, n: number): Endpoint[] =>
    Array.from({ length: n }, (_, i) =>
      createEndpoint({ host: `127.0.${1 + (((from + i) >> 8) % 250)}.${(from + i) & 255}`, port: 20_000 }),
    );
  const watch = async (label: string, push: () => void): Promise<void> => {
    const turns: number[] = [];
    let stop = false;
    let last = 0;
    const tick = (): void => {
      const now = threadMs();
      turns.push(now - last);
      last = now;
      if (!stop) setImmediate(tick);
    };
    const m = threadMs();
    push();
    const sync = threadMs() - m;
    last = threadMs();
    setImmediate(tick);
    await new Promise((done) => setTimeout(done, 4000));
    stop = true;
    turns.sort((a, b) => b - a);
    const longest = turns.slice(0, 3).map((x) => x.toFixed(1));
    console.log(`${picker}, ${label}: push ${sync.toFixed(1)} ms main CPU, longest turns ${longest.join(', ')} ms`);
  };
  const set = idle(0, 10_000);
  await watch('first set of 10,000', () => resolver.push(set));
  await watch('1 % replaced', () => resolver.push([...set.slice(100), ...idle(20_000, 100)]));
  await watch('one more removed', () => resolver.push([...set.slice(101), ...idle(20_000, 100)]));
  await client.close();
}

if (values.cluster !== undefined) {
  await clusterRun(values.cluster);
} else {
  for (const n of sizes) {
    const targets = hosts(n);
    const config = ringHashPolicy.parseConfig({ hashKey: { header: 'x-user' } });
    const first = timed(() => ringHashPolicy.build(targets, config, env));
    const size = (first.result as unknown as { hashes: Uint32Array }).hashes.length;
    const again = timed(() => ringHashPolicy.build(targets.slice(1), config, env));
    console.log(`ring-hash N=${n} ring=${size}: first build ${fmt(first)}; one endpoint fewer (cached) ${fmt(again)}`);
  }

  {
    const targets = hosts(10_000);
    const config = maglevPolicy.parseConfig({ hashKey: { header: 'x-user' } });
    for (let i = 0; i < 3; i++)
      console.log(`maglev N=10000: build ${fmt(timed(() => maglevPolicy.build(targets, config, env)))}`);
  }

  const population = hosts(10_000);
  await balancerRun('cold code', [population, population.slice(1)]);
  await balancerRun('warm code', [hosts(10_000).map((h) => ({ ...h })), population.slice(2)]);
}
