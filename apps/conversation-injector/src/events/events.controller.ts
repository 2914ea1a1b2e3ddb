import { Controller, Get, Headers, Param, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { requestTraceId } from '@backchannel/http';
import { TenantAccess, requireConversationId } from '../access/tenant-access.service.js';
import { parseResumePoint } from '../messages/page-query.js';
import { FollowersService } from './followers.service.js';
import { HttpEventSink } from './http-event-sink.js';

/** Follow live (CONTRACT.md §4): Server-Sent Events on Fastify's raw response. */
@Controller('api/v1/conversations')
export class EventsController {
  constructor(
    private readonly access: TenantAccess,
    private readonly followers: FollowersService,
  ) {}

  @Get(':conversationId/events')
  async follow(
    @Param('conversationId') conversationId: string,
    @Headers('authorization') authorization: unknown,
    @Headers('last-event-id') lastEventId: unknown,
    @Query() query: Record<string, unknown>,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const caller = await this.access.authenticate(authorization);
    requireConversationId(conversationId);
    const after = parseResumePoint(lastEventId, query.after);
    await this.access.conversation(caller, conversationId);
    // Subscribed before the response starts: errors until here are ordinary envelopes.
    const follower = await this.followers.follow(caller, conversationId, after, requestTraceId(reply.request));
    reply.hijack();
    reply.raw.writeHead(200, {
      ...definedHeaders(reply.getHeaders()),
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    follower.start(new HttpEventSink(reply.raw));
  }
}

function definedHeaders(headers: Record<string, unknown>): Record<string, string | number | string[]> {
  const defined: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string' || typeof value === 'number' || Array.isArray(value))
      defined[name] = value as string[];
  }
  return defined;
}
