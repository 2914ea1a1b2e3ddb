import { Injectable } from '@nestjs/common';
import type {
  WorkItemEndedEvent,
  WorkItemOutcome,
  WorkItemRecord,
  WorkItemRegisteredEvent,
} from '@backchannel/contracts';
import { WorkLedger, type EndResult } from '@backchannel/messaging';
import { newTraceId } from '@backchannel/observability';
import { Clock } from '@backchannel/config';

type ItemRef = Pick<WorkItemRecord, 'conversation_id' | 'work_item_id' | 'expires_at'>;

/**
 * Records the ends the token authority decides: cancels, and the timeout a caller
 * notices first. The deadline is part of the item, so once it has passed the item's end
 * is `timed_out` whoever writes it (CONTRACT.md §2).
 */
@Injectable()
export class WorkItemEnds {
  constructor(
    private readonly ledger: WorkLedger,
    private readonly clock: Clock,
  ) {}

  cancel(item: ItemRef): Promise<EndResult> {
    return this.record(
      item,
      this.pastDeadline(item) ? { state: 'timed_out' } : { state: 'cancelled', reason: 'cancelled' },
    );
  }

  cancelForConversationEnd(item: ItemRef | WorkItemRegisteredEvent): Promise<EndResult> {
    return this.record(
      item,
      this.pastDeadline(item) ? { state: 'timed_out' } : { state: 'cancelled', reason: 'conversation_ended' },
    );
  }

  private pastDeadline(item: Pick<ItemRef, 'expires_at'>): boolean {
    return this.clock.now() >= Date.parse(item.expires_at);
  }

  private record(item: ItemRef, outcome: WorkItemOutcome): Promise<EndResult> {
    const event: WorkItemEndedEvent = {
      type: 'work_item.ended',
      conversation_id: item.conversation_id,
      work_item_id: item.work_item_id,
      outcome,
      trace_id: newTraceId(),
      at: this.clock.nowIso(),
    };
    return this.ledger.recordEnd(event);
  }
}
