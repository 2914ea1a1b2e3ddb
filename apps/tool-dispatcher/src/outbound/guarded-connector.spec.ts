import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { HostResolver, type ResolvedAddress } from './host-resolver.js';
import { ToolPostFailure, UndiciToolHttpClient, type ToolPost } from './tool-http-client.js';

class MapResolver extends HostResolver {
  constructor(private readonly table: Record<string, string[]>) {
    super();
  }
  resolve(hostname: string): Promise<ResolvedAddress[]> {
    return Promise.resolve(
      (this.table[hostname] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  }
}

/** A real undici agent against a real local server: only name resolution is a stub. */
describe('the guarded outbound client', () => {
  let server: Server;
  let port: number;
  let connections = 0;
  let redirects = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/redirect') {
        redirects++;
        response.writeHead(307, { location: '/elsewhere' }).end();
        return;
      }
      if (request.url === '/slow') {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => {
          inFlight--;
          response.writeHead(200).end();
        }, 50);
        return;
      }
      if (request.url === '/big') {
        response.writeHead(200);
        response.end('x'.repeat(2 * 1024 * 1024));
        return;
      }
      request.resume();
      request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"result":1}'));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (url: string, readBody = true): ToolPost => ({
    url,
    headers: { 'content-type': 'application/json' },
    body: '{}',
    timeoutMs: 2_000,
    readBody,
  });
  const resolver = new MapResolver({ 'loopback.test': ['127.0.0.1'], 'mixed.test': ['127.0.0.1', '10.0.0.1'] });

  async function failure(promise: Promise<unknown>): Promise<ToolPostFailure> {
    const error = await promise.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ToolPostFailure);
    return error as ToolPostFailure;
  }

  it('refuses, before connecting, a name resolving to loopback and a loopback literal', async () => {
    const sut = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks: false }, new ConcurrencyLimit(4));
    const before = connections;
    expect((await failure(sut.post(post(`http://loopback.test:${port}/`)))).kind).toBe('blocked');
    expect((await failure(sut.post(post(`http://mixed.test:${port}/`)))).kind).toBe('blocked');
    expect((await failure(sut.post(post(`http://127.0.0.1:${port}/`)))).kind).toBe('blocked');
    expect((await failure(sut.post(post(`http://[::ffff:127.0.0.1]:${port}/`)))).kind).toBe('blocked');
    expect(connections).toBe(before);
    await sut.close();
  });

  it('with private networks allowed, connects to the address the resolver gave', async () => {
    const sut = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks: true }, new ConcurrencyLimit(4));
    expect(await sut.post(post(`http://loopback.test:${port}/`))).toEqual({ status: 200, body: '{"result":1}' });
    await sut.close();
  });

  it('does not follow redirects and caps the answer size', async () => {
    const sut = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks: true }, new ConcurrencyLimit(4));
    expect((await sut.post(post(`http://127.0.0.1:${port}/redirect`))).status).toBe(307);
    expect(redirects).toBe(1);
    expect((await failure(sut.post(post(`http://127.0.0.1:${port}/big`)))).kind).toBe('too_large');
    await sut.close();
  });

  it('reports a refused connection as a network failure without the URL', async () => {
    const sut = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks: true }, new ConcurrencyLimit(4));
    const error = await failure(sut.post(post('http://127.0.0.1:1/secret-path?key=abc')));
    expect(error.kind).toBe('network');
    expect(error.message).not.toContain('secret-path');
    await sut.close();
  });

  it('keeps at most DISPATCHER_MAX_CONCURRENCY requests in flight, across origins', async () => {
    const sut = UndiciToolHttpClient.create({ resolver, allowPrivateNetworks: true }, new ConcurrencyLimit(2));
    const urls = [`http://127.0.0.1:${port}/slow`, `http://loopback.test:${port}/slow`];
    const answers = await Promise.all([0, 1, 2, 3, 4, 5].map((index) => sut.post(post(urls[index % 2], false))));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(maxInFlight).toBe(2);
    await sut.close();
  });
});
