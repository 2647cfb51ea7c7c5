/** A request as route matching sees it; by default `GET /` to host `users`. */
export const req = (over: Partial<{ host: string; path: string; method: string; headers: unknown }> = {}) => {
  const host = over.host ?? 'users';
  return {
    host,
    authority: host,
    path: over.path ?? '/',
    method: over.method ?? 'GET',
    headers: over.headers ?? null,
  };
};
