import {
  IsBoolean,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { NestedDto } from '@backchannel/http';
import {
  DELIVERIES,
  EXTERNAL_ID_PATTERN,
  MAX_ACK_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  MIN_ACK_TIMEOUT_MS,
  MIN_TIMEOUT_MS,
  SIGNING_SECRET_PATTERN,
  type Delivery,
} from '@backchannel/contracts';

export type ToolMode = 'async' | 'sync';
export const TOOL_MODES: readonly ToolMode[] = ['async', 'sync'];

/**
 * `call_control_id`: 1–256 printable ASCII characters, no CR/LF (it becomes a header
 * value), not starting or ending with a space (HTTP would trim it).
 */
export const CALL_CONTROL_ID_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;
export const MAX_TOOL_URL_LENGTH = 2_048;

export class ToolDto {
  @IsString({ message: 'url must be a string' })
  @MinLength(1, { message: 'url must not be empty' })
  @MaxLength(MAX_TOOL_URL_LENGTH, { message: `url must be at most ${MAX_TOOL_URL_LENGTH} characters` })
  url!: string;

  @IsIn(TOOL_MODES, { message: 'mode must be "async" or "sync"' })
  mode!: ToolMode;

  @IsOptional()
  @IsInt({ message: 'timeout_ms must be an integer' })
  @Min(MIN_TIMEOUT_MS, { message: `timeout_ms must be at least ${MIN_TIMEOUT_MS}` })
  @Max(MAX_TIMEOUT_MS, { message: `timeout_ms must be at most ${MAX_TIMEOUT_MS}` })
  timeout_ms?: number;

  @IsOptional()
  @IsInt({ message: 'ack_timeout_ms must be an integer' })
  @Min(MIN_ACK_TIMEOUT_MS, { message: `ack_timeout_ms must be at least ${MIN_ACK_TIMEOUT_MS}` })
  @Max(MAX_ACK_TIMEOUT_MS, { message: `ack_timeout_ms must be at most ${MAX_ACK_TIMEOUT_MS}` })
  ack_timeout_ms?: number;

  // The message never quotes the value: it is a credential.
  @IsOptional()
  @IsString({ message: 'signing_secret must be a string' })
  @Matches(SIGNING_SECRET_PATTERN, { message: 'signing_secret must be "whsec_" followed by base64' })
  signing_secret?: string;
}

export class InvokeToolDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: 'conversation_id must be a valid conversation id' })
  conversation_id!: string;

  @IsString({ message: 'call_control_id must be a string' })
  @Matches(CALL_CONTROL_ID_PATTERN, {
    message: 'call_control_id must be 1–256 printable characters without line breaks or surrounding spaces',
  })
  call_control_id!: string;

  @IsObject({ message: 'tool must be an object' })
  @NestedDto(() => ToolDto)
  tool!: ToolDto;

  @IsObject({ message: 'arguments must be an object' })
  arguments!: Record<string, unknown>;

  @IsOptional()
  @IsString({ message: 'name must be a string' })
  @MaxLength(128, { message: 'name must be at most 128 characters' })
  name?: string;

  @IsOptional()
  @IsBoolean({ message: 'ordered must be a boolean' })
  ordered?: boolean;

  @IsOptional()
  @IsIn(DELIVERIES, { message: 'delivery must be "when_idle", "interrupt" or "silent"' })
  delivery?: Delivery;
}
