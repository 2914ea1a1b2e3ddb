import { Catch, Inject, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LOGGER } from './tokens.js';
import { sendError, toHttpApiError, type ErrorLogger } from './error-rendering.js';
import { requestTraceId } from './request-trace.js';

/** Renders every error a route throws as the contract's envelope. */
@Catch()
export class EnvelopeFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: ErrorLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    if (reply.sent) return;
    const request = http.getRequest<FastifyRequest>();
    sendError(reply, request, toHttpApiError(exception, this.logger, requestTraceId(request)));
  }
}
