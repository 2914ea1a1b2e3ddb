import { request } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import type { EventSourceFetchInit, FetchLikeResponse } from 'eventsource';

/**
 * A streaming GET over node:http, for SSE clients in tests. Node 20's bundled fetch opens
 * a spare connection after an aborted stream and holds it for a keep-alive timeout, which
 * would hold up the service's graceful stop; a plain request without keep-alive does not.
 */
export function streamingGet(
  url: string | URL,
  init: { headers?: Record<string, string>; signal?: AbortSignal | null } = {},
): Promise<FetchLikeResponse & { body: ReadableStream<Uint8Array> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: init.headers, agent: false }, (res) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (typeof value === 'string') headers.set(name, value);
      }
      resolve({
        url: String(url),
        status: res.statusCode ?? 0,
        redirected: false,
        headers,
        body: Readable.toWeb(res) as ReadableStream<Uint8Array>,
      });
    });
    init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
    req.on('error', reject);
    req.end();
  });
}

/** The `fetch` option of an EventSource: streamingGet with the tenant key and extra headers. */
export function eventSourceFetch(key: string, extra: Record<string, string> = {}) {
  return (url: string | URL, init: EventSourceFetchInit) =>
    streamingGet(url, {
      signal: (init.signal as AbortSignal | undefined) ?? null,
      headers: { ...init.headers, authorization: `Bearer ${key}`, ...extra },
    });
}
