/**
 * FormData bodies undici 7 cannot send. undici 7 encodes only a FormData of its own class: Node's global `FormData`
 * (Node's bundled undici) or undici 8's passes its `FormData`-like check, then fails while its body is sent
 * (`TypeError: action is not a function`), after the request has been written, as an endpoint's failure. Such a body
 * is encoded here before dispatch, as undici encodes its own (the multipart/form-data encoding of the fetch
 * standard's "extract a body"), into a `Blob`: held in memory, replayable, sent with its length. The file parts are
 * referenced, not copied.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { type Dispatcher, FormData as OwnFormData } from 'undici';
import { InvalidRequestError } from '../common/errors.js';
import { markCallerError } from '../common/outcome.js';
import { withHeader } from './headers.js';

type DispatchOptions = Dispatcher.DispatchOptions;

/** undici's `isFormDataLike` (core/util.js): what it takes for a FormData, and hands to its encoder. */
function isFormDataLike(body: unknown): body is Iterable<[unknown, unknown]> {
  if (typeof body !== 'object' || body === null) return false;
  const form = body as Record<string, unknown>;
  return (
    typeof form.append === 'function' &&
    typeof form.delete === 'function' &&
    typeof form.get === 'function' &&
    typeof form.getAll === 'function' &&
    typeof form.has === 'function' &&
    typeof form.set === 'function' &&
    (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'FormData'
  );
}

const escape = (text: string): string => text.replace(/\n/g, '%0A').replace(/\r/g, '%0D').replace(/"/g, '%22');
const normalizeLinefeeds = (text: string): string => text.replace(/\r?\n|\r/g, '\r\n');

/** `form` as a multipart/form-data body, and its `content-type`. Throws on an entry that is not a string or a Blob. */
function encode(form: Iterable<[unknown, unknown]>): { body: Blob; type: string } {
  const boundary = `----formdata-sidecarless-${randomBytes(12).toString('hex')}`;
  const prefix = `--${boundary}\r\nContent-Disposition: form-data`;
  const parts: Array<string | Blob> = [];
  for (const [name, value] of form) {
    if (typeof name !== 'string') throw new TypeError('a FormData entry name is not a string');
    const disposition = `${prefix}; name="${escape(normalizeLinefeeds(name))}"`;
    if (typeof value === 'string') {
      parts.push(`${disposition}\r\n\r\n${normalizeLinefeeds(value)}\r\n`);
    } else if (value instanceof Blob) {
      const filename = (value as { name?: unknown }).name;
      parts.push(
        `${disposition}${typeof filename === 'string' && filename !== '' ? `; filename="${escape(filename)}"` : ''}\r\n` +
          `Content-Type: ${value.type || 'application/octet-stream'}\r\n\r\n`,
        value,
        '\r\n',
      );
    } else {
      throw new TypeError('a FormData entry value is neither a string nor a Blob');
    }
  }
  // The CRLF after the last boundary, as undici, curl and browsers send it.
  parts.push(`--${boundary}--\r\n`);
  return { body: new Blob(parts), type: `multipart/form-data; boundary=${boundary}` };
}

/**
 * `options` with a FormData body undici 7 cannot send replaced by its encoding (and a `content-type` naming its
 * boundary, unless the caller set one, as undici does over HTTP/1.1), or `options` as they are. An
 * {@link InvalidRequestError} (the caller's) for a FormData that cannot be encoded: one whose entries cannot be read,
 * or are not strings and Blobs.
 */
export function sendableFormData(options: DispatchOptions): DispatchOptions | InvalidRequestError {
  const { body } = options;
  if (!isFormDataLike(body) || body instanceof OwnFormData) return options;
  let encoded: { body: Blob; type: string };
  try {
    encoded = encode(body);
  } catch (err) {
    const refused = new InvalidRequestError(`the FormData body cannot be sent: ${(err as Error).message}`, undefined, {
      cause: err,
    });
    markCallerError(refused);
    return refused;
  }
  const sent: DispatchOptions = Object.assign({}, options);
  sent.body = encoded.body as unknown as NonNullable<DispatchOptions['body']>;
  sent.headers = withHeader(options.headers, 'content-type', encoded.type);
  return sent;
}
