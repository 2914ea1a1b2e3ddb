import { Injectable } from '@nestjs/common';
import {
  ApiError,
  MAX_METADATA_BYTES,
  conversationEndedMsgId,
  conversationOpenedMsgId,
  type ConversationLogEvent,
  type WorkItemRegisteredEvent,
} from '@backchannel/contracts';
import { WorkLedger, type Stored } from '@backchannel/messaging';
import { Clock } from '@backchannel/config';
import { CasConflict, withCasRetries } from '../cas-retry.js';
import { WorkItemEnds } from '../work-items/work-item-ends.js';

export interface ConversationView {
  conversation_id: string;
  tenant_id: string;
  state: 'active' | 'ended';
  opened_at: string;
  ended_at?: string;
  cancelled_work_items?: number;
}

/**
 * Conversations live in their log on the work stream: opened first, registrations, ended
 * last. Every write expects the log's last sequence, so open, register and end never
 * interleave wrongly across replicas.
 */
@Injectable()
export class ConversationsService {
  constructor(
    private readonly ledger: WorkLedger,
    private readonly ends: WorkItemEnds,
    private readonly clock: Clock,
  ) {}

  async open(input: {
    conversation_id: string;
    tenant_id: string;
    metadata?: Record<string, unknown>;
  }): Promise<{ created: boolean; view: ConversationView }> {
    if (input.metadata && Buffer.byteLength(JSON.stringify(input.metadata)) > MAX_METADATA_BYTES) {
      throw new ApiError('invalid_request', 'metadata must be at most 4 KiB as JSON', { pointer: '/metadata' });
    }
    return withCasRetries(async () => {
      const last = await this.ledger.lastConversationEvent(input.conversation_id);
      if (last) return { created: false, view: await this.reopen(last, input.tenant_id) };
      const event: ConversationLogEvent = {
        type: 'conversation.opened',
        conversation_id: input.conversation_id,
        tenant_id: input.tenant_id,
        ...(input.metadata ? { metadata: input.metadata } : {}),
        at: this.clock.nowIso(),
      };
      const appended = await this.ledger.appendConversationEvent(
        event,
        0,
        conversationOpenedMsgId(input.conversation_id),
      );
      // Lost, or our own earlier attempt won: either way the next round reads who opened it.
      if (!appended.ok || appended.duplicate) throw new CasConflict();
      return { created: true, view: activeView(event.tenant_id, input.conversation_id, event.at) };
    });
  }

  end(input: { conversation_id: string; reason?: string }): Promise<ConversationView> {
    return withCasRetries(async () => {
      const last = await this.ledger.lastConversationEvent(input.conversation_id);
      if (!last) throw new ApiError('not_found', 'no such conversation');
      if (last.event.type === 'conversation.ended') return this.endedView(last.event, input.conversation_id);
      const events = await this.ledger.conversationEvents(input.conversation_id);
      const outstanding = await this.outstandingItems(events);
      const ended: ConversationLogEvent = {
        type: 'conversation.ended',
        conversation_id: input.conversation_id,
        tenant_id: last.event.tenant_id,
        ...(input.reason ? { reason: input.reason } : {}),
        cancelled_work_items: outstanding.length,
        at: this.clock.nowIso(),
      };
      const appended = await this.ledger.appendConversationEvent(
        ended,
        last.seq,
        conversationEndedMsgId(input.conversation_id),
      );
      if (!appended.ok) throw new CasConflict();
      // Cancel at once so tokens stop working now; the sequencer repeats this durably
      // if we die here (its cancels are compare-and-set too).
      await Promise.all(outstanding.map((item) => this.ends.cancelForConversationEnd(item)));
      return this.endedView(ended, input.conversation_id);
    });
  }

  private async reopen(last: Stored<ConversationLogEvent>, tenantId: string): Promise<ConversationView> {
    if (last.event.type === 'conversation.ended')
      throw new ApiError('conversation_ended', 'the conversation has ended');
    if (last.event.tenant_id !== tenantId) {
      throw new ApiError('conversation_conflict', 'the conversation is open for another tenant', {
        pointer: '/tenant_id',
      });
    }
    const first = await this.ledger.firstConversationEvent(last.event.conversation_id);
    return activeView(last.event.tenant_id, last.event.conversation_id, first?.event.at ?? last.event.at);
  }

  private async endedView(event: ConversationLogEvent, conversationId: string): Promise<ConversationView> {
    const first = await this.ledger.firstConversationEvent(conversationId);
    return {
      conversation_id: conversationId,
      tenant_id: event.tenant_id,
      state: 'ended',
      opened_at: first?.event.at ?? event.at,
      ended_at: event.at,
      cancelled_work_items: event.type === 'conversation.ended' ? (event.cancelled_work_items ?? 0) : 0,
    };
  }

  private async outstandingItems(events: Stored<ConversationLogEvent>[]): Promise<WorkItemRegisteredEvent[]> {
    const registered = events
      .map((stored) => stored.event)
      .filter((event): event is WorkItemRegisteredEvent => event.type === 'work_item.registered');
    const ended = await Promise.all(
      registered.map((item) => this.ledger.readEnd(item.conversation_id, item.work_item_id)),
    );
    return registered.filter((_, index) => ended[index] === null);
  }
}

function activeView(tenantId: string, conversationId: string, openedAt: string): ConversationView {
  return { conversation_id: conversationId, tenant_id: tenantId, state: 'active', opened_at: openedAt };
}
