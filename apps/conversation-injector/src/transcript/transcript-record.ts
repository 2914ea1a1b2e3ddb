import type { InjectedMessage, MessageBody, ReleaseMessage, TranscriptRecord } from '@backchannel/contracts';

/** What to do with a release, given the highest release index the transcript has applied. */
export type ReleaseDecision = 'apply' | 'already_applied' | 'gap';

/**
 * Exactly-once rule for releases (docs/injector.md). Releases of a conversation are
 * numbered 1, 2, 3… and every transcript entry carries the highest one applied so far, so
 * the last entry alone tells a redelivery (≤ applied) from the next one (applied + 1). A
 * larger index means an earlier release has not been applied: never skip over it.
 */
export function decideRelease(releaseIndex: number, appliedReleaseIndex: number): ReleaseDecision {
  if (releaseIndex <= appliedReleaseIndex) return 'already_applied';
  if (releaseIndex === appliedReleaseIndex + 1) return 'apply';
  return 'gap';
}

/** The transcript entry a release becomes at `position`. */
export function recordFromRelease(release: ReleaseMessage, position: number, injectedAt: string): TranscriptRecord {
  return {
    position,
    conversation_id: release.conversation_id,
    ...bodyOf(release),
    injected_at: injectedAt,
    applied_release_index: release.release_index,
  };
}

/** A message added through the tenant API (CONTRACT.md §4): source `api`, delivery `when_idle`. */
export function recordFromApi(input: {
  conversationId: string;
  role: 'system' | 'user';
  content: string;
  traceId: string;
  position: number;
  appliedReleaseIndex: number;
  injectedAt: string;
  idempotencyKeyHash?: string;
}): TranscriptRecord {
  return {
    position: input.position,
    conversation_id: input.conversationId,
    role: input.role,
    source: { type: 'api' },
    content: input.content,
    delivery: 'when_idle',
    trace_id: input.traceId,
    injected_at: input.injectedAt,
    applied_release_index: input.appliedReleaseIndex,
    ...(input.idempotencyKeyHash !== undefined ? { idempotency_key_hash: input.idempotencyKeyHash } : {}),
  };
}

/** The injected message as the contract shows it: the internal fields removed, a stable field order. */
export function toInjectedMessage(record: TranscriptRecord): InjectedMessage {
  return {
    position: record.position,
    conversation_id: record.conversation_id,
    ...bodyOf(record),
    injected_at: record.injected_at,
  };
}

function bodyOf(source: MessageBody): MessageBody {
  return {
    role: source.role,
    source: sourceOf(source.source),
    ...(source.result !== undefined ? { result: source.result } : {}),
    ...(source.content !== undefined ? { content: source.content } : {}),
    ...(source.errors !== undefined ? { errors: source.errors } : {}),
    ...(source.progress !== undefined ? { progress: source.progress } : {}),
    delivery: source.delivery,
    trace_id: source.trace_id,
  };
}

function sourceOf(source: MessageBody['source']): MessageBody['source'] {
  return {
    type: source.type,
    ...(source.work_item_id !== undefined ? { work_item_id: source.work_item_id } : {}),
    ...(source.sequence !== undefined ? { sequence: source.sequence } : {}),
  };
}

/**
 * The page budget (CONTRACT.md §4: a page stops before it would pass 512 KiB of JSON).
 * Returns the page's size with the message added, or null when it no longer fits. The
 * first message always fits: a page that could hold none would never let a reader move on.
 */
export function addToPage(pageBytes: number, count: number, messageBytes: number, maxBytes: number): number | null {
  const next = pageBytes + messageBytes + (count > 0 ? 1 : 0);
  return count === 0 || next <= maxBytes ? next : null;
}

/** An empty page's JSON: `{"messages":[],"next_after":}` plus room for the longest position. */
export const EMPTY_PAGE_BYTES = '{"messages":[],"next_after":}'.length + 16;
