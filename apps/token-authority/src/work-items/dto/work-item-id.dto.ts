import { Matches } from 'class-validator';
import { WORK_ITEM_ID_PATTERN } from '@backchannel/contracts';

export class WorkItemIdDto {
  @Matches(WORK_ITEM_ID_PATTERN, { message: 'work_item_id must be "wi_" followed by a ULID' })
  work_item_id!: string;
}
