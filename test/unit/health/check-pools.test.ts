/**
 * The health checks' pools end the connections they are still making when they are destroyed or drop an endpoint
 * that left, as a subchannel's pools do (`subchannel/connecting.ts`): a check's connect is otherwise bounded
 * only by its connect timeout. Here an endpoint accepts TCP and never answers the TLS handshake, and the connect
 * timeout is long enough that only the close can end the connect.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request, type Pool } from 'undici';
import { CheckPools } from '../../../src/health/check-pools.js';
import { http2PoolOptions } from '../../../src/subchannel/http2.js';
import { startTcpHole, tcpSockets } from '../../helpers/tcp-hole.js';

const base: Pool.Options = { connections: 1, connectTimeout: 600_000, connect: { rejectUnauthorized: false } };
const options = {
  'HTTP/1.1': base,
  'HTTP/2': http2PoolOptions(base, { connections: 1, maxConcurrentStreams: 1 }, 'https:', { onFallback() {} }),
};

describe('health check pools with a connect under way', () => {
  for (const [protocol, poolOptions] of Object.entries(options)) {
    // The two ways the cluster ends check pools: destroy() when it closes, release() when an endpoint leaves.
    for (const how of ['destroy', 'release'] as const) {
      it(`${how} ends a TLS handshake that never finishes, ${protocol}`, async () => {
        const hole = await startTcpHole();
        try {
          const before = tcpSockets();
          const pools = new CheckPools(poolOptions);
          const origin = `https://127.0.0.1:${hole.port}`;
          const check = request(`${origin}/health`, { dispatcher: pools });
          check.catch(() => {}); // fails as the pool ends: only the socket matters here
          await hole.accepted();
          if (how === 'release') {
            pools.release(origin);
            await hole.closed();
            await pools.close();
          } else {
            await pools.destroy();
            assert.equal(tcpSockets(), before, 'the connecting socket is gone once destroy() resolves');
            await hole.closed();
          }
          await assert.rejects(check);
          assert.equal(tcpSockets(), before);
        } finally {
          hole.stop();
        }
      });
    }
  }
});
