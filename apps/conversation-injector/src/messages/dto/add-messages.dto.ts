import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsObject, IsString, MaxLength, MinLength } from 'class-validator';
import { NestedDto } from '@backchannel/http';
import { MAX_MESSAGES_PER_ADD, MAX_MESSAGE_CONTENT_LENGTH } from '@backchannel/contracts';

export const API_ROLES = ['system', 'user'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/** One message a tenant adds (CONTRACT.md §4). */
export class NewMessageDto {
  @IsIn(API_ROLES, { message: 'role must be "system" or "user"' })
  role!: ApiRole;

  @IsString({ message: 'content must be a string' })
  @MinLength(1, { message: 'content must not be empty' })
  @MaxLength(MAX_MESSAGE_CONTENT_LENGTH, {
    message: `content must be at most ${MAX_MESSAGE_CONTENT_LENGTH} characters`,
  })
  content!: string;
}

/** `{"messages":[…]}`: 1–20 messages. */
export class AddMessagesDto {
  @IsArray({ message: 'messages must be an array' })
  @ArrayMinSize(1, { message: 'messages must hold at least one message' })
  @ArrayMaxSize(MAX_MESSAGES_PER_ADD, { message: `messages must hold at most ${MAX_MESSAGES_PER_ADD} messages` })
  @IsObject({ each: true, message: 'each message must be an object' })
  @NestedDto(() => NewMessageDto, { each: true })
  messages!: NewMessageDto[];
}
