import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { validateDto } from '@backchannel/http';
import { RegisterWorkItemDto } from './dto/register-work-item.dto.js';
import { WorkItemIdDto } from './dto/work-item-id.dto.js';
import { WorkItemsService, type RegistrationReply, type WorkItemView } from './work-items.service.js';

@Controller('internal/v1/work-items')
export class WorkItemsController {
  constructor(private readonly workItems: WorkItemsService) {}

  /** 201 for a new work item; 200 when an `idempotency_key` retry returns the existing one. */
  @Post()
  async register(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply): Promise<RegistrationReply> {
    const result = await this.workItems.register(validateDto(RegisterWorkItemDto, body));
    void reply.status(result.created ? 201 : 200);
    return result.reply;
  }

  @Get(':workItemId')
  async get(@Param('workItemId') workItemId: string): Promise<WorkItemView> {
    return this.workItems.get(validateDto(WorkItemIdDto, { work_item_id: workItemId }).work_item_id);
  }

  @Post(':workItemId/cancel')
  @HttpCode(200)
  async cancel(@Param('workItemId') workItemId: string): Promise<WorkItemView> {
    return this.workItems.cancel(validateDto(WorkItemIdDto, { work_item_id: workItemId }).work_item_id);
  }
}
