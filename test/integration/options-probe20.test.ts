// Option and input defects found by probe 20 (option fuzzing at every public entry): `null` taken as "absent" for some
// options (`retry: null` gave 3 attempts) and refused for others, per cluster accepted where the single-service shape
// refused it; a Map, Date or class instance read as an options object with no keys; a routed request with a method or
// path that is no string throwing a raw TypeError out of dispatch(); a non-HTTP origin reported as a protocol mismatch
// or no route; non-function listeners accepted; a bad body chunk and wrong helper arguments failing without a code.
// Real node:http servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ConsulResolver,
  createClient,
  createEndpoint,
  DnsResolver,
  histogramQuantile,
  isSidecarlessError,
  type Client,
  type SidecarlessError,
} from 'sidecarless';
import {
  Backoff,
  EdfHeap,
  endpointKey,
  findHeader,
  hashString,
  parseHashKey,
  parseHostPort,
  resolveBackoffOptions,
  seededRandom,
  xxh32,
} from 'sidecarless/extend';
import { assertCode } from '../helpers/assert-code.js';

let hits = 0;
let server: http.Server;
let target: string[];

before(async () => {
  server = http.createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => {
      res.statusCode = req.url === '/fail' ? 503 : 200;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target = [`127.0.0.1:${(server.address() as AddressInfo).port}`];
});
after(() => server.close());

const trap = () =>
  new Proxy(
    {},
    {
      ownKeys() {
        throw new Error('trap');
      },
    },
  );

/** The error a dispatch() reports, through onError or thrown synchronously (`thrown: true`). */
async function dispatchError(client: Client, options: object): Promise<{ thrown: boolean; error: unknown }> {
  let error: unknown;
  try {
    (client.dispatcher.dispatch as (o: object, h: object) => boolean)(options, {
      onError(err: unknown) {
        error = err;
      },
      onConnect() {},
      onHeaders: () => true,
      onData: () => true,
      onComplete() {},
    });
  } catch (err) {
    return { thrown: true, error: err };
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { thrown: false, error };
}

describe('probe 20: null is refused for every option, naming it, in every shape', () => {
  it('retry: null is refused (it gave the default 3 attempts), and says to use false to turn retries off', () => {
    assert.throws(
      () => createClient({ target, retry: null as never }),
      (err: unknown) =>
        isSidecarlessError(err) &&
        err.code === 'SIDECARLESS_INVALID_OPTION' &&
        (err as { option?: string }).option === 'retry' &&
        /omit the option/.test(err.message) &&
        /`false` to turn it off/.test(err.message),
    );
  });

  it('refuses null at the top level, per cluster and in the discovery template alike', () => {
    const keys = ['retryBudget', 'limits', 'pool', 'picker', 'random', 'http2', 'clock', 'resolvers', 'breaker'];
    for (const key of keys) {
      assertCode(() => createClient({ target, [key]: null }), 'SIDECARLESS_INVALID_OPTION', key);
      assertCode(
        () => createClient({ clusters: { a: { target, [key]: null } } }),
        'SIDECARLESS_INVALID_OPTION',
        `clusters.a.${key}`,
      );
      assertCode(
        () => createClient({ discovery: { domain: 'service.consul', cluster: { [key]: null } } } as never),
        'SIDECARLESS_INVALID_OPTION',
        `discovery.cluster.${key}`,
      );
    }
    for (const key of ['routes', 'passthrough', 'redirect', 'pickers']) {
      assertCode(
        () => createClient({ clusters: { a: { target } }, [key]: null } as never),
        'SIDECARLESS_INVALID_OPTION',
        key,
      );
    }
    assertCode(
      () => createClient({ target, retry: { backoff: { jitter: null } } } as never),
      'SIDECARLESS_INVALID_OPTION',
      'retry.backoff.jitter',
    );
    assertCode(
      () => createClient({ target, connectBackoff: { jitter: null } } as never),
      'SIDECARLESS_INVALID_OPTION',
      'connectBackoff.jitter',
    );
  });

  it("keeps undici's documented null: pool.connections null is unlimited", async () => {
    const client = createClient({ target, pool: { connections: null } });
    await client.close();
  });

  it("refuses null in resolvers' options and createEndpoint's weight and priority", () => {
    assertCode(
      () => new DnsResolver({ host: 'localhost', port: 80, family: null } as never),
      'SIDECARLESS_INVALID_OPTION',
      'family',
    );
    assertCode(
      () => new DnsResolver({ host: 'localhost', port: 80, clock: null } as never),
      'SIDECARLESS_INVALID_OPTION',
      'clock',
    );
    assertCode(
      () => new ConsulResolver({ service: 'users', tags: null } as never),
      'SIDECARLESS_INVALID_OPTION',
      'tags',
    );
    for (const field of ['weight', 'priority']) {
      assert.throws(
        () => createEndpoint({ host: '10.0.0.1', port: 80, [field]: null }),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_ENDPOINT',
      );
    }
  });
});

describe('probe 20: only a plain object is an options object', () => {
  it('refuses a Map, Date, RegExp or class instance as an option group', () => {
    class Settings {
      maxAttempts = 1;
    }
    for (const value of [new Map([['maxAttempts', 1]]), new Date(), /x/, new Settings()]) {
      assertCode(() => createClient({ target, retry: value as never }), 'SIDECARLESS_INVALID_OPTION', 'retry');
      assertCode(() => createClient({ target, limits: value as never }), 'SIDECARLESS_INVALID_OPTION', 'limits');
      assertCode(
        () => createClient({ clusters: { a: { target, healthCheck: value as never } } }),
        'SIDECARLESS_INVALID_OPTION',
        'clusters.a.healthCheck',
      );
    }
    assertCode(() => createClient(new Date() as never), 'SIDECARLESS_INVALID_OPTION', 'options');
  });

  it('still takes a null-prototype options object, and objects that are not option groups', async () => {
    const retry = Object.assign(Object.create(null) as object, { maxAttempts: 1 });
    const client = createClient({ target, retry, outlierDetection: false, retryBudget: false });
    hits = 0;
    const res = await client.fetch('http://svc/fail');
    await res.text();
    assert.equal(hits, 1, 'the null-prototype retry object was read');
    await client.close();
    const { Agent } = await import('undici');
    const passthrough = new Agent();
    const multi = createClient({ clusters: { a: { target } }, passthrough });
    multi.globalDispatcher({ others: passthrough });
    await multi.close();
    await passthrough.close();
    const k8s = createClient({ target: new DnsResolver({ host: '127.0.0.1', port: 80 }) });
    await k8s.close();
  });
});

describe('probe 20: requests', () => {
  it('reports a non-string method or path the same way with and without a route table: onError, UND_ERR_INVALID_ARG', async () => {
    const single = createClient({ target });
    const multi = createClient({
      clusters: { svc: { target } },
      routes: [{ match: { path: { prefix: '/r' } }, cluster: 'svc' }],
    });
    try {
      for (const options of [
        { origin: 'http://svc', path: '/r', method: 5 },
        { origin: 'http://svc', path: '/r' },
        { origin: 'http://svc', path: 5, method: 'GET' },
      ]) {
        const answers = [];
        for (const client of [single, multi]) {
          const { thrown, error } = await dispatchError(client, options);
          assert.equal(thrown, false, `${JSON.stringify(options)}: dispatch() threw ${String(error)}`);
          assert.equal((error as { code?: string } | undefined)?.code, 'UND_ERR_INVALID_ARG', JSON.stringify(options));
          answers.push((error as Error).message);
        }
        assert.equal(answers[0], answers[1], 'the same message in both shapes');
      }
    } finally {
      await single.close();
      await multi.close();
    }
  });

  it('refuses a non-HTTP origin as an invalid option (origin) on single- and multi-service clients alike', async () => {
    const plain = createClient({ target });
    const tls = createClient({ target, tls: true });
    const multi = createClient({ clusters: { svc: { target } }, passthrough: true });
    try {
      for (const origin of ['ftp://svc', 'ws://svc', 'file:///x', 'mailto:a@b', 'a\r\nb: c']) {
        for (const client of [plain, tls, multi]) {
          await assert.rejects(
            client.dispatcher.request({ origin, path: '/', method: 'GET' }),
            (err: unknown) =>
              isSidecarlessError(err) &&
              err.code === 'SIDECARLESS_INVALID_OPTION' &&
              (err as SidecarlessError & { option?: string }).option === 'origin',
            origin,
          );
        }
      }
    } finally {
      await plain.close();
      await tls.close();
      await multi.close();
    }
  });

  it('fails a request body chunk that is neither a string nor bytes with SIDECARLESS_INVALID_REQUEST', async () => {
    const client = createClient({ target });
    try {
      await assert.rejects(
        client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'POST', body: [1, 2] as never }),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_REQUEST',
      );
      const body = (async function* () {
        yield { not: 'bytes' };
      })();
      await assert.rejects(
        client.dispatcher.request({ origin: 'http://svc', path: '/', method: 'POST', body: body as never }),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_REQUEST',
      );
    } finally {
      await client.close();
    }
  });
});

describe('probe 20: listeners and helpers refuse wrong arguments with a code', () => {
  it('onHealthEvent and onClose refuse a listener that is not a function', async () => {
    const client = createClient({ target });
    for (const value of [5, 'x', null, {}, undefined]) {
      assertCode(() => client.onHealthEvent(value as never), 'SIDECARLESS_INVALID_OPTION', 'listener');
      assertCode(() => client.onClose(value as never), 'SIDECARLESS_INVALID_OPTION', 'listener');
    }
    await client.close();
  });

  it('helpers of sidecarless/extend and histogramQuantile throw typed errors for wrong input types', () => {
    const coded = (fn: () => unknown) =>
      assert.throws(fn, (err: unknown) => isSidecarlessError(err) && typeof err.code === 'string');
    coded(() => parseHostPort(5 as never));
    coded(() => endpointKey({} as never, 80));
    coded(() => hashString(null as never));
    coded(() => hashString([1] as never));
    coded(() => hashString('a', Symbol('s') as never));
    coded(() => xxh32('abc' as never));
    coded(() => xxh32(new Uint8Array(1), 1n as never));
    coded(() => findHeader({ a: 'b' }, null as never));
    coded(() => seededRandom(Symbol('s') as never));
    coded(() => seededRandom(1n as never));
    coded(() => new Backoff(null as never, Math.random));
    coded(() => new EdfHeap(null as never));
    coded(() => histogramQuantile({} as never, 0.5));
    coded(() => histogramQuantile(null as never, 0.5));
  });

  it('option readers turn a throwing Proxy trap into SIDECARLESS_INVALID_OPTION', async () => {
    assertCode(() => resolveBackoffOptions(trap() as never, 'b'), 'SIDECARLESS_INVALID_OPTION', 'b');
    assertCode(() => parseHashKey(trap()), 'SIDECARLESS_INVALID_OPTION', 'picker.hashKey');
    const client = createClient({ clusters: { svc: { target } } });
    try {
      assertCode(() => client.globalDispatcher(trap() as never), 'SIDECARLESS_INVALID_OPTION', 'globalDispatcher');
      await assert.rejects(
        client.ready(100, trap() as never),
        (err: unknown) => isSidecarlessError(err) && err.code === 'SIDECARLESS_INVALID_OPTION',
      );
    } finally {
      await client.close();
    }
  });
});
