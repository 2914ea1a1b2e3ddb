import { Body, Controller, Get, Headers, Param, Post, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { MAX_IDEMPOTENCY_KEY_LENGTH } from '@backchannel/contracts';
import { validateDto } from '@backchannel/http';
import { traceFrom } from '@backchannel/observability';
import { TenantAccess, requireConversationId } from '../access/tenant-access.service.js';
import { invalidHeader } from '../errors.js';
import { TranscriptReader, type TranscriptPage } from '../transcript/transcript-reader.service.js';
import { AddMessagesService } from './add-messages.service.js';
import { AddMessagesDto } from './dto/add-messages.dto.js';
import { parsePageQuery } from './page-query.js';

/** The tenant API's transcript routes (CONTRACT.md §4): verify, validate, call; the services decide. */
@Controller('api/v1/conversations')
export class MessagesController {
  constructor(
    private readonly access: TenantAccess,
    private readonly messages: AddMessagesService,
    private readonly reader: TranscriptReader,
  ) {}

  /** 202 with the injected messages; 200 with the earlier ones for an `Idempotency-Key` retry. */
  @Post(':conversationId/messages')
  async add(
    @Param('conversationId') conversationId: string,
    @Headers('authorization') authorization: unknown,
    @Headers('idempotency-key') idempotencyKey: unknown,
    @Headers('traceparent') traceparent: unknown,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ messages: unknown[] }> {
    const caller = await this.access.authenticate(authorization);
    requireConversationId(conversationId);
    const dto = validateDto(AddMessagesDto, body);
    const key = idempotencyKeyOf(idempotencyKey);
    const conversation = await this.access.conversation(caller, conversationId);
    const messages = dto.messages.map(({ role, content }) => ({ role, content }));
    const result = await this.messages.add(conversation, messages, traceFrom(traceparent).traceId, key);
    void reply.status(result.status);
    return { messages: result.messages };
  }

  @Get(':conversationId/messages')
  async list(
    @Param('conversationId') conversationId: string,
    @Headers('authorization') authorization: unknown,
    @Query() query: Record<string, unknown>,
  ): Promise<TranscriptPage> {
    const caller = await this.access.authenticate(authorization);
    requireConversationId(conversationId);
    const { after, limit } = parsePageQuery(query);
    await this.access.conversation(caller, conversationId);
    return this.reader.page(conversationId, after, limit);
  }
}

function idempotencyKeyOf(header: unknown): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw invalidHeader('idempotency-key', `Idempotency-Key must be 1–${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  return header;
}
