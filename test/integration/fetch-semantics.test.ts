// The balanced fetch behaves like fetch: bodies, aborts, redirects, headers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { type Client, createClient } from '../../src/index.js';
import { type Backend, startBackend, stopAll } from '../helpers/backends.js';

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
  it('takes a URL or a Request as input', async () => {
    const byUrl = (await (await client.fetch(new URL('http://svc/echo?from=url'))).json()) as Echo;
    assert.equal(byUrl.url, '/echo?from=url');
    const request = new Request('http://svc/echo?from=request', { method: 'PUT', body: 'payload' });
    const byRequest = (await (await client.fetch(request)).json()) as Echo;
    assert.deepEqual([byRequest.url, byRequest.method, byRequest.text], ['/echo?from=request', 'PUT', 'payload']);
  });
  it('rejects with the signal reason when aborted before sending', async () => {
    const controller = new AbortController();
    controller.abort(new Error('not needed'));
    await assert.rejects(client.fetch('http://svc/echo', { signal: controller.signal }), /not needed/);
  });
});

describe('redirects to another origin', () => {
  // The service (one endpoint, reached as http://svc) sends callers to another server, which may send them back.
  let service: Backend;
  let other: Backend;
  let client: Client;
  const methods: string[] = [];
  before(async () => {
    other = await startBackend('other', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        methods.push(`${req.method} ${req.url} ${Buffer.concat(chunks).length}`);
        if (req.url === '/send-back') {
          res.writeHead(302, { location: 'http://svc/home' });
          res.end();
          return;
        }
        res.end(`other ${req.url} host ${req.headers.host}`);
      });
    });
    service = await startBackend('service', (req, res) => {
      req.resume();
      req.on('end', () => {
        const away = `http://${other.address}`;
        if (req.url === '/away') res.writeHead(302, { location: `${away}/elsewhere` });
        else if (req.url === '/see-other') res.writeHead(303, { location: `${away}/landing` });
        else if (req.url === '/round-trip') res.writeHead(307, { location: `${away}/send-back` });
        res.end(`service ${req.url} host ${req.headers.host}`);
      });
    });
    client = createClient({ target: [service.address] });
  });
  after(async () => {
    await client.close();
    await stopAll([service, other]);
  });

  it('follows a redirect off the service as plain fetch would: to the other server, not the service', async () => {
    const res = await client.fetch('http://svc/away');
    assert.equal(res.status, 200);
    assert.equal(res.redirected, true);
    assert.equal(res.url, `http://${other.address}/elsewhere`);
    assert.equal(await res.text(), `other /elsewhere host ${other.address}`);
    assert.equal(service.hits, 1);
    assert.equal(client.stats().passthrough, 1, 'the hop went out unbalanced');
  });
  it('keeps fetch redirect rules: a 303 after a POST becomes a GET without the body', async () => {
    methods.length = 0;
    const res = await client.fetch('http://svc/see-other', { method: 'POST', body: 'form' });
    assert.equal(await res.text(), `other /landing host ${other.address}`);
    assert.deepEqual(methods, ['GET /landing 0']);
  });
  it('comes back to the balancer when the other server redirects to the service', async () => {
    const before = service.hits;
    const res = await client.fetch('http://svc/round-trip');
    assert.equal(await res.text(), 'service /home host svc');
    assert.equal(service.hits, before + 2);
  });
  it("gives every call without an init its own origin (the call's dispatcher doubles as its init)", async () => {
    const passthrough = client.stats().passthrough;
    const [away, direct, nullInit] = await Promise.all([
      client.fetch('http://svc/away'),
      client.fetch('http://svc-b/direct'),
      client.fetch('http://svc-c/null-init', null as unknown as RequestInit),
    ]);
    assert.equal(await away.text(), `other /elsewhere host ${other.address}`);
    assert.equal(await direct.text(), 'service /direct host svc-b');
    assert.equal(await nullInit.text(), 'service /null-init host svc-c');
    assert.equal(client.stats().passthrough, passthrough + 1, 'only the redirect hop left the service');
  });
  it("sends a hop to another origin through the process's global dispatcher, as plain fetch does (a proxy agent)", async () => {
    // A dispatcher standing for a ProxyAgent or MockAgent the application installed: it records what it carries.
    const carried: string[] = [];
    const agent = new Agent();
    const spy = Object.assign(Object.create(agent) as Agent, {
      dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
        carried.push(`${String(options.origin)}${options.path}`);
        return agent.dispatch(options, handler);
      },
    });
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(spy);
    try {
      const res = await client.fetch('http://svc/away');
      assert.equal(await res.text(), `other /elsewhere host ${other.address}`);
      assert.deepEqual(carried, [`http://${other.address}/elsewhere`], 'the hop, and only the hop, went through it');
    } finally {
      setGlobalDispatcher(previous);
      await agent.close();
    }
  });
  it("does not send a hop to another origin back to the service when the client's dispatcher is the global one", async () => {
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(client.dispatcher as unknown as Dispatcher);
    try {
      const res = await client.fetch('http://svc/away');
      assert.equal(await res.text(), `other /elsewhere host ${other.address}`);
    } finally {
      setGlobalDispatcher(previous);
    }
  });
  it('honours redirect: manual and redirect: error', async () => {
    const manual = await client.fetch('http://svc/away', { redirect: 'manual' });
    assert.equal(manual.status, 302);
    assert.equal(manual.headers.get('location'), `http://${other.address}/elsewhere`);
    await manual.arrayBuffer();
    await assert.rejects(client.fetch('http://svc/away', { redirect: 'error' }), TypeError);
  });
});

describe('redirect hops whose 3xx body fetch never reads', () => {
  // fetch follows a redirect without reading or cancelling its body: one larger than undici buffers is never read
  // to its end, and that hop must not keep its maxInFlight slot (nor its endpoint's load) for good.
  const BIG = 1_000_000;
  let backend: Backend;
  before(async () => {
    backend = await startBackend('big-redirect', (req, res) => {
      req.resume();
      if (req.url === '/old') {
        res.writeHead(302, { location: '/new', 'content-length': String(BIG) });
        res.end(Buffer.alloc(BIG, 97));
      } else if (req.url?.startsWith('/loop') === true || req.url === '/unusable') {
        // A chain past fetch's 20 hops, or a Location fetch cannot follow: it gives up on the last 3xx's body.
        const location = req.url === '/unusable' ? 'ftp://elsewhere/' : `/loop${Number(req.url.slice(5) || 0) + 1}`;
        res.writeHead(302, { location, 'content-length': String(BIG) });
        res.end(Buffer.alloc(BIG, 97));
      } else {
        res.end('new');
      }
    });
  });
  after(() => backend.stop());

  /** Waits (bounded) for the client to have nothing in flight; returns the cluster's and the endpoint's count. */
  async function settled(client: Client): Promise<[number, number]> {
    const read = (): [number, number] => {
      const cluster = client.stats().clusters[0];
      return [cluster?.inFlight ?? -1, cluster?.endpoints[0]?.inFlight ?? -1];
    };
    const deadline = Date.now() + 5_000;
    while (read().some((n) => n !== 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return read();
  }

  for (const multi of [false, true]) {
    const kind = multi ? 'a multi-service client' : 'a single-service client';
    it(`ends the dropped hop on ${kind}: no slot or endpoint load is left, maxInFlight 1 follows too`, async () => {
      const limits = { maxInFlight: 1 };
      const client = createClient(
        multi ? { clusters: { svc: { target: [backend.address], limits } } } : { target: [backend.address], limits },
      );
      try {
        for (let i = 0; i < 3; i++) {
          const res = await client.fetch('http://svc/old');
          assert.equal(res.redirected, true);
          assert.equal(await res.text(), 'new');
          assert.deepEqual(await settled(client), [0, 0], `fetch ${i}: nothing left in flight`);
        }
      } finally {
        await client.destroy();
      }
    });
  }

  // Probe 19: fetch also gives up on a redirect, with no next request, when it may not follow it.
  for (const [what, path, init] of [
    ["redirect: 'error'", '/old', { redirect: 'error' }],
    ['the 20-hop limit', '/loop', {}],
    ['a Location it cannot follow', '/unusable', {}],
  ] as const) {
    it(`ends the hop of a redirect fetch gives up on (${what}): no slot or endpoint load is left`, async () => {
      const client = createClient({ target: [backend.address], limits: { maxInFlight: 1 } });
      try {
        for (let i = 0; i < 2; i++) {
          await assert.rejects(client.fetch(`http://svc${path}`, init as RequestInit), TypeError);
          assert.deepEqual(await settled(client), [0, 0], `fetch ${i}: nothing left in flight`);
        }
        assert.equal(await (await client.fetch('http://svc/new')).text(), 'new');
      } finally {
        await client.destroy();
      }
    });
  }

  it('still hands a manual redirect its whole 3xx body', async () => {
    const client = createClient({ target: [backend.address], limits: { maxInFlight: 1 } });
    try {
      const res = await client.fetch('http://svc/old', { redirect: 'manual' });
      assert.equal(res.status, 302);
      assert.equal((await res.arrayBuffer()).byteLength, BIG);
      assert.deepEqual(await settled(client), [0, 0]);
      assert.equal(await (await client.fetch('http://svc/new')).text(), 'new');
    } finally {
      await client.close();
    }
  });
});
