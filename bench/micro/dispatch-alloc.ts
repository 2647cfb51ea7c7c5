/**
 * Where the dispatch bench's bytes go (issue 14): V8's sampling heap profiler, with the objects that young and full
 * collections freed kept in the profile (so garbage is counted, not only what survives), over `--count` requests of
 * one contender, 8 in flight, through `dispatcher.request({ origin, path, method })` to 2 backends in a child
 * process. Prints bytes per request by allocating function (`file:line name`), largest first, and the total.
 *
 * `node --import tsx bench/micro/dispatch-alloc.ts --contender balanced-pool|sidecarless|lean [--count 20000]
 * [--interval 32] [--top 40]`. Sampling is statistical: with the default interval (32 bytes) and 20,000 requests a
 * row of 16 bytes a request is counted within a few percent.
 *
 * @module
 */
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { startBackends, startContender } from './backends.js';

const { values: args } = parseArgs({
  options: {
    contender: { type: 'string', default: 'sidecarless' },
    count: { type: 'string', default: '20000' },
    interval: { type: 'string', default: '32' },
    top: { type: 'string', default: '40' },
    stacks: { type: 'string' },
  },
});
const COUNT = Number(args.count);
const IN_FLIGHT = 8;

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const { child, addresses } = await startBackends(2);
const { dispatcher, origin, close } = await startContender(args.contender as string, addresses);

async function run(count: number): Promise<void> {
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < count) {
      sent++;
      const { body } = await dispatcher.request({ origin, path: '/bench', method: 'GET' });
      await body.dump();
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

await run(Math.min(COUNT, 10_000)); // warm-up: connections open, code optimised
const session = new Session();
session.connect();
await session.post('HeapProfiler.startSampling', {
  samplingInterval: Number(args.interval),
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
} as never);
await run(COUNT);
const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: ProfileNode } };
session.disconnect();
await close();
child.disconnect();

const bySite = new Map<string, number>();
let total = 0;
const stacks = new Map<string, number>();
const name = (node: ProfileNode): string => {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^.*\/(node_modules|src)\//, '$1/');
  return `${file}:${lineNumber + 1} ${functionName || '(anonymous)'}`;
};
const walk = (node: ProfileNode, path: string[]): void => {
  const key = name(node);
  if (node.selfSize > 0) {
    bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    // --stacks <substring>: the callers (innermost last) of the sites whose name contains it.
    if (args.stacks !== undefined && key.includes(args.stacks)) {
      const stack = [...path.slice(-6), key].join(' < ');
      stacks.set(stack, (stacks.get(stack) ?? 0) + node.selfSize);
    }
  }
  for (const c of node.children) walk(c, [...path, key]);
};
walk(profile.head, []);
for (const [stack, bytes] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  console.log(`${(bytes / COUNT).toFixed(1).padStart(8)}  ${stack}`);
}
const rows = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top));
for (const [site, bytes] of rows) console.log(`${(bytes / COUNT).toFixed(1).padStart(8)}  ${site}`);
console.log(`${(total / COUNT).toFixed(1).padStart(8)}  total (${args.contender}, ${COUNT} requests)`);
