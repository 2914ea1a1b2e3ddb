import { ApiError, DEFAULT_ACK_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, type Delivery } from '@backchannel/contracts';
import { validateDto } from '@backchannel/http';
import { isUsableSigningSecret } from '../outbound/tool-request.js';
import { InvokeToolDto, type ToolMode } from './dto/invoke-tool.dto.js';

/** A validated invocation with every default applied. */
export interface Invocation {
  conversationId: string;
  callControlId: string;
  tool: {
    url: string;
    mode: ToolMode;
    timeoutMs: number;
    ackTimeoutMs: number;
    signingSecret?: string;
  };
  arguments: Record<string, unknown>;
  name?: string;
  ordered: boolean;
  delivery: Delivery;
}

/** One path for HTTP and NATS: the DTO, then the rules that span fields. */
export function parseInvocation(body: unknown): Invocation {
  return toInvocation(validateDto(InvokeToolDto, body));
}

/**
 * Applies the defaults of CONTRACT.md §2/§6. `ack_timeout_ms` must not exceed
 * `timeout_ms`; when it is not given, its default (3 s) is lowered to `timeout_ms`.
 */
export function toInvocation(dto: InvokeToolDto): Invocation {
  const timeoutMs = dto.tool.timeout_ms ?? DEFAULT_TIMEOUT_MS;
  const ackTimeoutMs = dto.tool.ack_timeout_ms ?? Math.min(DEFAULT_ACK_TIMEOUT_MS, timeoutMs);
  if (ackTimeoutMs > timeoutMs) {
    throw new ApiError('invalid_request', 'ack_timeout_ms must be at most timeout_ms', {
      pointer: '/tool/ack_timeout_ms',
    });
  }
  const secret = dto.tool.signing_secret;
  if (secret !== undefined && !isUsableSigningSecret(secret)) {
    throw new ApiError('invalid_request', 'signing_secret is not a valid Standard Webhooks secret', {
      pointer: '/tool/signing_secret',
    });
  }
  return {
    conversationId: dto.conversation_id,
    callControlId: dto.call_control_id,
    tool: {
      url: dto.tool.url,
      mode: dto.tool.mode,
      timeoutMs,
      ackTimeoutMs,
      ...(secret !== undefined ? { signingSecret: secret } : {}),
    },
    arguments: dto.arguments,
    ...(dto.name !== undefined ? { name: dto.name } : {}),
    ordered: dto.ordered ?? true,
    delivery: dto.delivery ?? 'when_idle',
  };
}
