/**
 * `Nats-Msg-Id`s of transcript appends made through the tenant API (CONTRACT.md §4, Add
 * Messages). Releases use `transcriptReleaseMsgId` (msg-ids.ts).
 */

/**
 * The append of the `index`-th message (0-based) of one Add Messages attempt. `attemptId`
 * is random per request, or the claim's nonce when an `Idempotency-Key` is given, so a
 * retried append of the same message inside the duplicate window is dropped by the broker.
 */
export function transcriptApiMsgId(conversationId: string, attemptId: string, index: number): string {
  return `tr.${conversationId}.a${attemptId}.${index}`;
}
