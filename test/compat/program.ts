// Compiled and run by test/compat/run.mjs against each undici major in turn: the `undici` imported here is the
// user's (installed next to this file), `sidecarless` is this repository's build, with its own undici 7 inside.
// It must type-check with no cast and answer correctly: undici's request, fetch, stream and pipeline through
// `client.dispatcher`, Node's global fetch with `dispatcher`, and the global slot through `client.globalDispatcher()`.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { Agent, fetch as undiciFetch, pipeline, request, setGlobalDispatcher, stream } from 'undici';
import { createClient } from 'sidecarless';

async function serve(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => res.end(`${name} ${req.method} ${req.headers.host} ${req.url} ${body}`.trim()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const users = await serve('users');
const other = await serve('other');
const client = createClient({ name: 'users', target: `static://127.0.0.1:${users.port}` });
const { dispatcher } = client;

// undici's request, fetch, stream and pipeline, each given the balanced dispatcher.
const r = await request('http://users/request', { dispatcher });
assert.equal(await r.body.text(), 'users GET users /request');

const f = await undiciFetch('http://users/fetch', { dispatcher, method: 'POST', body: 'hi' });
assert.equal(await f.text(), 'users POST users /fetch hi');

let streamed = '';
await stream('http://users/stream', { dispatcher, method: 'GET' }, () => {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      streamed += chunk.toString();
      callback();
    },
  });
});
assert.equal(streamed, 'users GET users /stream');

const piped = await new Promise<string>((resolve, reject) => {
  let out = '';
  Readable.from(['piped body'])
    .pipe(pipeline('http://users/pipeline', { dispatcher, method: 'PUT' }, ({ body }) => body))
    .on('data', (chunk: Buffer) => (out += chunk.toString()))
    .on('end', () => resolve(out))
    .on('error', reject);
});
assert.equal(piped, 'users PUT users /pipeline piped body');

// Node's own fetch (its bundled undici) with the dispatcher: typed by @types/node's RequestInit.
const g = await fetch('http://users/global-fetch', { dispatcher });
assert.equal(await g.text(), 'users GET users /global-fetch');

// The global slot: own names balance, any other host gets a plain request.
setGlobalDispatcher(client.globalDispatcher());
const own = await request('http://users/own');
assert.equal(await own.body.text(), 'users GET users /own');
const plain = await request(`http://127.0.0.1:${other.port}/elsewhere`);
assert.equal(await plain.body.text(), `other GET 127.0.0.1:${other.port} /elsewhere`);
const nodeOwn = await fetch('http://users/node-fetch');
assert.equal(await nodeOwn.text(), 'users GET users /node-fetch');
const nodePlain = await fetch(`http://localhost:${other.port}/node-elsewhere`);
assert.equal(await nodePlain.text(), `other GET localhost:${other.port} /node-elsewhere`);
assert.equal(client.stats().passthrough, 2);
setGlobalDispatcher(new Agent());

// Other hosts through an Agent of the user's undici, whichever handler style the caller uses: Node's fetch (its
// bundled undici), this undici's request, fetch, stream.
const mixed = client.globalDispatcher({ others: new Agent() });
const elsewhere = `http://127.0.0.1:${other.port}`;
assert.equal(
  await (await fetch(`${elsewhere}/a`, { dispatcher: mixed })).text(),
  `other GET 127.0.0.1:${other.port} /a`,
);
assert.equal(
  await (await request(`${elsewhere}/b`, { dispatcher: mixed })).body.text(),
  `other GET 127.0.0.1:${other.port} /b`,
);
assert.equal(
  await (await undiciFetch(`${elsewhere}/c`, { dispatcher: mixed, method: 'POST', body: 'x' })).text(),
  `other POST 127.0.0.1:${other.port} /c x`,
);

await client.close();
await Promise.all([users.server, other.server].map((s) => new Promise((resolve) => s.close(resolve))));
console.log(`compat ok: undici ${process.argv[2] ?? '?'} on node ${process.version}`);
