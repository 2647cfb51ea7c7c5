/**
 * One contender of the dispatch bench, for an instruction count under callgrind (issue 14): load does not change
 * instruction counts, so two runs of different request counts give the per-request cost as their difference.
 *
 * `node --import tsx bench/micro/dispatch-callgrind.ts --contender balanced-pool|sidecarless|lean --count 600
 * [--baseline <another copy's src/index.ts>]`: sends `--count` requests, 8 in flight, through
 * `dispatcher.request({ origin, path, method })`, to 2 backends in a child process (not traced), then exits. Run it
 * under `valgrind --tool=callgrind --dump-instr=no` with two counts (say 100 and 600) and divide the difference of
 * the totals (`callgrind_annotate` prints them) by the difference of the counts.
 *
 * @module
 */
import { startBackends, startContender } from './backends.js';
import { parseArgs } from 'node:util';
import { createClient } from '../../src/index.js';
import { importBaseline } from '../baseline.js';

const { values: args } = parseArgs({
  options: {
    contender: { type: 'string', default: 'sidecarless' },
    count: { type: 'string', default: '600' },
    baseline: { type: 'string' },
  },
});
const COUNT = Number(args.count);
const IN_FLIGHT = 8;

const { child, addresses } = await startBackends(2);

const create = (await importBaseline(args.baseline)) ?? createClient;
// No deadline: under callgrind a request takes 50 times as long, and the first ones (compiling) could pass 15 s.
const { dispatcher, origin, close } = await startContender(args.contender as string, addresses, {
  create,
  options: { timeoutMs: 0 },
  readyMs: 600_000,
});

let sent = 0;
async function worker(): Promise<void> {
  while (sent < COUNT) {
    sent++;
    const { body } = await dispatcher.request({ origin, path: '/bench', method: 'GET' });
    await body.dump();
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
await close();
child.disconnect();
