import { Body, Controller, HttpCode, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { validateDto } from '@backchannel/http';
import { ConversationsService, type ConversationView } from './conversations.service.js';
import { EndConversationDto } from './dto/end-conversation.dto.js';
import { OpenConversationDto } from './dto/open-conversation.dto.js';

@Controller('internal/v1/conversations')
export class ConversationsController {
  constructor(private readonly conversations: ConversationsService) {}

  /** 201 when opened now, 200 when it was already open for this tenant (CONTRACT.md §2). */
  @Post()
  async open(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply): Promise<ConversationView> {
    const { created, view } = await this.conversations.open(validateDto(OpenConversationDto, body));
    void reply.status(created ? 201 : 200);
    return view;
  }

  @Post(':conversationId/end')
  @HttpCode(200)
  async end(@Param('conversationId') conversationId: string, @Body() body: unknown): Promise<ConversationView> {
    const dto = validateDto(EndConversationDto, { ...asObject(body), conversation_id: conversationId });
    return this.conversations.end(dto);
  }
}

/** A missing body is an empty one for routes whose fields are all optional. */
export function asObject(body: unknown): Record<string, unknown> {
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
