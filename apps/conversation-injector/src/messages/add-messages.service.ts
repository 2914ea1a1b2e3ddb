import { Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import {
  ADD_MESSAGES_IDEMPOTENCY_MS,
  ApiError,
  KV_KEYS,
  RETRY_AFTER_UNAVAILABLE_S,
  transcriptApiMsgId,
  type InjectedMessage,
} from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import type { ConversationAccess } from '../access/tenant-access.service.js';
import { TenantAccess } from '../access/tenant-access.service.js';
import { InjectorMetrics } from '../injector.metrics.js';
import { LivePublisher } from '../live/live-messages.js';
import { recordFromApi, toInjectedMessage } from '../transcript/transcript-record.js';
import { TranscriptReader } from '../transcript/transcript-reader.service.js';
import { TranscriptWriter } from '../transcript/transcript-writer.service.js';
import type { TranscriptEntry } from '../transcript/transcript.store.js';
import { TranscriptStore } from '../transcript/transcript.store.js';
import { AddMessagesClaims, type AddMessagesClaim } from './add-messages-claims.store.js';

export interface NewMessage {
  role: 'system' | 'user';
  content: string;
}

export interface AddMessagesResult {
  /** 202 when injected now, 200 when an `Idempotency-Key` retry returns the earlier messages. */
  status: 200 | 202;
  messages: InjectedMessage[];
}

/** A claim whose owner has not finished in this long is presumed dead and is completed by a retry. */
const CLAIM_STALE_MS = 10_000;
/** How often a concurrent duplicate looks whether the first request has finished. */
const CLAIM_POLL_MS = 20;

/**
 * Add Messages (CONTRACT.md §4): each message is one transcript append, in the order
 * given. With an `Idempotency-Key`, a claim is created (create-if-absent) before the first
 * append and filled with the positions after the last, so a retry within 10 minutes gets
 * the same messages (200) and a concurrent duplicate waits for the first; a claim left
 * by a crashed request is completed by the next retry without appending anything twice.
 */
@Injectable()
export class AddMessagesService {
  constructor(
    private readonly access: TenantAccess,
    private readonly writer: TranscriptWriter,
    private readonly reader: TranscriptReader,
    private readonly store: TranscriptStore,
    private readonly claims: AddMessagesClaims,
    private readonly live: LivePublisher,
    private readonly metrics: InjectorMetrics,
    private readonly clock: Clock,
  ) {}

  async add(
    conversation: ConversationAccess,
    messages: NewMessage[],
    traceId: string,
    idempotencyKey?: string,
  ): Promise<AddMessagesResult> {
    if (idempotencyKey === undefined) {
      this.access.requireOpen(conversation);
      const appended = await this.appendFrom(conversation.conversationId, messages, [], newNonce(), traceId);
      return { status: 202, messages: appended.map((entry) => toInjectedMessage(entry.record)) };
    }
    return this.addIdempotently(conversation, messages, traceId, idempotencyKey);
  }

  private async addIdempotently(
    conversation: ConversationAccess,
    messages: NewMessage[],
    traceId: string,
    idempotencyKey: string,
  ): Promise<AddMessagesResult> {
    const scope = idempotencyScope(conversation, idempotencyKey);
    const key = KV_KEYS.addMessagesIdempotency(scope);
    const deadline = this.clock.now() + CLAIM_STALE_MS + 5_000;
    while (this.clock.now() < deadline) {
      const now = this.clock.now();
      const existing = await this.claims.get(key);
      const claim = existing?.value;
      if (claim && now - claim.claimed_at < ADD_MESSAGES_IDEMPOTENCY_MS) {
        if (claim.state === 'done') return { status: 200, messages: await this.replay(claim) };
        if (claim.state === 'pending' && now - claim.owner_since < CLAIM_STALE_MS) {
          await delay(CLAIM_POLL_MS);
          continue;
        }
        // The owner died or gave up: finish its work under the same nonce.
        this.access.requireOpen(conversation);
        const takeover: AddMessagesClaim = { ...claim, state: 'pending', owner_since: now };
        const revision = await this.claims.update(key, takeover, existing.revision);
        if (revision === false) continue;
        return this.complete(conversation, key, takeover, revision, messages, traceId, scope, true);
      }
      // No claim, or one past the 10-minute window: this request injects.
      this.access.requireOpen(conversation);
      const fresh: AddMessagesClaim = {
        state: 'pending',
        nonce: newNonce(),
        from_position: await this.reader.lastPosition(conversation.conversationId),
        claimed_at: now,
        owner_since: now,
      };
      const revision = existing
        ? await this.claims.update(key, fresh, existing.revision)
        : await this.claims.create(key, fresh);
      if (revision === false) continue;
      return this.complete(conversation, key, fresh, revision, messages, traceId, scope, false);
    }
    throw new ApiError('unavailable', 'an earlier request with this Idempotency-Key is still in progress; retry', {
      headers: { 'retry-after': String(RETRY_AFTER_UNAVAILABLE_S) },
    });
  }

  /** Appends what the claim still lacks, then records the positions in it. */
  private async complete(
    conversation: ConversationAccess,
    key: string,
    claim: AddMessagesClaim,
    revision: number,
    messages: NewMessage[],
    traceId: string,
    scope: string,
    recovering: boolean,
  ): Promise<AddMessagesResult> {
    const conversationId = conversation.conversationId;
    const already = recovering ? await this.appendedUnder(conversationId, claim, scope) : [];
    let entries: TranscriptEntry[];
    try {
      entries = await this.appendFrom(conversationId, messages, already, claim.nonce, traceId, scope);
    } catch (error) {
      await this.claims.update(key, { ...claim, state: 'abandoned' }, revision).catch(() => undefined);
      throw error;
    }
    const done: AddMessagesClaim = {
      ...claim,
      state: 'done',
      entries: entries.map((entry) => ({ position: entry.record.position, seq: entry.seq })),
    };
    await this.claims.update(key, done, revision);
    const status = recovering && already.length >= messages.length ? 200 : 202;
    return { status, messages: entries.map((entry) => toInjectedMessage(entry.record)) };
  }

  /**
   * Appends `messages` after those already appended, in order. Each append has a message
   * id from the nonce and its index, so one repeated inside the duplicate window (a
   * retried publish, a racing recovery) returns the stored original instead of a copy.
   */
  private async appendFrom(
    conversationId: string,
    messages: NewMessage[],
    already: TranscriptEntry[],
    nonce: string,
    traceId: string,
    scope?: string,
  ): Promise<TranscriptEntry[]> {
    const entries = [...already];
    for (let index = entries.length; index < messages.length; index++) {
      const message = messages[index];
      const outcome = await this.writer.append<never>(
        conversationId,
        transcriptApiMsgId(conversationId, nonce, index),
        (last) => ({
          record: recordFromApi({
            conversationId,
            role: message.role,
            content: message.content,
            traceId,
            position: last.position + 1,
            appliedReleaseIndex: last.appliedReleaseIndex,
            injectedAt: this.clock.nowIso(),
            ...(scope !== undefined ? { idempotencyKeyHash: scope } : {}),
          }),
        }),
      );
      if (outcome.type !== 'appended') throw new Error('an Add Messages append cannot be declined');
      if (!outcome.duplicate) this.metrics.injectedMessage('api');
      this.live.publish(toInjectedMessage(outcome.entry.record));
      entries.push(outcome.entry);
    }
    return entries;
  }

  /** The entries a dead owner appended under this claim: after its start, carrying its scope hash. */
  private async appendedUnder(
    conversationId: string,
    claim: AddMessagesClaim,
    scope: string,
  ): Promise<TranscriptEntry[]> {
    const after = await this.reader.entriesAfter(conversationId, claim.from_position);
    return after.filter((entry) => entry.record.idempotency_key_hash === scope);
  }

  private async replay(claim: AddMessagesClaim): Promise<InjectedMessage[]> {
    const stored = await Promise.all((claim.entries ?? []).map((entry) => this.store.at(entry.seq)));
    return stored
      .filter((entry): entry is TranscriptEntry => entry !== null)
      .map((entry) => toInjectedMessage(entry.record));
  }
}

/** The claim's key: a hash of tenant, conversation and key, so no key is ever stored or shown. */
function idempotencyScope(conversation: ConversationAccess, idempotencyKey: string): string {
  return createHash('sha256')
    .update(`bc-add-messages\0${conversation.tenantId}\0${conversation.conversationId}\0${idempotencyKey}`)
    .digest('hex');
}

function newNonce(): string {
  return randomUUID().replaceAll('-', '');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
