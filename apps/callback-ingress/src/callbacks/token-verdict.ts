import type { WorkItemEndedEvent, WorkItemOutcome } from '@backchannel/contracts';

/**
 * The token state machine of CONTRACT.md §2–§3, pure. A token is live while its work
 * item is pending; the item's single end decides every later answer; `REPLAY_TTL_MS`
 * after that end the token is forgotten.
 */
export type CallbackVerdict =
  | { kind: 'accepted' }
  | { kind: 'duplicate' }
  | { kind: 'forgotten' }
  | { kind: 'conflict' }
  | { kind: 'closed'; code: 'work_item_closed' | 'conversation_ended'; state: WorkItemOutcome['state'] };

/** How the compare-and-set write of a callback's end went (see WorkLedger.recordEnd). */
export type WriteOutcome = 'recorded' | 'duplicate' | 'lost';

export interface VerdictInput {
  write: WriteOutcome;
  /** The end that is recorded now: this callback's own, or the one that won. */
  winner: WorkItemEndedEvent;
  bodyHash: string;
  nowMs: number;
  replayTtlMs: number;
}

/** The answer to a final callback, after its write (CONTRACT.md §3 precedence: 200, 410, 409). */
export function callbackVerdict(input: VerdictInput): CallbackVerdict {
  if (input.write === 'recorded') return { kind: 'accepted' };
  if (isForgotten(input.winner, input.nowMs, input.replayTtlMs)) return { kind: 'forgotten' };
  if (isSameCallback(input.winner, input.bodyHash)) return { kind: 'duplicate' };
  if (isCallbackEnd(input.winner.outcome)) return { kind: 'conflict' };
  return closedVerdict(input.winner.outcome);
}

/**
 * A conflict (409) once the item's conversation has ended: 410 precedes 409 (CONTRACT.md
 * §3), and "its conversation ended" applies to the item whatever ended it, so another body
 * for an item its own callback ended answers 410 `conversation_ended`. The identical replay
 * (200) precedes both and is unaffected.
 */
export function conflictAfterConversationEnd(
  verdict: CallbackVerdict,
  winner: WorkItemEndedEvent,
  conversationEnded: boolean,
): CallbackVerdict {
  if (verdict.kind !== 'conflict' || !conversationEnded) return verdict;
  return { kind: 'closed', code: 'conversation_ended', state: winner.outcome.state };
}

/** Whether a progress update may still be taken: only while the item has no end. */
export function progressVerdict(
  end: WorkItemEndedEvent | null,
  nowMs: number,
  replayTtlMs: number,
): CallbackVerdict | { kind: 'pending' } {
  if (!end) return { kind: 'pending' };
  if (isForgotten(end, nowMs, replayTtlMs)) return { kind: 'forgotten' };
  return closedVerdict(end.outcome);
}

function closedVerdict(outcome: WorkItemOutcome): CallbackVerdict {
  const code =
    outcome.state === 'cancelled' && outcome.reason === 'conversation_ended'
      ? 'conversation_ended'
      : 'work_item_closed';
  return { kind: 'closed', code, state: outcome.state };
}

/** Past `REPLAY_TTL_MS` after its end, a token answers 401 like any unknown token. */
function isForgotten(end: WorkItemEndedEvent, nowMs: number, replayTtlMs: number): boolean {
  return nowMs > Date.parse(end.at) + replayTtlMs;
}

function isCallbackEnd(outcome: WorkItemOutcome): boolean {
  return outcome.state === 'completed' || (outcome.state === 'failed' && outcome.by === 'callback');
}

function isSameCallback(end: WorkItemEndedEvent, bodyHash: string): boolean {
  return isCallbackEnd(end.outcome) && end.body_hash === bodyHash;
}
