/**
 * Reading a discovery server's HTTP response body with a size cap, shared by the Consul and etcd resolvers.
 *
 * @module
 */

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
