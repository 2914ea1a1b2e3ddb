import { IsObject, IsOptional, Matches } from 'class-validator';
import { EXTERNAL_ID_PATTERN } from '@backchannel/contracts';

const ID_RULE = 'must be 1–128 characters of [A-Za-z0-9_:-], starting with a letter or digit';

export class OpenConversationDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: `conversation_id ${ID_RULE}` })
  conversation_id!: string;

  @Matches(EXTERNAL_ID_PATTERN, { message: `tenant_id ${ID_RULE}` })
  tenant_id!: string;

  @IsOptional()
  @IsObject({ message: 'metadata must be an object' })
  metadata?: Record<string, unknown>;
}
