import { describe, it, expect } from '@jest/globals';
import type {
  WorkItemEndedEvent,
  WorkItemKind,
  WorkItemOutcome,
  WorkItemProgressEvent,
  WorkItemRegisteredEvent,
  WorkLogEvent,
} from '@backchannel/contracts';
import {
  applyEvent,
  applyMissedEnd,
  buildRelease,
  findWorkItem,
  heldCount,
  initialState,
  isFinished,
  pendingDeadlines,
  type ConversationOrderState,
  type OrderAction,
  type ReleaseAction,
} from './release-order.js';

const CONVERSATION_ID = 'conv-1';
const TRACE_ID = 'a'.repeat(32);
const AT = '2026-11-02T10:00:00.000Z';

const workItemId = (sequence: number): string => `wi_${String(sequence).padStart(26, '0')}`;
const expiresAt = (sequence: number): string => `2026-11-02T10:0${sequence % 10}:30.000Z`;

function registered(
  sequence: number,
  options: { ordered?: boolean; kind?: WorkItemKind } = {},
): WorkItemRegisteredEvent {
  return {
    type: 'work_item.registered',
    conversation_id: CONVERSATION_ID,
    tenant_id: 'tenant-1',
    work_item_id: workItemId(sequence),
    sequence,
    kind: options.kind ?? 'tool',
    ordered: options.ordered ?? true,
    delivery: 'when_idle',
    timeout_ms: 30_000,
    expires_at: expiresAt(sequence),
    at: AT,
  };
}

function ended(
  sequence: number,
  outcome: WorkItemOutcome = { state: 'completed', result: { n: sequence } },
): WorkItemEndedEvent {
  return {
    type: 'work_item.ended',
    conversation_id: CONVERSATION_ID,
    work_item_id: workItemId(sequence),
    outcome,
    trace_id: TRACE_ID,
    at: AT,
  };
}

function progress(sequence: number, index: number): WorkItemProgressEvent {
  return {
    type: 'work_item.progress',
    conversation_id: CONVERSATION_ID,
    work_item_id: workItemId(sequence),
    index,
    progress: { message: `step ${index}`, percent: index * 10 },
    trace_id: TRACE_ID,
    at: AT,
  };
}

const conversationEnded: WorkLogEvent = {
  type: 'conversation.ended',
  conversation_id: CONVERSATION_ID,
  tenant_id: 'tenant-1',
  at: AT,
};

/** A conversation's log as the adapter sees it: each event gets the next stream sequence. */
function conversationLog(maxHeld = 1_000) {
  let state = initialState(CONVERSATION_ID);
  const log: WorkLogEvent[] = [];
  return {
    get state(): ConversationOrderState {
      return state;
    },
    apply(event: WorkLogEvent): OrderAction[] {
      log.push(event);
      const result = applyEvent(deepFreeze(state), event, log.length, { maxHeld });
      state = result.state;
      return result.actions;
    },
    redeliver(streamSeq: number): { state: ConversationOrderState; actions: OrderAction[] } {
      return applyEvent(state, log[streamSeq - 1], streamSeq, { maxHeld });
    },
    eventAt(streamSeq: number): WorkLogEvent {
      return log[streamSeq - 1];
    },
  };
}

function registerAll(sut: ReturnType<typeof conversationLog>, count: number, unordered: number[] = []): void {
  for (let sequence = 1; sequence <= count; sequence += 1) {
    sut.apply(registered(sequence, { ordered: !unordered.includes(sequence) }));
  }
}

/** Releases as `<release_index>:<sequence>:<kind>`, the shape the assertions read best in. */
function releases(actions: OrderAction[]): string[] {
  return actions.filter(isRelease).map((action) => `${action.releaseIndex}:${action.sequence}:${action.kind}`);
}

function isRelease(action: OrderAction): action is ReleaseAction {
  return action.type === 'release';
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

describe('applyEvent', () => {
  it('releases ordered results that arrive 3, 1, 2 as 1, 2, 3', () => {
    const sut = conversationLog();
    registerAll(sut, 3);

    expect(releases(sut.apply(ended(3)))).toEqual([]);
    expect(heldCount(sut.state)).toBe(1);
    expect(releases(sut.apply(ended(1)))).toEqual(['1:1:final']);
    expect(releases(sut.apply(ended(2)))).toEqual(['2:2:final', '3:3:final']);
    expect(heldCount(sut.state)).toBe(0);
    expect(sut.state.headSequence).toBeNull();
  });

  it('releases an unordered result at once, and an unfinished unordered item blocks nothing', () => {
    const sut = conversationLog();
    registerAll(sut, 3, [2]);

    expect(releases(sut.apply(ended(3)))).toEqual([]);
    expect(releases(sut.apply(ended(1)))).toEqual(['1:1:final', '2:3:final']);
    expect(releases(sut.apply(ended(2)))).toEqual(['3:2:final']);
  });

  it('releases an unordered result ahead of an earlier unfinished ordered item', () => {
    const sut = conversationLog();
    registerAll(sut, 2, [2]);

    expect(releases(sut.apply(ended(2)))).toEqual(['1:2:final']);
    expect(heldCount(sut.state)).toBe(0);
  });

  it('releases a timed-out item as an error at its place, then the results behind it', () => {
    const sut = conversationLog();
    registerAll(sut, 2);
    sut.apply(ended(2));

    const actions = sut.apply(ended(1, { state: 'timed_out' }));

    expect(releases(actions)).toEqual(['1:1:final', '2:2:final']);
    const timeout = buildRelease(
      actions.filter(isRelease)[0],
      findWorkItem(sut.state, workItemId(1))!,
      ended(1, { state: 'timed_out' }),
    );
    expect(timeout.source).toEqual({ type: 'timeout', work_item_id: workItemId(1), sequence: 1 });
    expect(timeout.errors).toEqual([
      expect.objectContaining({ code: 'work_item_timed_out', title: 'Work item timed out' }),
    ]);
  });

  it('skips a cancelled item without a release, and it no longer blocks', () => {
    const sut = conversationLog();
    registerAll(sut, 3);
    sut.apply(ended(3));

    expect(releases(sut.apply(ended(1, { state: 'cancelled', reason: 'cancelled' })))).toEqual([]);
    expect(releases(sut.apply(ended(2, { state: 'failed', errors: [], by: 'callback' })))).toEqual([
      '1:2:final',
      '2:3:final',
    ]);
    expect(findWorkItem(sut.state, workItemId(1))?.finalStatus).toBe('skipped');
  });

  it('asks to cancel outstanding items when the conversation ends, then releases held results in order', () => {
    const sut = conversationLog();
    registerAll(sut, 4, [4]);
    sut.apply(ended(3));

    expect(sut.apply(conversationEnded)).toEqual([
      { type: 'cancel_outstanding', workItemIds: [workItemId(1), workItemId(2), workItemId(4)] },
    ]);
    expect(sut.apply(ended(1, { state: 'cancelled', reason: 'conversation_ended' }))).toEqual([
      { type: 'clear_deadline', workItemId: workItemId(1) },
    ]);
    // The result of 2 won the race against its cancel: it is released, the cancel ignored.
    expect(releases(sut.apply(ended(2)))).toEqual(['1:2:final', '2:3:final']);
    expect(sut.apply(ended(2, { state: 'cancelled', reason: 'conversation_ended' }))).toEqual([]);
    expect(isFinished(sut.state)).toBe(false);
    sut.apply(ended(4, { state: 'cancelled', reason: 'conversation_ended' }));
    expect(isFinished(sut.state)).toBe(true);
  });

  it('ignores a registration after the conversation ended', () => {
    const sut = conversationLog();
    sut.apply(conversationEnded);

    expect(sut.apply(registered(1))).toEqual([]);
    expect(sut.state.workItems).toEqual([]);
    expect(isFinished(sut.state)).toBe(true);
  });

  it('releases progress at once, before its final, and drops progress read after the final', () => {
    const sut = conversationLog();
    registerAll(sut, 2);

    expect(releases(sut.apply(progress(2, 1)))).toEqual(['1:2:progress']);
    sut.apply(ended(2));
    // Still held behind item 1, so this update can still precede the final.
    expect(releases(sut.apply(progress(2, 2)))).toEqual(['2:2:progress']);
    expect(releases(sut.apply(progress(2, 2)))).toEqual([]);
    expect(releases(sut.apply(ended(1)))).toEqual(['3:1:final', '4:2:final']);
    expect(releases(sut.apply(progress(2, 3)))).toEqual([]);
    expect(findWorkItem(sut.state, workItemId(2))?.releasedProgressIndexes).toEqual([1, 2]);
  });

  it('ignores a redelivered event entirely', () => {
    const sut = conversationLog();
    registerAll(sut, 2);
    sut.apply(ended(2));
    sut.apply(ended(1));
    const before = sut.state;

    for (let streamSeq = 1; streamSeq <= 4; streamSeq += 1) {
      expect(sut.redeliver(streamSeq)).toEqual({ state: before, actions: [] });
    }
  });

  it('ignores an end for an unknown work item and a second end for the same one', () => {
    const sut = conversationLog();
    registerAll(sut, 1);

    expect(sut.apply(ended(9))).toEqual([]);
    expect(releases(sut.apply(ended(1)))).toEqual(['1:1:final']);
    expect(sut.apply(ended(1, { state: 'timed_out' }))).toEqual([]);
    expect(findWorkItem(sut.state, workItemId(1))).toMatchObject({ outcome: 'completed', endSeq: 3 });
  });

  it('schedules a deadline on registration and clears it when the end is seen', () => {
    const sut = conversationLog();

    expect(sut.apply(registered(1))).toEqual([
      { type: 'schedule_deadline', workItemId: workItemId(1), expiresAt: expiresAt(1) },
    ]);
    sut.apply(registered(2));
    expect(pendingDeadlines(sut.state)).toEqual({ [workItemId(1)]: expiresAt(1), [workItemId(2)]: expiresAt(2) });
    expect(sut.apply(ended(1))).toEqual([
      { type: 'clear_deadline', workItemId: workItemId(1) },
      { type: 'release', releaseIndex: 1, workItemId: workItemId(1), sequence: 1, kind: 'final', endSeq: 3 },
    ]);
    expect(pendingDeadlines(sut.state)).toEqual({ [workItemId(2)]: expiresAt(2) });
  });

  it('asks once per head item to expire it early when more results are held than allowed', () => {
    const sut = conversationLog(1);
    registerAll(sut, 4);

    expect(sut.apply(ended(3)).map((action) => action.type)).toEqual(['clear_deadline']);
    expect(sut.apply(ended(4))).toContainEqual({ type: 'expire_early', workItemId: workItemId(1) });
    expect(sut.apply(progress(2, 1)).map((action) => action.type)).toEqual(['release']);
    expect(sut.state.workItems[0]?.expireEarlyRequested).toBe(true);

    const actions = sut.apply(ended(1, { state: 'timed_out' }));

    // Item 1 goes out as a timeout; 3 and 4 are still held behind 2, which is the new head.
    expect(releases(actions)).toEqual(['2:1:final']);
    expect(actions.at(-1)).toEqual({ type: 'expire_early', workItemId: workItemId(2) });
    expect(sut.state.headSequence).toBe(2);
  });

  it('leaves the state it was given untouched', () => {
    const sut = conversationLog();
    registerAll(sut, 2);
    const before = JSON.stringify(sut.state);

    applyEvent(sut.state, ended(2), 3, { maxHeld: 0 });

    expect(JSON.stringify(sut.state)).toBe(before);
  });
});

describe('buildRelease', () => {
  function releaseOf(kind: WorkItemKind, event: WorkItemEndedEvent | WorkItemProgressEvent) {
    const sut = conversationLog();
    sut.apply(registered(1, { kind }));
    const action = sut.apply(event).find(isRelease)!;
    return buildRelease(action, findWorkItem(sut.state, workItemId(1))!, sut.eventAt(2) as typeof event);
  }

  it("releases a tool's result with role tool and everything the injector needs", () => {
    expect(releaseOf('tool', ended(1, { state: 'completed', result: null }))).toEqual({
      conversation_id: CONVERSATION_ID,
      release_index: 1,
      role: 'tool',
      source: { type: 'callback', work_item_id: workItemId(1), sequence: 1 },
      result: null,
      delivery: 'when_idle',
      trace_id: TRACE_ID,
      accepted_at: AT,
    });
  });

  it("releases an LLM's message as assistant content", () => {
    const release = releaseOf('llm', ended(1, { state: 'completed', message: { content: 'Your order shipped.' } }));

    expect(release).toMatchObject({ role: 'assistant', content: 'Your order shipped.' });
    expect(release).not.toHaveProperty('result');
  });

  it('releases errors with the source that failed', () => {
    const errors = [{ code: 'tool_unreachable', title: 'Tool unreachable', meta: { retryable: true } }];

    const release = releaseOf('tool', ended(1, { state: 'failed', errors, by: 'dispatch' }));

    expect(release).toMatchObject({ errors, source: { type: 'dispatch', work_item_id: workItemId(1), sequence: 1 } });
  });

  it('releases progress with its id, message and percent', () => {
    const release = releaseOf('llm', { ...progress(1, 1), progress_id: 'p-1' });

    expect(release).toMatchObject({
      role: 'assistant',
      source: { type: 'progress', work_item_id: workItemId(1), sequence: 1 },
      progress: { id: 'p-1', message: 'step 1', percent: 10 },
    });
  });

  it('refuses an event of another work item or of the wrong kind', () => {
    const sut = conversationLog();
    sut.apply(registered(1));
    const action = sut.apply(ended(1)).find(isRelease)!;
    const facts = findWorkItem(sut.state, workItemId(1))!;

    expect(() => buildRelease(action, facts, { ...ended(1), work_item_id: workItemId(2) })).toThrow();
    expect(() => buildRelease(action, facts, progress(1, 1))).toThrow();
  });
});

describe('applyMissedEnd', () => {
  /** A log whose delivery of one end was skipped: the state moved on past it. */
  function skippedEnd() {
    const sut = conversationLog();
    registerAll(sut, 3);
    sut.apply(ended(2));
    sut.apply(ended(3));
    // Item 1's end is stored at the next sequence, but never delivered to this state.
    const missedSeq = 6;
    sut.apply(progress(3, 1)); // seq 6 stands in for whatever came at that place instead
    return { sut, missedSeq };
  }

  it('applies an end the state never saw, below lastAppliedSeq, and releases what it held', () => {
    const { sut, missedSeq } = skippedEnd();
    const before = deepFreeze(sut.state);
    const result = applyMissedEnd(before, ended(1), missedSeq, { maxHeld: 1_000 });
    // Index 1 went to item 3's progress, released at once meanwhile.
    expect(releases(result.actions)).toEqual(['2:1:final', '3:2:final', '4:3:final']);
    expect(result.actions[0]).toEqual({ type: 'clear_deadline', workItemId: workItemId(1) });
    expect(result.state.lastAppliedSeq).toBe(before.lastAppliedSeq);
    expect(heldCount(result.state)).toBe(0);
  });

  it('does nothing for an item that already has its end, or that it does not know', () => {
    const { sut, missedSeq } = skippedEnd();
    expect(applyMissedEnd(sut.state, ended(2), missedSeq, { maxHeld: 1_000 })).toEqual({
      state: sut.state,
      actions: [],
    });
    expect(applyMissedEnd(sut.state, ended(9), missedSeq, { maxHeld: 1_000 }).actions).toEqual([]);
  });
});
