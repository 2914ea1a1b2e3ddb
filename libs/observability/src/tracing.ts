import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  RandomIdGenerator,
  TracerProvider,
  type IdGenerator,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';

export type TraceExporterName = 'none' | 'otlp' | 'console';

export interface TracingOptions {
  /** `service.name` of the spans (OTEL_SERVICE_NAME, else the deployable's name). */
  service: string;
  /** OTEL_TRACES_EXPORTER; `none` (the default) turns tracing off: no span is ever made. */
  exporter: TraceExporterName;
  /** Where OTLP/HTTP spans go (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces). */
  otlpTracesUrl?: string;
  /** OTEL_BSP_SCHEDULE_DELAY: how long spans are batched before export. */
  scheduledDelayMs?: number;
}

/** Where a span belongs: the trace, and the span it continues when one is known (a remote parent). */
export interface SpanParent {
  traceId: string;
  parentSpanId?: string;
}

export type SpanKindName = 'server' | 'client' | 'consumer' | 'producer' | 'internal';

const KINDS: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  consumer: SpanKind.CONSUMER,
  producer: SpanKind.PRODUCER,
  internal: SpanKind.INTERNAL,
};

/**
 * Trace ids are the mesh's own (they travel in payloads as `trace_id`, CONTRACT.md §4):
 * a span that starts a trace takes the id chosen for it instead of a random one.
 */
class ChosenTraceIds implements IdGenerator {
  next?: string;
  private readonly random = new RandomIdGenerator();

  generateTraceId(): string {
    const chosen = this.next;
    this.next = undefined;
    return chosen ?? this.random.generateTraceId();
  }

  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}

/**
 * OpenTelemetry spans for the steps a callback crosses (HTTP in, the sequencer's release,
 * the injector's append), exported when `OTEL_TRACES_EXPORTER` says so and not made at all
 * otherwise. Spans join the trace whose id the mesh carries in its payloads; nothing here
 * is registered globally, so services in one test process keep their own. Attributes are
 * ids and outcomes, never a token, key or body.
 */
export class Tracing {
  private constructor(
    private readonly tracer?: Tracer,
    private readonly provider?: TracerProvider,
    private readonly ids?: ChosenTraceIds,
  ) {}

  static off(): Tracing {
    return new Tracing();
  }

  static start(options: TracingOptions): Tracing {
    const exporter = exporterOf(options);
    if (!exporter) return Tracing.off();
    const ids = new ChosenTraceIds();
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': options.service }),
      idGenerator: ids,
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          ...(options.scheduledDelayMs !== undefined ? { scheduledDelayMillis: options.scheduledDelayMs } : {}),
        }),
      ],
    });
    return new Tracing(provider.getTracer('backchannel'), provider, ids);
  }

  get enabled(): boolean {
    return this.tracer !== undefined;
  }

  /**
   * Starts a span in the given trace; the caller ends it (`end`). Undefined when tracing
   * is off, so the hot path pays one check.
   */
  startSpan(name: string, kind: SpanKindName, parent: SpanParent, attributes: Attributes = {}): Span | undefined {
    if (!this.tracer || !this.ids) return undefined;
    const context = parent.parentSpanId
      ? trace.setSpanContext(ROOT_CONTEXT, {
          traceId: parent.traceId,
          spanId: parent.parentSpanId,
          traceFlags: TraceFlags.SAMPLED,
          isRemote: true,
        })
      : ROOT_CONTEXT;
    if (!parent.parentSpanId) this.ids.next = parent.traceId;
    try {
      return this.tracer.startSpan(name, { kind: KINDS[kind], attributes }, context);
    } finally {
      this.ids.next = undefined;
    }
  }

  /** Runs `work` inside a span: ended when it settles, marked as an error when it throws. */
  async inSpan<T>(
    name: string,
    kind: SpanKindName,
    parent: SpanParent,
    attributes: Attributes,
    work: () => Promise<T>,
  ): Promise<T> {
    const span = this.startSpan(name, kind, parent, attributes);
    if (!span) return work();
    try {
      return await work();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.name ?? 'error' });
      throw error;
    } finally {
      span.end();
    }
  }

  /** Exports what is batched and stops (shutdown). */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown().catch(() => undefined);
  }
}

function exporterOf(options: TracingOptions): SpanExporter | undefined {
  switch (options.exporter) {
    case 'none':
      return undefined;
    case 'console':
      return new ConsoleSpanExporter();
    case 'otlp':
      return new OTLPTraceExporter(options.otlpTracesUrl ? { url: options.otlpTracesUrl } : {});
  }
}
