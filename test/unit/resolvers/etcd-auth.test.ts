/**
 * The etcd resolver's auth and watch-cancellation handling, against a scripted etcd JSON gateway (etcd's own answers,
 * texts and statuses as etcd 3.4 gives them) and a fake clock: credentials while etcd auth is off, a token etcd
 * refuses later, and a watch etcd cancels for a reason other than compaction (probe 15).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { Endpoint } from '../../../src/common/endpoint.js';
import type { SidecarlessError } from '../../../src/common/errors.js';
import { EtcdError } from '../../../src/resolvers/errors.js';
import { EtcdResolver } from '../../../src/resolvers/etcd/resolver.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const json = (v: unknown) => JSON.stringify(v);
const b64 = (t: string) => Buffer.from(t).toString('base64');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** etcd's gateway error body for a gRPC status. */
const grpcError = (code: number, message: string) => json({ error: message, code, message });
const AUTH_NOT_ENABLED: Answer = [412, grpcError(9, 'etcdserver: authentication is not enabled')];
const USER_EMPTY: Answer = [400, grpcError(3, 'etcdserver: user name is empty')];
const INVALID_TOKEN: Answer = [401, grpcError(16, 'etcdserver: invalid auth token')];
const cancelLine = (reason: string, compact = '0') =>
  json({
    result: {
      header: { revision: '9' },
      watch_id: '-1',
      created: true,
      canceled: true,
      compact_revision: compact,
      cancel_reason: reason,
    },
  });
const TOKEN_EXPIRED = 'rpc error: code = Unauthenticated desc = etcdserver: invalid auth token';
const DENIED = 'rpc error: code = PermissionDenied desc = etcdserver: permission denied';

type Answer = [status: number, body: string];
/** What a watch request gets: lines written (the stream stays open), or a status and body. */
type WatchAnswer = { lines: string[] } | Answer;

interface Seen {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

/** A scripted etcd gateway: each path answers from its script (the last entry repeats), and every request is kept. */
async function gateway(script: {
  authenticate?: (Answer | 'token')[];
  range?: (Answer | 'ok')[];
  watch: WatchAnswer[];
}) {
  const seen: Seen[] = [];
  const streams: http.ServerResponse[] = [];
  let tokens = 0;
  const next = <T>(list: T[] | undefined, fallback: T): T =>
    list === undefined || list.length === 0 ? fallback : list.length > 1 ? (list.shift() as T) : (list[0] as T);
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      seen.push({ path, authorization: req.headers.authorization, body: JSON.parse(text) as Record<string, unknown> });
      let answer: Answer | { lines: string[] };
      if (path === '/v3/auth/authenticate') {
        const a = next(script.authenticate, 'token');
        answer = a === 'token' ? [200, json({ header: { revision: '5' }, token: `tok-${++tokens}` })] : a;
      } else if (path === '/v3/kv/range') {
        const a = next(script.range, 'ok');
        answer =
          a === 'ok'
            ? [200, json({ header: { revision: '5' }, kvs: [{ key: b64('/p/a'), value: b64('10.0.0.1:80') }] })]
            : a;
      } else {
        answer = next(script.watch, { lines: [json({ result: { header: { revision: '9' }, created: true } })] });
      }
      if (Array.isArray(answer)) {
        res.writeHead(answer[0], { 'content-type': 'application/json' });
        res.end(answer[1]);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const line of answer.lines) res.write(`${line}\n`);
      streams.push(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    streams,
    requests: (path: string) => seen.filter((s) => s.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const CREATED = json({ result: { header: { revision: '9' }, created: true } });
const event = (key: string, value: string, revision: number) =>
  json({
    result: {
      header: { revision: String(revision) },
      events: [{ kv: { key: b64(key), value: b64(value), mod_revision: String(revision) } }],
    },
  });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Starts a resolver with credentials against `gw` on a fake clock; `pump` waits (bounded) firing due timers. */
function start(gw: { address: string }, options: { username?: string } = { username: 'reader' }) {
  const clock = new FakeClock();
  const updates: (readonly Endpoint[])[] = [];
  const errors: SidecarlessError[] = [];
  const r = new EtcdResolver({
    endpoints: [gw.address],
    prefix: '/p/',
    clock,
    minRelistIntervalMs: 0,
    requestTimeoutMs: 5000,
    backoff: { initialMs: 1000, jitter: 0 },
    ...(options.username !== undefined ? { username: options.username, password: 'S3cr3tPW' } : {}),
  });
  cleanups.push(() => r.close());
  r.start({ onUpdate: (endpoints) => updates.push(endpoints), onError: (error) => errors.push(error) });
  const pump = async (predicate: () => boolean, what: string) => {
    const deadline = Date.now() + 5000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      clock.advance(0);
      await sleep(5);
    }
  };
  const keys = () => (updates.at(-1) ?? []).map((e) => e.key).sort();
  return { r, clock, updates, errors, pump, keys };
}

describe('etcd resolver: credentials while etcd auth is off', () => {
  it('goes on without a token when etcd answers "authentication is not enabled", and logs in once auth is on', async () => {
    // Auth off for the first cycle; enabled between the login and the listing of the second.
    const gw = await gateway({
      authenticate: [AUTH_NOT_ENABLED, AUTH_NOT_ENABLED, 'token'],
      range: ['ok', USER_EMPTY, 'ok'],
      watch: [{ lines: [CREATED] }],
    });
    cleanups.push(() => gw.close());
    const t = start(gw);
    await t.pump(() => t.updates.length === 1 && gw.streams.length === 1, 'the set and the watch');
    assert.equal(t.errors.length, 0);
    assert.deepEqual(t.keys(), ['10.0.0.1:80']);
    const [range] = gw.requests('/v3/kv/range');
    assert.equal(range?.authorization, undefined, 'no token to send');
    assert.equal(gw.requests('/v3/watch')[0]?.authorization, undefined);

    // The listing without a token is refused once auth is on: a new login, then the listing with its token.
    gw.streams[0]?.destroy();
    await t.pump(() => t.errors.length === 1, 'the broken watch');
    t.clock.advance(1000);
    await t.pump(() => gw.streams.length === 2, 'the second watch');
    const ranges = gw.requests('/v3/kv/range');
    assert.deepEqual(
      ranges.map((s) => s.authorization),
      [undefined, undefined, 'tok-1'],
    );
    assert.equal(gw.requests('/v3/auth/authenticate').length, 3);
    assert.equal(gw.requests('/v3/watch')[1]?.authorization, 'tok-1');
    assert.equal(t.errors.length, 1, 'only the broken stream was a failure');
    assert.equal((t.errors[0] as EtcdError).reason, 'connection');
  });

  it('a listing refused for its token (401 invalid auth token) brings a new login, not a failure', async () => {
    const gw = await gateway({ range: [INVALID_TOKEN, 'ok'], watch: [{ lines: [CREATED] }] });
    cleanups.push(() => gw.close());
    const t = start(gw);
    await t.pump(() => t.updates.length === 1 && gw.streams.length === 1, 'the set and the watch');
    assert.deepEqual(t.errors, []);
    assert.deepEqual(
      gw.requests('/v3/kv/range').map((s) => s.authorization),
      ['tok-1', 'tok-2'],
    );
  });

  it('with no credentials, "user name is empty" stays a forbidden failure (nothing to log in with)', async () => {
    const gw = await gateway({ range: [USER_EMPTY], watch: [] });
    cleanups.push(() => gw.close());
    const t = start(gw, {});
    await t.pump(() => t.errors.length === 1, 'the failure');
    assert.equal((t.errors[0] as EtcdError).reason, 'forbidden');
    assert.equal(gw.requests('/v3/auth/authenticate').length, 0);
  });
});

describe('etcd resolver: a watch etcd cancels for a reason other than compaction', () => {
  it('an expired token: logs in again and watches on from the revision held, without listing again', async () => {
    const gw = await gateway({
      watch: [{ lines: [CREATED, cancelLine(TOKEN_EXPIRED)] }, { lines: [CREATED] }],
    });
    cleanups.push(() => gw.close());
    const t = start(gw);
    await t.pump(() => gw.streams.length === 2, 'the second watch');
    const watches = gw.requests('/v3/watch');
    assert.deepEqual(
      watches.map((w) => w.authorization),
      ['tok-1', 'tok-2'],
    );
    // From the listing's revision + 1 both times: the `created` message's header revision (9) is not how far the
    // watch got.
    const start2 = (w: Seen | undefined) => (w?.body.create_request as { start_revision?: string }).start_revision;
    assert.equal(start2(watches[0]), '6');
    assert.equal(start2(watches[1]), '6');
    assert.equal(t.r.listCount, 1, 'not listed again');
    assert.deepEqual(t.errors, []);
    gw.streams[1]?.write(`${event('/p/b', '10.0.0.2:80', 10)}\n`);
    await t.pump(() => t.keys().length === 2, 'an event on the new watch');
  });

  it('a token refused again right after a new login: a forbidden failure, with backoff, the set kept', async () => {
    const gw = await gateway({ watch: [{ lines: [cancelLine(TOKEN_EXPIRED)] }] });
    cleanups.push(() => gw.close());
    const t = start(gw);
    await t.pump(() => t.errors.length === 1, 'the failure');
    const err = t.errors[0] as EtcdError;
    assert.ok(err instanceof EtcdError);
    assert.equal(err.reason, 'forbidden');
    assert.match(err.message, /invalid auth token/);
    assert.equal(gw.requests('/v3/watch').length, 2, 'one new login and watch, then the failure');
    assert.equal(gw.requests('/v3/auth/authenticate').length, 2);
    assert.equal(t.updates.length, 1, 'the set stays');
    await sleep(100);
    t.clock.advance(999);
    await sleep(50);
    assert.equal(t.r.listCount, 1, 'nothing until the backoff is over');
    t.clock.advance(1);
    await t.pump(() => t.r.listCount === 2, 'the next cycle after the backoff');
  });

  it('permission denied: a forbidden failure with backoff, no new login, the set kept', async () => {
    const gw = await gateway({ watch: [{ lines: [cancelLine(DENIED)] }] });
    cleanups.push(() => gw.close());
    const t = start(gw);
    await t.pump(() => t.errors.length === 1, 'the failure');
    const err = t.errors[0] as EtcdError;
    assert.equal(err.reason, 'forbidden');
    assert.match(err.message, /permission denied/);
    assert.equal(gw.requests('/v3/auth/authenticate').length, 1);
    assert.equal(gw.requests('/v3/watch').length, 1);
    assert.deepEqual(t.keys(), ['10.0.0.1:80']);
    await sleep(100);
    t.clock.advance(999);
    await sleep(50);
    assert.equal(t.r.listCount, 1, 'nothing until the backoff is over');
  });

  it('another reason is a server-error failure; only a compact revision is a compaction (listed again, no error)', async () => {
    const gw = await gateway({
      watch: [
        { lines: [cancelLine('', '3')] },
        { lines: [cancelLine('mvcc: required revision is a future revision')] },
        { lines: [CREATED] },
      ],
    });
    cleanups.push(() => gw.close());
    const t = start(gw, {});
    await t.pump(() => t.errors.length === 1, 'the failure');
    assert.equal(t.r.listCount, 2, 'the compaction: listed again');
    const err = t.errors[0] as EtcdError;
    assert.equal(err.reason, 'server-error');
    assert.match(err.message, /future revision/);
    t.clock.advance(1000);
    await t.pump(() => gw.streams.length === 3, 'the watch after the backoff');
    assert.equal(t.errors.length, 1);
  });
});
