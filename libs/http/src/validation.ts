import 'reflect-metadata';
import { ValidateNested, getMetadataStorage, validateSync, type ValidationError } from 'class-validator';
import { ApiError } from '@backchannel/contracts';

type DtoClass<T extends object = object> = new () => T;

const NESTED_DTO = Symbol('backchannel:nested-dto');

/**
 * A field holding a DTO (or, with `{ each: true }`, an array of them): `validateDto` turns
 * its plain objects into instances of `type()`, and class-validator validates them nested.
 */
export function NestedDto(type: () => DtoClass, options: { each?: boolean } = {}): PropertyDecorator {
  return (target, property) => {
    ValidateNested(options)(target, property);
    Reflect.defineMetadata(NESTED_DTO, type, target, property);
  };
}

/**
 * Turns an untrusted JSON body into a validated DTO, or throws 400 `invalid_request`
 * whose `source.pointer` names the first offending field (JSON Pointer, RFC 6901).
 * One path for HTTP and NATS, so both answer alike.
 *
 * The plain → instance step is ours, not class-transformer's `plainToInstance`: that one
 * drops keys named like members of Object.prototype (`toString`, `hasOwnProperty`), so a
 * stray `toString` passed the whitelist and free-form JSON (`metadata`, `arguments`) lost
 * such keys silently, and it throws a TypeError on an own `constructor` key (a 500). Here
 * a free-form value is kept exactly as parsed, and every field a DTO does not declare is
 * refused, whatever its name.
 */
export function validateDto<T extends object>(dto: DtoClass<T>, body: unknown, basePointer = ''): T {
  if (!isPlainObject(body)) {
    throw new ApiError('invalid_request', 'the body must be a JSON object', { pointer: basePointer });
  }
  const instance = toInstance(dto, body, basePointer);
  const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  const first = firstLeaf(errors);
  if (first) {
    throw new ApiError('invalid_request', first.message, { pointer: `${basePointer}${first.pointer}` });
  }
  return instance;
}

/** Unknown fields of this level first, then nested DTOs: the order class-validator reports in. */
function toInstance<T extends object>(dto: DtoClass<T>, plain: Record<string, unknown>, pointer: string): T {
  const declared = declaredFields(dto);
  const stray = Object.keys(plain).find((key) => !declared.has(key));
  if (stray !== undefined) {
    throw new ApiError('invalid_request', `${stray} is not allowed`, { pointer: `${pointer}/${escapePointer(stray)}` });
  }
  const prototype = dto.prototype as object;
  const instance = Object.create(prototype) as T;
  for (const [key, value] of Object.entries(plain)) {
    const nested = Reflect.getMetadata(NESTED_DTO, prototype, key) as (() => DtoClass) | undefined;
    const here = `${pointer}/${escapePointer(key)}`;
    const converted = nested ? toNested(nested(), value, here) : value;
    // defineProperty, not assignment: no setter or accessor of the prototype is ever run.
    Object.defineProperty(instance, key, { value: converted, enumerable: true, writable: true, configurable: true });
  }
  return instance;
}

function toNested(dto: DtoClass, value: unknown, pointer: string): unknown {
  if (Array.isArray(value)) {
    return (value as unknown[]).map((item, index) =>
      isPlainObject(item) ? toInstance(dto, item, `${pointer}/${index}`) : item,
    );
  }
  // Anything else stays as it is, for the field's own checks (IsObject) to refuse.
  return isPlainObject(value) ? toInstance(dto, value, pointer) : value;
}

const declaredByClass = new WeakMap<DtoClass, ReadonlySet<string>>();

function declaredFields(dto: DtoClass): ReadonlySet<string> {
  let fields = declaredByClass.get(dto);
  if (!fields) {
    const metadata = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false);
    fields = new Set(metadata.map((entry) => entry.propertyName));
    declaredByClass.set(dto, fields);
  }
  return fields;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
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
