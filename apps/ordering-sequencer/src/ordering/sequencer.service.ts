import { Inject, Injectable } from '@nestjs/common';
import type { WorkItemEndedEvent, WorkItemOutcome, WorkItemProgressEvent, WorkLogEvent } from '@backchannel/contracts';
import { Clock, MeshConfig } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import { ReleaseLog, WorkLedger } from '@backchannel/messaging';
import { Metrics, newTraceId, type Logger } from '@backchannel/observability';
import { DeadlineTimers } from './deadline-timers.js';
import {
  applyEvent,
  buildRelease,
  findWorkItem,
  initialState,
  pendingDeadlines,
  type ConversationOrderState,
  type OrderAction,
  type ReleaseAction,
} from './release-order.js';
import { SequencerStateStore } from './sequencer-state.store.js';
import { StateCache } from './state-cache.js';

/** The event being applied, so releasing it needs no read back. */
interface CurrentEvent {
  seq: number;
  event: WorkLogEvent;
}

/** What applying one work-log event came to. */
export type ApplyOutcome = 'applied' | 'redelivery' | 'conflict';

/**
 * The adapter around the pure ordering core: load the conversation's state, apply the
 * event, perform the actions (releases with deterministic ids, ends by compare-and-set),
 * then save the state by compare-and-set. Every effect is idempotent, so a crash at any
 * point and the redelivery that follows release nothing twice.
 */
@Injectable()
export class SequencerService {
  readonly deadlines: DeadlineTimers;
  /** States of owned conversations with their KV revision: a stale one fails its compare-and-set. */
  private readonly cache = new StateCache(50_000);
  private readonly maxHeld: number;
  private readonly releases;
  private readonly timeouts;
  private readonly holdSeconds;
  private readonly ended;

  constructor(
    private readonly store: SequencerStateStore,
    private readonly ledger: WorkLedger,
    private readonly releaseLog: ReleaseLog,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
    metrics: Metrics,
    config: MeshConfig,
  ) {
    this.maxHeld = config.SEQUENCER_MAX_HELD_PER_CONVERSATION;
    this.deadlines = new DeadlineTimers(
      () => this.clock.now(),
      (workItemId, conversationId) => void this.onDeadline(conversationId, workItemId),
    );
    this.releases = metrics.counter('backchannel_sequencer_releases_total', 'Messages released in conversation order', [
      'kind',
    ]);
    this.timeouts = metrics.counter(
      'backchannel_work_item_timeouts_total',
      'Work items whose deadline passed without a callback',
    );
    this.holdSeconds = metrics.histogram(
      'backchannel_sequencer_head_of_line_wait_seconds',
      'Time a result waited from acceptance to release (head-of-line blocking included)',
    );
    this.ended = metrics.counter('backchannel_work_items_ended_total', 'Work items ended, by final state', ['state']);
    for (const state of ['completed', 'failed', 'timed_out', 'cancelled'] as const) this.ended.inc({ state }, 0);
  }

  async apply(partition: number, event: WorkLogEvent, streamSeq: number): Promise<ApplyOutcome> {
    const cached = this.cache.get(event.conversation_id);
    const stored = cached ?? (await this.store.get(partition, event.conversation_id));
    const before = stored?.value ?? initialState(event.conversation_id);
    const { state, actions } = applyEvent(before, event, streamSeq, { maxHeld: this.maxHeld });
    if (state === before) return 'redelivery';
    // Releases go out before the state is saved, so they must be computed from the state as
    // stored now. A cached one can be stale (leases overlapped and another replica moved the
    // conversation on, or our last save was stored but its answer lost): its release indices
    // would then be taken by the wrong messages, and the deterministic message ids would drop
    // the right ones later (lost and duplicated results). The compare-and-set on the save
    // comes too late for that; only events that release pay this read.
    if (cached && actions.some((action) => action.type === 'release')) {
      const latest = await this.store.get(partition, event.conversation_id);
      if (latest?.revision !== cached.revision) {
        this.cache.delete(event.conversation_id);
        return 'conflict';
      }
    }
    const current = { seq: streamSeq, event };
    let revision: number | false;
    try {
      for (const action of actions) await this.perform(partition, state, action, current);
      revision = await this.store.save(partition, state, stored?.revision ?? null);
    } catch (error) {
      // The save may have been stored without us hearing of it: the cached revision is no proof any more.
      this.cache.delete(event.conversation_id);
      throw error;
    }
    if (revision === false) {
      // Another replica moved this conversation on (leases overlap briefly): start again from its state.
      this.cache.delete(event.conversation_id);
      return 'conflict';
    }
    this.cache.set(event.conversation_id, { value: state, revision, partition });
    // Counted once per end: a redelivered or conflicting event is not `applied`.
    if (event.type === 'work_item.ended') this.ended.inc({ state: event.outcome.state });
    return 'applied';
  }

  /** Forgets the cached states of a partition this replica no longer owns. */
  forgetPartition(partition: number): void {
    this.cache.deletePartition(partition);
    this.deadlines.clearPartition(partition);
  }

  /** Rebuilds the deadline timers of a partition this replica just took over. */
  async adoptPartition(partition: number): Promise<void> {
    for (const state of await this.store.allOfPartition(partition)) {
      for (const [workItemId, expiresAt] of Object.entries(pendingDeadlines(state))) {
        this.deadlines.schedule(partition, state.conversationId, workItemId, expiresAt);
      }
    }
  }

  private async perform(
    partition: number,
    state: ConversationOrderState,
    action: OrderAction,
    current: CurrentEvent,
  ): Promise<void> {
    switch (action.type) {
      case 'release':
        return this.release(partition, state, action, current);
      case 'cancel_outstanding':
        await Promise.all(
          action.workItemIds.map((id) =>
            this.recordEnd(state, id, { state: 'cancelled', reason: 'conversation_ended' }),
          ),
        );
        return;
      case 'expire_early':
        await this.recordEnd(state, action.workItemId, { state: 'timed_out' });
        return;
      case 'schedule_deadline':
        this.deadlines.schedule(partition, state.conversationId, action.workItemId, action.expiresAt);
        return;
      case 'clear_deadline':
        this.deadlines.clear(action.workItemId);
        return;
    }
  }

  private async release(
    partition: number,
    state: ConversationOrderState,
    action: ReleaseAction,
    current: CurrentEvent,
  ): Promise<void> {
    const item = findWorkItem(state, action.workItemId);
    const source = await this.sourceOf(action, current);
    if (!item || !source) {
      throw new Error(`release ${action.releaseIndex} of ${state.conversationId}: source event missing`);
    }
    const release = buildRelease(action, item, source);
    await this.releaseLog.publish(partition, release);
    this.releases.inc({ kind: action.kind });
    this.logger.info(
      {
        trace_id: release.trace_id,
        conversation_id: release.conversation_id,
        work_item_id: item.workItemId,
        release_index: release.release_index,
        source: release.source.type,
        partition,
      },
      'released',
    );
    if (action.kind === 'final')
      this.holdSeconds.observe(Math.max(0, this.clock.now() - Date.parse(release.accepted_at)) / 1000);
  }

  /** The event a release is built from: the one being applied, or a held one read back by sequence. */
  private async sourceOf(
    action: ReleaseAction,
    current: CurrentEvent,
  ): Promise<WorkItemEndedEvent | WorkItemProgressEvent | undefined> {
    const seq = action.kind === 'final' ? action.endSeq : action.progressSeq;
    if (seq === current.seq) return current.event as WorkItemEndedEvent | WorkItemProgressEvent;
    return (await this.ledger.readAt<WorkItemEndedEvent | WorkItemProgressEvent>(seq))?.event;
  }

  /**
   * Records an end the sequencer decides. Past its deadline an item's end is `timed_out`
   * whoever writes it; the write is compare-and-set, so a result that won stays won.
   */
  private async recordEnd(state: ConversationOrderState, workItemId: string, outcome: WorkItemOutcome): Promise<void> {
    const item = findWorkItem(state, workItemId);
    const expired = item !== undefined && this.clock.now() >= Date.parse(item.expiresAt);
    const final: WorkItemOutcome = expired ? { state: 'timed_out' } : outcome;
    await this.ledger.recordEnd({
      type: 'work_item.ended',
      conversation_id: state.conversationId,
      work_item_id: workItemId,
      outcome: final,
      trace_id: newTraceId(),
      at: final.state === 'timed_out' && item ? item.expiresAt : this.clock.nowIso(),
    });
  }

  private async onDeadline(conversationId: string, workItemId: string): Promise<void> {
    try {
      const result = await this.ledger.recordEnd({
        type: 'work_item.ended',
        conversation_id: conversationId,
        work_item_id: workItemId,
        outcome: { state: 'timed_out' },
        trace_id: newTraceId(),
        at: this.clock.nowIso(),
      });
      if (result.outcome === 'recorded') this.timeouts.inc();
    } catch (error) {
      this.logger.warn({ err: error, work_item_id: workItemId }, 'recording a deadline failed; retrying');
      const retry = setTimeout(() => void this.onDeadline(conversationId, workItemId), 500);
      retry.unref();
    }
  }
}
