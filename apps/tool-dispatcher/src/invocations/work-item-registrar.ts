import type { Delivery } from '@backchannel/contracts';
import type { CallbackTarget } from '../outbound/tool-request.js';

/** The registration the dispatcher asks of the token authority (CONTRACT.md §2). */
export interface RegistrationRequest {
  conversation_id: string;
  kind: 'tool';
  name?: string;
  timeout_ms: number;
  ordered: boolean;
  delivery: Delivery;
  idempotency_key: string;
}

/** The token authority's answer; `callback.headers` holds the token: memory only. */
export interface Registration {
  work_item_id: string;
  sequence: number;
  expires_at: string;
  callback: CallbackTarget;
}

/** Port to the token authority; errors it answers come back as ApiError with its code. */
export abstract class WorkItemRegistrar {
  abstract register(request: RegistrationRequest, traceId: string): Promise<Registration>;
}
