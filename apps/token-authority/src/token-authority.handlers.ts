import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { API_SUBJECTS } from '@backchannel/contracts';
import { LOGGER, NATS_HANDLES, validateDto } from '@backchannel/http';
import { RpcServer, type NatsHandles } from '@backchannel/messaging';
import type { Logger } from '@backchannel/observability';
import { ApiKeysService } from './api-keys/api-keys.service.js';
import { ApiKeyIdDto } from './api-keys/dto/api-key-id.dto.js';
import { CreateApiKeyDto } from './api-keys/dto/create-api-key.dto.js';
import { ConversationsService } from './conversations/conversations.service.js';
import { EndConversationDto } from './conversations/dto/end-conversation.dto.js';
import { OpenConversationDto } from './conversations/dto/open-conversation.dto.js';
import { RegisterWorkItemDto } from './work-items/dto/register-work-item.dto.js';
import { WorkItemIdDto } from './work-items/dto/work-item-id.dto.js';
import { WorkItemsService } from './work-items/work-items.service.js';

/** The `bc.v1.*` request–reply adapter: the same validation and services as the HTTP API. */
@Injectable()
export class TokenAuthorityHandlers implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly server: RpcServer;

  constructor(
    @Inject(NATS_HANDLES) nats: NatsHandles,
    @Inject(LOGGER) logger: Logger,
    private readonly conversations: ConversationsService,
    private readonly workItems: WorkItemsService,
    private readonly apiKeys: ApiKeysService,
  ) {
    this.server = new RpcServer(nats.nc, logger);
  }

  onApplicationBootstrap(): void {
    const s = API_SUBJECTS;
    this.server.handle(
      s.conversationsOpen,
      async (body) => (await this.conversations.open(validateDto(OpenConversationDto, body))).view,
    );
    this.server.handle(s.conversationsEnd, (body) => this.conversations.end(validateDto(EndConversationDto, body)));
    this.server.handle(
      s.workItemsRegister,
      async (body) => (await this.workItems.register(validateDto(RegisterWorkItemDto, body))).reply,
    );
    this.server.handle(s.workItemsCancel, (body) =>
      this.workItems.cancel(validateDto(WorkItemIdDto, body).work_item_id),
    );
    this.server.handle(s.workItemsGet, (body) => this.workItems.get(validateDto(WorkItemIdDto, body).work_item_id));
    this.server.handle(s.apiKeysCreate, (body) => this.apiKeys.create(validateDto(CreateApiKeyDto, body).tenant_id));
    this.server.handle(s.apiKeysRevoke, (body) => this.apiKeys.revoke(validateDto(ApiKeyIdDto, body).key_id));
    this.server.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server.stop();
  }
}
