// HTTP/2 clusters found wrong by probe 18: a response the caller stops part-way left its stream open on the server
// (undici 7 closes it with NO_ERROR, which sends no reset), so a server with a small stream limit refused every later
// stream and the healthy endpoint was ejected. A real node:http2 server on 127.0.0.1.
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { constants as h2constants } from 'node:http2';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createClient, findSidecarlessError } from 'sidecarless';
import { type RawH2Server, rawH2Server } from '../helpers/h2-raw-server.js';

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers) close();
});

/** Rejects with a HANG error after `ms`, so a promise that never settles fails the test instead of stalling it. */
function bounded<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} not settled after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

const code = (err: unknown): string =>
  findSidecarlessError(err)?.code ?? (err as { code?: string }).code ?? (err as { name?: string }).name ?? String(err);

const CHUNK = Buffer.alloc(16 * 1024, 'c');

interface StreamLog {
  /** Streams the server still holds open. */
  open: number;
  /** The reset code each closed stream of `/big` ended with. */
  readonly rstCodes: number[];
}

/**
 * A server taking `limit` streams at once: `/big` answers 4 MiB (more than the flow-control window, so the rest waits
 * for a reader), anything else `ok`.
 */
async function limitedServer(limit: number): Promise<{ server: RawH2Server; log: StreamLog }> {
  const log: StreamLog = { open: 0, rstCodes: [] };
  const server = await rawH2Server(
    (stream: http2.ServerHttp2Stream, headers) => {
      log.open++;
      const big = headers[':path'] === '/big';
      stream.once('close', () => {
        log.open--;
        if (big) log.rstCodes.push(stream.rstCode);
      });
      stream.respond({ ':status': 200 });
      if (!big) {
        stream.end('ok');
        return;
      }
      let sent = 0;
      const pump = (): void => {
        while (sent++ < 256) {
          if (stream.destroyed) return;
          if (!stream.write(CHUNK)) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
      };
      pump();
    },
    { maxConcurrentStreams: limit },
  );
  closers.push(server.close);
  return { server, log };
}

async function until(check: () => boolean, what: string): Promise<void> {
  await bounded(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    what,
  );
}

describe('HTTP/2: a response the caller stops part-way resets its stream (probe 18, loss)', () => {
  it('each way of stopping a response sends RST_STREAM(CANCEL); later requests on the endpoint still succeed', async () => {
    const { server, log } = await limitedServer(2);
    const client = createClient({ target: [server.address], http2: true, timeoutMs: 0 });
    const origin = 'http://svc';
    // Each reads part of a `/big` response, then stops reading it.
    const stops: Array<[string, () => Promise<void>]> = [
      [
        'leaving the body loop',
        async () => {
          const res = await request(`${origin}/big`, { dispatcher: client.dispatcher });
          for await (const _chunk of res.body) break;
        },
      ],
      [
        'an aborted signal',
        async () => {
          const controller = new AbortController();
          const res = await request(`${origin}/big`, { dispatcher: client.dispatcher, signal: controller.signal });
          res.body.on('error', () => {});
          await new Promise((resolve) => res.body.once('data', resolve));
          controller.abort();
        },
      ],
      [
        'client.fetch and body.cancel()',
        async () => {
          const res = await client.fetch(`${origin}/big`);
          const reader = res.body!.getReader();
          await reader.read();
          await reader.cancel();
        },
      ],
      [
        "Node's fetch and an abort",
        async () => {
          const controller = new AbortController();
          const res = await fetch(`${origin}/big`, {
            dispatcher: client.dispatcher,
            signal: controller.signal,
          } as RequestInit);
          const reader = res.body!.getReader();
          await reader.read();
          controller.abort();
          await reader.closed.catch(() => {});
        },
      ],
    ];
    const failures: string[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        for (const [how, stop] of stops) {
          await bounded(stop(), how).catch((err: unknown) => failures.push(`${how}: ${code(err)}`));
        }
      }
      const answers = await bounded(
        Promise.all(
          Array.from({ length: 4 }, () =>
            request(`${origin}/small`, { dispatcher: client.dispatcher }).then(
              (res) => res.body.text(),
              (err: unknown) => code(err),
            ),
          ),
        ),
        'the requests after',
      );
      assert.deepEqual(failures, []);
      assert.deepEqual(answers, ['ok', 'ok', 'ok', 'ok']);
      await until(() => log.open === 0, 'every stopped stream closed on the server');
      assert.deepEqual(log.rstCodes, Array(3 * stops.length).fill(h2constants.NGHTTP2_CANCEL));
      const endpoint = client.stats().clusters[0]?.endpoints[0];
      assert.equal(endpoint?.ejected, false);
      assert.equal(endpoint?.inFlight, 0);
    } finally {
      await bounded(client.close(), 'close()');
    }
  });
});
