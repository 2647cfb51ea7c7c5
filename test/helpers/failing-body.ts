/**
 * The failing request body case, shared by the HTTP/1.1 test (issue-15-request.test.ts) and the HTTP/2 one
 * (http2.test.ts): an async-iterable body handed to the dispatcher that fails is the caller's failure, whatever the
 * protocol to the endpoint.
 */
import assert from 'node:assert/strict';
import { request } from 'undici';
import { createClient } from 'sidecarless';

/** The protocol spoken to the endpoint: HTTP/1.1, or HTTP/2 (`http2: true`; h2c to a cleartext endpoint). */
export type BodyProtocol = 'http/1.1' | 'h2';

/**
 * Bodies that fail: a source that throws once a chunk is out (after a pause, so the request is on the wire), one
 * that yields what is not a chunk (a number) after a chunk, and one whose first chunk is not one. Each test used to
 * keep its own variants; both protocols now get all three.
 */
function failingBodies(): AsyncIterable<unknown>[] {
  return [
    (async function* () {
      yield Buffer.from('part');
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('upload source failed');
    })(),
    (async function* () {
      yield Buffer.from('part');
      yield 42;
    })(),
    (async function* () {
      yield 42;
    })(),
  ];
}

/**
 * Sends each failing body through a client (`retry: false`) over `protocol` to the endpoint at `address`, which must
 * read the request body and answer it. Asserts that the caller sees each failure as an error, that the cluster counts
 * each as a caller error, and that none counts against the endpoint (no `other` or `reset` error, no ejection).
 */
export async function assertFailingBodyIsCallers(protocol: BodyProtocol, address: string): Promise<void> {
  const client = createClient({ target: [address], http2: protocol === 'h2', retry: false });
  try {
    for (const body of failingBodies()) {
      const err = await request('http://svc/upload', {
        method: 'POST',
        body: body as never,
        dispatcher: client.dispatcher,
      })
        .then((r) => r.body.text())
        .catch((e: unknown) => e);
      assert.ok(err instanceof Error, `the caller sees the failure over ${protocol}`);
    }
    const cluster = client.stats().clusters[0]!;
    assert.equal(cluster.requests.callerErrors, 3);
    const ep = cluster.endpoints[0]!;
    assert.equal(ep.errorsByKind.other + ep.errorsByKind.reset, 0, JSON.stringify(ep.errorsByKind));
    assert.equal(ep.ejected, false);
  } finally {
    await client.close();
  }
}
