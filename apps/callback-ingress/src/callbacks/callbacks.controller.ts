import { Body, Controller, Headers, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { traceFrom } from '@backchannel/observability';
import { CallbacksService, type CallbackAnswer } from './callbacks.service.js';

/** The provider callback API (CONTRACT.md §3): DTO in, answer out; the service decides. */
@Controller('api/v1/webhooks')
export class CallbacksController {
  constructor(private readonly callbacks: CallbacksService) {}

  @Post(':workItemId')
  async callback(
    @Param('workItemId') workItemId: string,
    @Headers('x-callback-token') token: unknown,
    @Headers('traceparent') traceparent: unknown,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<CallbackAnswer['body']> {
    const answer = await this.callbacks.accept(workItemId, token, body, traceFrom(traceparent).traceId);
    void reply.status(answer.status);
    return answer.body;
  }

  @Post(':workItemId/progress')
  async progress(
    @Param('workItemId') workItemId: string,
    @Headers('x-callback-token') token: unknown,
    @Headers('traceparent') traceparent: unknown,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<CallbackAnswer['body']> {
    const answer = await this.callbacks.progress(workItemId, token, body, traceFrom(traceparent).traceId);
    void reply.status(answer.status);
    return answer.body;
  }
}
