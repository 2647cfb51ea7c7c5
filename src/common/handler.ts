/**
 * undici's dispatch-handler shapes and an adapter between them.
 *
 * undici 7 accepts two handler styles: the legacy callbacks (`onConnect`, `onHeaders`, `onData`, `onComplete`,
 * `onError`), which its own `fetch`, `request`, `stream` and `pipeline` and Node's bundled fetch use, and the
 * controller style (`onRequestStart`, `onResponseStart`, ...). sidecarless works in the legacy style internally,
 * because that is what undici's Pool consumes natively (a controller-style handler would be converted twice), and
 * adapts controller-style handlers (from user interceptors) once, at the edge.
 *
 * Checked against undici 7.30.2 for issue 14: `DispatcherBase.dispatch` (Pool, Client, Agent) wraps a handler that
 * has `onRequestStart` in an `UnwrapHandler` with an `UnwrapController` (two objects a request) and passes a legacy
 * one as it is; core `Request` calls `onConnect`/`onHeaders`/`onData`/`onComplete`/`onError`. `undici.request`,
 * `stream`, `pipeline` and Node's bundled `fetch` hand the dispatcher legacy handlers. So an attempt in the
 * controller style would cost a wrapper per attempt rather than save one: the attempt stays legacy, and a legacy
 * caller's handler is used as it is (`toLegacyHandler` allocates only for a controller-style one).
 */
import type { Duplex } from 'node:stream';
import { util as undiciUtil } from 'undici';
import { keepShape } from './shapes.js';

/** The legacy undici handler (what `Pool.dispatch` ends up calling). */
export interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: object): void;
  onError?(err: Error): void;
  onUpgrade?(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void;
  onResponseStarted?(): void;
  onHeaders?(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: string[] | Buffer[] | null): void;
  onBodySent?(chunkSize: number, totalBytesSent: number): void;
  onRequestSent?(): void;
}

/** The controller a controller-style handler receives. */
interface Controller {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
  readonly aborted: boolean;
  readonly reason: Error | null;
  readonly paused: boolean;
  rawHeaders: Buffer[] | null;
  rawTrailers: Buffer[] | string[] | null;
}

/** The controller-style handler (undici 7). */
export interface ControllerHandler {
  onRequestStart?(controller: Controller, context: unknown): void;
  onRequestUpgrade?(controller: Controller, statusCode: number, headers: Record<string, unknown>, socket: Duplex): void;
  onResponseStart?(
    controller: Controller,
    statusCode: number,
    headers: Record<string, unknown>,
    statusMessage?: string,
  ): void;
  onResponseData?(controller: Controller, chunk: Buffer): void;
  onResponseEnd?(controller: Controller, trailers: Record<string, unknown>): void;
  onResponseError?(controller: Controller, error: Error): void;
  /** Not part of the controller API, but undici's fetch (8) relies on it for resource timing, as undici passes it on. */
  onResponseStarted?(): void;
}

class AdapterController implements Controller {
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  readonly #abort: (reason?: Error) => void;
  resumeFn: (() => void) | null = null;
  rawHeaders: Buffer[] | null = null;
  rawTrailers: Buffer[] | string[] | null = null;

  constructor(abort: (reason?: Error) => void) {
    this.#abort = abort;
  }
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    if (this.#paused) {
      this.#paused = false;
      this.resumeFn?.();
    }
  }
  abort(reason: Error): void {
    if (!this.#aborted) {
      this.#aborted = true;
      this.#reason = reason;
      this.#abort(reason);
    }
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  get paused(): boolean {
    return this.#paused;
  }
}

const parseHeaders = undiciUtil.parseHeaders as (headers: Buffer[] | string[] | null) => Record<string, unknown>;

/** Presents a controller-style handler as a legacy one (the same mapping as undici's own UnwrapHandler). */
class ControllerToLegacy implements LegacyHandler {
  readonly #handler: ControllerHandler;
  #controller: AdapterController | undefined;

  constructor(handler: ControllerHandler) {
    this.#handler = handler;
  }
  #ctl(): AdapterController {
    this.#controller ??= new AdapterController(() => {});
    return this.#controller;
  }
  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#controller = new AdapterController(abort);
    this.#handler.onRequestStart?.(this.#controller, context);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    const ctl = this.#ctl();
    ctl.rawHeaders = headers as Buffer[] | null;
    this.#handler.onRequestUpgrade?.(ctl, statusCode, parseHeaders(headers ?? []), socket);
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    const ctl = this.#ctl();
    ctl.resumeFn = resume;
    ctl.rawHeaders = headers;
    this.#handler.onResponseStart?.(ctl, statusCode, parseHeaders(headers), statusText);
    return !ctl.paused;
  }
  onData(chunk: Buffer): boolean {
    const ctl = this.#ctl();
    this.#handler.onResponseData?.(ctl, chunk);
    return !ctl.paused;
  }
  onComplete(trailers: string[] | Buffer[] | null): void {
    const ctl = this.#ctl();
    ctl.rawTrailers = trailers;
    this.#handler.onResponseEnd?.(ctl, parseHeaders(trailers ?? []));
  }
  onError(err: Error): void {
    this.#handler.onResponseError?.(this.#ctl(), err);
  }
}

// The adapter is made for every request of an undici 8 caller: its hidden class outlives quiet moments (shapes.ts).
keepShape(new ControllerToLegacy({}));

/** Returns `handler` in the legacy style, adapting a controller-style handler. */
export function toLegacyHandler(handler: object): LegacyHandler {
  return typeof (handler as ControllerHandler).onRequestStart === 'function'
    ? new ControllerToLegacy(handler as ControllerHandler)
    : (handler as LegacyHandler);
}

function toRawHeaders(headers: Record<string, unknown> | null | undefined): Buffer[] {
  const raw: Buffer[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined) raw.push(Buffer.from(name), Buffer.from(String(v)));
    }
  }
  return raw;
}

/** Presents a legacy handler as a controller-style one (the same mapping as undici 8's Dispatcher1Wrapper). */
class LegacyToController implements ControllerHandler {
  readonly #handler: LegacyHandler;

  constructor(handler: LegacyHandler) {
    this.#handler = handler;
  }
  onRequestStart(controller: Controller, context: unknown): void {
    this.#handler.onConnect?.((reason) => controller.abort(reason ?? new Error('aborted')), context as object);
  }
  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, unknown>, socket: Duplex): void {
    this.#handler.onUpgrade?.(statusCode, controller.rawHeaders ?? toRawHeaders(headers), socket);
  }
  onResponseStart(
    controller: Controller,
    statusCode: number,
    headers: Record<string, unknown>,
    message?: string,
  ): void {
    const raw = controller.rawHeaders ?? toRawHeaders(headers);
    if (this.#handler.onHeaders?.(statusCode, raw, () => controller.resume(), message ?? '') === false) {
      controller.pause();
    }
  }
  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#handler.onData?.(chunk) === false) controller.pause();
  }
  onResponseEnd(controller: Controller, trailers: Record<string, unknown>): void {
    this.#handler.onComplete?.(controller.rawTrailers ?? toRawHeaders(trailers));
  }
  onResponseError(_controller: Controller, error: Error): void {
    this.#handler.onError?.(error);
  }
}

/**
 * Returns a handler with both styles, for a dispatcher of unknown undici major (a user's `Agent`): undici 6 calls
 * only the legacy callbacks, undici 8 only the controller ones (it rejects a handler without `onRequestStart`),
 * undici 7 the controller ones when present.
 */
export function toDualHandler(handler: object): LegacyHandler & ControllerHandler {
  const isController = typeof (handler as ControllerHandler).onRequestStart === 'function';
  const legacy = isController ? new ControllerToLegacy(handler as ControllerHandler) : (handler as LegacyHandler);
  const controller = isController ? (handler as ControllerHandler) : new LegacyToController(handler as LegacyHandler);
  const plain = handler as LegacyHandler;
  return {
    onConnect: (abort, context) => legacy.onConnect?.(abort, context),
    onUpgrade: (status, headers, socket) => legacy.onUpgrade?.(status, headers, socket),
    onHeaders: (status, headers, resume, text) => legacy.onHeaders?.(status, headers, resume, text) ?? true,
    onData: (chunk) => legacy.onData?.(chunk) ?? true,
    onComplete: (trailers) => legacy.onComplete?.(trailers),
    onError: (err) => legacy.onError?.(err),
    onRequestStart: (ctl, context) => controller.onRequestStart?.(ctl, context),
    onRequestUpgrade: (ctl, status, headers, socket) => controller.onRequestUpgrade?.(ctl, status, headers, socket),
    onResponseStart: (ctl, status, headers, text) => controller.onResponseStart?.(ctl, status, headers, text),
    onResponseData: (ctl, chunk) => controller.onResponseData?.(ctl, chunk),
    onResponseEnd: (ctl, trailers) => controller.onResponseEnd?.(ctl, trailers),
    onResponseError: (ctl, err) => controller.onResponseError?.(ctl, err),
    // Both styles share these (undici 8 passes the chunk, 6 and 7 sizes: forwarded as they come).
    onResponseStarted: () => plain.onResponseStarted?.(),
    onRequestSent: () => plain.onRequestSent?.(),
    onBodySent: (...args: [number, number]) => plain.onBodySent?.(...args),
  };
}
