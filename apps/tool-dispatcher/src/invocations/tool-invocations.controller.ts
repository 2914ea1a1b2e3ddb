import { Body, Controller, Headers, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { traceFrom } from '@backchannel/observability';
import { parseInvocation } from './invocation.js';
import { ToolInvocationsService, type InvokeAnswer } from './tool-invocations.service.js';

/** `POST /internal/v1/tool-invocations` (CONTRACT.md §2; the bearer check is the bootstrap's). */
@Controller('internal/v1/tool-invocations')
export class ToolInvocationsController {
  constructor(private readonly invocations: ToolInvocationsService) {}

  @Post()
  async invoke(
    @Body() body: unknown,
    @Headers('traceparent') traceparent: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<InvokeAnswer['body']> {
    const answer = await this.invocations.invoke(parseInvocation(body), traceFrom(traceparent).traceId);
    void reply.status(answer.status);
    return answer.body;
  }
}
