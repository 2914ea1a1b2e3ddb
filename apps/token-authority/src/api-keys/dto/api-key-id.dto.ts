import { Matches } from 'class-validator';
import { API_KEY_ID_PATTERN } from '@backchannel/contracts';

export class ApiKeyIdDto {
  @Matches(API_KEY_ID_PATTERN, { message: 'key_id must be "key_" followed by a ULID' })
  key_id!: string;
}
