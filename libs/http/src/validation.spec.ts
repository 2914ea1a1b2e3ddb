import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { IsIn, IsObject, IsOptional, IsString, MaxLength } from 'class-validator';
import { ApiError } from '@backchannel/contracts';
import { NestedDto, validateDto } from './validation.js';

class ItemDto {
  @IsString({ message: 'name must be a string' })
  name!: string;
}

class OrderDto {
  @IsIn(['a', 'b'], { message: 'kind must be a or b' })
  kind!: string;

  @IsOptional()
  @IsObject({ message: 'notes must be an object' })
  notes?: Record<string, unknown>;

  @IsObject({ each: true, message: 'each item must be an object' })
  @NestedDto(() => ItemDto, { each: true })
  items!: ItemDto[];

  @IsOptional()
  @IsObject({ message: 'main must be an object' })
  @NestedDto(() => ItemDto)
  main?: ItemDto;
}

class NamedDto {
  @MaxLength(3, { message: 'id must be at most 3 characters' })
  id!: string;
}

function refusal(body: unknown): { pointer: string | undefined; detail: string } {
  try {
    validateDto(OrderDto, body);
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    const apiError = error as ApiError;
    expect(apiError.code).toBe('invalid_request');
    return { pointer: apiError.toErrorObject({}).source?.pointer, detail: apiError.message };
  }
  throw new Error(`accepted: ${JSON.stringify(body)}`);
}

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).filter((name) => name !== '__proto__');

describe('validateDto', () => {
  it('returns an instance of the DTO with nested DTO instances', () => {
    const order = validateDto(OrderDto, { kind: 'a', items: [{ name: 'x' }], main: { name: 'y' } });
    expect(order).toBeInstanceOf(OrderDto);
    expect(order.items[0]).toBeInstanceOf(ItemDto);
    expect(order.main).toBeInstanceOf(ItemDto);
  });

  it('names the first offending field with a JSON pointer', () => {
    expect(refusal({ kind: 'c', items: [] })).toEqual({ pointer: '/kind', detail: 'kind must be a or b' });
    expect(refusal({ kind: 'a', items: [{ name: 1 }] }).pointer).toBe('/items/0/name');
    expect(refusal({ kind: 'a', items: ['x'] }).pointer).toBe('/items');
    expect(refusal({ kind: 'a', items: [], main: [] }).pointer).toBe('/main');
    expect(() => validateDto(NamedDto, { id: 'long' }, '/body')).toThrow('id must be at most 3 characters');
  });

  it('refuses a body that is not an object', () => {
    for (const body of [null, [], 'x', 1, true]) expect(refusal(body).detail).toBe('the body must be a JSON object');
  });

  it('refuses an unknown field before anything else, at any depth, escaping the pointer', () => {
    expect(refusal({ kind: 'c', items: [], extra: 1 })).toEqual({ pointer: '/extra', detail: 'extra is not allowed' });
    expect(refusal({ kind: 'a', items: [{ name: 'x', 'a/b~': 1 }] }).pointer).toBe('/items/0/a~1b~0');
    expect(refusal({ kind: 'a', items: [], main: { name: 'x', extra: 1 } }).pointer).toBe('/main/extra');
  });

  it('refuses an unknown field named like a member of Object.prototype, as any other', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PROTOTYPE_NAMES), fc.jsonValue(), fc.boolean(), (name, value, nested) => {
        const body = nested
          ? { kind: 'a', items: [{ name: 'x', [name]: value }] }
          : { kind: 'a', items: [], [name]: value };
        expect(refusal(body)).toEqual({
          pointer: nested ? `/items/0/${name}` : `/${name}`,
          detail: `${name} is not allowed`,
        });
      }),
    );
  });

  it('keeps free-form JSON exactly as parsed, whatever its keys are named', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.oneof(fc.constantFrom(...PROTOTYPE_NAMES), fc.string()), fc.jsonValue()),
        (notes) => {
          const parsed = JSON.parse(JSON.stringify(notes)) as Record<string, unknown>;
          const order = validateDto(OrderDto, { kind: 'b', items: [], notes: parsed });
          expect(JSON.stringify(order.notes)).toBe(JSON.stringify(notes));
        },
      ),
    );
  });

  it('runs no setter of the DTO while converting', () => {
    let called = false;
    class GuardedDto {
      @IsString()
      value!: string;
    }
    Object.defineProperty(GuardedDto.prototype, 'value', {
      set: () => {
        called = true;
      },
      configurable: true,
    });
    expect(validateDto(GuardedDto, { value: 'x' }).value).toBe('x');
    expect(called).toBe(false);
  });
});
