export { createLogger, NestPinoLogger, type Logger, type LogLevel, type LoggerOptions } from './logger.js';
export { REDACTED_PATHS, scrubSecrets, scrubString } from './redaction.js';
export { Metrics, LATENCY_BUCKETS_SECONDS, type Counter, type Gauge, type Histogram } from './metrics.js';
export { childTraceparent, newSpanId, newTraceId, parseTraceparent, traceFrom, type TraceContext } from './trace.js';
export { Tracing, type SpanKindName, type SpanParent, type TraceExporterName, type TracingOptions } from './tracing.js';
