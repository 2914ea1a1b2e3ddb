import { Matches } from 'class-validator';
import { EXTERNAL_ID_PATTERN } from '@backchannel/contracts';

export class CreateApiKeyDto {
  @Matches(EXTERNAL_ID_PATTERN, { message: 'tenant_id must be a valid tenant id' })
  tenant_id!: string;
}
