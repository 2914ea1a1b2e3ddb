import { Body, Controller, Headers, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError } from '@backchannel/contracts';
import { Metrics, traceFrom, type Counter } from '@backchannel/observability';
import { CallbacksService, type CallbackAnswer } from './callbacks.service.js';

/** The provider callback API (CONTRACT.md §3): DTO in, answer out; the service decides. */
@Controller('api/v1/webhooks')
export class CallbacksController {
  private readonly outcomes: Counter<'kind' | 'outcome'>;

  constructor(
    private readonly callbacks: CallbacksService,
    metrics: Metrics,
  ) {
    this.outcomes = metrics.counter('backchannel_callbacks_total', 'Provider callbacks by kind and outcome', [
      'kind',
      'outcome',
    ]);
    // Zero from the start, so rate() and the dashboard see the series before the first callback.
    for (const kind of ['final', 'progress'] as const) this.outcomes.inc({ kind, outcome: 'accepted' }, 0);
  }

  @Post(':workItemId')
  async callback(
    @Param('workItemId') workItemId: string,
    @Headers('x-callback-token') token: unknown,
    @Headers('traceparent') traceparent: unknown,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<CallbackAnswer['body']> {
    const answer = await this.counted('final', () =>
      this.callbacks.accept(workItemId, token, body, traceFrom(traceparent).traceId),
    );
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
    const answer = await this.counted('progress', () =>
      this.callbacks.progress(workItemId, token, body, traceFrom(traceparent).traceId),
    );
    void reply.status(answer.status);
    return answer.body;
  }

  /** Counts every answer by its contract code: `accepted`, `duplicate`, or the error code. */
  private async counted(kind: 'final' | 'progress', handle: () => Promise<CallbackAnswer>): Promise<CallbackAnswer> {
    try {
      const answer = await handle();
      this.outcomes.inc({ kind, outcome: answer.body.duplicate ? 'duplicate' : 'accepted' });
      return answer;
    } catch (error) {
      this.outcomes.inc({ kind, outcome: error instanceof ApiError ? error.code : 'internal_error' });
      throw error;
    }
  }
}
