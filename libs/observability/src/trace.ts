import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C trace context: the ids a request carries through every hop. */
export interface TraceContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

/** Parses a `traceparent` header; an invalid one (or all-zero ids) is ignored, as W3C says. */
export function parseTraceparent(header: unknown): TraceContext | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags] = match as unknown as [string, string, string, string, string];
  if (version === 'ff' || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** Random bytes are drawn 4 KiB at a time: one call into the CSPRNG per ~170 trace ids, not per id. */
const RANDOM_POOL_BYTES = 4_096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

function randomHex(bytes: number): string {
  if (randomOffset + bytes > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomOffset = 0;
  }
  const hex = randomPool.toString('hex', randomOffset, randomOffset + bytes);
  randomOffset += bytes;
  return hex;
}

export function newTraceId(): string {
  return randomHex(16);
}

export function newSpanId(): string {
  return randomHex(8);
}

/** The trace of an incoming request: its own when it carried a valid one, else a new one. */
export function traceFrom(header: unknown): TraceContext {
  return parseTraceparent(header) ?? { traceId: newTraceId(), spanId: newSpanId(), sampled: false };
}

/** A `traceparent` for an outbound hop: same trace, a new span. */
export function childTraceparent(traceId: string): string {
  return `00-${traceId}-${newSpanId()}-01`;
}
