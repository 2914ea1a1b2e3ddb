/**
 * Deterministic `Nats-Msg-Id`s. A retried publish carries the same id, so the broker
 * drops the copy inside its duplicate window; consumers stay idempotent beyond it.
 */

/** A registration: one per work item id. */
export function registrationMsgId(workItemId: string): string {
  return `reg.${workItemId}`;
}

/** A conversation opening. */
export function conversationOpenedMsgId(conversationId: string): string {
  return `open.${conversationId}`;
}

/** A conversation end. */
export function conversationEndedMsgId(conversationId: string): string {
  return `endconv.${conversationId}`;
}

/**
 * A work item end. It names the outcome and the body hash: a different end of the same
 * item must not be mistaken for a duplicate of this one.
 */
export function workItemEndMsgId(workItemId: string, outcome: string, bodyHash = ''): string {
  return `end.${workItemId}.${outcome}.${bodyHash.slice(0, 32)}`;
}

/** The n-th accepted progress update of a work item. */
export function progressMsgId(workItemId: string, index: number): string {
  return `progress.${workItemId}.${index}`;
}

/** The n-th release of a conversation. */
export function releaseMsgId(conversationId: string, releaseIndex: number): string {
  return `rel.${conversationId}.${releaseIndex}`;
}

/** The transcript append of the n-th release of a conversation. */
export function transcriptReleaseMsgId(conversationId: string, releaseIndex: number): string {
  return `tr.${conversationId}.r${releaseIndex}`;
}
