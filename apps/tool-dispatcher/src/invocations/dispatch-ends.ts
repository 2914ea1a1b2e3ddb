import type { ErrorObject, WorkItemState } from '@backchannel/contracts';
import { WorkLedger } from '@backchannel/messaging';
import { Clock } from '@backchannel/config';

/** How recording a dispatch failure went: this end won, or another end got there first. */
export interface DispatchEndResult {
  won: boolean;
  /** The state the work item ended in (the winner's). */
  state: WorkItemState;
}

/** Port: the work item's end when the tool could not be reached (CONTRACT.md §6). */
export abstract class DispatchEnds {
  abstract recordFailure(input: {
    conversationId: string;
    workItemId: string;
    errors: ErrorObject[];
    traceId: string;
  }): Promise<DispatchEndResult>;
}

/**
 * Records `failed` with `by: "dispatch"` on the work item's end subject; first end wins
 * (CONTRACT.md §2). The sequencer then injects the error at the item's place with
 * `source.type: "dispatch"`.
 */
export class LedgerDispatchEnds extends DispatchEnds {
  constructor(
    private readonly ledger: WorkLedger,
    private readonly clock: Clock,
  ) {
    super();
  }

  async recordFailure(input: {
    conversationId: string;
    workItemId: string;
    errors: ErrorObject[];
    traceId: string;
  }): Promise<DispatchEndResult> {
    const result = await this.ledger.recordEnd({
      type: 'work_item.ended',
      conversation_id: input.conversationId,
      work_item_id: input.workItemId,
      outcome: { state: 'failed', errors: input.errors, by: 'dispatch' },
      trace_id: input.traceId,
      at: this.clock.nowIso(),
    });
    return { won: result.outcome !== 'lost', state: result.end.event.outcome.state };
  }
}
