/** A cleartext node:http2 server on 127.0.0.1 driven stream by stream, for tests of the HTTP/2 layer. */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';

export interface RawH2Server {
  readonly address: string;
  /** Streams opened so far. */
  streams(): number;
  readonly server: http2.Http2Server;
  /** Destroys its sessions and stops listening. */
  close(): void;
}

/** Starts a server calling `onStream` for each stream (its errors ignored), with `settings` when given. */
export async function rawH2Server(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
  settings?: http2.Settings,
): Promise<RawH2Server> {
  const server = http2.createServer(settings === undefined ? {} : { settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  let streams = 0;
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', () => {});
    session.once('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    streams++;
    stream.on('error', () => {});
    onStream(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams: () => streams,
    server,
    close: () => {
      for (const session of sessions) session.destroy();
      server.close();
    },
  };
}

/** {@link rawH2Server} for one test file: every server it starts is closed once the file's tests have run. */
export function rawH2ServersForFile(): (
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
) => Promise<RawH2Server> {
  const started: RawH2Server[] = [];
  after(() => {
    for (const server of started) server.close();
  });
  return async (onStream) => {
    const server = await rawH2Server(onStream);
    started.push(server);
    return server;
  };
}
