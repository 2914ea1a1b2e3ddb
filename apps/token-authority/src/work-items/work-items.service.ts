import { Injectable } from '@nestjs/common';
import { ulid } from 'ulid';
import {
  ApiError,
  DEFAULT_TIMEOUT_MS,
  KV_KEYS,
  WORK_ITEM_ID_PREFIX,
  hashSecret,
  mintCallbackToken,
  registrationMsgId,
  type Delivery,
  type WorkItemKind,
  type WorkItemRecord,
  type WorkItemRegisteredEvent,
  type WorkItemEndedEvent,
  type WorkItemState,
} from '@backchannel/contracts';
import { WorkItemRecords, WorkLedger, type Stored } from '@backchannel/messaging';
import { Clock, MeshConfig, crashPoint } from '@backchannel/config';
import { CasConflict, withCasRetries } from '../cas-retry.js';
import { CallbackUrls } from './callback-urls.js';
import { IdempotencyRecords } from './work-item.store.js';
import { WorkItemEnds } from './work-item-ends.js';
import { idempotencyScopeHash, sealToken, unsealToken } from './idempotency-seal.js';

export interface RegisterInput {
  conversation_id: string;
  kind: WorkItemKind;
  name?: string;
  turn_id?: string;
  timeout_ms?: number;
  ordered?: boolean;
  delivery?: Delivery;
  idempotency_key?: string;
}

export interface RegistrationReply {
  work_item_id: string;
  conversation_id: string;
  sequence: number;
  kind: WorkItemKind;
  expires_at: string;
  callback: { url: string; method: 'POST'; headers: { 'x-callback-token': string } };
}

export interface WorkItemView {
  work_item_id: string;
  conversation_id: string;
  sequence: number;
  kind: WorkItemKind;
  name?: string;
  turn_id?: string;
  ordered: boolean;
  delivery: Delivery;
  state: WorkItemState;
  registered_at: string;
  expires_at: string;
  ended_at?: string;
}

@Injectable()
export class WorkItemsService {
  constructor(
    private readonly ledger: WorkLedger,
    private readonly records: WorkItemRecords,
    private readonly idempotency: IdempotencyRecords,
    private readonly ends: WorkItemEnds,
    private readonly urls: CallbackUrls,
    private readonly clock: Clock,
    private readonly config: MeshConfig,
  ) {}

  /**
   * Registers a work item: one compare-and-set append to the conversation's log, so
   * `sequence` is the count of registrations, gap-free across replicas and crashes.
   */
  async register(input: RegisterInput): Promise<{ created: boolean; reply: RegistrationReply }> {
    if (input.idempotency_key) {
      await this.requireActive(input.conversation_id);
      return this.registerIdempotently(input, input.idempotency_key);
    }
    const token = mintCallbackToken();
    return { created: true, reply: await this.append(input, newWorkItemId(), token) };
  }

  async get(workItemId: string): Promise<WorkItemView> {
    const record = await this.records.get(workItemId);
    if (!record) throw new ApiError('not_found', 'no such work item');
    const end = await this.ledger.readEnd(record.conversation_id, workItemId);
    return this.view(record, end);
  }

  /** Cancels a pending item; the first end recorded wins (CONTRACT.md §2). */
  async cancel(workItemId: string): Promise<WorkItemView> {
    const record = await this.records.get(workItemId);
    if (!record) throw new ApiError('not_found', 'no such work item');
    const result = await this.ends.cancel(record);
    const view = this.view(record, result.end);
    if (view.state !== 'cancelled') {
      throw new ApiError('work_item_closed', `the work item has already ended: ${view.state}`, {
        meta: { state: view.state },
      });
    }
    return view;
  }

  private async registerIdempotently(
    input: RegisterInput,
    idempotencyKey: string,
  ): Promise<{ created: boolean; reply: RegistrationReply }> {
    const scope = KV_KEYS.registrationIdempotency(idempotencyScopeHash(input.conversation_id, idempotencyKey));
    const workItemId = newWorkItemId();
    const token = mintCallbackToken();
    const claimed = await this.idempotency.create(scope, {
      work_item_id: workItemId,
      sealed_token: sealToken(token, input.conversation_id, idempotencyKey),
      created_at: this.clock.nowIso(),
    });
    if (claimed !== false) return { created: true, reply: await this.append(input, workItemId, token) };
    const claim = await this.idempotency.get(scope);
    if (!claim)
      throw new ApiError('unavailable', 'idempotency record is being written; retry', {
        headers: { 'retry-after': '1' },
      });
    const existingToken = unsealToken(claim.value.sealed_token, input.conversation_id, idempotencyKey);
    const record = await this.records.get(claim.value.work_item_id);
    if (record) return { created: false, reply: this.reply(record, existingToken) };
    // The first attempt claimed the key but died before finishing: finish it for it.
    return {
      created: false,
      reply: await this.append(input, claim.value.work_item_id, existingToken, { recovering: true }),
    };
  }

  private async append(
    input: RegisterInput,
    workItemId: string,
    token: string,
    options: { recovering?: boolean } = {},
  ): Promise<RegistrationReply> {
    // Only a claim left behind by a crashed attempt may already be in the log; looking for
    // it reads the whole conversation log, so the ordinary path never does.
    const recovered = options.recovering ? await this.findRegistration(input.conversation_id, workItemId) : undefined;
    const registered = recovered ?? (await this.appendRegistration(input, workItemId));
    crashPoint('token_authority.after_registration_append', this.config.BACKCHANNEL_CRASH_POINT);
    const record: WorkItemRecord = {
      work_item_id: workItemId,
      conversation_id: input.conversation_id,
      tenant_id: registered.tenant_id,
      sequence: registered.sequence,
      kind: registered.kind,
      ...(registered.name !== undefined ? { name: registered.name } : {}),
      ...(registered.turn_id !== undefined ? { turn_id: registered.turn_id } : {}),
      ordered: registered.ordered,
      delivery: registered.delivery,
      timeout_ms: registered.timeout_ms,
      registered_at: registered.at,
      expires_at: registered.expires_at,
      token_hash: hashSecret(token),
    };
    await this.records.put(record);
    return this.reply(record, token);
  }

  private appendRegistration(input: RegisterInput, workItemId: string): Promise<WorkItemRegisteredEvent> {
    return withCasRetries(async () => {
      const last = await this.ledger.lastConversationEvent(input.conversation_id);
      if (!last) throw new ApiError('not_found', 'no such conversation');
      if (last.event.type === 'conversation.ended') {
        throw new ApiError('conversation_ended', 'the conversation has ended');
      }
      const event = this.registrationEvent(input, workItemId, last.event.tenant_id, lastSequenceOf(last) + 1);
      const appended = await this.ledger.appendConversationEvent(event, last.seq, registrationMsgId(workItemId));
      if (!appended.ok) throw new CasConflict();
      if (!appended.duplicate) return event;
      const original = await this.ledger.readAt<WorkItemRegisteredEvent>(appended.seq);
      if (!original) throw new CasConflict();
      return original.event;
    });
  }

  /** Only on the idempotent-recovery path: was this work item id already appended? */
  private async findRegistration(
    conversationId: string,
    workItemId: string,
  ): Promise<WorkItemRegisteredEvent | undefined> {
    const existing = await this.records.get(workItemId);
    if (existing) return undefined;
    const events = await this.ledger.conversationEvents(conversationId);
    const found = events.find(
      (stored) => stored.event.type === 'work_item.registered' && stored.event.work_item_id === workItemId,
    );
    return found?.event as WorkItemRegisteredEvent | undefined;
  }

  private registrationEvent(
    input: RegisterInput,
    workItemId: string,
    tenantId: string,
    sequence: number,
  ): WorkItemRegisteredEvent {
    const now = this.clock.now();
    const timeoutMs = input.timeout_ms ?? DEFAULT_TIMEOUT_MS;
    return {
      type: 'work_item.registered',
      conversation_id: input.conversation_id,
      tenant_id: tenantId,
      work_item_id: workItemId,
      sequence,
      kind: input.kind,
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.turn_id !== undefined ? { turn_id: input.turn_id } : {}),
      ordered: input.ordered ?? true,
      delivery: input.delivery ?? 'when_idle',
      timeout_ms: timeoutMs,
      expires_at: new Date(now + timeoutMs).toISOString(),
      at: new Date(now).toISOString(),
    };
  }

  private async requireActive(conversationId: string): Promise<void> {
    const last = await this.ledger.lastConversationEvent(conversationId);
    if (!last) throw new ApiError('not_found', 'no such conversation');
    if (last.event.type === 'conversation.ended')
      throw new ApiError('conversation_ended', 'the conversation has ended');
  }

  private reply(record: WorkItemRecord, token: string): RegistrationReply {
    return {
      work_item_id: record.work_item_id,
      conversation_id: record.conversation_id,
      sequence: record.sequence,
      kind: record.kind,
      expires_at: record.expires_at,
      callback: {
        url: this.urls.callbackUrl(record.work_item_id),
        method: 'POST',
        headers: { 'x-callback-token': token },
      },
    };
  }

  private view(record: WorkItemRecord, end: Stored<WorkItemEndedEvent> | null): WorkItemView {
    return {
      work_item_id: record.work_item_id,
      conversation_id: record.conversation_id,
      sequence: record.sequence,
      kind: record.kind,
      ...(record.name !== undefined ? { name: record.name } : {}),
      ...(record.turn_id !== undefined ? { turn_id: record.turn_id } : {}),
      ordered: record.ordered,
      delivery: record.delivery,
      state: end ? stateOf(end.event) : this.clock.now() >= Date.parse(record.expires_at) ? 'timed_out' : 'pending',
      registered_at: record.registered_at,
      expires_at: record.expires_at,
      ...(end ? { ended_at: end.event.at } : {}),
    };
  }
}

export function stateOf(end: WorkItemEndedEvent): WorkItemState {
  return end.outcome.state;
}

function lastSequenceOf(last: Stored<{ type: string; sequence?: number }>): number {
  return last.event.type === 'work_item.registered' ? (last.event.sequence ?? 0) : 0;
}

function newWorkItemId(): string {
  return `${WORK_ITEM_ID_PREFIX}${ulid()}`;
}
