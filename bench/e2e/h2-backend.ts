/**
 * One backend of the e2e benchmark's HTTP/2 scenario (`http2.ts`): a `node:http2` secure server on 127.0.0.1 that
 * also speaks HTTP/1.1 (`allowHTTP1`), so the same process serves both protocols and the comparison is the
 * client's alone. Started as `process.execPath --import tsx bench/e2e/h2-backend.ts <id> <key.pem> <cert.pem>` with
 * an IPC channel; answers every request at once with `x-backend: <id>` and a small body. Messages out:
 * `{ type: 'ready', port }`. Exits when its parent goes away.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';

const [id = 'h2', keyPath = '', certPath = ''] = process.argv.slice(2);
const body = Buffer.from('ok\n');
const server = createSecureServer(
  { key: readFileSync(keyPath), cert: readFileSync(certPath), allowHTTP1: true },
  (_req, res) => {
    res.setHeader('x-backend', id);
    res.setHeader('content-length', body.length);
    res.end(body);
  },
);
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
