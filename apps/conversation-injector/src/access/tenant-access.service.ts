import { Injectable } from '@nestjs/common';
import {
  ApiError,
  hashSecret,
  isApiKey,
  isExternalId,
  secretMatchesHash,
  type ApiKeyRecord,
} from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { WorkLedger } from '@backchannel/messaging';
import { SourcedApiError } from '../errors.js';
import { InjectorSettings } from '../injector.options.js';
import { ApiKeyStore } from './api-key.store.js';

/** Who is calling: a tenant, through one of its keys. */
export interface Caller {
  tenantId: string;
  keyId: string;
}

/** A conversation the caller may see. */
export interface ConversationAccess {
  conversationId: string;
  tenantId: string;
  ended: boolean;
}

interface CachedRecord {
  record: ApiKeyRecord | null;
  expiresAt: number;
}

/** Bounded, so a flood of distinct keys cannot grow memory. */
const MAX_CACHED_KEYS = 10_000;

/**
 * The tenant API's access rules (CONTRACT.md §4): a valid `bck_` key or 401; another
 * tenant's conversation answers exactly like a missing one (404); an ended one refuses
 * writes (410). Malformed keys and ids never reach a store (CONTRACT.md §1). Key lookups
 * are trusted for at most `apiKeyCacheMs` (≤ 500 ms), so a revoked key is refused within 1 s.
 */
@Injectable()
export class TenantAccess {
  private readonly byHash = new Map<string, CachedRecord>();
  private readonly byId = new Map<string, CachedRecord>();

  constructor(
    private readonly keys: ApiKeyStore,
    private readonly ledger: WorkLedger,
    private readonly settings: InjectorSettings,
    private readonly clock: Clock,
  ) {}

  /** Step 1 of every tenant request: the bearer key, verified in constant time against its stored hash. */
  async authenticate(authorization: unknown): Promise<Caller> {
    const key = bearerKey(authorization);
    if (!key) throw unauthorized();
    const keyHash = hashSecret(key);
    const record = await this.cached(this.byHash, keyHash, () => this.keys.findByHash(keyHash));
    if (!record || record.state !== 'active' || !secretMatchesHash(key, record.key_hash)) throw unauthorized();
    return { tenantId: record.tenant_id, keyId: record.key_id };
  }

  /** Whether a caller's key is still active (open streams ask again, so revocation ends them). */
  async stillActive(caller: Caller): Promise<boolean> {
    const record = await this.cached(this.byId, caller.keyId, () => this.keys.findById(caller.keyId));
    return record?.state === 'active';
  }

  /** Step 2: the conversation, if it exists and is the caller's; else 404 whatever the reason. */
  async conversation(caller: Caller, conversationId: string): Promise<ConversationAccess> {
    requireConversationId(conversationId);
    const last = await this.ledger.lastConversationEvent(conversationId);
    if (!last || last.event.tenant_id !== caller.tenantId) throw notFound();
    return { conversationId, tenantId: last.event.tenant_id, ended: last.event.type === 'conversation.ended' };
  }

  /** The platform's read (bc.v1.conversations.messages.list): internal, so no tenant check; unknown is 404. */
  async known(conversationId: string): Promise<void> {
    requireConversationId(conversationId);
    if (!(await this.ledger.lastConversationEvent(conversationId))) throw notFound();
  }

  /** A write needs the conversation open (CONTRACT.md §4: 410 once ended). */
  requireOpen(access: ConversationAccess): void {
    if (access.ended) throw new ApiError('conversation_ended', 'the conversation has ended');
  }

  private async cached(
    cache: Map<string, CachedRecord>,
    key: string,
    load: () => Promise<ApiKeyRecord | null>,
  ): Promise<ApiKeyRecord | null> {
    const now = this.clock.now();
    const hit = cache.get(key);
    if (hit && hit.expiresAt > now) return hit.record;
    const record = await load();
    if (this.settings.apiKeyCacheMs > 0) {
      cache.delete(key);
      if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value as string);
      cache.set(key, { record, expiresAt: now + this.settings.apiKeyCacheMs });
    }
    return record;
  }
}

/** A path id of the wrong shape: 400 before it reaches a subject, a store or a log line (CONTRACT.md §1). */
export function requireConversationId(conversationId: string): void {
  if (!isExternalId(conversationId)) {
    throw new SourcedApiError(
      'invalid_request',
      'the conversation id must be 1–128 characters of [A-Za-z0-9_:-], starting with a letter or digit',
      { parameter: 'conversation_id' },
    );
  }
}

function bearerKey(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) return undefined;
  const key = authorization.slice('Bearer '.length).trim();
  return isApiKey(key) ? key : undefined;
}

function unauthorized(): ApiError {
  return new ApiError('unauthorized', 'a valid tenant API key is required');
}

/** One answer for missing and foreign conversations alike: it never says which. */
function notFound(): ApiError {
  return new ApiError('not_found', 'no such conversation');
}
