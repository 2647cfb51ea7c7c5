/**
 * Reading a discovery server's HTTP response body with a size cap, shared by the Consul and etcd resolvers.
 *
 * @module
 */
import type { Clock } from '../common/runtime.js';

/** A response body as undici hands it over: a stream of chunks that can be destroyed. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  /** Stops the stream (and its connection), with `error` as the reason. */
  destroy(error?: Error): unknown;
}

/**
 * Reads `body` to the end as UTF-8. Beyond `maxBytes` it destroys the body and throws what `tooLarge` returns
 * (each resolver's own `bad-response` error).
 *
 * @example
 * ```ts
 * const text = await readBody(res.body, 16 * 1024 * 1024, (max) => new ConsulError('bad-response', `over ${max}`));
 * ```
 */
export async function readBody(
  body: ResponseBody,
  maxBytes: number,
  tooLarge: (maxBytes: number) => Error,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The most of an error answer's body read for its detail, bytes. */
const ERROR_DETAIL_BYTES = 64 * 1024;

/**
 * Reads the body of an error answer (a non-200 status) for the error's detail: at most 64 KiB and for at most
 * `timeoutMs` on `clock`, then gives up with `''` (and destroys the body): a body trickled forever must not hold
 * the resolver. Never rejects.
 */
export async function readErrorDetail(
  body: ResponseBody,
  clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>,
  timeoutMs: number,
): Promise<string> {
  const timer = clock.setTimeout(() => body.destroy(), timeoutMs);
  try {
    return await readBody(body, ERROR_DETAIL_BYTES, () => new Error('too large'));
  } catch {
    return '';
  } finally {
    clock.clearTimeout(timer);
  }
}
