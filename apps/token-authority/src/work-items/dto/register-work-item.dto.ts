import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import {
  DELIVERIES,
  EXTERNAL_ID_PATTERN,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_TIMEOUT_MS,
  MIN_TIMEOUT_MS,
  WORK_ITEM_KINDS,
  type Delivery,
  type WorkItemKind,
} from '@backchannel/contracts';

export class RegisterWorkItemDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: 'conversation_id must be a valid conversation id' })
  conversation_id!: string;

  @IsIn(WORK_ITEM_KINDS, { message: 'kind must be "tool" or "llm"' })
  kind!: WorkItemKind;

  @IsOptional()
  @IsString({ message: 'name must be a string' })
  @MaxLength(128, { message: 'name must be at most 128 characters' })
  name?: string;

  @IsOptional()
  @IsString({ message: 'turn_id must be a string' })
  @MaxLength(128, { message: 'turn_id must be at most 128 characters' })
  turn_id?: string;

  @IsOptional()
  @IsInt({ message: 'timeout_ms must be an integer' })
  @Min(MIN_TIMEOUT_MS, { message: `timeout_ms must be at least ${MIN_TIMEOUT_MS}` })
  @Max(MAX_TIMEOUT_MS, { message: `timeout_ms must be at most ${MAX_TIMEOUT_MS}` })
  timeout_ms?: number;

  @IsOptional()
  @IsBoolean({ message: 'ordered must be a boolean' })
  ordered?: boolean;

  @IsOptional()
  @IsIn(DELIVERIES, { message: 'delivery must be "when_idle", "interrupt" or "silent"' })
  delivery?: Delivery;

  @IsOptional()
  @IsString({ message: 'idempotency_key must be a string' })
  @MinLength(1, { message: 'idempotency_key must not be empty' })
  @MaxLength(MAX_IDEMPOTENCY_KEY_LENGTH, {
    message: `idempotency_key must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`,
  })
  idempotency_key?: string;
}
