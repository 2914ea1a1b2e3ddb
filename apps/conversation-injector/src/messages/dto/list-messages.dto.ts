import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';
import { EXTERNAL_ID_PATTERN, MAX_PAGE_LIMIT } from '@backchannel/contracts';

/** `bc.v1.conversations.messages.list` (CONTRACT.md §2): the same page as the tenant API's GET. */
export class ListMessagesRequestDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: 'conversation_id must be a valid conversation id' })
  conversation_id!: string;

  @IsOptional()
  @IsInt({ message: 'after must be an integer' })
  @Min(0, { message: 'after must be at least 0' })
  after?: number;

  @IsOptional()
  @IsInt({ message: 'limit must be an integer' })
  @Min(1, { message: 'limit must be at least 1' })
  @Max(MAX_PAGE_LIMIT, { message: `limit must be at most ${MAX_PAGE_LIMIT}` })
  limit?: number;
}
