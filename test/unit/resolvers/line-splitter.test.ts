// Unit tests of the watch-stream line splitter shared by the etcd and Kubernetes resolvers: exact splitting whatever
// the chunking (inside UTF-8 characters too), the byte cap, and work linear in a message's size (counted, not timed).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EtcdError } from '../../../src/resolvers/errors.js';
import { LineSplitter } from '../../../src/resolvers/line-splitter.js';
import { seededRandom } from '../../helpers/fake-clock.js';

const tooLong = (max: number) => new EtcdError('bad-response', `etcd watch message larger than ${max} bytes`);

function split(chunks: readonly Buffer[], max = 1 << 20): string[] {
  const splitter = new LineSplitter(max, tooLong);
  const lines: string[] = [];
  for (const chunk of chunks) lines.push(...splitter.push(chunk));
  lines.push(...splitter.end());
  return lines;
}

describe('LineSplitter', () => {
  const text = '{"a":"é€😀"}\n\n{"b":1}\r\n  \n{"c":"ü"}\n{"d"';
  const expected = ['{"a":"é€😀"}', '{"b":1}', '{"c":"ü"}', '{"d"'];

  it('splits exactly at every cut point and byte by byte, multi-byte characters split across chunks included', () => {
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (let cut2 = cut; cut2 <= bytes.length; cut2 += 3) {
        const chunks = [bytes.subarray(0, cut), bytes.subarray(cut, cut2), bytes.subarray(cut2)];
        assert.deepEqual(split(chunks), expected, `cuts at ${cut} and ${cut2}`);
      }
    }
    assert.deepEqual(split([...bytes].map((b) => Buffer.from([b]))), expected);
  });

  it('splits random chunkings of many lines exactly', () => {
    const random = seededRandom(0x5117);
    const want = Array.from({ length: 200 }, (_, i) => `{"n":${i},"s":"${'é'.repeat(i % 7)}${'x'.repeat(i)}"}`);
    const bytes = Buffer.from(want.map((line) => `${line}\n`).join(''));
    for (let run = 0; run < 50; run++) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length;) {
        const size = 1 + Math.floor(random() * 300);
        chunks.push(bytes.subarray(at, at + size));
        at += size;
      }
      assert.deepEqual(split(chunks), want);
    }
  });

  it('a line or an unterminated rest above the cap in bytes throws the given error, at exactly the cap it does not', () => {
    const max = 64;
    const at = (line: string) => Buffer.from(line);
    assert.deepEqual(split([at(`${'x'.repeat(max)}\n`)], max), ['x'.repeat(max)]);
    assert.deepEqual(split([at('x'.repeat(max))], max), ['x'.repeat(max)]);
    for (const chunks of [
      [at(`${'x'.repeat(max + 1)}\n`)],
      [at('x'.repeat(max + 1))],
      // Counted in bytes, not characters: 33 two-byte characters are 66 bytes.
      [at(`${'é'.repeat(33)}\n`)],
      [at('é'.repeat(33))],
      // A rest that only grows past the cap over many chunks.
      Array.from({ length: 65 }, () => at('x')),
    ]) {
      assert.throws(
        () => split(chunks, max),
        (err: unknown) =>
          err instanceof EtcdError &&
          err.reason === 'bad-response' &&
          err.message === 'etcd watch message larger than 64 bytes',
      );
    }
  });

  it('receives a message just under the cap in 4 KiB chunks with each byte searched once and copied once', () => {
    const max = 8 * 1024 * 1024;
    const message = Buffer.alloc(max - 2, 'Q');
    const chunks: Buffer[] = [];
    for (let at = 0; at < message.length; at += 4096) chunks.push(message.subarray(at, at + 4096));
    chunks.push(Buffer.from('\n{"next":1}\n'));
    const splitter = new LineSplitter(max, tooLong);
    const lines: string[] = [];
    for (const chunk of chunks) lines.push(...splitter.push(chunk));
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.length, message.length);
    assert.equal(lines[1], '{"next":1}');
    const received = message.length + 12;
    // Linear: the bytes touched equal the bytes received, whatever the chunk count (a splitter that searched the
    // whole pending rest again on each of the 2048 chunks would have searched about 2048 / 2 times as much).
    assert.equal(splitter.scannedBytes, received);
    assert.equal(splitter.copiedBytes, message.length);
  });

  it('keeps counting linearly across an oversized message: the cap stops it after at most the cap plus a chunk', () => {
    const max = 1024 * 1024;
    const splitter = new LineSplitter(max, tooLong);
    const chunk = Buffer.alloc(4096, 'Q');
    let pushed = 0;
    assert.throws(() => {
      for (;;) {
        pushed += chunk.length;
        splitter.push(chunk);
      }
    }, /larger than 1048576 bytes/);
    assert.equal(pushed, max + chunk.length);
    assert.equal(splitter.scannedBytes, pushed);
    assert.equal(splitter.copiedBytes, 0);
  });
});
