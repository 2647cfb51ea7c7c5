/**
 * Closing a client ends the connections its endpoints are still making (probe 17, defect 1): undici's pool resolves
 * its `close()` and `destroy()` while a connect runs, and the socket then lived until undici's connect timeout
 * (10 s by default), keeping the process alive. Here an endpoint accepts TCP and never answers the TLS handshake.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createClient } from 'sidecarless';
import { startTcpHole, tcpSockets } from '../../helpers/tcp-hole.js';

describe('close() and destroy() with a connect under way', () => {
  for (const http2 of [false, true]) {
    for (const how of ['close', 'destroy'] as const) {
      it(`${how}() ends a TLS handshake that never finishes, ${http2 ? 'HTTP/2' : 'HTTP/1.1'}`, async () => {
        const hole = await startTcpHole();
        try {
          const before = tcpSockets();
          const client = createClient({
            name: 'svc',
            target: `static://127.0.0.1:${hole.port}`,
            retry: false,
            tls: true,
            http2,
          });
          const caller = new AbortController();
          const response = client.fetch('https://svc/x', { signal: caller.signal });
          await hole.accepted();
          caller.abort();
          await assert.rejects(response, { name: 'AbortError' });
          await client[how]();
          assert.equal(tcpSockets(), before, 'the connecting socket is gone once close() resolves');
          await hole.closed(); // the endpoint sees it closed (the test's own timeout bounds the wait)
        } finally {
          hole.stop();
        }
      });
    }
  }

  // Probe 19: close() begun while the request still ran (so the drain chose to wait for it) waited for undici's
  // connect timeout (10 s) once the caller gave the request up: nothing of the cluster's ran any more.
  it('close() begun before the caller gives up its request ends once it does, not at the connect timeout', async () => {
    const hole = await startTcpHole();
    try {
      const before = tcpSockets();
      const client = createClient({
        name: 'svc',
        target: `static://127.0.0.1:${hole.port}`,
        retry: false,
        tls: true,
        drainTimeoutMs: 60_000,
      });
      const caller = new AbortController();
      const response = client.fetch('https://svc/x', { signal: caller.signal });
      await hole.accepted();
      const closing = client.close();
      let closed = false;
      void closing.then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(closed, false, 'close() waits for the running request');
      caller.abort();
      await assert.rejects(response, { name: 'AbortError' });
      // Bounded far below undici's 10 s connect timeout, with room for a loaded machine.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('close() still waiting')), 5000);
      });
      await Promise.race([closing, late]).finally(() => clearTimeout(timer));
      assert.equal(tcpSockets(), before, 'the connecting socket is gone once close() resolves');
    } finally {
      hole.stop();
    }
  });
});
