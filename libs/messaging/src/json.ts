import { parse as parseSecurely } from 'secure-json-parse';
import { ApiError } from '@backchannel/contracts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** JSON the mesh wrote itself (stream and bucket entries). */
export function decodeJson<T>(data: Uint8Array): T {
  return JSON.parse(decoder.decode(data)) as T;
}

/**
 * The body of a `bc.v1.*` request: a client's JSON, parsed as the HTTP edge parses a body
 * (Fastify uses the same library), so both transports refuse the same input. A `__proto__`
 * key or a `constructor.prototype` anywhere is refused: stored, it would become a real
 * prototype the first time some code copied the object with `Object.assign`. No body is `{}`.
 */
export function parseRequestJson(data: Uint8Array): unknown {
  if (data.length === 0) return {};
  try {
    return parseSecurely(decoder.decode(data), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    throw new ApiError('invalid_request', UNPARSABLE_REQUEST, { pointer: '' });
  }
}

const UNPARSABLE_REQUEST = 'the request is not valid JSON, or holds a __proto__ or constructor.prototype key';
