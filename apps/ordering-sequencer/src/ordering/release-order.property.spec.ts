import { describe, it } from '@jest/globals';
import fc from 'fast-check';
import type { WorkItemEndedEvent, WorkItemKind, WorkItemOutcome, WorkLogEvent } from '@backchannel/contracts';
import {
  applyEvent,
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

/**
 * Model-based check of the ordering core. A random conversation is written to a log one
 * event at a time, in a random causal order, and each event is applied at once, as the
 * adapter would: the actions are fed back (deadline timers armed and fired, cancels and
 * early expiries recorded as ends at random later points), the state goes through JSON
 * as it does through the KV bucket, and random earlier events are redelivered. A simple
 * model of CONTRACT.md §4 judges every action.
 */

const CONVERSATION_ID = 'conv-property';
const TRACE_ID = 'b'.repeat(32);
const AT = '2026-11-02T10:00:00.000Z';

/** `deadline`: no callback ever comes, so only the deadline timer (or a cancel) ends it. */
type PlannedOutcome = 'completed' | 'failed' | 'cancelled' | 'deadline';

interface PlannedItem {
  ordered: boolean;
  kind: WorkItemKind;
  outcome: PlannedOutcome;
  progressCount: number;
  /** Its deadline timer may fire at any point; else only once nothing else can happen (a slow provider). */
  racesDeadline: boolean;
}

interface Scenario {
  items: PlannedItem[];
  /** The conversation ends as soon as the log holds this many events; null: it never does. */
  conversationEndAfterWrites: number | null;
  maxHeld: number;
  /** Off: a losing end is written anyway, to prove a second end is ignored. */
  endsCompareAndSet: boolean;
  /** Log positions of events published again later under a new stream sequence (a retry past the broker's dedup window). */
  republishes: number[];
  /** Which enabled write comes next, and which logged event (if any) is redelivered after it. */
  steps: { pick: number; redeliver: number | null }[];
}

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  items: fc.array(
    fc.record({
      // `ordered` defaults to true (CONTRACT.md §2), so most items are.
      ordered: fc.constantFrom(true, true, false),
      kind: fc.constantFrom<WorkItemKind>('tool', 'llm'),
      outcome: fc.constantFrom<PlannedOutcome>('completed', 'completed', 'failed', 'cancelled', 'deadline', 'deadline'),
      progressCount: fc.integer({ min: 0, max: 3 }),
      racesDeadline: fc.boolean(),
    }),
    { minLength: 1, maxLength: 15 },
  ),
  conversationEndAfterWrites: fc.option(fc.nat({ max: 40 }), { nil: null }),
  maxHeld: fc.integer({ min: 0, max: 3 }),
  endsCompareAndSet: fc.boolean(),
  republishes: fc.array(fc.nat(), { maxLength: 3 }),
  steps: fc.array(fc.record({ pick: fc.nat(), redeliver: fc.option(fc.nat(), { nil: null, freq: 4 }) }), {
    maxLength: 200,
  }),
});

const workItemId = (index: number): string => `wi_${String(index + 1).padStart(26, '0')}`;
const indexOf = (id: string): number => Number(id.slice(3)) - 1;

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** What CONTRACT.md §4 says must have happened, kept apart from the core's own state. */
class OrderModel {
  readonly known = new Set<number>();
  readonly ends = new Map<number, { outcome: WorkItemOutcome['state']; streamSeq: number }>();
  readonly finals = new Map<number, number>();
  readonly expireRequested = new Set<number>();
  /** `<item>:<progress index>` of every progress update released. */
  readonly progressReleased = new Set<string>();
  ended = false;
  cancelAsked = false;
  nextReleaseIndex = 1;

  constructor(readonly items: PlannedItem[]) {}

  observe(event: WorkLogEvent, streamSeq: number): void {
    if (event.type === 'work_item.registered' && !this.ended) this.known.add(indexOf(event.work_item_id));
    if (event.type === 'conversation.ended') this.ended = true;
    if (event.type !== 'work_item.ended') return;
    const index = indexOf(event.work_item_id);
    if (this.known.has(index) && !this.ends.has(index))
      this.ends.set(index, { outcome: event.outcome.state, streamSeq });
  }

  /** §3: progress goes out at once, but never after its item's final, and never twice. */
  isProgressDue(event: WorkLogEvent): boolean {
    if (event.type !== 'work_item.progress') return false;
    const index = indexOf(event.work_item_id);
    const skipped = this.ends.get(index)?.outcome === 'cancelled';
    const repeat = this.progressReleased.has(`${index}:${event.index}`);
    return this.known.has(index) && !this.finals.has(index) && !skipped && !repeat;
  }

  knownInOrder(): number[] {
    return [...this.known].sort((a, b) => a - b);
  }

  isReleasable(index: number): boolean {
    const end = this.ends.get(index);
    return end !== undefined && end.outcome !== 'cancelled';
  }

  /** §4: an ordered item waits only for earlier ordered items, and for them to be ended. */
  earlierOrderedAllEnded(index: number): boolean {
    return this.knownInOrder().every((other) => other >= index || !this.items[other].ordered || this.ends.has(other));
  }

  /** The finals that must be out by now: no more (order) and no fewer (nothing held needlessly). */
  expectedFinals(): number[] {
    return this.knownInOrder().filter(
      (index) => this.isReleasable(index) && (!this.items[index].ordered || this.earlierOrderedAllEnded(index)),
    );
  }

  held(): number[] {
    return this.knownInOrder().filter((index) => this.isReleasable(index) && !this.finals.has(index));
  }

  head(): number | undefined {
    return this.knownInOrder().find(
      (index) => this.items[index].ordered && !this.finals.has(index) && this.ends.get(index)?.outcome !== 'cancelled',
    );
  }

  outstanding(): number[] {
    return this.knownInOrder().filter((index) => !this.ends.has(index));
  }
}

/** The log, the adapter's feedback loops, and the core under test. */
class Simulation {
  readonly log: WorkLogEvent[] = [];
  readonly model: OrderModel;
  state: ConversationOrderState = initialState(CONVERSATION_ID);
  /** The same events applied to the compacted state, as the adapter holds it. */
  compacted: ConversationOrderState = initialState(CONVERSATION_ID);
  private nextRegistration = 0;
  private readonly progressWritten: number[];
  private readonly plannedEndWritten = new Set<number>();
  private readonly endInLog = new Set<number>();
  private readonly timers = new Set<number>();
  private readonly cancels = new Set<number>();
  private readonly expiries = new Set<number>();
  private conversationEndWritten = false;
  private republishesWritten = 0;

  constructor(private readonly scenario: Scenario) {
    this.model = new OrderModel(scenario.items);
    this.progressWritten = scenario.items.map(() => 0);
  }

  run(): void {
    this.apply({ type: 'conversation.opened', conversation_id: CONVERSATION_ID, tenant_id: 't', at: AT });
    for (let step = 0; ; step += 1) {
      if (this.conversationEndDue()) this.writeConversationEnd();
      const writes = this.enabledWrites();
      if (writes.length === 0) break;
      const { pick, redeliver } = this.scenario.steps[step] ?? { pick: 0, redeliver: null };
      writes[pick % writes.length]();
      if (redeliver !== null) this.checkRedelivery(redeliver % this.log.length);
    }
    this.checkSettled();
  }

  /** Every write that may come next: each respects causality (registration first). */
  private enabledWrites(): (() => void)[] {
    const writes: (() => void)[] = [];
    const items = this.scenario.items;
    if (this.nextRegistration < items.length) writes.push(() => this.writeRegistration());
    for (let index = 0; index < this.nextRegistration; index += 1) {
      if (this.progressWritten[index] < items[index].progressCount) writes.push(() => this.writeProgress(index));
      if (items[index].outcome !== 'deadline' && !this.plannedEndWritten.has(index)) {
        writes.push(() => this.writePlannedEnd(index));
      }
    }
    for (const index of this.cancels) writes.push(() => this.writeCancel(index));
    for (const index of this.expiries) writes.push(() => this.writeExpiry(index));
    if (this.republishesWritten < this.scenario.republishes.length) writes.push(() => this.republish());
    // A timer that does not race the provider fires only when nothing else can happen.
    const timers = [...this.timers].filter((index) => writes.length === 0 || items[index].racesDeadline);
    for (const index of timers) writes.push(() => this.fireTimer(index));
    if (writes.length === 0 && this.scenario.conversationEndAfterWrites !== null && !this.conversationEndWritten) {
      writes.push(() => this.writeConversationEnd());
    }
    return writes;
  }

  private conversationEndDue(): boolean {
    const after = this.scenario.conversationEndAfterWrites;
    return after !== null && !this.conversationEndWritten && this.log.length >= after;
  }

  private writeRegistration(): void {
    const index = this.nextRegistration;
    this.nextRegistration += 1;
    const item = this.scenario.items[index];
    this.apply({
      type: 'work_item.registered',
      conversation_id: CONVERSATION_ID,
      tenant_id: 't',
      work_item_id: workItemId(index),
      sequence: index + 1,
      kind: item.kind,
      ordered: item.ordered,
      delivery: 'interrupt',
      timeout_ms: 30_000,
      expires_at: AT,
      at: AT,
    });
  }

  private writeProgress(index: number): void {
    this.progressWritten[index] += 1;
    this.apply({
      type: 'work_item.progress',
      conversation_id: CONVERSATION_ID,
      work_item_id: workItemId(index),
      index: this.progressWritten[index],
      progress: { message: `working on ${index}` },
      trace_id: TRACE_ID,
      at: AT,
    });
  }

  private writePlannedEnd(index: number): void {
    this.plannedEndWritten.add(index);
    this.writeEnd(index, plannedOutcome(this.scenario.items[index], index));
  }

  private fireTimer(index: number): void {
    this.timers.delete(index);
    this.writeEnd(index, { state: 'timed_out' });
  }

  private writeCancel(index: number): void {
    this.cancels.delete(index);
    this.writeEnd(index, { state: 'cancelled', reason: 'conversation_ended' });
  }

  private writeExpiry(index: number): void {
    this.expiries.delete(index);
    this.writeEnd(index, { state: 'timed_out' });
  }

  /** With compare-and-set on, the first end written wins and the others are never logged (DESIGN.md). */
  private writeEnd(index: number, outcome: WorkItemOutcome): void {
    if (this.scenario.endsCompareAndSet && this.endInLog.has(index)) return;
    this.endInLog.add(index);
    const event: WorkItemEndedEvent = {
      type: 'work_item.ended',
      conversation_id: CONVERSATION_ID,
      work_item_id: workItemId(index),
      outcome,
      trace_id: TRACE_ID,
      at: AT,
    };
    this.apply(event);
  }

  private writeConversationEnd(): void {
    this.conversationEndWritten = true;
    this.apply({ type: 'conversation.ended', conversation_id: CONVERSATION_ID, tenant_id: 't', at: AT });
  }

  private republish(): void {
    const logIndex = this.scenario.republishes[this.republishesWritten] % this.log.length;
    this.republishesWritten += 1;
    this.apply(this.log[logIndex]);
  }

  private apply(event: WorkLogEvent): void {
    this.log.push(event);
    const streamSeq = this.log.length;
    const result = applyEvent(deepFreeze(this.state), event, streamSeq, { maxHeld: this.scenario.maxHeld });
    // The adapter keeps the compacted state: it must decide exactly the same.
    const shadow = applyEvent(deepFreeze(this.compacted), event, streamSeq, { maxHeld: this.scenario.maxHeld });
    invariant(
      JSON.stringify(shadow.actions) === JSON.stringify(result.actions),
      `the compacted state decides the same at seq ${streamSeq}`,
    );
    this.compacted = JSON.parse(JSON.stringify(compact(shadow.state))) as ConversationOrderState;
    const progressDue = this.model.isProgressDue(event);
    this.model.observe(event, streamSeq);
    for (const action of result.actions) this.judge(action, event, streamSeq, result.state);
    const progressReleased = result.actions.some((action) => action.type === 'release' && action.kind === 'progress');
    invariant(progressReleased === progressDue, 'progress released at once, unless its final is out or it is a repeat');
    // Through JSON, as the state goes through the KV bucket between events.
    this.state = JSON.parse(JSON.stringify(result.state)) as ConversationOrderState;
    this.checkAfterApply();
  }

  private judge(action: OrderAction, event: WorkLogEvent, streamSeq: number, state: ConversationOrderState): void {
    switch (action.type) {
      case 'release':
        this.judgeRelease(action, state);
        return;
      case 'cancel_outstanding':
        invariant(
          event.type === 'conversation.ended' && !this.model.cancelAsked,
          'cancel_outstanding once, at the end',
        );
        this.model.cancelAsked = true;
        invariant(
          sameList(action.workItemIds, this.model.outstanding().map(workItemId)),
          'cancel_outstanding names exactly the items without an end',
        );
        action.workItemIds.forEach((id) => this.cancels.add(indexOf(id)));
        return;
      case 'expire_early':
        this.judgeExpireEarly(indexOf(action.workItemId));
        return;
      case 'schedule_deadline':
        invariant(
          event.type === 'work_item.registered' && event.work_item_id === action.workItemId,
          'deadline on its registration',
        );
        this.timers.add(indexOf(action.workItemId));
        return;
      case 'clear_deadline':
        invariant(
          this.model.ends.get(indexOf(action.workItemId))?.streamSeq === streamSeq,
          'deadline cleared by its first end',
        );
        this.timers.delete(indexOf(action.workItemId));
        return;
    }
  }

  private judgeRelease(action: ReleaseAction, state: ConversationOrderState): void {
    invariant(
      action.releaseIndex === this.model.nextReleaseIndex,
      `release index ${action.releaseIndex} leaves no gap`,
    );
    this.model.nextReleaseIndex += 1;
    const index = indexOf(action.workItemId);
    invariant(this.model.known.has(index) && action.sequence === index + 1, 'releases only a registered item');
    invariant(!this.model.finals.has(index), `nothing of item ${index} after its final`);
    if (action.kind === 'final') this.judgeFinal(index, action.endSeq);
    else this.judgeProgress(index, action.progressSeq);
    const seq = action.kind === 'final' ? action.endSeq : action.progressSeq;
    invariant(seq <= this.log.length, 'released only after its event was applied');
    const release = buildRelease(
      action,
      findWorkItem(state, action.workItemId)!,
      this.log[seq - 1] as WorkItemEndedEvent,
    );
    invariant(release.release_index === action.releaseIndex && release.source.sequence === index + 1, 'release built');
  }

  private judgeFinal(index: number, endSeq: number): void {
    invariant(this.model.isReleasable(index), `item ${index} released only once ended, never when cancelled`);
    invariant(this.model.ends.get(index)!.streamSeq === endSeq, 'final built from the end that won');
    if (this.scenario.items[index].ordered) {
      invariant(this.model.earlierOrderedAllEnded(index), `ordered item ${index} waits for earlier ordered ends`);
      const earlierWaiting = this.model.held().filter((other) => other < index && this.scenario.items[other].ordered);
      invariant(
        earlierWaiting.length === 0,
        `ordered finals in sequence order (${index} after ${earlierWaiting.join(',')})`,
      );
    }
    this.model.finals.set(index, this.model.nextReleaseIndex - 1);
  }

  private judgeProgress(index: number, progressSeq: number): void {
    const event = this.log[progressSeq - 1];
    invariant(progressSeq === this.log.length, 'progress released when its event is applied');
    invariant(event?.type === 'work_item.progress' && indexOf(event.work_item_id) === index, 'progress of this item');
    this.model.progressReleased.add(`${index}:${event.index}`);
  }

  private judgeExpireEarly(index: number): void {
    invariant(this.model.known.has(index) && !this.model.ends.has(index), 'expire_early only for an item without end');
    invariant(!this.model.ended, 'no expire_early once the conversation ended: its cancels are on the way');
    invariant(!this.model.expireRequested.has(index), 'expire_early once per item');
    invariant(this.model.head() === index, 'expire_early for the head');
    this.model.expireRequested.add(index);
    this.expiries.add(index);
  }

  private checkAfterApply(): void {
    const model = this.model;
    invariant(
      sameList(
        [...model.finals.keys()].sort((a, b) => a - b),
        model.expectedFinals(),
      ),
      'released exactly what may go',
    );
    invariant(heldCount(this.state) === model.held().length, 'heldCount counts results waiting behind the head');
    invariant(
      sameList(Object.keys(pendingDeadlines(this.state)), model.outstanding().map(workItemId)),
      'pendingDeadlines lists the items without end',
    );
    const head = model.head();
    invariant(this.state.headSequence === (head === undefined ? null : head + 1), 'headSequence is the head');
    if (!model.ended && model.held().length > this.scenario.maxHeld) {
      invariant(head !== undefined && model.expireRequested.has(head), 'bound policy: head asked to expire');
    }
  }

  private checkRedelivery(logIndex: number): void {
    const before = this.state;
    const result = applyEvent(before, this.log[logIndex], logIndex + 1, { maxHeld: this.scenario.maxHeld });
    invariant(
      result.actions.length === 0 && result.state === before,
      `redelivery of seq ${logIndex + 1} changes nothing`,
    );
  }

  /** Every event applied: every registered item ended, so nothing is held any more. */
  private checkSettled(): void {
    const model = this.model;
    invariant(model.outstanding().length === 0, 'every registered item ended');
    for (const index of this.scenario.items.keys()) {
      invariant(model.finals.has(index) === model.isReleasable(index), `item ${index}: one final unless cancelled`);
    }
    invariant(heldCount(this.state) === 0, 'nothing held at the end');
    invariant(isFinished(this.state) === model.ended, 'finished once ended and settled');
    invariant(this.state.nextReleaseIndex === model.nextReleaseIndex, 'release indexes are 1..n');
    this.log.forEach((_, logIndex) => this.checkRedelivery(logIndex));
  }
}

function plannedOutcome(item: PlannedItem, index: number): WorkItemOutcome {
  switch (item.outcome) {
    case 'completed':
      return item.kind === 'tool'
        ? { state: 'completed', result: { index } }
        : { state: 'completed', message: { content: `answer ${index}` } };
    case 'failed':
      return {
        state: 'failed',
        errors: [{ code: 'tool_failed', title: 'Tool failed' }],
        by: index % 2 ? 'dispatch' : 'callback',
      };
    case 'cancelled':
      return { state: 'cancelled', reason: 'cancelled' };
    case 'deadline':
      throw new Error('a deadline item has no planned end');
  }
}

function sameList(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

describe('release order (model-based)', () => {
  it('releases every conversation in order, gap-free, exactly once, and ignores redelivery', () => {
    fc.assert(
      fc.property(scenarioArbitrary, (scenario) => {
        new Simulation(scenario).run();
      }),
      { numRuns: 1000 },
    );
  });
});
