import type { IncomingMessage } from 'node:http';
import { HttpException } from '@nestjs/common';
import { ApiError, type ErrorCode } from '@backchannel/contracts';
import { BrokerUnavailableError } from '@backchannel/messaging';
import { requestTraceId } from './request-trace.js';

interface MinimalRequest {
  id?: string;
  raw?: IncomingMessage;
  headers: Record<string, string | string[] | undefined>;
}

interface MinimalReply {
  status(code: number): MinimalReply;
  header(name: string, value: string): MinimalReply;
  send(payload: unknown): unknown;
  sent?: boolean;
}

export interface ErrorLogger {
  error(object: Record<string, unknown>, message: string): void;
}

/** Fastify's own errors (body parsing, limits) mapped to contract codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  FST_ERR_VALIDATION: 'invalid_request',
};

/** Fastify's JSON parser (secure-json-parse) refuses both with the same error. */
const UNPARSABLE_BODY = 'the body is not valid JSON, or holds a __proto__ or constructor.prototype key';

/**
 * Any thrown value as a contract error. Unknown ones are logged (scrubbed, with the
 * request's `traceId`) and become 500.
 */
export function toHttpApiError(error: unknown, logger: ErrorLogger, traceId?: string): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof BrokerUnavailableError) {
    return new ApiError('unavailable', 'the broker cannot take the request now; retry', {
      headers: { 'retry-after': '1' },
    });
  }
  // Nest hands a Fastify error (body parsing, limits) over wrapped in an HttpException.
  const fastifyError = error instanceof HttpException && error.cause instanceof Error ? error.cause : error;
  const fastifyCode = (fastifyError as { code?: string }).code;
  if (fastifyCode && FASTIFY_CODES[fastifyCode]) {
    const code = FASTIFY_CODES[fastifyCode];
    const detail = code === 'invalid_request' ? UNPARSABLE_BODY : (fastifyError as Error).message;
    return new ApiError(code, detail, code === 'invalid_request' ? { pointer: '' } : {});
  }
  if (error instanceof SyntaxError || (error as { statusCode?: number }).statusCode === 400) {
    return new ApiError('invalid_request', UNPARSABLE_BODY, { pointer: '' });
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    if (status === 404) return new ApiError('not_found', 'no such route');
    if (status === 415) return new ApiError('unsupported_media_type', 'the body must be application/json');
    if (status === 413) return new ApiError('payload_too_large', 'the body is too large');
    if (status < 500) return new ApiError('invalid_request', error.message);
  }
  logger.error({ err: error, trace_id: traceId }, 'unexpected error');
  return new ApiError('internal_error', 'an unexpected error occurred');
}

/** Writes the envelope (CONTRACT.md §5) with the request and trace ids in `meta`. */
export function sendError(reply: MinimalReply, request: MinimalRequest, error: ApiError): void {
  const traceId = requestTraceId(request);
  for (const [name, value] of Object.entries(error.headers ?? {})) reply.header(name, value);
  reply
    .status(error.status)
    .header('content-type', 'application/json; charset=utf-8')
    .send(JSON.stringify({ errors: [error.toErrorObject({ requestId: request.id, traceId })] }));
}
