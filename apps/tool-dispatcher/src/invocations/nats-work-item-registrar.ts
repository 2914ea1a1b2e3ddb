import type { NatsConnection } from '@nats-io/nats-core';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { API_SUBJECTS, ApiError, isErrorCode, type ErrorEnvelope, type ErrorObject } from '@backchannel/contracts';
import { BrokerUnavailableError, decodeJson, encodeJson } from '@backchannel/messaging';
import { childTraceparent } from '@backchannel/observability';
import { REGISTRATION_RETRY, withRetries } from '../outbound/retry-policy.js';
import { WorkItemRegistrar, type Registration, type RegistrationRequest } from './work-item-registrar.js';

const REQUEST_TIMEOUT_MS = 5_000;

/** The token authority's answer pointers, as the invocation names the same fields. */
const POINTERS: Record<string, string> = { '/timeout_ms': '/tool/timeout_ms' };

/** `bc.v1.work-items.register` over NATS request–reply, retried under its idempotency key. */
export class NatsWorkItemRegistrar extends WorkItemRegistrar {
  constructor(private readonly nc: NatsConnection) {
    super();
  }

  register(request: RegistrationRequest, traceId: string): Promise<Registration> {
    return withRetries(REGISTRATION_RETRY, () => this.requestOnce(request, traceId), isTransient);
  }

  private async requestOnce(request: RegistrationRequest, traceId: string): Promise<Registration> {
    const headers = natsHeaders();
    headers.set('traceparent', childTraceparent(traceId));
    let data: Uint8Array;
    try {
      const reply = await this.nc.request(API_SUBJECTS.workItemsRegister, encodeJson(request), {
        timeout: REQUEST_TIMEOUT_MS,
        headers,
      });
      data = reply.data;
    } catch (error) {
      throw new BrokerUnavailableError(error);
    }
    const reply = decodeJson<Registration | ErrorEnvelope>(data);
    if ('errors' in reply && Array.isArray(reply.errors)) throw apiErrorOf(reply.errors[0]);
    return reply as Registration;
  }
}

function isTransient(error: unknown): boolean {
  return error instanceof BrokerUnavailableError || (error instanceof ApiError && error.code === 'unavailable');
}

/** The token authority's error, passed through with its code (404, 410…); its ids stay behind. */
export function apiErrorOf(error: ErrorObject | undefined): ApiError {
  if (!error || !isErrorCode(error.code))
    return new ApiError('internal_error', 'the token authority answered an unknown error');
  const { request_id: _requestId, trace_id: _traceId, ...meta } = error.meta ?? {};
  const pointer = error.source?.pointer;
  return new ApiError(error.code, error.detail ?? error.title, {
    ...(pointer !== undefined ? { pointer: POINTERS[pointer] ?? pointer } : {}),
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
    ...(error.code === 'unavailable' ? { headers: { 'retry-after': '1' } } : {}),
  });
}
