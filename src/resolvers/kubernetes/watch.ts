/**
 * Reading a Kubernetes watch stream: newline-delimited JSON events in chunks of any size (a chunk may hold several
 * events, or part of one, split anywhere, inside a UTF-8 character too), each event bounded in size, and a liveness
 * timer that aborts a stream on which nothing arrives.
 *
 * @module
 */
import type { Clock } from '../../common/runtime.js';
import { LineSplitter } from '../line-splitter.js';
import { watchLiveness } from '../liveness.js';
import { bad } from './parse.js';

/** How a watch ended without an error: the server closed it (`closed`) or the resourceVersion expired. */
export type WatchEnd = 'closed' | 'expired';

/**
 * Splits a byte stream into lines (without their `\n`; a trailing `\r` and blank lines are dropped). A line, or an
 * unterminated rest, longer than `maxLineBytes` is a `bad-response` error.
 */
export class LineReader extends LineSplitter {
  constructor(maxLineBytes: number) {
    super(maxLineBytes, (max) => bad(`Kubernetes watch event larger than ${max} bytes`));
  }
}

/** What {@link followWatch} needs. */
export interface FollowOptions {
  readonly clock: Clock;
  /** Abort the stream when nothing arrives for this long, ms. */
  readonly idleMs: number;
  readonly maxLineBytes: number;
  /** The error the stream is destroyed with when it stays silent (`quiet` ms). */
  onIdle(quiet: number): Error;
  /** Applies one line; `changed` when the set may have changed, `expired` ends the watch. */
  onLine(line: string): 'changed' | 'expired' | undefined;
  /** Called after each chunk's lines were applied. */
  onChunk(changed: boolean): void;
  debug(message: string): void;
}

/** Follows a watch body until it ends (`closed`), an event says `expired`, or it fails (rejects). */
export async function followWatch(
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown },
  options: FollowOptions,
): Promise<WatchEnd> {
  const reader = new LineReader(options.maxLineBytes);
  const liveness = watchLiveness(options.clock, options.idleMs, (quiet) => {
    options.debug(`nothing on the watch for ${quiet} ms; aborting`);
    body.destroy(options.onIdle(quiet));
  });
  const apply = (lines: string[]): WatchEnd | boolean => {
    let changed = false;
    for (const line of lines) {
      const result = options.onLine(line);
      if (result === 'expired') {
        options.onChunk(changed);
        return 'expired';
      }
      if (result === 'changed') changed = true;
    }
    options.onChunk(changed);
    return changed;
  };
  try {
    for await (const chunk of body) {
      const lines = reader.push(chunk);
      // Only whole lines count as life: bytes that never end a line (a trickle of blanks) would keep it open forever.
      if (lines.length > 0) liveness.seen();
      if (apply(lines) === 'expired') {
        body.destroy();
        return 'expired';
      }
    }
    return apply(reader.end()) === 'expired' ? 'expired' : 'closed';
  } finally {
    liveness.stop();
  }
}
