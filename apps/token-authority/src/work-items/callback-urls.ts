import { Injectable } from '@nestjs/common';
import { MeshConfig, publicBaseUrl } from '@backchannel/config';

/** `callback.url` = `PUBLIC_BASE_URL` + `/api/v1/webhooks/{work_item_id}` (CONTRACT.md §2). */
@Injectable()
export class CallbackUrls {
  private readonly base: string;

  constructor(config: MeshConfig) {
    this.base = publicBaseUrl(config);
  }

  callbackUrl(workItemId: string): string {
    return `${this.base}/api/v1/webhooks/${workItemId}`;
  }
}
