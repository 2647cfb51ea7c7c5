/**
 * The README's quick start, runnable: two instances of a "users" service on 127.0.0.1, and a client that balances
 * requests across them.
 *
 * Run: node --import tsx examples/quick-start.ts
 * Everything below this comment is the README's "Quick start" code block, character for character, except the
 * import path of sidecarless ('../src/index.js' here, 'sidecarless' there); test/integration/quick-start.test.ts
 * checks that they stay the same.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '../src/index.js';

// Two instances of a "users" service, on ports the OS picks. Yours already run somewhere: list those instead.
const instances = await Promise.all(
  ['users-a', 'users-b'].map(
    (name) =>
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ instance: name, host: req.headers.host, path: req.url }));
        });
        server.listen(0, '127.0.0.1', () => resolve(server));
      }),
  ),
);
const addresses = instances.map((server) => `127.0.0.1:${(server.address() as AddressInfo).port}`);

const users = createClient({ target: `static://${addresses.join(',')}` });

for (let i = 0; i < 4; i++) {
  const res = await users.fetch('http://users/profile/42'); // sent to one instance, with `Host: users`
  console.log(res.status, await res.json());
}

await users.close(); // drains in-flight requests, closes connections: nothing keeps the process alive
await Promise.all(instances.map((server) => new Promise((resolve) => server.close(resolve))));
