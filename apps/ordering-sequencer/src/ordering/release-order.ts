/**
 * The state being built from `state`: its own array of items, sharing the item objects it
 * has not changed (copy on write, `editable`), so an event costs what it touches, not a
 * copy of every outstanding item.
 */
type Draft = ConversationOrderState;

/** The draft's own copy of `item`, made on the first change. */
function editable(draft: Draft, item: WorkItemOrderState): WorkItemOrderState {
  const index = draft.workItems.indexOf(item);
  if (index === -1 || ownCopies.has(item)) return item;
  const copy = { ...item, releasedProgressIndexes: [...item.releasedProgressIndexes] };
  ownCopies.add(copy);
  draft.workItems[index] = copy;
  return copy;
}

/**
 * Items the draft being built copied or created (and so may change in place). `applyEvent`
 * is synchronous, so one set, emptied at each call, serves every draft in turn.
 */
const ownCopies = new Set<WorkItemOrderState>();

/**
 * The ordering core of the sequencer: one conversation's work log in, release decisions
 * out. Pure: no broker, no clock, no bodies. The adapter stores the state (KV,
 * compare-and-set), performs the actions in the order given, and builds each release
 * from the stored event with `buildRelease`.
 */
import {
  INJECTED_ERROR_CODE,
  INJECTED_ERROR_CODES,
  type ConversationEndedEvent,
  type Delivery,
  type ErrorObject,
  type MessageBody,
  type MessageSource,
  type ReleaseMessage,
  type WorkItemEndedEvent,
  type WorkItemKind,
  type WorkItemOutcome,
  type WorkItemProgressEvent,
  type WorkItemRegisteredEvent,
  type WorkLogEvent,
} from '@backchannel/contracts';

/** `waiting` until the final is released, or `skipped` because the item was cancelled. */
export type FinalStatus = 'waiting' | 'released' | 'skipped';

/** What the sequencer remembers of one work item: facts of its registration, never a body. */
export interface WorkItemOrderState {
  workItemId: string;
  sequence: number;
  kind: WorkItemKind;
  ordered: boolean;
  delivery: Delivery;
  expiresAt: string;
  /** Stream sequence of the end that won; the adapter reads the body there (results can be 256 KiB). */
  endSeq: number | null;
  outcome: WorkItemOutcome['state'] | null;
  finalStatus: FinalStatus;
  /** `index` of each progress update released; its length is the count, and it drops a republished update. */
  releasedProgressIndexes: number[];
  /** The bound policy asked once for this item to be timed out early. */
  expireEarlyRequested: boolean;
}

/**
 * One conversation's ordering state: plain JSON, a fold of the conversation's work log, so
 * two replicas that applied the same events hold the same state and make the same releases.
 */
export interface ConversationOrderState {
  conversationId: string;
  /** Stream sequence of the last applied event: anything at or below it is a redelivery. */
  lastAppliedSeq: number;
  /** Highest `sequence` registered: a registration at or below it is a republished one. */
  registeredThrough: number;
  /** `release_index` of the next release: 1, 2, 3… without gaps. */
  nextReleaseIndex: number;
  ended: boolean;
  /** Sequence of the earliest ordered item whose final still waits (the "head"); null when none. */
  headSequence: number | null;
  /**
   * In `sequence` order. `compact` drops the items whose final was released or skipped.
   */
  workItems: WorkItemOrderState[];
}

/** `SEQUENCER_MAX_HELD_PER_CONVERSATION` (CONTRACT.md §8). */
export interface HeldLimit {
  maxHeld: number;
}

interface ReleaseBase {
  type: 'release';
  releaseIndex: number;
  workItemId: string;
  sequence: number;
}
export interface FinalReleaseAction extends ReleaseBase {
  kind: 'final';
  endSeq: number;
}
export interface ProgressReleaseAction extends ReleaseBase {
  kind: 'progress';
  progressSeq: number;
}
export type ReleaseAction = FinalReleaseAction | ProgressReleaseAction;

/** Record a `cancelled`/`conversation_ended` end for each (compare-and-set: another end may win). */
export interface CancelOutstandingAction {
  type: 'cancel_outstanding';
  workItemIds: string[];
}
/** Record a `timed_out` end for this head item now, because too many results are held behind it. */
export interface ExpireEarlyAction {
  type: 'expire_early';
  workItemId: string;
}
export interface ScheduleDeadlineAction {
  type: 'schedule_deadline';
  workItemId: string;
  expiresAt: string;
}
export interface ClearDeadlineAction {
  type: 'clear_deadline';
  workItemId: string;
}
export type OrderAction =
  ReleaseAction | CancelOutstandingAction | ExpireEarlyAction | ScheduleDeadlineAction | ClearDeadlineAction;

export interface ApplyResult {
  state: ConversationOrderState;
  /** In the order the adapter must perform them. */
  actions: OrderAction[];
}

export function initialState(conversationId: string): ConversationOrderState {
  return {
    conversationId,
    lastAppliedSeq: 0,
    registeredThrough: 0,
    nextReleaseIndex: 1,
    ended: false,
    headSequence: null,
    workItems: [],
  };
}

/**
 * Applies one event of the conversation's work log, read at `streamSeq`. Never mutates
 * `state`. A redelivered event (`streamSeq` ≤ `lastAppliedSeq`) returns `state` itself
 * and no action, so acking late is always safe.
 */
export function applyEvent(
  state: ConversationOrderState,
  event: WorkLogEvent,
  streamSeq: number,
  held: HeldLimit,
): ApplyResult {
  if (streamSeq <= state.lastAppliedSeq) return { state, actions: [] };
  return changed(state, held, (draft) => {
    draft.lastAppliedSeq = streamSeq;
    if (event.conversation_id !== draft.conversationId) return undefined;
    return applyToDraft(draft, event, streamSeq);
  });
}

/**
 * Applies an end the work log holds at `endSeq` (below `lastAppliedSeq`) that this state
 * never saw, because its delivery was skipped (docs/reliability.md): as the end would have
 * been applied, then whatever it lets go. Nothing when the item is unknown or already has
 * its end. `lastAppliedSeq` is unchanged.
 */
export function applyMissedEnd(
  state: ConversationOrderState,
  event: WorkItemEndedEvent,
  endSeq: number,
  held: HeldLimit,
): ApplyResult {
  const item = findWorkItem(state, event.work_item_id);
  if (!item || item.endSeq !== null || event.conversation_id !== state.conversationId) return { state, actions: [] };
  return changed(state, held, (draft) => onEnded(draft, event, endSeq));
}

/** A draft of `state` (copy on write), changed by `change`, then releases and the bound policy. */
function changed(
  state: ConversationOrderState,
  held: HeldLimit,
  change: (draft: Draft) => OrderAction[] | undefined,
): ApplyResult {
  ownCopies.clear();
  const draft: Draft = {
    ...state,
    registeredThrough: state.registeredThrough ?? 0,
    workItems: state.workItems.slice(),
  };
  const own = change(draft);
  if (own === undefined) return { state: draft, actions: [] };
  const actions = [...own, ...releaseReady(draft), ...enforceHeldLimit(draft, held)];
  draft.headSequence = findHead(draft)?.sequence ?? null;
  ownCopies.clear();
  return { state: draft, actions };
}

/**
 * The state without the items whose final was released or skipped: they take no further
 * part (a second end, late progress and a republished registration are ignored without
 * them), so the adapter drops them once it has built the releases, and a long
 * conversation's state stays as small as what is outstanding. Same releases either way.
 */
export function compact(state: ConversationOrderState): ConversationOrderState {
  if (state.workItems.every((item) => item.finalStatus === 'waiting')) return state;
  return { ...state, workItems: state.workItems.filter((item) => item.finalStatus === 'waiting') };
}

/** Work items whose end is not seen yet, with their deadlines: to rebuild timers after a restart. */
export function pendingDeadlines(state: ConversationOrderState): Record<string, string> {
  const deadlines: Record<string, string> = {};
  for (const item of state.workItems) {
    if (item.endSeq === null) deadlines[item.workItemId] = item.expiresAt;
  }
  return deadlines;
}

/** Results whose end is seen but which wait behind an earlier unfinished ordered item. */
export function heldCount(state: ConversationOrderState): number {
  let held = 0;
  for (const item of state.workItems) if (item.endSeq !== null && item.finalStatus === 'waiting') held++;
  return held;
}

/** The conversation ended and every item's final was released or skipped: the state can go. */
export function isFinished(state: ConversationOrderState): boolean {
  return state.ended && state.workItems.every((item) => item.finalStatus !== 'waiting');
}

export function findWorkItem(state: ConversationOrderState, workItemId: string): WorkItemOrderState | undefined {
  return state.workItems.find((item) => item.workItemId === workItemId);
}

function applyToDraft(draft: ConversationOrderState, event: WorkLogEvent, streamSeq: number): OrderAction[] {
  switch (event.type) {
    case 'conversation.opened':
      return [];
    case 'work_item.registered':
      return onRegistered(draft, event);
    case 'work_item.ended':
      return onEnded(draft, event, streamSeq);
    case 'work_item.progress':
      return onProgress(draft, event, streamSeq);
    case 'conversation.ended':
      return onConversationEnded(draft, event);
    default:
      return assertNever(event);
  }
}

function onRegistered(draft: ConversationOrderState, event: WorkItemRegisteredEvent): OrderAction[] {
  // The token authority refuses registrations on an ended conversation (CONTRACT.md §2, 410);
  // one that slipped into the log anyway must not start an item nobody will end.
  if (draft.ended || isRegistered(draft, event)) return [];
  const item = newWorkItem(event);
  ownCopies.add(item);
  draft.workItems.push(item);
  // Registrations arrive in `sequence` order; sort only if one ever did not.
  if ((draft.workItems.at(-2)?.sequence ?? 0) > item.sequence) draft.workItems.sort((a, b) => a.sequence - b.sequence);
  draft.registeredThrough = Math.max(draft.registeredThrough, event.sequence);
  return [{ type: 'schedule_deadline', workItemId: event.work_item_id, expiresAt: event.expires_at }];
}

/**
 * The same registration republished (under a new stream sequence) is not a new item.
 * Registrations are appended in `sequence` order, so one at or below the highest seen is old.
 */
function isRegistered(draft: ConversationOrderState, event: WorkItemRegisteredEvent): boolean {
  return (
    event.sequence <= draft.registeredThrough ||
    draft.workItems.some((item) => item.workItemId === event.work_item_id || item.sequence === event.sequence)
  );
}

function newWorkItem(event: WorkItemRegisteredEvent): WorkItemOrderState {
  return {
    workItemId: event.work_item_id,
    sequence: event.sequence,
    kind: event.kind,
    ordered: event.ordered,
    delivery: event.delivery,
    expiresAt: event.expires_at,
    endSeq: null,
    outcome: null,
    finalStatus: 'waiting',
    releasedProgressIndexes: [],
    expireEarlyRequested: false,
  };
}

function onEnded(draft: ConversationOrderState, event: WorkItemEndedEvent, streamSeq: number): OrderAction[] {
  const found = findWorkItem(draft, event.work_item_id);
  // A work item ends exactly once (CONTRACT.md §2): the first end in the log is the one that won.
  if (!found || found.endSeq !== null) return [];
  const item = editable(draft, found);
  item.endSeq = streamSeq;
  item.outcome = event.outcome.state;
  // "A cancelled one is skipped" (CONTRACT.md §4): nothing to release, so it stops blocking now.
  if (item.outcome === 'cancelled') item.finalStatus = 'skipped';
  return [{ type: 'clear_deadline', workItemId: item.workItemId }];
}

function onProgress(draft: ConversationOrderState, event: WorkItemProgressEvent, streamSeq: number): OrderAction[] {
  const found = findWorkItem(draft, event.work_item_id);
  // Progress is injected at once, but always before the item's final (CONTRACT.md §3). An
  // update read after the final went out (it raced the end in the log) can no longer keep
  // that promise, so it is dropped; one of a skipped (cancelled) item has no one to hear it.
  if (!found || found.finalStatus !== 'waiting') return [];
  if (found.releasedProgressIndexes.includes(event.index)) return [];
  const item = editable(draft, found);
  item.releasedProgressIndexes.push(event.index);
  const base = { type: 'release', releaseIndex: takeReleaseIndex(draft), workItemId: item.workItemId } as const;
  return [{ ...base, sequence: item.sequence, kind: 'progress', progressSeq: streamSeq }];
}

function onConversationEnded(draft: ConversationOrderState, _event: ConversationEndedEvent): OrderAction[] {
  if (draft.ended) return [];
  draft.ended = true;
  // Every outstanding item is cancelled (CONTRACT.md §2). Results already held flow in
  // sequence order as those cancel ends arrive, so nothing accepted is dropped (§4).
  const workItemIds = draft.workItems.filter((item) => item.endSeq === null).map((item) => item.workItemId);
  return workItemIds.length > 0 ? [{ type: 'cancel_outstanding', workItemIds }] : [];
}

/**
 * Releases every final that may go now, in one pass in sequence order: unordered items
 * as soon as their end is seen; an ordered one once no earlier ordered item is still
 * waiting (CONTRACT.md §4: "an ordered item waits only for earlier ordered items").
 */
function releaseReady(draft: ConversationOrderState): ReleaseAction[] {
  const actions: ReleaseAction[] = [];
  let orderedBlocked = false;
  for (const item of draft.workItems) {
    if (item.finalStatus !== 'waiting') continue;
    const blocked = item.ordered && orderedBlocked;
    if (item.endSeq !== null && !blocked) actions.push(releaseFinal(draft, editable(draft, item), item.endSeq));
    else if (item.ordered) orderedBlocked = true;
  }
  return actions;
}

function releaseFinal(draft: ConversationOrderState, item: WorkItemOrderState, endSeq: number): FinalReleaseAction {
  item.finalStatus = 'released';
  const base = { type: 'release', releaseIndex: takeReleaseIndex(draft), workItemId: item.workItemId } as const;
  return { ...base, sequence: item.sequence, kind: 'final', endSeq };
}

function takeReleaseIndex(draft: ConversationOrderState): number {
  const releaseIndex = draft.nextReleaseIndex;
  draft.nextReleaseIndex += 1;
  return releaseIndex;
}

/** The earliest ordered item whose final still waits; after `releaseReady` it has no end yet. */
function findHead(draft: ConversationOrderState): WorkItemOrderState | undefined {
  return draft.workItems.find((item) => item.ordered && item.finalStatus === 'waiting');
}

/**
 * The bound policy: a conversation holds at most `maxHeld` results behind a missing one
 * (CONTRACT.md §8). Past it, the head is timed out early, which releases it at its place
 * as a `work_item_timed_out` error and lets the held results flow (§4). Asked once per
 * head; not after the conversation ended, when its cancel is already on the way.
 */
function enforceHeldLimit(draft: ConversationOrderState, held: HeldLimit): ExpireEarlyAction[] {
  if (draft.ended || heldCount(draft) <= held.maxHeld) return [];
  const head = findHead(draft);
  if (!head || head.expireEarlyRequested) return [];
  editable(draft, head).expireEarlyRequested = true;
  return [{ type: 'expire_early', workItemId: head.workItemId }];
}

/** The registration facts `buildRelease` needs, as held in the state. */
export type RegistrationFacts = Pick<WorkItemOrderState, 'workItemId' | 'sequence' | 'kind' | 'delivery' | 'expiresAt'>;

/**
 * Builds the release the adapter publishes for `action`, from the registration facts held
 * in the state and the event stored at the action's `endSeq` / `progressSeq`. Throws if
 * they do not belong together: the adapter read the wrong message.
 */
export function buildRelease(
  action: ReleaseAction,
  facts: RegistrationFacts,
  event: WorkItemEndedEvent | WorkItemProgressEvent,
): ReleaseMessage {
  if (facts.workItemId !== action.workItemId || event.work_item_id !== action.workItemId) {
    throw new Error(`release ${action.releaseIndex} is for ${action.workItemId}, not ${event.work_item_id}`);
  }
  const body = releaseBody(action, facts, event);
  return {
    conversation_id: event.conversation_id,
    release_index: action.releaseIndex,
    role: facts.kind === 'tool' ? 'tool' : 'assistant',
    ...body,
    source: { ...body.source, work_item_id: facts.workItemId, sequence: facts.sequence },
    delivery: facts.delivery,
    trace_id: event.trace_id,
    accepted_at: event.at,
  };
}

type ReleaseBody = Pick<MessageBody, 'result' | 'content' | 'errors' | 'progress'> & { source: MessageSource };

function releaseBody(
  action: ReleaseAction,
  facts: RegistrationFacts,
  event: WorkItemEndedEvent | WorkItemProgressEvent,
): ReleaseBody {
  if (action.kind === 'final' && event.type === 'work_item.ended') return finalBody(facts, event.outcome);
  if (action.kind === 'progress' && event.type === 'work_item.progress') return progressBody(event);
  throw new Error(`a ${action.kind} release cannot be built from a ${event.type} event`);
}

function finalBody(facts: RegistrationFacts, outcome: WorkItemOutcome): ReleaseBody {
  switch (outcome.state) {
    case 'completed':
      return completedBody(facts, outcome);
    case 'failed':
      // `source.type` tells the callback's own errors from a dispatch failure (CONTRACT.md §6).
      return { source: { type: outcome.by }, errors: outcome.errors };
    case 'timed_out':
      return { source: { type: 'timeout' }, errors: [timedOutError(facts)] };
    case 'cancelled':
      throw new Error(`cancelled work item ${facts.workItemId} is skipped, never released (CONTRACT.md §4)`);
    default:
      return assertNever(outcome);
  }
}

/** A tool's result goes out as `result`, an LLM's message as `content` (CONTRACT.md §3). */
function completedBody(facts: RegistrationFacts, outcome: WorkItemOutcome & { state: 'completed' }): ReleaseBody {
  const source: MessageSource = { type: 'callback' };
  if (facts.kind === 'tool' && 'result' in outcome) return { source, result: outcome.result };
  if (facts.kind === 'llm' && outcome.message) return { source, content: outcome.message.content };
  throw new Error(`completed ${facts.kind} work item ${facts.workItemId} carries no ${facts.kind} result`);
}

function timedOutError(facts: RegistrationFacts): ErrorObject {
  return {
    code: INJECTED_ERROR_CODE.work_item_timed_out,
    title: INJECTED_ERROR_CODES.work_item_timed_out,
    detail: `No callback arrived before the work item's deadline (${facts.expiresAt}).`,
  };
}

function progressBody(event: WorkItemProgressEvent): ReleaseBody {
  const { message, percent } = event.progress;
  return {
    source: { type: 'progress' },
    progress: {
      ...(event.progress_id !== undefined ? { id: event.progress_id } : {}),
      message,
      ...(percent !== undefined ? { percent } : {}),
    },
  };
}

function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
