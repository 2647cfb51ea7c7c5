/**
 * Fuzzes the Consul and etcd body parsers with seeded malformed, truncated, oversized and random inputs: each input
 * must either parse into a valid endpoint set or fail with a typed error; nothing else may escape. Resolver-level
 * runs (Consul bodies; etcd range bodies and watch streams, over HTTP) check that a stream of bad answers keeps the
 * last known good set. The number of inputs tried is printed at the end (`fuzz inputs: ...`).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Endpoint } from '../../../src/common/endpoint.js';
import { isSidecarlessError, type SidecarlessError } from '../../../src/common/errors.js';
import { ConsulError, EtcdError } from '../../../src/resolvers/errors.js';
import { ConsulResolver } from '../../../src/resolvers/consul/resolver.js';
import { parseConsulHealth } from '../../../src/resolvers/consul/parse.js';
import { EtcdResolver } from '../../../src/resolvers/etcd/resolver.js';
import { parseEtcdEndpoint, parseEtcdRange, parseEtcdWatchLine } from '../../../src/resolvers/etcd/parse.js';
import type { RandomSource } from '../../../src/common/runtime.js';
import { seededRandom } from '../../helpers/fake-clock.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
before(() => process.on('unhandledRejection', onUnhandled));
after(() => {
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, []);
});

const counts = { consul: 0, etcdRange: 0, etcdWatch: 0, etcdValue: 0, etcdServed: 0 };
after(() => {
  const total = counts.consul + counts.etcdRange + counts.etcdWatch + counts.etcdValue + counts.etcdServed;
  console.log(`fuzz inputs: ${JSON.stringify(counts)} total ${total}`);
});

function int(random: RandomSource, n: number): number {
  return Math.floor(random() * n);
}

function pick<T>(random: RandomSource, items: readonly T[]): T {
  return items[int(random, items.length)] as T;
}

const STRINGS = ['', 'x', '10.0.0.1', '::1', 'a b', 'passing', 'warning', 'critical', '\u0000', 'é', '999', '-1'];

function randomJson(random: RandomSource, depth = 0): unknown {
  const kind = int(random, depth > 3 ? 5 : 8);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return pick(random, [0, 1, -1, 65535, 65536, 1.5, 1e308, Number.MAX_SAFE_INTEGER, 8080]);
    case 3:
      return pick(random, STRINGS);
    case 4:
      return 'z'.repeat(int(random, 300));
    case 5:
      return Array.from({ length: int(random, 4) }, () => randomJson(random, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(random, 5); i > 0; i--) {
        o[pick(random, ['Node', 'Service', 'Checks', 'Address', 'Port', 'Tags', 'Meta', 'Weights', 'Status', 'x'])] =
          randomJson(random, depth + 1);
      }
      return o;
    }
  }
}

function validConsulEntry(random: RandomSource, i: number): Record<string, unknown> {
  return {
    Node: { ID: `id-${i}`, Node: `n${i}`, Address: `10.0.${i % 256}.${int(random, 250) + 1}`, Datacenter: 'dc1' },
    Service: {
      ID: `web-${i}`,
      Service: 'web',
      Tags: ['v2'],
      Address: random() < 0.5 ? '' : `10.1.${i % 256}.${int(random, 250) + 1}`,
      Meta: { zone: 'a' },
      Port: 1 + int(random, 65535),
      Weights: { Passing: 1 + int(random, 10), Warning: int(random, 3) },
    },
    Checks: [{ Status: pick(random, ['passing', 'passing', 'warning', 'critical']) }],
  };
}

/** Mutates a value in place at a random path: delete, retype, or replace with random JSON. */
function mutate(random: RandomSource, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || random() < 0.25) return randomJson(random);
  const entries = Array.isArray(value) ? value.map((_, i) => String(i)) : Object.keys(value);
  if (entries.length === 0) return randomJson(random);
  const key = pick(random, entries);
  const target = value as Record<string, unknown>;
  if (random() < 0.2) delete target[key];
  else target[key] = mutate(random, target[key]);
  return value;
}

function corruptText(random: RandomSource, text: string): string {
  switch (int(random, 5)) {
    case 0:
      return text.slice(0, int(random, text.length + 1)); // truncated
    case 1: {
      const at = int(random, text.length + 1);
      return text.slice(0, at) + String.fromCharCode(int(random, 128)) + text.slice(at + 1); // byte flip
    }
    case 2:
      return `${text}${pick(random, [',', ']', '}', 'x', '\n{}'])}`;
    case 3:
      return pick(random, ['', ' ', 'null', '{}', '"[]"', '['.repeat(5000), '<html>502 Bad Gateway</html>']);
    default:
      return Buffer.from(Array.from({ length: int(random, 200) }, () => int(random, 256))).toString('latin1');
  }
}

function assertValidSet(endpoints: readonly Endpoint[]): void {
  const seen = new Set<string>();
  for (const e of endpoints) {
    assert.ok(!seen.has(e.key), `duplicate ${e.key}`);
    seen.add(e.key);
    assert.ok(e.port >= 1 && e.port <= 65535 && e.weight > 0);
  }
}

/** Runs `fn`; it must return or throw an error of class `type` (a typed error). */
function expectTypedOrResult<T>(fn: () => T, type: typeof ConsulError | typeof EtcdError): T | undefined {
  try {
    return fn();
  } catch (err) {
    assert.ok(isSidecarlessError(err) && err instanceof type, `untyped error: ${String(err)}`);
    assert.equal(err.code, 'SIDECARLESS_RESOLVER_FAILED');
    return undefined;
  }
}

describe('Consul health body parser fuzz', () => {
  it('turns 3000 random, mutated, truncated and oversized bodies into a valid set or a ConsulError', () => {
    const random = seededRandom(0xc0ffee);
    for (let n = 0; n < 3000; n++) {
      const entries = Array.from({ length: int(random, 6) }, (_, i) => validConsulEntry(random, i));
      let body: string;
      const mode = n % 4;
      if (mode === 0) body = JSON.stringify(mutate(random, entries));
      else if (mode === 1) body = corruptText(random, JSON.stringify(entries));
      else if (mode === 2) body = JSON.stringify(randomJson(random));
      else
        body = JSON.stringify(
          Array.from({ length: int(random, 40) }, () => mutate(random, validConsulEntry(random, 1))),
        );
      counts.consul++;
      const result = expectTypedOrResult(
        () => parseConsulHealth(body, { health: pick(random, ['passing', 'warning', 'any'] as const) }),
        ConsulError,
      );
      if (result !== undefined) assertValidSet(result.endpoints);
    }
    // Oversized: 20000 entries parse without trouble.
    const big = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => validConsulEntry(random, i)));
    counts.consul++;
    const result = parseConsulHealth(big, { health: 'any' });
    assertValidSet(result.endpoints);
    assert.ok(result.endpoints.length > 1000);
  });
});

describe('etcd gateway parsers fuzz', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('turns random and mutated range and watch bodies into results or EtcdErrors', () => {
    const random = seededRandom(0xe7cd);
    for (let n = 0; n < 1500; n++) {
      const range = {
        header: { revision: String(1 + int(random, 1000)) },
        kvs: Array.from({ length: int(random, 4) }, (_, i) => ({
          key: b64(`/p/${i}`),
          value: b64(`10.0.0.${i + 1}:80`),
          mod_revision: String(int(random, 1000)),
        })),
        count: '1',
      };
      const firstKv = range.kvs[0] ?? { key: b64('/p/x') };
      const text =
        n % 3 === 0
          ? JSON.stringify(mutate(random, range))
          : n % 3 === 1
            ? corruptText(random, JSON.stringify(range))
            : JSON.stringify(randomJson(random));
      counts.etcdRange++;
      expectTypedOrResult(() => parseEtcdRange(text), EtcdError);

      const watch = {
        result: {
          header: { revision: '7' },
          ...(random() < 0.2 ? { canceled: true, compact_revision: '5' } : {}),
          events: [{ type: pick(random, ['PUT', 'DELETE', undefined]), kv: firstKv }],
        },
      };
      const line =
        n % 3 === 0
          ? JSON.stringify(mutate(random, watch))
          : n % 3 === 1
            ? corruptText(random, JSON.stringify(watch))
            : JSON.stringify(randomJson(random));
      counts.etcdWatch++;
      expectTypedOrResult(() => parseEtcdWatchLine(line), EtcdError);
    }
  });

  it('turns random stored values into an endpoint or an EtcdError', () => {
    const random = seededRandom(0x5eed);
    for (let n = 0; n < 1500; n++) {
      const good = { host: '10.0.0.1', port: 8080, weight: 2, priority: 0, zone: 'a', metadata: { v: '1' } };
      let value: string | Buffer;
      switch (n % 4) {
        case 0:
          value = JSON.stringify(mutate(random, good));
          break;
        case 1:
          value = corruptText(random, JSON.stringify(good));
          break;
        case 2:
          value = corruptText(random, '10.0.0.1:8080');
          break;
        default:
          value = Buffer.from(Array.from({ length: int(random, 100) }, () => int(random, 256)));
      }
      counts.etcdValue++;
      const endpoint = expectTypedOrResult(() => parseEtcdEndpoint('/p/k', value), EtcdError);
      if (endpoint !== undefined) assertValidSet([endpoint]);
    }
    counts.etcdValue++;
    assert.throws(() => parseEtcdEndpoint('/p/k', 'x'.repeat(70_000)), EtcdError);
  });
});

describe('ConsulResolver fed bad bodies', () => {
  it('keeps the last known good set through 200 malformed answers, with a typed error for each', async () => {
    const random = seededRandom(42);
    let served = 0;
    const good = JSON.stringify([{ ...validConsulEntry(random, 1), Checks: [{ Status: 'passing' }] }]);
    const server = http.createServer((_req, res) => {
      served++;
      const body =
        served === 1
          ? good
          : pick(random, [
              '',
              '{',
              'null',
              '{"a":1}',
              '[1,2]',
              '[{"Node":{}}]',
              corruptText(random, good).slice(0, -2),
            ]);
      res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(served) }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const updates: (readonly Endpoint[])[] = [];
    const errors: SidecarlessError[] = [];
    const resolver = new ConsulResolver({
      address: `127.0.0.1:${port}`,
      service: 'web',
      health: 'any',
      minRequestIntervalMs: 0,
      backoff: { initialMs: 1, maxMs: 2 },
      env: {},
    });
    resolver.start({ onUpdate: (e) => updates.push(e), onError: (e) => errors.push(e) });
    // Bounded, but generous: CI runs suites in parallel on two cores.
    const deadline = Date.now() + 30_000;
    while ((served < 201 || errors.length < 199) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await resolver.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    counts.consul += served;
    assert.ok(served >= 201, `served ${served}`);
    assert.equal(updates.length, 1);
    assert.equal(updates[0]?.length, 1);
    assert.ok(errors.length >= 199, `errors ${errors.length}`);
    const reasons = errors.map((e) => (e instanceof ConsulError ? e.reason : e.name));
    assert.ok(
      reasons.every((r) => r === 'bad-response'),
      `reasons: ${[...new Set(reasons)].join(', ')}`,
    );
  });
});

/** Starts `handler` on 127.0.0.1; returns its port and a closer that also drops open connections. */
async function serve(handler: http.RequestListener): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('ConsulResolver and maxResponseBytes', () => {
  it('a body above the cap is bad-response and the last set stays; a good body after it is accepted', async () => {
    const random = seededRandom(99);
    const good = JSON.stringify([{ ...validConsulEntry(random, 1), Checks: [{ Status: 'passing' }] }]);
    // Valid JSON, well-formed entries: refused for its size alone.
    const big = JSON.stringify(Array.from({ length: 40 }, (_, i) => validConsulEntry(random, i)));
    assert.ok(big.length > 4096 && good.length < 4096);
    let served = 0;
    const server = await serve((_req, res) => {
      served++;
      const body = served === 1 || served > 4 ? good : big;
      res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(served) }).end(body);
    });
    const updates: (readonly Endpoint[])[] = [];
    const errors: SidecarlessError[] = [];
    const resolver = new ConsulResolver({
      address: `127.0.0.1:${server.port}`,
      service: 'web',
      health: 'any',
      maxResponseBytes: 4096,
      minRequestIntervalMs: 0,
      backoff: { initialMs: 1, maxMs: 2 },
      env: {},
    });
    resolver.start({ onUpdate: (e) => updates.push(e), onError: (e) => errors.push(e) });
    const deadline = Date.now() + 10_000;
    while (served < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await resolver.close();
    await server.close();
    counts.consul += served;
    assert.ok(served >= 6, `served ${served}`);
    assert.equal(errors.length, 3, 'one error per oversized body, none after');
    for (const e of errors) {
      assert.ok(e instanceof ConsulError && e.reason === 'bad-response', e.message);
      assert.match(e.message, /larger than 4096 bytes/);
    }
    // The good set after the oversized ones is the same set, delivered again: the listener's latest state was the
    // failure, and must not stay so (issue 15.7).
    assert.equal(updates.length, 2);
    assert.deepEqual(updates[1], updates[0]);
    assert.equal(updates[0]?.length, 1);
  });
});

describe('EtcdResolver fed bad range bodies and watch streams', () => {
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const MAX = 4096;
  const goodRange = JSON.stringify({
    header: { revision: '10' },
    kvs: [{ key: b64('/p/a'), value: b64('10.0.0.1:80'), mod_revision: '3' }],
  });
  const created = `${JSON.stringify({ result: { header: { revision: '10' }, created: true } })}\n`;
  const progress = `${JSON.stringify({ result: { header: { revision: '11' } } })}\n`;

  /** A range body no resolver may accept: truncated, garbage, the wrong shape, an error, or too large. */
  function badRange(random: RandomSource): { status: number; body: string } {
    switch (int(random, 7)) {
      case 0:
        return { status: 200, body: goodRange.slice(0, int(random, goodRange.length)) }; // a strict prefix of JSON
      case 1:
        return { status: 200, body: `{${corruptText(random, goodRange)}` };
      case 2:
        return {
          status: 200,
          body: pick(random, [
            '{"kvs":[]}',
            '{"header":{"revision":"x"},"kvs":[]}',
            '{"header":{"revision":"10"},"kvs":5}',
            `{"header":{"revision":"10"},"kvs":[{"key":"!!!!","value":"${b64('10.0.0.9:80')}"}]}`,
            '[]',
            'null',
          ]),
        };
      case 3:
        return { status: 200, body: '{"error":"etcdserver: too many requests","code":8}' };
      case 4:
        return { status: 200, body: JSON.stringify({ header: { revision: '10' }, kvs: [], pad: 'p'.repeat(MAX) }) };
      case 5:
        return { status: pick(random, [500, 502, 503]), body: '{"error":"unavailable","code":14}' };
      default:
        return { status: 200, body: '' };
    }
  }

  /** A watch stream that must end the cycle in an error: every one ends with a broken line or a closed stream. */
  function badWatch(random: RandomSource): { status: number; lines: string[]; oversized?: true } {
    const head = random() < 0.5 ? [created] : [created, progress];
    switch (int(random, 8)) {
      case 0: // garbage line
        return { status: 200, lines: [...head, `${corruptText(random, 'x').replace(/\n/g, '').slice(0, 200)}!\n`] };
      case 1: // truncated JSON
        return { status: 200, lines: [...head, `${created.slice(0, 1 + int(random, created.length - 3))}\n`] };
      case 2: {
        // An oversized line, terminated, and otherwise a valid progress notification: refused for its size alone.
        const pad = 'p'.repeat(MAX + int(random, 100));
        return {
          status: 200,
          lines: [...head, `{"result":{"header":{"revision":"11"},"pad":"${pad}"}}\n`],
          oversized: true,
        };
      }
      case 3: // an oversized line, unterminated
        return { status: 200, lines: [...head, 'z'.repeat(MAX + 1 + int(random, 100))], oversized: true };
      case 4: // an event whose key is not base64
        return {
          status: 200,
          lines: [...head, `{"result":{"header":{"revision":"12"},"events":[{"type":"PUT","kv":{"key":"@@"}}]}}\n`],
        };
      case 5: // a gateway error message
        return { status: 200, lines: [...head, '{"error":{"grpc_code":14,"message":"etcdserver: no leader"}}\n'] };
      case 6:
        return { status: 503, lines: ['{"error":"unavailable","code":14}'] };
      default: // the stream just ends
        return { status: 200, lines: head };
    }
  }

  it('keeps the one good set through 300 list-and-watch cycles of broken answers, with only EtcdErrors', async () => {
    const random = seededRandom(0xe7c0);
    let ranges = 0;
    let watches = 0;
    let oversized = 0;
    const server = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/v3/kv/range') {
          ranges++;
          counts.etcdServed++;
          // Every other listing is the good one again (same set), so that the watch streams get fuzzed too.
          const answer = ranges === 1 || random() < 0.5 ? { status: 200, body: goodRange } : badRange(random);
          res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
          return;
        }
        watches++;
        counts.etcdServed++;
        const stream = badWatch(random);
        if (stream.oversized) oversized++;
        res.writeHead(stream.status, { 'content-type': 'application/json' });
        // Written in pieces, split at random points, as a network delivers them.
        const text = stream.lines.join('');
        const cut = int(random, text.length + 1);
        res.write(text.slice(0, cut));
        setImmediate(() => res.end(text.slice(cut)));
      });
    });
    const updates: (readonly Endpoint[])[] = [];
    const errors: SidecarlessError[] = [];
    const resolver = new EtcdResolver({
      endpoints: [`127.0.0.1:${server.port}`],
      prefix: '/p/',
      maxResponseBytes: MAX,
      minRelistIntervalMs: 0,
      requestTimeoutMs: 5000,
      backoff: { initialMs: 1, maxMs: 2 },
    });
    resolver.start({ onUpdate: (e) => updates.push(e), onError: (e) => errors.push(e) });
    // Bounded, but generous: CI runs suites in parallel on two cores.
    const deadline = Date.now() + 30_000;
    while (ranges < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await resolver.close();
    await server.close();
    assert.ok(ranges >= 300, `listings ${ranges}`);
    assert.ok(watches >= 100, `watch streams ${watches}`);
    // After each failure the next good answer is delivered again (the listener's latest state was the failure: issue
    // 15.7), but it is always the one good set.
    assert.ok(updates.length >= 1);
    for (const update of updates)
      assert.deepEqual(
        update.map((e) => e.key),
        ['10.0.0.1:80'],
      );
    assert.deepEqual(
      updates[0]?.map((e) => e.key),
      ['10.0.0.1:80'],
    );
    // Every cycle ends in an error: one per listing, give or take the one in flight at close.
    assert.ok(errors.length >= ranges - 2, `errors ${errors.length} for ${ranges} listings`);
    const reasons = new Set<string>();
    for (const e of errors) {
      assert.ok(e instanceof EtcdError, `untyped: ${String(e)}`);
      assert.equal(e.code, 'SIDECARLESS_RESOLVER_FAILED');
      reasons.add(e.reason);
    }
    assert.deepEqual([...reasons].sort(), ['bad-response', 'connection', 'http-status', 'server-error']);
    // Exactly the oversized streams end in this error (the last one may still be in flight at close).
    const tooLarge = errors.filter((e) => /watch message larger than 4096 bytes/.test(e.message)).length;
    assert.ok(oversized > 10 && tooLarge >= oversized - 1 && tooLarge <= oversized, `${tooLarge} of ${oversized}`);
    assert.ok(
      errors.some((e) => /body larger than 4096 bytes/.test(e.message)),
      'an oversized range body was refused',
    );
  });
});

describe('EtcdResolver watch messages split across chunks', () => {
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const range = JSON.stringify({
    header: { revision: '10' },
    kvs: [{ key: b64('/p/a'), value: b64('10.0.0.1:80'), mod_revision: '3' }],
  });
  const created = `${JSON.stringify({ result: { header: { revision: '10' }, created: true } })}\n`;

  /** Serves the range, then one watch stream written as `pieces`, each a separate write after a pause. */
  async function firstWatchError(pieces: readonly Buffer[]): Promise<SidecarlessError> {
    const server = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        if (req.url === '/v3/kv/range') return void res.end(range);
        res.write(created);
        let i = 0;
        // Apart in time so that each arrives as a chunk of its own.
        const next = () => (i < pieces.length ? res.write(pieces[i++], () => setTimeout(next, 30)) : undefined);
        setTimeout(next, 30);
      });
    });
    const errors: SidecarlessError[] = [];
    const resolver = new EtcdResolver({
      endpoints: [`127.0.0.1:${server.port}`],
      prefix: '/p/',
      maxResponseBytes: 4096,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    resolver.start({ onUpdate: () => undefined, onError: (e) => errors.push(e) });
    const deadline = Date.now() + 10_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await resolver.close();
    await server.close();
    assert.ok(errors[0] !== undefined, 'no error');
    return errors[0];
  }

  it('decodes a UTF-8 character split between two chunks intact', async () => {
    const line = Buffer.from('{"error":{"grpc_code":14,"message":"no leader: é"}}\n');
    const cut = line.indexOf(Buffer.from('é')) + 1;
    const error = await firstWatchError([line.subarray(0, cut), line.subarray(cut)]);
    assert.ok(error instanceof EtcdError && error.reason === 'server-error', error.message);
    assert.equal(error.message, 'etcd reported an error: "no leader: é"');
  });

  it('counts maxResponseBytes in bytes: 2,100 two-byte characters are over 4096', async () => {
    const line = Buffer.from(`{"result":{"header":{"revision":"11"},"pad":"${'é'.repeat(2100)}"}}\n`);
    const error = await firstWatchError([line.subarray(0, 1001), line.subarray(1001)]);
    assert.ok(error instanceof EtcdError && error.reason === 'bad-response', error.message);
    assert.equal(error.message, 'etcd watch message larger than 4096 bytes');
  });
});
