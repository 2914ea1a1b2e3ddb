import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';

interface ExportedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

/** An OTLP/HTTP (JSON) collector: the outside world of an operator's tracing backend. */
class FakeCollector {
  readonly spans: ExportedSpan[] = [];
  readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        this.collect(JSON.parse(body));
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
  }

  private collect(payload: any): void {
    for (const resourceSpans of payload.resourceSpans ?? []) {
      const service = resourceSpans.resource.attributes.find((a: any) => a.key === 'service.name')?.value.stringValue;
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          const attributes = Object.fromEntries(
            (span.attributes ?? []).map((a: any) => [a.key, Object.values(a.value)[0]]),
          );
          this.spans.push({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            attributes,
          });
        }
      }
    }
  }
}

/**
 * Issue 8: OpenTelemetry spans, exported by the standard OTEL_* variables, join the trace
 * of the provider's `traceparent` at the ingress and follow it through the sequencer's
 * release and the injector's append — one trace across three services and two NATS hops.
 */
describe('OpenTelemetry export', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingressUrl: string;
  let platform: PlatformClient;
  const collector = new FakeCollector();

  beforeAll(async () => {
    await new Promise<void>((resolve) => collector.server.listen(0, '127.0.0.1', resolve));
    nats = await startNatsServer();
    const otel = {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    };
    const ta = await startTestService(TOKEN_AUTHORITY, nats);
    const ingress = await startTestService(CALLBACK_INGRESS, nats, otel);
    services = [
      ta,
      ingress,
      await startTestService(ORDERING_SEQUENCER, nats, otel),
      await startTestService(CONVERSATION_INJECTOR, nats, otel),
    ];
    ingressUrl = ingress.service.url;
    platform = new PlatformClient(ta.service.url);
  });

  afterAll(async () => {
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
    await new Promise((resolve) => collector.server.close(resolve));
  });

  it('exports one trace from the callback through the release to the injection', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const providerSpanId = 'b7ad6b7169203331';
    await platform.openConversation('otel-1');
    const item = await platform.register('otel-1');
    const answer = await postCallback(
      ingressUrl,
      item.work_item_id,
      item.token,
      { result: { ok: true } },
      { traceparent: `00-${traceId}-${providerSpanId}-01` },
    );
    expect(answer.status).toBe(202);

    const spans = await eventually(
      () => {
        const ofTrace = collector.spans.filter((span) => span.traceId === traceId);
        expect(new Set(ofTrace.map((span) => span.service))).toEqual(
          new Set(['callback-ingress', 'ordering-sequencer', 'conversation-injector']),
        );
        return ofTrace;
      },
      { timeoutMs: 15_000 },
    );
    const callback = spans.find((span) => span.service === 'callback-ingress')!;
    expect(callback.name).toBe('POST /api/v1/webhooks/:workItemId');
    expect(callback.parentSpanId).toBe(providerSpanId);
    expect(callback.attributes['http.response.status_code']).toBe(202);
    const release = spans.find((span) => span.service === 'ordering-sequencer')!;
    expect(release.attributes).toMatchObject({
      'backchannel.work_item_id': item.work_item_id,
      'backchannel.release_index': 1,
    });
    expect(spans.find((span) => span.service === 'conversation-injector')!.attributes).toMatchObject({
      'backchannel.conversation_id': 'otel-1',
      'backchannel.source': 'callback',
    });
    // No secret in any span: the token never leaves the ingress's check.
    expect(JSON.stringify(collector.spans)).not.toContain(item.token);
  });

  it('starts a trace of its own for a callback without traceparent, and exports nothing from services left off', async () => {
    await platform.openConversation('otel-2');
    const item = await platform.register('otel-2');
    expect((await postCallback(ingressUrl, item.work_item_id, item.token, { result: 1 })).status).toBe(202);
    const span = await eventually(() => {
      const found = collector.spans.find(
        (s) => s.service === 'conversation-injector' && s.attributes['backchannel.conversation_id'] === 'otel-2',
      );
      expect(found).toBeDefined();
      return found!;
    });
    const ingressSpan = collector.spans.find((s) => s.service === 'callback-ingress' && s.traceId === span.traceId);
    expect(ingressSpan?.parentSpanId ?? '').toBe('');
    // The token authority runs with tracing off (the default): none of its requests appear.
    expect(collector.spans.some((s) => s.service === 'token-authority')).toBe(false);
  });
});
