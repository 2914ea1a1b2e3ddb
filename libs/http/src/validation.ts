import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { ApiError } from '@backchannel/contracts';

/**
 * Turns an untrusted JSON body into a validated DTO, or throws 400 `invalid_request`
 * whose `source.pointer` names the first offending field (JSON Pointer, RFC 6901).
 * One path for HTTP and NATS, so both answer alike.
 */
export function validateDto<T extends object>(dto: ClassConstructor<T>, body: unknown, basePointer = ''): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body must be a JSON object', { pointer: basePointer });
  }
  const instance = plainToInstance(dto, body, { enableImplicitConversion: false });
  const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  const first = firstLeaf(errors);
  if (first) {
    throw new ApiError('invalid_request', first.message, { pointer: `${basePointer}${first.pointer}` });
  }
  return instance;
}

function firstLeaf(errors: ValidationError[], prefix = ''): { pointer: string; message: string } | undefined {
  for (const error of errors) {
    const pointer = `${prefix}/${escapePointer(error.property)}`;
    if (error.constraints && Object.keys(error.constraints).length > 0) {
      const message = Object.values(error.constraints)[0] ?? 'invalid value';
      return { pointer, message: message.replace(/^property (\S+) should not exist$/, '$1 is not allowed') };
    }
    const nested = firstLeaf(error.children ?? [], pointer);
    if (nested) return nested;
  }
  return undefined;
}

function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}
