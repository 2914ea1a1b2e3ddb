import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import type { ArgumentsHost } from '@nestjs/common';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Tracing, createLogger } from '@backchannel/observability';
import { EnvelopeFilter } from './envelope.filter.js';
import { requestTraceId, traceRequests } from './request-trace.js';

class Lines extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) this.lines.push(JSON.parse(line));
    done();
  }
}

/** Over real HTTP: Fastify's inject() breaks inside jest on Node 20 (TOOLCHAIN.md). */
describe('request trace context', () => {
  const out = new Lines();
  const logger = createLogger({ service: 'test', level: 'debug', destination: out });
  let fastify: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    fastify = Fastify();
    traceRequests(fastify, logger, Tracing.off());
    fastify.post('/things/:id', (request) => ({
      trace_id: requestTraceId(request),
      header: request.headers['traceparent'],
    }));
    fastify.get('/healthz', () => ({ ok: true }));
    // What Nest does with a route's unexpected error: the envelope filter renders it.
    fastify.get('/boom', (request, reply) => {
      new EnvelopeFilter(logger).catch(new Error('boom'), hostOf(request, reply));
    });
    url = await fastify.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await fastify.close();
  });

  it("keeps a valid traceparent's trace, for the handler and in the request line", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const answer = await fetch(`${url}/things/42`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        authorization: 'Bearer secret-never-logged',
      },
      body: JSON.stringify({ big: 'x'.repeat(100_000) }),
    });
    expect(await answer.json()).toEqual({ trace_id: traceId, header: `00-${traceId}-00f067aa0ba902b7-01` });
    const requestLine = out.lines.find((line) => line.msg === 'http request' && line.trace_id === traceId);
    expect(requestLine).toMatchObject({ level: 'info', method: 'POST', route: '/things/:id', status: 200 });
    expect(Object.keys(requestLine!).sort()).toEqual(
      ['duration_ms', 'level', 'method', 'msg', 'request_id', 'route', 'service', 'status', 'time', 'trace_id'].sort(),
    );
    expect(JSON.stringify(out.lines)).not.toContain('secret-never-logged');
  });

  it('gives a request without a valid traceparent one new trace, written back as its header', async () => {
    const cases: Record<string, string>[] = [
      {},
      { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' },
    ];
    for (const headers of cases) {
      const answer = await fetch(`${url}/things/1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{}',
      });
      const body = (await answer.json()) as { trace_id: string; header: string };
      expect(body.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(body.header).toMatch(new RegExp(`^00-${body.trace_id}-[0-9a-f]{16}-00$`));
      expect(out.lines).toContainEqual(expect.objectContaining({ msg: 'http request', trace_id: body.trace_id }));
    }
  });

  it("an unexpected error is logged with the request's trace, the one its envelope names", async () => {
    const traceId = '5cf92f3577b34da6a3ce929d0e0e4799';
    const answer = await fetch(`${url}/boom`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(answer.status).toBe(500);
    const body = (await answer.json()) as { errors: { code: string; meta: { trace_id: string } }[] };
    expect(body.errors[0]).toMatchObject({ code: 'internal_error', meta: { trace_id: traceId } });
    expect(out.lines).toContainEqual(
      expect.objectContaining({ msg: 'unexpected error', level: 'error', trace_id: traceId }),
    );
  });

  it('logs probes at debug and 5xx at warn; lines outside a request carry no trace', async () => {
    await fetch(`${url}/healthz`);
    await fetch(`${url}/boom`);
    expect(out.lines.find((line) => line.route === '/healthz')).toMatchObject({ level: 'debug', status: 200 });
    expect(out.lines.find((line) => line.route === '/boom')).toMatchObject({ level: 'warn', status: 500 });
    logger.info('outside');
    expect(out.lines.find((line) => line.msg === 'outside')).not.toHaveProperty('trace_id');
  });
});

/** The one part of Nest's `ArgumentsHost` the envelope filter reads. */
function hostOf(request: FastifyRequest, reply: FastifyReply): ArgumentsHost {
  return { switchToHttp: () => ({ getRequest: () => request, getResponse: () => reply }) } as unknown as ArgumentsHost;
}
