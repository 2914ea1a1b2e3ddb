import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { EXTERNAL_ID_PATTERN } from '@backchannel/contracts';

export class EndConversationDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: 'conversation_id must be a valid conversation id' })
  conversation_id!: string;

  @IsOptional()
  @IsString({ message: 'reason must be a string' })
  @MaxLength(256, { message: 'reason must be at most 256 characters' })
  reason?: string;
}
