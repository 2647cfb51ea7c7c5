// The balanced fetch behaves like fetch: bodies, aborts, redirects, headers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Client, createClient } from '../../src/index.js';
import { type Backend, startBackend } from '../helpers/backends.js';

describe('fetch semantics through the balancer', () => {
  let backend: Backend;
  let client: Client;
  before(async () => {
    backend = await startBackend('fs', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/redirect') {
          res.writeHead(302, { location: '/target' });
          res.end();
        } else if (req.url === '/stream') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first chunk;');
          // Never ends: the caller aborts mid-body.
        } else if (req.url === '/cookies') {
          res.setHeader('set-cookie', ['a=1', 'b=2']);
          res.end();
        } else {
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              url: req.url,
              method: req.method,
              contentType: req.headers['content-type'],
              custom: req.headers['x-custom'],
              length: body.length,
              text: body.toString('latin1'),
            }),
          );
        }
      });
    });
    client = createClient({ target: [backend.address] });
  });
  after(async () => {
    await client.close();
    await backend.stop();
  });

  type Echo = { url: string; method: string; contentType?: string; custom?: string; length: number; text: string };
  const echo = async (init: RequestInit, path = '/echo') =>
    (await (await client.fetch(`http://svc${path}`, init)).json()) as Echo;

  it('sends string bodies', async () => {
    const r = await echo({ method: 'POST', body: 'héllo' });
    assert.equal(r.contentType, 'text/plain;charset=UTF-8');
    assert.equal(Buffer.from(r.text, 'latin1').toString('utf8'), 'héllo');
  });
  it('sends binary bodies', async () => {
    const r = await echo({ method: 'PUT', body: new Uint8Array([0, 1, 2, 255]) });
    assert.equal(r.length, 4);
    assert.deepEqual([...Buffer.from(r.text, 'latin1')], [0, 1, 2, 255]);
  });
  it('sends streaming bodies', async () => {
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (n++ < 100) controller.enqueue(new Uint8Array(1000).fill(65));
        else controller.close();
      },
    });
    const r = await echo({ method: 'POST', body, duplex: 'half' } as RequestInit);
    assert.equal(r.length, 100_000);
  });
  it('sends FormData as multipart', async () => {
    const form = new FormData();
    form.set('field', 'value');
    form.set('file', new Blob(['content']), 'a.txt');
    const r = await echo({ method: 'POST', body: form });
    assert.match(r.contentType ?? '', /^multipart\/form-data; boundary=/);
    assert.match(r.text, /name="field"\r\n\r\nvalue/);
    assert.match(r.text, /filename="a.txt"/);
  });
  it('passes custom headers through untouched and returns repeated response headers', async () => {
    const r = await echo({ headers: { 'X-Custom': 'v1, v2' } });
    assert.equal(r.custom, 'v1, v2');
    const res = await client.fetch('http://svc/cookies');
    assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
  });
  it('follows redirects to the same service, and honours redirect: manual', async () => {
    const followed = await client.fetch('http://svc/redirect');
    assert.equal(followed.redirected, true);
    assert.equal(((await followed.json()) as Echo).url, '/target');
    const manual = await client.fetch('http://svc/redirect', { redirect: 'manual' });
    assert.equal(manual.status, 302);
    assert.equal(manual.headers.get('location'), '/target');
  });
  it('aborts mid-body: reading the rest rejects with the abort reason', async () => {
    const controller = new AbortController();
    const res = await client.fetch('http://svc/stream', { signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    assert.equal(Buffer.from(first.value ?? []).toString(), 'first chunk;');
    controller.abort();
    await assert.rejects(reader.read(), { name: 'AbortError' });
    const deadline = Date.now() + 2_000;
    while ((client.stats().clusters[0]?.inFlight ?? 0) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(client.stats().clusters[0]?.inFlight, 0, 'the aborted request ended');
  });
  it('rejects with the signal reason when aborted before sending', async () => {
    const controller = new AbortController();
    controller.abort(new Error('not needed'));
    await assert.rejects(client.fetch('http://svc/echo', { signal: controller.signal }), /not needed/);
  });
});
