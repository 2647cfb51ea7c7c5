import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectingSockets } from '../../../src/subchannel/connecting.js';

describe('ConnectingSockets', () => {
  // Probe 19: a custom `pool.connect` that throws rather than calling back left its entry behind (about 2.5 KB per
  // failed connect, until the client closed).
  it('forgets a connect whose connector throws, and passes the throw on', async () => {
    const sockets = new ConnectingSockets();
    const connect = sockets.wrap((() => {
      throw new Error('no route');
    }) as never);
    for (let i = 0; i < 3; i++) {
      assert.throws(() => (connect as (o: object, cb: () => void) => unknown)({ hostname: 'h' }, () => {}), {
        message: 'no route',
      });
    }
    assert.equal(sockets.size, 0);
    await sockets.destroy();
  });
});
