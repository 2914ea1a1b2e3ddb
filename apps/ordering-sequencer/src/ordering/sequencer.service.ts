import { Inject, Injectable } from '@nestjs/common';
import type { WorkItemEndedEvent, WorkItemOutcome, WorkItemProgressEvent, WorkLogEvent } from '@backchannel/contracts';
import { Clock, MeshConfig } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import { ReleaseLog, WorkLedger, type Stored, type Versioned } from '@backchannel/messaging';
import { Metrics, Tracing, newTraceId, type Logger } from '@backchannel/observability';
import { ConversationStates, type HeldState } from './conversation-states.js';
import { VerificationSchedule, type DueVerification } from './verification-schedule.js';
import { DeadlineTimers } from './deadline-timers.js';
import {
  applyEvent,
  applyMissedEnd,
  buildRelease,
  compact,
  findWorkItem,
  heldCount,
  initialState,
  isFinished,
  pendingDeadlines,
  type ConversationOrderState,
  type OrderAction,
  type ReleaseAction,
} from './release-order.js';
import { SequencerStateStore } from './sequencer-state.store.js';

/** The event being applied, so releasing it needs no read back. */
interface CurrentEvent {
  seq: number;
  event: WorkLogEvent;
}

/** What applying one work-log event came to. */
export type ApplyOutcome = 'applied' | 'redelivery';

/** How many snapshots one checkpoint writes at once. */
const SNAPSHOT_WRITES_IN_FLIGHT = 16;
/** A changed state is saved at most this often (it is still saved before the checkpoint passes its events). */
const SNAPSHOT_EVERY_MS = 2_000;
/** Saves per checkpoint round and partition, at most. */
const SNAPSHOTS_PER_ROUND = 64;

/**
 * The adapter around the pure ordering core. A conversation's state is a fold of its
 * events in the work log, applied in stream order by the run of its partition:
 *
 * - the first time a run meets a conversation it loads the snapshot and **catches up**
 *   from the log (events the run will not deliver, at or below its checkpoint), so a
 *   missing or stale snapshot costs reads, never correctness;
 * - each event's actions are performed before the next event of the conversation:
 *   releases published in order with deterministic ids, ends recorded first-write-wins;
 * - snapshots of changed states are written before each partition checkpoint.
 *
 * Two replicas that briefly apply the same partition hold the same fold and publish the
 * same releases under the same ids; the injector applies each release index once.
 */
@Injectable()
export class SequencerService {
  readonly deadlines: DeadlineTimers;
  private readonly states = new ConversationStates();
  /** When each outstanding item is next looked up in the work log (`dueVerifications`). */
  private readonly verifications = new VerificationSchedule();
  private readonly repairs;
  private readonly maxHeld: number;
  private readonly releases;
  private readonly timeouts;
  private readonly holdSeconds;
  private readonly ended;
  private readonly heldGauge;
  private readonly active;

  constructor(
    private readonly store: SequencerStateStore,
    private readonly ledger: WorkLedger,
    private readonly releaseLog: ReleaseLog,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly tracing: Tracing,
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
    this.heldGauge = metrics.gauge(
      'backchannel_sequencer_held_results',
      'Results accepted and held behind an earlier unfinished work item, in the conversations this replica runs',
    );
    this.repairs = metrics.counter(
      'backchannel_sequencer_repaired_ends_total',
      'Work item ends found in the work log that were never delivered to the sequencer, applied late',
    );
    this.active = metrics.gauge(
      'backchannel_active_conversations',
      'Conversations open or not yet settled, in the partitions this replica runs',
    );
  }

  /** Applies one event the partition's run delivered (`session`: that run). */
  async apply(partition: number, event: WorkLogEvent, streamSeq: number, session: number): Promise<ApplyOutcome> {
    const held = await this.stateOf(partition, event.conversation_id, session, { seq: streamSeq, event });
    return this.applyTo(partition, held, { seq: streamSeq, event });
  }

  /** The unfinished conversations of a partition, as snapshotted: those to take over with it. */
  async snapshotsOf(partition: number): Promise<Versioned<ConversationOrderState>[]> {
    return (await this.store.allOfPartition(partition)).filter((snapshot) => !isFinished(snapshot.value));
  }

  /** Takes a conversation over with its partition: its state is held and its deadlines armed. */
  async adopt(partition: number, snapshot: Versioned<ConversationOrderState>, session: number): Promise<void> {
    await this.stateOf(partition, snapshot.value.conversationId, session, undefined, snapshot);
  }

  /**
   * Saves changed states before the partition's checkpoint moves past their events, and
   * returns how far the checkpoint may go: below the first unsaved event of any state
   * still unsaved. A state is saved at most every `SNAPSHOT_EVERY_MS` (a conversation with
   * many outstanding items has a large state) and a round saves at most
   * `SNAPSHOTS_PER_ROUND`, oldest first, so saves are spread out instead of stalling
   * the event loop; the checkpoint trails by at most that much. `final` saves them all.
   */
  async flush(partition: number, candidate: number, final = false): Promise<number> {
    const now = this.clock.now();
    const dirty = this.states.dirty(partition).sort(([, a], [, b]) => a.firstUnsavedSeq - b.firstUnsavedSeq);
    const due = final
      ? dirty
      : dirty
          .filter(([, held]) => isFinished(held.state) || now - held.savedAt >= SNAPSHOT_EVERY_MS)
          .slice(0, SNAPSHOTS_PER_ROUND);
    for (let i = 0; i < due.length; i += SNAPSHOT_WRITES_IN_FLIGHT) {
      await Promise.all(due.slice(i, i + SNAPSHOT_WRITES_IN_FLIGHT).map(([id, held]) => this.writeSnapshot(id, held)));
    }
    this.reportSizes();
    let covered = candidate;
    for (const [, held] of this.states.dirty(partition)) covered = Math.min(covered, held.firstUnsavedSeq - 1);
    return covered;
  }

  /**
   * Outstanding items to look up in the work log now: an end the state never saw (its
   * delivery skipped, docs/reliability.md) is found there. Each item is looked up 10 s,
   * 1 min, 5 min and 20 min after this replica first held it, then every 20 min; the head
   * of a conversation that holds results behind it, every 5 s (`VerificationSchedule`).
   */
  dueVerifications(now: number): DueVerification[] {
    return this.verifications.due(now, (due) => this.isOutstanding(due), this.blockingHeads());
  }

  /** A work item's end as the work log holds it (a direct read of its end subject), or null. */
  findEnd(conversationId: string, workItemId: string): Promise<Stored<WorkItemEndedEvent> | null> {
    return this.ledger.readEnd(conversationId, workItemId);
  }

  /**
   * Applies an end found in the log that the state never saw, if its place in the log is
   * behind everything the partition's run has applied (`applied`): then its delivery was
   * skipped, not merely still on its way.
   */
  async repairMissedEnd(
    partition: number,
    end: Stored<WorkItemEndedEvent>,
    session: number,
    applied: number,
  ): Promise<boolean> {
    const held = this.states.get(end.event.conversation_id);
    if (!held || held.session !== session || end.seq > applied) return false;
    const { state, actions } = applyMissedEnd(held.state, end.event, end.seq, { maxHeld: this.maxHeld });
    if (state === held.state) return false;
    this.logger.warn(
      {
        trace_id: end.event.trace_id,
        conversation_id: end.event.conversation_id,
        work_item_id: end.event.work_item_id,
        end_seq: end.seq,
        partition,
      },
      'a work item end was never delivered; applied from the work log',
    );
    this.repairs.inc();
    for (const action of actions) await this.perform(partition, state, action, { seq: end.seq, event: end.event });
    held.state = compact(state);
    if (held.version === held.writtenVersion) held.firstUnsavedSeq = held.state.lastAppliedSeq + 1;
    held.version += 1;
    this.states.changed(held, heldCount(held.state));
    this.ended.inc({ state: end.event.outcome.state });
    return true;
  }

  /** Forgets the states and timers of a partition this replica no longer runs. */
  forgetPartition(partition: number): void {
    this.states.deletePartition(partition);
    this.deadlines.clearPartition(partition);
    this.reportSizes();
  }

  private reportSizes(): void {
    this.heldGauge.set(this.states.heldResults);
    this.active.set(this.states.size);
  }

  /**
   * The conversation's state in this run. The first time the run meets it, it comes from
   * the snapshot: complete up to the checkpoint the run started after (whoever wrote that
   * checkpoint saved it first), so the events the run delivers continue it without a gap.
   * A snapshot that cannot be trusted is completed from the work log (`catchUp`).
   */
  private async stateOf(
    partition: number,
    conversationId: string,
    session: number,
    first?: CurrentEvent,
    snapshot?: Versioned<ConversationOrderState>,
  ): Promise<HeldState> {
    const current = this.states.get(conversationId);
    if (current?.session === session) {
      // A catch-up a broker failure cut short resumes where it stopped, before anything else.
      if (current.catchingUp) await this.finishCatchUp(partition, current, first);
      return current;
    }
    const stored = snapshot ?? (await this.store.get(partition, conversationId));
    const state = this.startingState(conversationId, stored);
    // Decided before the state is held: a failure here leaves nothing half-vetted behind.
    const reason = await this.distrust(partition, state, stored, first);
    const held = this.hold(partition, conversationId, session, state, stored);
    if (reason) {
      // The trace of the event that met the state, when it has one (ends and progress do).
      const traceId = first && 'trace_id' in first.event ? first.event.trace_id : undefined;
      this.logger.warn(
        { trace_id: traceId, conversation_id: conversationId, partition, reason },
        'completing a state from the work log',
      );
      held.catchingUp = true;
      await this.finishCatchUp(partition, held, first);
    } else {
      this.armDeadlines(partition, held.state);
    }
    return held;
  }

  private async finishCatchUp(partition: number, held: HeldState, first?: CurrentEvent): Promise<void> {
    await this.catchUp(partition, held, first?.seq ?? Number.POSITIVE_INFINITY);
    held.catchingUp = false;
    this.armDeadlines(partition, held.state);
  }

  /**
   * Why a loaded state must be completed from the log, if it must: no snapshot for a
   * conversation met after its opening (deleted once it finished, or lost by the broker),
   * or releases published past what the state counts (it is behind the log).
   */
  private async distrust(
    partition: number,
    state: ConversationOrderState,
    stored: Versioned<ConversationOrderState> | null,
    first?: CurrentEvent,
  ): Promise<string | undefined> {
    if (!stored) return first && first.event.type !== 'conversation.opened' ? 'no snapshot' : undefined;
    const published = await this.releaseLog.lastIndex(partition, state.conversationId);
    return published >= state.nextReleaseIndex ? 'releases published past the snapshot' : undefined;
  }

  /** Applies, in order, the conversation's events after the state's and before `beforeSeq`. */
  private async catchUp(partition: number, held: HeldState, beforeSeq: number): Promise<void> {
    const conversationId = held.state.conversationId;
    for (
      let next = await this.ledger.nextConversationEvent(conversationId, held.state.lastAppliedSeq + 1);
      next && next.seq < beforeSeq;
      next = await this.ledger.nextConversationEvent(conversationId, next.seq + 1)
    ) {
      await this.applyTo(partition, held, { seq: next.seq, event: next.event });
    }
  }

  /** Whichever went further: the snapshot, or what this replica held in an earlier run (a fold of the log either way). */
  private startingState(
    conversationId: string,
    stored: Versioned<ConversationOrderState> | null,
  ): ConversationOrderState {
    const previous = this.states.get(conversationId)?.state;
    if (previous !== undefined && previous.lastAppliedSeq > (stored?.value.lastAppliedSeq ?? 0)) return previous;
    return stored?.value ?? initialState(conversationId);
  }

  private hold(
    partition: number,
    conversationId: string,
    session: number,
    state: ConversationOrderState,
    stored: Versioned<ConversationOrderState> | null,
  ): HeldState {
    const unsaved = state !== stored?.value && state.lastAppliedSeq > 0;
    const held: HeldState = {
      state,
      partition,
      session,
      revision: stored?.revision ?? null,
      version: unsaved ? 1 : 0,
      writtenVersion: 0,
      // What an earlier run held and did not save may go back to its first event: save it first.
      firstUnsavedSeq: unsaved ? 0 : Number.POSITIVE_INFINITY,
      savedAt: unsaved ? 0 : this.clock.now(),
      heldResults: heldCount(state),
      catchingUp: false,
    };
    this.trackOutstanding(partition, state);
    return this.states.set(conversationId, held);
  }

  private async applyTo(partition: number, held: HeldState, current: CurrentEvent): Promise<ApplyOutcome> {
    const { state, actions } = applyEvent(held.state, current.event, current.seq, { maxHeld: this.maxHeld });
    if (state === held.state) return 'redelivery';
    for (const action of actions) await this.perform(partition, state, action, current);
    held.state = compact(state);
    if (held.version === held.writtenVersion) held.firstUnsavedSeq = current.seq;
    held.version += 1;
    this.states.changed(held, heldCount(held.state));
    const event = current.event;
    if (event.type === 'work_item.ended') {
      this.ended.inc({ state: event.outcome.state });
      this.verifications.forget(event.work_item_id);
    } else if (event.type === 'work_item.registered') {
      const item = { partition, conversationId: event.conversation_id, workItemId: event.work_item_id };
      this.verifications.track(item, this.clock.now());
    }
    return 'applied';
  }

  /** Compare-and-set, and never back: a paused replica's older state does not replace a newer one. */
  private async writeSnapshot(conversationId: string, held: HeldState): Promise<void> {
    const version = held.version;
    const state = held.state;
    if (isFinished(state)) {
      await this.store.remove(held.partition, conversationId);
      if (held.version === version) this.states.delete(conversationId);
    } else {
      let revision = await this.store.save(held.partition, state, held.revision);
      if (revision === false) {
        const theirs = await this.store.get(held.partition, conversationId);
        if (theirs && theirs.value.lastAppliedSeq >= state.lastAppliedSeq) revision = theirs.revision;
        else revision = await this.store.save(held.partition, state, theirs?.revision ?? null);
        if (revision === false) throw new Error(`the snapshot of ${conversationId} moved again; saved next round`);
      }
      held.revision = revision;
    }
    held.savedAt = this.clock.now();
    held.writtenVersion = Math.max(held.writtenVersion, version);
    // Applied while this save was under way: not in it.
    held.firstUnsavedSeq = held.version > held.writtenVersion ? state.lastAppliedSeq + 1 : Number.POSITIVE_INFINITY;
  }

  private isOutstanding(due: DueVerification): boolean {
    const held = this.states.get(due.conversationId);
    return held !== undefined && findWorkItem(held.state, due.workItemId)?.endSeq === null;
  }

  private *blockingHeads(): IterableIterator<DueVerification> {
    for (const [conversationId, held] of this.states.holdingResults()) {
      const head = held.state.workItems.find((item) => item.sequence === held.state.headSequence);
      if (head && head.endSeq === null)
        yield { partition: held.partition, conversationId, workItemId: head.workItemId };
    }
  }

  /** Outstanding items of a state this replica now holds, for the verification schedule. */
  private trackOutstanding(partition: number, state: ConversationOrderState): void {
    const now = this.clock.now();
    for (const item of state.workItems) {
      if (item.endSeq === null) {
        this.verifications.track({ partition, conversationId: state.conversationId, workItemId: item.workItemId }, now);
      }
    }
  }

  private armDeadlines(partition: number, state: ConversationOrderState): void {
    for (const [workItemId, expiresAt] of Object.entries(pendingDeadlines(state))) {
      this.deadlines.schedule(partition, state.conversationId, workItemId, expiresAt);
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
    await this.tracing.inSpan(
      'sequencer release',
      'producer',
      { traceId: release.trace_id },
      {
        'backchannel.conversation_id': release.conversation_id,
        'backchannel.work_item_id': item.workItemId,
        'backchannel.release_index': release.release_index,
        'backchannel.source': release.source.type,
      },
      () => this.releaseLog.publish(partition, release),
    );
    this.releases.inc({ kind: action.kind });
    this.logger.debug(
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
   * whoever writes it; the write is first-write-wins, so a result that won stays won.
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
