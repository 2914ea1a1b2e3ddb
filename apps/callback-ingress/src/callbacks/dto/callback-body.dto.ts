import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { NestedDto } from '@backchannel/http';
import {
  MAX_MESSAGE_CONTENT_LENGTH,
  MAX_PROGRESS_ID_LENGTH,
  MAX_PROGRESS_MESSAGE_LENGTH,
} from '@backchannel/contracts';

/** `{"message": {"content": "…"}}` of an LLM callback (CONTRACT.md §3). */
export class LlmMessageDto {
  @IsString({ message: 'content must be a string' })
  @MinLength(1, { message: 'content must not be empty' })
  @MaxLength(MAX_MESSAGE_CONTENT_LENGTH, {
    message: `content must be at most ${MAX_MESSAGE_CONTENT_LENGTH} characters`,
  })
  content!: string;
}

export class ErrorMetaDto {
  @IsOptional()
  @IsBoolean({ message: 'retryable must be a boolean' })
  retryable?: boolean;
}

/** One error object a provider posts. `meta.retryable` travels to the injected message. */
export class CallbackErrorDto {
  @IsString({ message: 'code must be a string' })
  @MinLength(1, { message: 'code must not be empty' })
  @MaxLength(64, { message: 'code must be at most 64 characters' })
  code!: string;

  @IsString({ message: 'title must be a string' })
  @MaxLength(256, { message: 'title must be at most 256 characters' })
  title!: string;

  @IsOptional()
  @IsString({ message: 'detail must be a string' })
  @MaxLength(4_096, { message: 'detail must be at most 4096 characters' })
  detail?: string;

  @IsOptional()
  @IsObject({ message: 'meta must be an object' })
  @NestedDto(() => ErrorMetaDto)
  meta?: ErrorMetaDto;
}

export class ErrorsBodyDto {
  @IsArray({ message: 'errors must be an array' })
  @ArrayMinSize(1, { message: 'errors must hold at least one error' })
  @ArrayMaxSize(20, { message: 'errors must hold at most 20 errors' })
  // Without it, `[[{…}]]` passes: ValidateNested validates the inner array's objects.
  @IsObject({ each: true, message: 'each error must be an object' })
  @NestedDto(() => CallbackErrorDto, { each: true })
  errors!: CallbackErrorDto[];
}

export class LlmBodyDto {
  @IsObject({ message: 'message must be an object' })
  @NestedDto(() => LlmMessageDto)
  message!: LlmMessageDto;
}

export class ProgressDto {
  @IsOptional()
  @IsString({ message: 'id must be a string' })
  @MinLength(1, { message: 'id must not be empty' })
  @MaxLength(MAX_PROGRESS_ID_LENGTH, { message: `id must be at most ${MAX_PROGRESS_ID_LENGTH} characters` })
  id?: string;

  @IsString({ message: 'message must be a string' })
  @MinLength(1, { message: 'message must not be empty' })
  @MaxLength(MAX_PROGRESS_MESSAGE_LENGTH, {
    message: `message must be at most ${MAX_PROGRESS_MESSAGE_LENGTH} characters`,
  })
  message!: string;

  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'percent must be a number' })
  @Min(0, { message: 'percent must be at least 0' })
  @Max(100, { message: 'percent must be at most 100' })
  percent?: number;
}

export class ProgressBodyDto {
  @IsObject({ message: 'progress must be an object' })
  @NestedDto(() => ProgressDto)
  progress!: ProgressDto;
}
