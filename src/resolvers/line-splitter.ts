/**
 * Splitting a watch stream (newline-delimited JSON, in chunks of any size) into lines with a byte cap, shared by the
 * etcd and Kubernetes resolvers.
 *
 * A registry may send one message in many chunks, up to the cap (64 MiB for etcd). Appending each chunk to a string
 * and searching it from its start again made receiving such a message quadratic in its size (seconds of event loop
 * blocked at the cap). Here each byte is searched once and copied once: the unterminated pieces are kept as a list
 * with their running length and joined when the newline that ends them arrives.
 *
 * @module
 */

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines: without their `\n`, trimmed (so a `\r` before the `\n` goes too), blank ones
 * dropped, decoded as UTF-8 only once whole (a `\n` byte never occurs inside a UTF-8 character, so a character split
 * across chunks is decoded intact). A line, or an unterminated rest, of more than `maxLineBytes` bytes throws what
 * `tooLong` returns (the resolver's own `bad-response` error).
 */
export class LineSplitter {
  readonly #max: number;
  readonly #tooLong: (maxLineBytes: number) => Error;
  /** The pieces of the line not yet ended, and their total length, bytes. */
  #pieces: Buffer[] = [];
  #pending = 0;
  #scanned = 0;
  #copied = 0;

  constructor(maxLineBytes: number, tooLong: (maxLineBytes: number) => Error) {
    this.#max = maxLineBytes;
    this.#tooLong = tooLong;
  }

  /** Bytes searched for a newline so far: each byte received once, whatever the chunking. */
  get scannedBytes(): number {
    return this.#scanned;
  }

  /** Bytes copied to join a line's pieces so far: at most each byte received once. */
  get copiedBytes(): number {
    return this.#copied;
  }

  /** The complete lines `chunk` finishes. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    let newline = chunk.indexOf(NEWLINE, start);
    while (newline >= 0) {
      this.#scanned += newline + 1 - start;
      this.#add(chunk.subarray(start, newline));
      this.#take(lines);
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    this.#scanned += chunk.length - start;
    if (start < chunk.length) this.#add(chunk.subarray(start));
    return lines;
  }

  /** What is left once the stream ended: a last line without `\n`, if any. */
  end(): string[] {
    const lines: string[] = [];
    this.#take(lines);
    return lines;
  }

  #add(piece: Buffer): void {
    this.#pending += piece.length;
    if (this.#pending > this.#max) {
      this.#pieces = [];
      throw this.#tooLong(this.#max);
    }
    if (piece.length > 0) this.#pieces.push(piece);
  }

  /** Ends the pending line: decodes it and adds it to `lines` unless it is blank. */
  #take(lines: string[]): void {
    const pieces = this.#pieces;
    let whole: Buffer;
    if (pieces.length === 1) {
      whole = pieces[0] as Buffer;
    } else {
      whole = Buffer.concat(pieces, this.#pending);
      this.#copied += this.#pending;
    }
    this.#pieces = [];
    this.#pending = 0;
    const line = whole.toString('utf8').trim();
    if (line.length > 0) lines.push(line);
  }
}
